# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property tests of the retention engine: safety, determinism, idempotence, monotonicity.

Small populations are drawn element by element (so failures shrink to a minimal case); large ones
(up to a few thousand snapshots) are generated from a drawn seed to keep the run fast.
"""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils.retention import (
    COUNT_RULES,
    DELETE,
    KEEP,
    PROTECT,
    RetentionPolicy,
    Snapshot,
    decide,
)
from ansible_collections.blockwise.ebs.plugins.module_utils.schedule import get_zone

UTC = timezone.utc
BASE = datetime(2022, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 366 * 86400
NOW = BASE + timedelta(seconds=SPAN_SECONDS)
ZONES = ("UTC", "Europe/Berlin", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata", "Australia/Lord_Howe")
STATES = ("completed",) * 8 + ("pending", "error")
BUCKET_KEYS = {
    "keep_hourly": lambda t: (t.year, t.month, t.day, t.hour, t.utcoffset()),
    "keep_daily": lambda t: (t.year, t.month, t.day),
    "keep_weekly": lambda t: tuple(t.isocalendar())[:2],
    "keep_monthly": lambda t: (t.year, t.month),
    "keep_yearly": lambda t: t.year,
}

SMALL = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LARGE = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Population:
    """Snapshots plus the caller-side protections and scope that go with them."""

    def __init__(self, snapshots, protected, out_of_scope):
        self.snapshots = snapshots
        self.protected = protected
        self.out_of_scope = out_of_scope

    def run(self, policy, snapshots=None, order=None):
        snaps = list(self.snapshots if snapshots is None else snapshots)
        if order is not None:
            order.shuffle(snaps)
        return decide(snaps, policy, NOW, protected=self.protected, in_scope=lambda s: s.snapshot_id not in self.out_of_scope)


@st.composite
def policies(draw):
    counts = {name: draw(st.none() | st.integers(1, 30)) for name in COUNT_RULES}
    # Short windows often land exactly on a snapshot time (the dense recent snapshots are half-hourly).
    hours = st.integers(1, 72) | st.integers(1, 2 * 366 * 24)
    within = draw(st.none() | hours.map(lambda value: timedelta(hours=value)))
    if within is None and all(value is None for value in counts.values()):
        counts[draw(st.sampled_from(COUNT_RULES))] = draw(st.integers(1, 30))
    return RetentionPolicy(keep_within=within, minimum=draw(st.integers(0, 6)), timezone=draw(st.sampled_from(ZONES)), **counts)


@st.composite
def widenings(draw, policy):
    """A policy that keeps at least as much as ``policy``: a rule added, a count or the floor raised."""
    choice = draw(st.sampled_from(COUNT_RULES + ("keep_within", "minimum")))
    if choice in COUNT_RULES:
        current = getattr(policy, choice) or 0
        return replace(policy, **{choice: current + draw(st.integers(1, 20))})
    if choice == "keep_within":
        current = policy.keep_within or timedelta(0)
        return replace(policy, keep_within=current + timedelta(hours=draw(st.integers(1, 2000))))
    return replace(policy, minimum=policy.minimum + draw(st.integers(1, 5)))


def _offsets(draw_int):
    """Time offsets that cluster (many per hour/day, exact ties) as well as spread out."""
    kind = draw_int(0, 3)
    if kind == 0:
        return draw_int(0, SPAN_SECONDS)
    if kind == 1:
        return draw_int(0, SPAN_SECONDS // 3600) * 3600  # on the hour: ties across volumes and ids
    if kind == 2:
        return SPAN_SECONDS - draw_int(0, 144) * 1800  # the last three days, dense, on keep_within edges
    return draw_int(0, 400) * 86400 + 2 * 3600  # daily at 02:00


@st.composite
def small_populations(draw):
    size = draw(st.integers(0, 60))
    volumes = draw(st.integers(1, 4))
    snapshots, protected, out_of_scope = [], {}, set()
    for number in range(size):
        snapshot_id = "snap-%04d" % number
        offset = _offsets(lambda low, high: draw(st.integers(low, high)))
        snapshots.append(
            Snapshot(
                snapshot_id=snapshot_id,
                volume_id="vol-%d" % draw(st.integers(0, volumes - 1)),
                start_time=BASE + timedelta(seconds=offset),
                state=draw(st.sampled_from(STATES)),
            )
        )
        flag = draw(st.integers(0, 9))
        if flag == 0:
            protected[snapshot_id] = ["ami:ami-%04d" % number]
        elif flag == 1:
            protected[snapshot_id] = ["protect-tag"]
        elif flag == 2:
            out_of_scope.add(snapshot_id)
    return Population(snapshots, protected, out_of_scope)


@st.composite
def large_populations(draw):
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    size = rng.randint(500, 3000)
    volumes = rng.randint(1, 40)
    snapshots, protected, out_of_scope = [], {}, set()
    for number in range(size):
        snapshot_id = "snap-%06d" % number
        snapshots.append(
            Snapshot(
                snapshot_id=snapshot_id,
                volume_id="vol-%03d" % rng.randrange(volumes),
                start_time=BASE + timedelta(seconds=_offsets(rng.randint)),
                state=rng.choice(STATES),
                tags={"blockwise:protect": ""} if rng.random() < 0.03 else {},
            )
        )
        roll = rng.random()
        if roll < 0.05:
            protected[snapshot_id] = ["ami:ami-%06d" % number]
        elif roll < 0.08:
            protected[snapshot_id] = ["protect-tag"]
        elif roll < 0.1:
            out_of_scope.add(snapshot_id)
    return Population(snapshots, protected, out_of_scope)


def deleted_ids(decisions):
    return {d.snapshot.snapshot_id for d in decisions if d.action == DELETE}


def check_safety(population, policy, decisions):
    """Every snapshot decided once; nothing protected, pending or in the floor deleted; rule bounds."""
    assert sorted(d.snapshot.snapshot_id for d in decisions) == sorted(s.snapshot_id for s in population.snapshots)
    zone = get_zone(policy.timezone)
    by_volume = {}
    for decision in decisions:
        snap = decision.snapshot
        must_protect = snap.state != "completed" or snap.snapshot_id in population.protected or snap.snapshot_id in population.out_of_scope
        if must_protect:
            assert decision.action == PROTECT, decision
        else:
            assert decision.action in (KEEP, DELETE), decision
        assert decision.reasons
        if decision.action == DELETE:
            assert decision.reasons == ("no rule keeps it",)
        by_volume.setdefault(snap.volume_id, []).append(decision)
    for volume_decisions in by_volume.values():
        candidates = sorted(
            (d for d in volume_decisions if d.action != PROTECT), key=lambda d: (d.snapshot.start_time, d.snapshot.snapshot_id), reverse=True
        )
        for decision in candidates[: policy.minimum]:
            assert decision.action == KEEP and "minimum" in decision.reasons
        for decision in candidates[: policy.keep_last or 0]:
            assert "keep_last" in decision.reasons
        assert sum("keep_last" in d.reasons for d in candidates) == min(policy.keep_last or 0, len(candidates))
        for decision in candidates:
            if policy.keep_within is not None:
                assert ("keep_within" in decision.reasons) == (decision.snapshot.start_time >= NOW - policy.keep_within)
        for rule, key in BUCKET_KEYS.items():
            count = getattr(policy, rule)
            kept = [d for d in candidates if rule in d.reasons]
            buckets = [key(d.snapshot.start_time.astimezone(zone)) for d in kept]
            assert len(set(buckets)) == len(buckets) <= (count or 0)
            # Each kept one is the newest candidate of its bucket.
            for bucket, decision in zip(buckets, kept):
                newest = next(d for d in candidates if key(d.snapshot.start_time.astimezone(zone)) == bucket)
                assert newest is decision


def check_order_independent(population, policy, decisions, rng):
    assert population.run(policy, order=rng) == decisions


def check_idempotent(population, policy, decisions):
    survivors = [d.snapshot for d in decisions if d.action != DELETE]
    again = population.run(policy, snapshots=survivors)
    assert not deleted_ids(again)
    assert {d.snapshot.snapshot_id for d in again if d.action == KEEP} == {d.snapshot.snapshot_id for d in decisions if d.action == KEEP}


def check_monotonic(population, policy, wider, decisions):
    assert deleted_ids(population.run(wider)) <= deleted_ids(decisions)


@SMALL
@given(population=small_populations(), policy=policies(), rng=st.randoms(use_true_random=False))
def test_small_populations_invariants(population, policy, rng):
    decisions = population.run(policy)
    check_safety(population, policy, decisions)
    check_order_independent(population, policy, decisions, rng)
    check_idempotent(population, policy, decisions)


@SMALL
@given(population=small_populations(), data=st.data())
def test_small_populations_monotonic(population, data):
    policy = data.draw(policies())
    wider = data.draw(widenings(policy))
    check_monotonic(population, policy, wider, population.run(policy))


@LARGE
@given(population=large_populations(), data=st.data())
def test_large_populations_invariants(population, data):
    policy = data.draw(policies())
    decisions = population.run(policy)
    check_safety(population, policy, decisions)
    check_order_independent(population, policy, decisions, random.Random(data.draw(st.integers(0, 2**32 - 1))))
    check_idempotent(population, policy, decisions)
    check_monotonic(population, policy, data.draw(widenings(policy)), decisions)


@SMALL
@given(population=small_populations(), policy=policies())
def test_timezone_only_moves_calendar_buckets(population, policy):
    """keep_last, keep_within and minimum do not depend on the time zone."""
    keep_last = policy.keep_last or (None if policy.keep_within else 1)
    plain = replace(policy, keep_last=keep_last, keep_hourly=None, keep_daily=None, keep_weekly=None, keep_monthly=None, keep_yearly=None)
    assert population.run(plain) == population.run(replace(plain, timezone="Pacific/Auckland"))


# --- daylight saving time: distinct real hours are distinct hourly buckets ---------------------

DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Auckland", "America/St_Johns")


def _transitions(zone_name, year=2024):
    """The UTC instants at which ``zone_name`` changes its offset during ``year`` (hourly scan, then by minute)."""
    zone = get_zone(zone_name)
    found = []
    start = datetime(year, 1, 1, tzinfo=UTC)
    for hour in range(366 * 24):
        before, after = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
        if before.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            minute = next(m for m in range(61) if (before + timedelta(minutes=m)).astimezone(zone).utcoffset() != before.astimezone(zone).utcoffset())
            found.append(before + timedelta(minutes=minute))
    return found


TRANSITIONS = [(zone, instant) for zone in DST_ZONES for instant in _transitions(zone)]


@SMALL
@given(where=st.sampled_from(TRANSITIONS), minutes=st.lists(st.integers(-240, 240), min_size=1, max_size=40, unique=True),
       count=st.integers(1, 12))
def test_dst_hourly_buckets_never_merge_distinct_real_hours(where, minutes, count):
    """Around every 2024 clock change of zones with 1 h and 30 min shifts: a snapshot is only dropped by
    keep_hourly for a newer one of the same local hour and UTC offset, less than an hour later; the kept
    ones are the newest of ``count`` distinct hours."""
    zone_name, instant = where
    zone = get_zone(zone_name)
    snaps = [Snapshot("s%+04d" % m, "vol-1", instant + timedelta(minutes=m)) for m in minutes]
    decisions = decide(snaps, RetentionPolicy(keep_hourly=count, timezone=zone_name), instant + timedelta(hours=5))
    kept = [d.snapshot for d in decisions if d.action == KEEP]
    local = {s.snapshot_id: s.start_time.astimezone(zone) for s in snaps}
    hour_of = {sid: (t.date(), t.hour, t.utcoffset()) for sid, t in local.items()}
    assert len({hour_of[s.snapshot_id] for s in kept}) == len(kept) == min(count, len(set(hour_of.values())))
    for decision in decisions:
        if decision.action != DELETE:
            continue
        snap = decision.snapshot
        newer_same_hour = [s for s in snaps if hour_of[s.snapshot_id] == hour_of[snap.snapshot_id] and s.start_time > snap.start_time]
        in_kept_hours = hour_of[snap.snapshot_id] in {hour_of[s.snapshot_id] for s in kept}
        if in_kept_hours:
            assert newer_same_hour and all(s.start_time - snap.start_time < timedelta(hours=1) for s in newer_same_hour)


@SMALL
@given(where=st.sampled_from(TRANSITIONS), minutes=st.lists(st.integers(-2000, 2000), min_size=1, max_size=40, unique=True))
def test_dst_daily_buckets_are_local_calendar_days(where, minutes):
    """keep_daily keeps exactly the newest snapshot of each local date, whether the day has 23, 24 or 25 hours."""
    zone_name, instant = where
    zone = get_zone(zone_name)
    snaps = [Snapshot("s%+05d" % m, "vol-1", instant + timedelta(minutes=m)) for m in minutes]
    decisions = decide(snaps, RetentionPolicy(keep_daily=100, timezone=zone_name), instant + timedelta(days=3))
    newest_per_day = {}
    for snap in snaps:
        day = snap.start_time.astimezone(zone).date()
        if day not in newest_per_day or snap.start_time > newest_per_day[day].start_time:
            newest_per_day[day] = snap
    assert {d.snapshot.snapshot_id for d in decisions if d.action == KEEP} == {s.snapshot_id for s in newest_per_day.values()}
