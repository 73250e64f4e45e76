# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive tier decisions: unit cases and properties (never delete within 90 days in the archive; the union of
keep rules is unchanged by archiving)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import archive
from ansible_collections.blockwise.ebs.plugins.module_utils.retention import DELETE, KEEP, PROTECT, RetentionPolicy, Snapshot, decide

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
MONTHLY = archive.parse_policy({"after": "30d", "rules": ["keep_monthly", "keep_yearly"]})


def daily(count, state_of=lambda i: "completed"):
    return [Snapshot("snap-%04d" % i, "vol-1", NOW - timedelta(days=i, hours=1), state=state_of(i)) for i in range(count)]


def by_id(decisions):
    return {d.snapshot_id: d for d in decisions}


def test_old_snapshots_kept_only_by_monthly_are_archived_recent_ones_stay():
    snaps = daily(200)
    decisions = decide(snaps, RetentionPolicy(keep_daily=7, keep_monthly=12), NOW)
    out = by_id(archive.apply(decisions, {}, MONTHLY, NOW))
    archived = [d for d in out.values() if d.action == archive.ARCHIVE]
    assert archived and all(d.reasons[-1] == archive.REASON_AFTER for d in archived)
    assert all(NOW - d.decision.snapshot.start_time > timedelta(days=30) for d in archived)
    assert out["snap-0000"].action == KEEP  # kept by keep_daily too: stays in standard


def test_not_archivable_snapshots_stay_with_the_reason():
    snaps = daily(100, state_of=lambda i: "pending" if i == 95 else "completed")
    decisions = decide(snaps, RetentionPolicy(keep_monthly=12), NOW)
    candidates = [d.snapshot_id for d in decisions if d.action == KEEP and NOW - d.snapshot.start_time > timedelta(days=30)]
    tiers = {candidates[0]: archive.Tier("archive", NOW - timedelta(days=5)),
             candidates[1]: archive.Tier("standard", None, "temporary-restore-in-progress")}
    out = by_id(archive.apply(decisions, tiers, MONTHLY, NOW))
    assert out[candidates[0]].action == KEEP and out[candidates[0]].reasons[-1] == "archived"
    assert out[candidates[1]].action == KEEP and out[candidates[1]].reasons[-1] == "not-archivable:restoring"
    pending = [d for d in decisions if d.snapshot.state == "pending"]
    assert all(out[d.snapshot_id].action == PROTECT for d in pending)  # the engine protects pending snapshots


@pytest.mark.parametrize("days, allow, action", [(10, False, KEEP), (89, False, KEEP), (91, False, DELETE), (10, True, DELETE)])
def test_archived_snapshots_are_not_deleted_within_90_days(days, allow, action):
    snaps = daily(20)
    decisions = decide(snaps, RetentionPolicy(keep_last=3), NOW)
    doomed = [d.snapshot_id for d in decisions if d.action == DELETE][0]
    policy = archive.parse_policy({"after": "30d", "rules": ["keep_monthly"]}, allow_early_archive_delete=allow)
    tiers = {doomed: archive.Tier("archive", NOW - timedelta(days=days))}
    out = by_id(archive.apply(decisions, tiers, policy, NOW))
    assert out[doomed].action == action
    if action == KEEP:
        assert out[doomed].reasons == (archive.REASON_MINIMUM,)


def test_archival_in_progress_counts_as_day_zero():
    decisions = decide(daily(10), RetentionPolicy(keep_last=1), NOW)
    doomed = [d.snapshot_id for d in decisions if d.action == DELETE][0]
    out = by_id(archive.apply(decisions, {doomed: archive.Tier("standard", None, "archival-in-progress")}, MONTHLY, NOW))
    assert out[doomed].action == KEEP


@pytest.mark.parametrize("spec, fragment", [
    ({"after": "soon", "rules": ["keep_monthly"]}, "retention.archive.after"),
    ({"after": "30d", "rules": []}, "retention.archive.rules"),
    ({"after": "30d", "rules": ["keep_forever"]}, "retention.archive.rules"),
    ({"after": "30d", "rules": ["keep_monthly"], "when": 1}, "retention.archive"),
    ("30d", "retention.archive"),
])
def test_bad_archive_option_names_it(spec, fragment):
    with pytest.raises(archive.ArchiveError) as caught:
        archive.parse_policy(spec)
    assert fragment in str(caught.value)


PROPS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(seed=st.integers(0, 10 ** 6), allow=st.booleans(), after_days=st.integers(1, 400))
def test_properties_union_unchanged_and_90_day_floor(seed, allow, after_days):
    rnd = random.Random(seed)
    snaps = [Snapshot("snap-%04d" % i, "vol-%d" % rnd.randint(1, 3), NOW - timedelta(hours=rnd.randint(1, 900 * 24)),
                      state=rnd.choice(("completed",) * 9 + ("pending",))) for i in range(rnd.randint(1, 120))]
    policy = RetentionPolicy(keep_last=rnd.choice((None, 2)), keep_daily=rnd.choice((None, 5)), keep_monthly=rnd.randint(1, 12),
                             keep_yearly=rnd.choice((None, 2)))
    decisions = decide(snaps, policy, NOW)
    tiers = {}
    for d in decisions:
        if rnd.random() < 0.3:
            tiers[d.snapshot_id] = archive.Tier(rnd.choice(("archive", "standard")), NOW - timedelta(days=rnd.randint(0, 200)),
                                                rnd.choice(("", "archival-completed", "archival-in-progress")))
    arch = archive.ArchivePolicy(timedelta(days=after_days), frozenset(rnd.sample(archive.ARCHIVABLE_RULES, 2)), allow)
    out = archive.apply(decisions, tiers, arch, NOW)
    assert [o.snapshot_id for o in out] == [d.snapshot_id for d in decisions]
    for before, after in zip(decisions, out):
        # Union of keep rules unchanged: nothing kept or protected becomes a deletion; archive means kept.
        if before.action in (KEEP, PROTECT):
            assert after.action in (before.action, archive.ARCHIVE, KEEP)
            assert after.action != DELETE
        if after.action == DELETE:
            assert before.action == DELETE
            tier = tiers.get(before.snapshot_id, archive.Tier())
            assert allow or not archive.in_minimum_period(tier, NOW)  # never deleted within 90 days in the archive
        if after.action == archive.ARCHIVE:
            assert before.action == KEEP and set(before.reasons) <= arch.rules
            assert before.snapshot.state == "completed" and tiers.get(before.snapshot_id, archive.Tier()).storage_tier != "archive"
    again = archive.apply(decisions, tiers, arch, NOW)
    assert again == out  # deterministic
