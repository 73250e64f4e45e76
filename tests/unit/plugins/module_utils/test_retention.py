# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the retention engine on hand-made timelines."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils.retention import (
    DELETE,
    KEEP,
    PROTECT,
    Decision,
    RetentionError,
    RetentionPolicy,
    Snapshot,
    decide,
    group_of,
    keep_reasons,
    parse_retention_tag,
    protections,
    snapshot_images,
    summarize,
    to_result,
    volume_policies,
)
from ansible_collections.blockwise.ebs.plugins.module_utils.schedule import get_zone

UTC = timezone.utc


def at(*args):
    return datetime(*args, tzinfo=UTC)


def snap(snapshot_id, when, volume_id="vol-1", state="completed", tags=None):
    return Snapshot(snapshot_id=snapshot_id, volume_id=volume_id, start_time=when, state=state, tags=tags or {})


def by_action(decisions):
    result = {KEEP: set(), DELETE: set(), PROTECT: set()}
    for decision in decisions:
        result[decision.action].add(decision.snapshot.snapshot_id)
    return result


def reasons_of(decisions):
    return {d.snapshot.snapshot_id: d.reasons for d in decisions}


# --- grandfather-father-son over 400 daily snapshots -------------------------------------------


def daily_timeline(first, days, hour=2, minute=0, volume_id="vol-1"):
    """One snapshot per day at hour:minute UTC; ids are the dates, so expectations read as dates."""
    snaps = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        snaps.append(snap(day.isoformat(), datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC), volume_id))
    return snaps


def test_gfs_400_daily_snapshots():
    # 2023-01-01 .. 2024-02-04 (400 days; 2024-02-04 is a Sunday), now = the last day at noon.
    snaps = daily_timeline(date(2023, 1, 1), 400)
    assert snaps[-1].snapshot_id == "2024-02-04"
    policy = RetentionPolicy(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=2)
    decisions = decide(snaps, policy, at(2024, 2, 4, 12))

    # keep_daily 7: the seven newest days.
    daily = ["2024-02-04", "2024-02-03", "2024-02-02", "2024-02-01", "2024-01-31", "2024-01-30", "2024-01-29"]
    # keep_weekly 5: ISO weeks run Monday..Sunday, so the newest snapshot of each week is its Sunday;
    # the current week (Mon 01-29 .. Sun 02-04) and the four before it.
    weekly = ["2024-02-04", "2024-01-28", "2024-01-21", "2024-01-14", "2024-01-07"]
    # keep_monthly 12: the newest snapshot of each month is its last day, except February 2024 which
    # ends (so far) on 02-04; twelve months back from February 2024 reach March 2023.
    monthly = [
        "2024-02-04", "2024-01-31", "2023-12-31", "2023-11-30", "2023-10-31", "2023-09-30",
        "2023-08-31", "2023-07-31", "2023-06-30", "2023-05-31", "2023-04-30", "2023-03-31",
    ]
    # keep_yearly 2: the newest of 2024 and the newest of 2023.
    yearly = ["2024-02-04", "2023-12-31"]

    expected = set(daily) | set(weekly) | set(monthly) | set(yearly)
    assert len(expected) == 21
    actions = by_action(decisions)
    assert actions[KEEP] == expected
    assert actions[DELETE] == {s.snapshot_id for s in snaps} - expected
    assert not actions[PROTECT]

    reasons = reasons_of(decisions)
    assert reasons["2024-02-04"] == ("keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
    assert reasons["2024-01-31"] == ("keep_daily", "keep_monthly")
    assert reasons["2023-12-31"] == ("keep_monthly", "keep_yearly")
    assert reasons["2024-01-07"] == ("keep_weekly",)
    assert reasons["2023-03-31"] == ("keep_monthly",)
    assert reasons["2023-03-30"] == ("no rule keeps it",)
    assert summarize(decisions) == {"vol-1": {"keep": 21, "delete": 379, "protect": 0}}


def test_fewer_buckets_than_the_count_keeps_what_exists():
    # Two calendar years of history and keep_yearly 5: two buckets exist, two snapshots are kept
    # (the oldest snapshot is not kept as an extra).
    snaps = daily_timeline(date(2023, 12, 1), 60)
    decisions = decide(snaps, RetentionPolicy(keep_yearly=5), at(2024, 3, 1))
    assert by_action(decisions)[KEEP] == {"2024-01-29", "2023-12-31"}


def test_empty_buckets_are_skipped_not_counted():
    # Snapshots only in January, March and June: keep_monthly 2 keeps June and March.
    snaps = [snap("jan", at(2024, 1, 15)), snap("mar", at(2024, 3, 15)), snap("jun", at(2024, 6, 15)), snap("jun-early", at(2024, 6, 1))]
    decisions = decide(snaps, RetentionPolicy(keep_monthly=2), at(2024, 7, 1))
    assert by_action(decisions)[KEEP] == {"jun", "mar"}


def test_keep_hourly():
    snaps = [snap("a", at(2024, 5, 1, 10, 5)), snap("b", at(2024, 5, 1, 10, 55)), snap("c", at(2024, 5, 1, 11, 1)), snap("d", at(2024, 5, 1, 13, 0))]
    decisions = decide(snaps, RetentionPolicy(keep_hourly=2), at(2024, 5, 1, 14))
    assert by_action(decisions)[KEEP] == {"d", "c"}
    decisions = decide(snaps, RetentionPolicy(keep_hourly=3), at(2024, 5, 1, 14))
    assert by_action(decisions)[KEEP] == {"d", "c", "b"}


def test_iso_weeks_cross_the_new_year():
    # 2024-12-29 is a Sunday (ISO 2024-W52); 2024-12-30 (Monday) starts ISO week 2025-W01.
    snaps = [snap("sun", at(2024, 12, 29, 2)), snap("mon", at(2024, 12, 30, 2)), snap("wed", at(2025, 1, 1, 2))]
    decisions = decide(snaps, RetentionPolicy(keep_weekly=2), at(2025, 1, 2))
    assert by_action(decisions)[KEEP] == {"wed", "sun"}
    # ...whereas calendar years split them differently.
    decisions = decide(snaps, RetentionPolicy(keep_yearly=2), at(2025, 1, 2))
    assert by_action(decisions)[KEEP] == {"wed", "mon"}


# --- time zones ----------------------------------------------------------------------------------


def test_timezone_changes_daily_buckets():
    # Pacific/Auckland is UTC+13 in January (NZDT).
    #   a: 2024-01-10 10:00 UTC = 01-10 23:00 Auckland
    #   b: 2024-01-10 23:30 UTC = 01-11 12:30 Auckland
    #   c: 2024-01-11 00:30 UTC = 01-11 13:30 Auckland
    snaps = [snap("a", at(2024, 1, 10, 10)), snap("b", at(2024, 1, 10, 23, 30)), snap("c", at(2024, 1, 11, 0, 30))]
    now = at(2024, 1, 12)
    utc = by_action(decide(snaps, RetentionPolicy(keep_daily=2), now))
    assert utc[KEEP] == {"c", "b"} and utc[DELETE] == {"a"}
    auckland = by_action(decide(snaps, RetentionPolicy(keep_daily=2, timezone="Pacific/Auckland"), now))
    assert auckland[KEEP] == {"c", "a"} and auckland[DELETE] == {"b"}


def test_timezone_changes_monthly_buckets():
    # 2024-01-31 23:30 UTC is already February in Auckland.
    snaps = [snap("jan-30", at(2024, 1, 30, 23, 30)), snap("jan-31", at(2024, 1, 31, 23, 30)), snap("feb-01", at(2024, 2, 1, 23, 30))]
    now = at(2024, 2, 5)
    assert by_action(decide(snaps, RetentionPolicy(keep_monthly=2), now))[KEEP] == {"feb-01", "jan-31"}
    assert by_action(decide(snaps, RetentionPolicy(keep_monthly=2, timezone="Pacific/Auckland"), now))[KEEP] == {"feb-01", "jan-30"}


def test_timezone_23_30_utc_daily_series_shifts_by_one_day():
    # Daily at 23:30 UTC: in Auckland each snapshot is on the next local day, so keep_daily 3 keeps the
    # same three snapshots, but the snapshot bucketed on a given local day differs.
    snaps = daily_timeline(date(2024, 1, 1), 10, hour=23, minute=30)
    now = at(2024, 1, 11)
    for zone in ("UTC", "Pacific/Auckland", "America/Los_Angeles"):
        assert by_action(decide(snaps, RetentionPolicy(keep_daily=3, timezone=zone), now))[KEEP] == {"2024-01-10", "2024-01-09", "2024-01-08"}
    # Two snapshots 1 hour apart around local midnight: one day in UTC, two days in Los Angeles (UTC-8).
    pair = [snap("early", at(2024, 1, 5, 7, 30)), snap("late", at(2024, 1, 5, 8, 30))]
    assert by_action(decide(pair, RetentionPolicy(keep_daily=5), now))[KEEP] == {"late"}
    assert by_action(decide(pair, RetentionPolicy(keep_daily=5, timezone="America/Los_Angeles"), now))[KEEP] == {"late", "early"}


def test_repeated_hour_at_dst_end_is_two_hourly_buckets():
    # Europe/Berlin, 2024-10-27: 00:30 UTC = 02:30 CEST and 01:30 UTC = 02:30 CET: two different hours.
    snaps = [snap("cest", at(2024, 10, 27, 0, 30)), snap("cet", at(2024, 10, 27, 1, 30)), snap("three", at(2024, 10, 27, 2, 30))]
    now = at(2024, 10, 27, 3)
    berlin = by_action(decide(snaps, RetentionPolicy(keep_hourly=24, timezone="Europe/Berlin"), now))
    assert berlin[KEEP] == {"three", "cet", "cest"} and berlin[DELETE] == set()
    assert by_action(decide(snaps, RetentionPolicy(keep_hourly=2, timezone="Europe/Berlin"), now))[KEEP] == {"three", "cet"}
    assert by_action(decide(snaps, RetentionPolicy(keep_hourly=24), now))[KEEP] == {"three", "cet", "cest"}


def test_each_half_of_the_repeated_hour_keeps_its_newest():
    # Four snapshots in the repeated 02:xx hour: 02:10 and 02:50 CEST, then 02:10 and 02:50 CET.
    snaps = [snap("cest-10", at(2024, 10, 27, 0, 10)), snap("cest-50", at(2024, 10, 27, 0, 50)),
             snap("cet-10", at(2024, 10, 27, 1, 10)), snap("cet-50", at(2024, 10, 27, 1, 50))]
    decisions = decide(snaps, RetentionPolicy(keep_hourly=5, timezone="Europe/Berlin"), at(2024, 10, 27, 2))
    assert by_action(decisions)[KEEP] == {"cest-50", "cet-50"}
    assert by_action(decisions)[DELETE] == {"cest-10", "cet-10"}


def test_hourly_snapshots_through_the_autumn_night_keep_one_per_real_hour():
    # Every 20 minutes from 22:00 UTC on 26 October to 04:00 UTC: 6 real hours, 18 snapshots.
    first = at(2024, 10, 26, 22)
    snaps = [snap("s%02d" % i, first + timedelta(minutes=20 * i)) for i in range(18)]
    kept = by_action(decide(snaps, RetentionPolicy(keep_hourly=100, timezone="Europe/Berlin"), at(2024, 10, 27, 5)))[KEEP]
    assert kept == {"s%02d" % i for i in (2, 5, 8, 11, 14, 17)}  # the :40 of each real hour
    kept = by_action(decide(snaps, RetentionPolicy(keep_hourly=3, timezone="Europe/Berlin"), at(2024, 10, 27, 5)))[KEEP]
    assert kept == {"s11", "s14", "s17"}


def test_spring_gap_hours_stay_distinct():
    # Europe/Berlin, 2024-03-31: 01:59 CET (00:59 UTC) is followed by 03:00 CEST (01:00 UTC); 02:xx never happens.
    snaps = [snap("one", at(2024, 3, 31, 0, 30)), snap("one-late", at(2024, 3, 31, 0, 59)),
             snap("three", at(2024, 3, 31, 1, 0)), snap("three-late", at(2024, 3, 31, 1, 59))]
    decisions = decide(snaps, RetentionPolicy(keep_hourly=10, timezone="Europe/Berlin"), at(2024, 3, 31, 3))
    assert by_action(decisions)[KEEP] == {"one-late", "three-late"}


def test_half_hour_dst_shift_lord_howe():
    # Australia/Lord_Howe, 2024-04-07: 02:00 +11:00 falls back to 01:30 +10:30; 01:30-02:00 happens twice.
    zone = get_zone("Australia/Lord_Howe")
    first = at(2024, 4, 6, 14, 45)  # 01:45 +11:00, first pass
    second = at(2024, 4, 6, 15, 15)  # 01:45 +10:30, 30 minutes later
    assert first.astimezone(zone).replace(tzinfo=None) == second.astimezone(zone).replace(tzinfo=None) == datetime(2024, 4, 7, 1, 45)
    snaps = [snap("first", first), snap("second", second)]
    kept = by_action(decide(snaps, RetentionPolicy(keep_hourly=5, timezone="Australia/Lord_Howe"), second + timedelta(hours=1)))[KEEP]
    assert kept == {"first", "second"}


def test_a_25_hour_day_is_one_daily_bucket_and_a_23_hour_day_too():
    zone = "Europe/Berlin"
    # 27 October 2024 (25 hours): 00:10 CEST (26 Oct 22:10 UTC) and 23:50 CET (27 Oct 22:50 UTC) are one day.
    autumn = [snap("start", at(2024, 10, 26, 22, 10)), snap("end", at(2024, 10, 27, 22, 50)), snap("before", at(2024, 10, 26, 21, 50))]
    kept = by_action(decide(autumn, RetentionPolicy(keep_daily=5, timezone=zone), at(2024, 10, 28)))[KEEP]
    assert kept == {"end", "before"}
    # 31 March 2024 (23 hours): 00:10 CET (30 Mar 23:10 UTC) and 23:50 CEST (31 Mar 21:50 UTC) are one day.
    spring = [snap("start", at(2024, 3, 30, 23, 10)), snap("end", at(2024, 3, 31, 21, 50)), snap("after", at(2024, 3, 31, 22, 10))]
    kept = by_action(decide(spring, RetentionPolicy(keep_daily=5, timezone=zone), at(2024, 4, 2)))[KEEP]
    assert kept == {"end", "after"}


def test_week_month_and_year_edges_follow_local_summer_time():
    zone = "Europe/Berlin"
    # 31 March 2024 21:59 UTC = 23:59 CEST on Sunday 31 March; 22:01 UTC = 00:01 CEST on Monday 1 April.
    snaps = [snap("march", at(2024, 3, 31, 21, 59)), snap("april", at(2024, 3, 31, 22, 1))]
    now = at(2024, 4, 2)
    for rule in ("keep_weekly", "keep_monthly"):
        assert by_action(decide(snaps, RetentionPolicy(timezone=zone, **{rule: 5}), now))[KEEP] == {"march", "april"}, rule
    assert by_action(decide(snaps, RetentionPolicy(keep_weekly=5), now))[KEEP] == {"april"}  # one UTC week
    # New Year in Auckland is in summer time (+13:00): 31 Dec 10:59 UTC is 23:59, 11:01 UTC is 00:01 on 1 January.
    years = [snap("old", at(2023, 12, 31, 10, 59)), snap("new", at(2023, 12, 31, 11, 1))]
    kept = by_action(decide(years, RetentionPolicy(keep_yearly=5, timezone="Pacific/Auckland"), at(2024, 1, 2)))[KEEP]
    assert kept == {"old", "new"}


# --- keep_last, keep_within, minimum, ties -----------------------------------------------------


def test_keep_last_and_ties_break_by_snapshot_id():
    when = at(2024, 3, 1, 2)
    snaps = [snap("snap-b", when), snap("snap-a", when), snap("snap-old", at(2024, 2, 1))]
    decisions = decide(snaps, RetentionPolicy(keep_last=1), at(2024, 3, 2))
    assert by_action(decisions)[KEEP] == {"snap-b"}
    assert decide(list(reversed(snaps)), RetentionPolicy(keep_last=1), at(2024, 3, 2)) == decisions
    # Same start time in the same day bucket: the greater id is the newest of the bucket.
    assert by_action(decide(snaps, RetentionPolicy(keep_daily=1), at(2024, 3, 2)))[KEEP] == {"snap-b"}
    assert [d.snapshot.snapshot_id for d in decisions] == ["snap-b", "snap-a", "snap-old"]


def test_keep_within_is_inclusive_and_relative_to_now():
    now = at(2024, 6, 10, 12)
    snaps = [snap("edge", now - timedelta(days=3)), snap("inside", now - timedelta(days=1)), snap("older", now - timedelta(days=3, seconds=1))]
    decisions = decide(snaps, RetentionPolicy(keep_within=timedelta(days=3)), now)
    assert by_action(decisions)[KEEP] == {"edge", "inside"}
    assert reasons_of(decisions)["edge"] == ("keep_within",)
    assert by_action(decide(snaps, RetentionPolicy.from_options({"keep_within": "3 days"}), now))[KEEP] == {"edge", "inside"}


def test_minimum_floor_keeps_newest_completed():
    now = at(2024, 6, 10)
    snaps = [snap("s%d" % day, at(2024, 5, day)) for day in range(1, 11)]
    snaps.append(snap("pending", at(2024, 6, 9), state="pending"))
    snaps.append(snap("failed", at(2024, 6, 8), state="error"))
    decisions = decide(snaps, RetentionPolicy(keep_within=timedelta(days=1), minimum=3), now)
    actions = by_action(decisions)
    # Nothing is within a day; the floor keeps the three newest *completed* snapshots.
    assert actions[KEEP] == {"s10", "s9", "s8"}
    assert actions[PROTECT] == {"pending", "failed"}
    assert reasons_of(decisions)["s10"] == ("minimum",)
    assert reasons_of(decisions)["pending"] == ("pending",)
    assert reasons_of(decisions)["failed"] == ("error",)
    # The floor adds to the rules; it never removes what a rule keeps.
    decisions = decide(snaps, RetentionPolicy(keep_last=5, minimum=2), now)
    assert by_action(decisions)[KEEP] == {"s10", "s9", "s8", "s7", "s6"}
    assert reasons_of(decisions)["s10"] == ("keep_last", "minimum")
    assert reasons_of(decisions)["s8"] == ("keep_last",)


def test_pending_and_protected_snapshots_are_not_counted():
    now = at(2024, 6, 10)
    snaps = [
        snap("new-pending", at(2024, 6, 9), state="pending"),
        snap("ami", at(2024, 6, 8)),
        snap("tagged", at(2024, 6, 7), tags={"blockwise:protect": ""}),
        snap("c1", at(2024, 6, 6)),
        snap("c2", at(2024, 6, 5)),
        snap("c3", at(2024, 6, 4)),
    ]
    protected = protections(snaps, {"ami": ["ami-2", "ami-1"]})
    assert protected == {"new-pending": ["pending"], "ami": ["ami:ami-1", "ami:ami-2"], "tagged": ["protect-tag"]}
    decisions = decide(snaps, RetentionPolicy(keep_last=2), now, protected=protected)
    actions = by_action(decisions)
    assert actions[PROTECT] == {"new-pending", "ami", "tagged"}
    assert actions[KEEP] == {"c1", "c2"}
    assert actions[DELETE] == {"c3"}
    assert reasons_of(decisions)["ami"] == ("ami:ami-1", "ami:ami-2")
    assert reasons_of(decisions)["new-pending"] == ("pending",)


def test_protections_options():
    snaps = [
        Snapshot("mine", "vol-1", at(2024, 1, 1), tags={"keep-me": "1"}, owner_id="111111111111"),
        Snapshot("theirs", "vol-1", at(2024, 1, 2), owner_id="222222222222"),
        Snapshot("legacy", "vol-1", at(2024, 1, 3), tags={"blockwise:protect": "yes"}, owner_id="111111111111"),
    ]
    result = protections(snaps, protect_tag_key="keep-me", owner_id="111111111111", scope=lambda s: s.snapshot_id != "legacy")
    # a custom protect tag adds to blockwise:protect, it never replaces it
    assert result == {"mine": ["protect-tag"], "theirs": ["owner:222222222222"], "legacy": ["protect-tag", "out-of-scope"]}
    assert protections(snaps, protect_tag_key=None) == {"legacy": ["protect-tag"]}


def test_in_scope_callable_or_ids():
    now = at(2024, 6, 10)
    snaps = [snap("a", at(2024, 6, 1)), snap("b", at(2024, 6, 2)), snap("c", at(2024, 6, 3))]
    for scope in ({"a", "b"}, lambda s: s.snapshot_id != "c"):
        decisions = decide(snaps, RetentionPolicy(keep_last=1), now, in_scope=scope)
        assert by_action(decisions) == {KEEP: {"b"}, DELETE: {"a"}, PROTECT: {"c"}}
        assert reasons_of(decisions)["c"] == ("out-of-scope",)


def test_protected_reasons_merge_without_duplicates():
    snaps = [snap("p", at(2024, 6, 1), state="pending"), snap("x", at(2024, 6, 2))]
    decisions = decide(snaps, RetentionPolicy(keep_last=1), at(2024, 6, 3), protected={"p": ["pending", "ami:ami-1"], "x": "protect-tag"})
    assert reasons_of(decisions) == {"p": ("pending", "ami:ami-1"), "x": ("protect-tag",)}


# --- retention tag (per-volume keep_last) -----------------------------------------------------


def test_tag_driven_keep_last():
    now = at(2024, 6, 30)
    snaps = []
    for volume_id in ("vol-a", "vol-b", "vol-c", "vol-gone"):
        snaps.extend(snap("%s-%02d" % (volume_id, day), at(2024, 6, day), volume_id) for day in range(1, 11))
    volume_tags = {
        "vol-a": {"Daily_Gens": "2", "Name": "db"},
        "vol-b": {"Daily_Gens": "seven"},
        "vol-c": {"Name": "no retention tag"},
    }
    base = RetentionPolicy(keep_last=5, keep_monthly=1)
    by_volume, held = volume_policies(base, volume_tags, "Daily_Gens")
    assert by_volume == {"vol-a": RetentionPolicy(keep_last=2, keep_monthly=1)}
    assert list(held) == ["vol-b"]
    assert "Daily_Gens='seven'" in held["vol-b"] and "not an integer >= 1" in held["vol-b"]

    decisions = decide(snaps, base, now, policy_by_volume=by_volume, held_volumes=held)
    kept = by_action(decisions)[KEEP]
    assert {s for s in kept if s.startswith("vol-a")} == {"vol-a-10", "vol-a-09"}
    assert {s for s in kept if s.startswith("vol-c")} == {"vol-c-%02d" % d for d in range(6, 11)}
    assert {s for s in kept if s.startswith("vol-gone")} == {"vol-gone-%02d" % d for d in range(6, 11)}
    assert all(d.action == PROTECT and d.reasons == ("retention-tag-invalid",) for d in decisions if d.volume_id == "vol-b")
    assert summarize(decisions) == {
        "vol-a": {"keep": 2, "delete": 8, "protect": 0},
        "vol-b": {"keep": 0, "delete": 0, "protect": 10},
        "vol-c": {"keep": 5, "delete": 5, "protect": 0},
        "vol-gone": {"keep": 5, "delete": 5, "protect": 0},
    }


@pytest.mark.parametrize("value, expected", [("7", 7), (" 12 ", 12), (3, 3), ("0001", 1)])
def test_parse_retention_tag_valid(value, expected):
    assert parse_retention_tag(value, "Daily_Gens") == expected


@pytest.mark.parametrize("value", ["0", "-1", "7.0", "seven", "", " ", None, True, 0, "\u0667", "1e3", "+3"])
def test_parse_retention_tag_invalid(value):
    with pytest.raises(RetentionError, match="Daily_Gens=.* is not an integer >= 1"):
        parse_retention_tag(value, "Daily_Gens")


def test_volume_policies_without_tag_key():
    assert volume_policies(RetentionPolicy(keep_last=1), {"vol-1": {"Daily_Gens": "3"}}, None) == ({}, {})


# --- policy validation -------------------------------------------------------------------------


def test_from_options_builds_policy():
    policy = RetentionPolicy.from_options(
        {"keep_last": 3, "keep_daily": "7", "keep_weekly": None, "keep_within": "12 hours", "minimum": 2, "timezone": "Europe/Berlin"}
    )
    assert policy == RetentionPolicy(keep_last=3, keep_daily=7, keep_within=timedelta(hours=12), minimum=2, timezone="Europe/Berlin")
    assert policy.has_rules
    assert RetentionPolicy.from_options({"keep_within": timedelta(days=2)}).keep_within == timedelta(days=2)
    assert RetentionPolicy.from_options({"keep_last": 1, "timezone": None}).timezone == "UTC"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"keep_last": 0}, "retention.keep_last must be >= 1"),
        ({"keep_daily": -1}, "retention.keep_daily must be >= 1"),
        ({"keep_daily": "-2"}, "retention.keep_daily must be >= 1, got -2"),
        ({"keep_daily": "0"}, "retention.keep_daily must be >= 1, got 0"),
        ({"keep_yearly": 0}, "retention.keep_yearly must be >= 1"),
        ({"keep_last": 2, "minimum": -1}, "retention.minimum must be >= 0"),
        ({"keep_last": True}, "retention.keep_last must be an integer"),
        ({"keep_last": "many"}, "retention.keep_last must be an integer"),
        ({"keep_last": 1.5}, "retention.keep_last must be an integer"),
        ({"keep_within": "forever"}, "retention.keep_within: cannot parse duration 'forever'"),
        ({"keep_within": "0s"}, "retention.keep_within: duration '0s' must be positive"),
        ({"keep_within": "30"}, "retention.keep_within: duration '30' has no unit"),
        ({"keep_within": "1 month"}, "retention.keep_within: .*months and years"),
        ({"keep_last": 1, "timezone": "Mars/Base"}, "retention.timezone: unknown time zone 'Mars/Base'"),
        ({}, "retention: at least one rule is required"),
        (None, "retention: at least one rule is required"),
        ({"minimum": 3}, "retention: at least one rule is required"),
        ({"keep_last": None, "keep_within": ""}, "retention.keep_within: an empty duration is refused"),
        ({"keep_last": 1, "keep_within": "  "}, "retention.keep_within: an empty duration is refused"),
        ({"keep_within": "99999999 weeks"}, "retention.keep_within: duration '99999999 weeks' is too long"),
        ({"keep_last": 1, "keep_dayly": 7}, "retention: unknown option.*keep_dayly"),
        ("keep_last=1", "retention must be a dictionary"),
    ],
)
def test_from_options_errors(options, message):
    with pytest.raises(RetentionError, match=message):
        RetentionPolicy.from_options(options)


def test_from_options_prefix_names_the_option():
    with pytest.raises(RetentionError, match=r"^rules\.keep_last must be >= 1"):
        RetentionPolicy.from_options({"keep_last": 0}, prefix="rules")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "at least one rule"),
        ({"keep_last": 0}, "retention.keep_last must be >= 1"),
        ({"keep_last": "3"}, "retention.keep_last must be an integer"),
        ({"keep_within": timedelta(0)}, "retention.keep_within must be positive"),
        ({"keep_within": timedelta(weeks=99999999)}, "retention.keep_within: duration .* is too long"),
        ({"keep_within": "1d"}, "retention.keep_within must be a timedelta"),
        ({"keep_last": 1, "minimum": -2}, "retention.minimum must be >= 0"),
        ({"keep_last": 1, "minimum": None}, "retention.minimum must be an integer"),
        ({"keep_last": 1, "timezone": "Nowhere/Atlantis"}, "retention.timezone: unknown time zone"),
    ],
)
def test_policy_constructor_validates(kwargs, message):
    with pytest.raises(RetentionError, match=message):
        RetentionPolicy(**kwargs)


def test_with_keep_last():
    base = RetentionPolicy(keep_daily=7, minimum=1, timezone="Europe/Berlin")
    assert base.with_keep_last(4) == RetentionPolicy(keep_last=4, keep_daily=7, minimum=1, timezone="Europe/Berlin")
    assert base.keep_last is None
    with pytest.raises(RetentionError, match="retention.keep_last must be >= 1"):
        base.with_keep_last(0)


# --- decide input checks and result helpers ----------------------------------------------------


def test_decide_rejects_bad_input():
    good = snap("a", at(2024, 1, 1))
    policy = RetentionPolicy(keep_last=1)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        decide([good], policy, datetime(2024, 1, 2))
    with pytest.raises(ValueError, match="start_time of b must be timezone-aware"):
        decide([good, snap("b", datetime(2024, 1, 1))], policy, at(2024, 1, 2))
    with pytest.raises(RetentionError, match="snapshot a appears more than once"):
        decide([good, good], policy, at(2024, 1, 2))
    with pytest.raises(TypeError, match="RetentionPolicy"):
        decide([good], {"keep_last": 1}, at(2024, 1, 2))


def test_decide_empty_and_ordering():
    assert decide([], RetentionPolicy(keep_last=1), at(2024, 1, 1)) == []
    snaps = [snap("b1", at(2024, 1, 1), "vol-b"), snap("a1", at(2024, 1, 1), "vol-a"), snap("a2", at(2024, 1, 2), "vol-a")]
    decisions = decide(snaps, RetentionPolicy(keep_last=1), at(2024, 1, 3))
    assert [(d.volume_id, d.snapshot_id, d.action) for d in decisions] == [("vol-a", "a2", KEEP), ("vol-a", "a1", DELETE), ("vol-b", "b1", KEEP)]


def test_decide_with_aware_non_utc_times():
    berlin = timezone(timedelta(hours=2))
    snaps = [Snapshot("x", "vol-1", datetime(2024, 6, 1, 1, 0, tzinfo=berlin)), Snapshot("y", "vol-1", datetime(2024, 5, 31, 23, 30, tzinfo=UTC))]
    # x is 2024-05-31 23:00 UTC, so y is the newer one.
    assert by_action(decide(snaps, RetentionPolicy(keep_last=1), at(2024, 6, 2)))[KEEP] == {"y"}


def test_to_result_and_summarize():
    decision = Decision(Snapshot("snap-1", "vol-1", datetime(2024, 1, 1, 3, tzinfo=timezone(timedelta(hours=1)))), KEEP, ("keep_daily", "minimum"))
    assert to_result(decision) == {
        "snapshot_id": "snap-1",
        "volume_id": "vol-1",
        "group": "vol-1",
        "start_time": "2024-01-01T02:00:00+00:00",
        "reasons": ["keep_daily", "minimum"],
    }
    assert summarize([decision, Decision(decision.snapshot, PROTECT, ("pending",))]) == {"vol-1": {"keep": 1, "delete": 0, "protect": 1}}
    assert summarize([]) == {}
    upload = Decision(Snapshot("snap-2", "vol-ffffffff", datetime(2024, 1, 1, tzinfo=UTC), tags={"blockwise:lineage": "db"}), KEEP,
                      ("keep_last",), "lineage:db")
    assert to_result(upload)["group"] == "lineage:db" and to_result(upload)["volume_id"] == "vol-ffffffff"
    assert summarize([upload]) == {"lineage:db": {"keep": 1, "delete": 0, "protect": 0}}


# --- grouping by lineage -----------------------------------------------------------------------


@pytest.mark.parametrize("volume_id, tags, group", [
    ("vol-0123", {}, "vol-0123"),
    ("vol-0123", {"blockwise:policy": "daily"}, "vol-0123"),
    ("vol-ffffffff", {"blockwise:lineage": "disk-a"}, "lineage:disk-a"),
    ("vol-0123", {"blockwise:lineage": "disk-a"}, "lineage:disk-a"),  # the tag wins: a copy may keep a volume id
    ("vol-0123", {"blockwise:lineage": "vol-0123"}, "lineage:vol-0123"),  # never merged with the real volume's group
    ("vol-ffffffff", {}, None),
    ("", {}, None),
    ("vol-ffffffff", {"blockwise:lineage": ""}, None),
    ("vol-ffffffff", {"blockwise:lineage": "  "}, None),
    ("vol-0abc", {"blockwise:source-snapshot": "snap-1"}, None),  # a copy's VolumeId is arbitrary
    ("vol-0abc", {"blockwise:source-snapshot": "snap-1", "blockwise:lineage": "vol-0123"}, "lineage:vol-0123"),
])
def test_group_of(volume_id, tags, group):
    assert group_of(Snapshot("snap-1", volume_id, at(2024, 1, 1), tags=tags)) == group


def test_uploads_of_three_disks_are_three_groups_and_unlabelled_uploads_are_held():
    now = at(2024, 5, 4)
    snaps = []
    for disk in ("a", "b", "c"):
        for day in (1, 2, 3):
            snaps.append(snap("%s%d" % (disk, day), at(2024, 5, day, 2), "vol-ffffffff", tags={"blockwise:lineage": disk}))
    snaps += [snap("x%d" % day, at(2024, 5, day, 3), "vol-ffffffff") for day in (1, 2, 3)]
    decisions = decide(snaps, RetentionPolicy(keep_daily=3), now)
    assert by_action(decisions)[DELETE] == set()
    assert by_action(decisions)[PROTECT] == {"x1", "x2", "x3"}
    assert {d.reasons for d in decisions if d.action == PROTECT} == {("no-lineage",)}
    assert {d.snapshot_id: d.group for d in decisions if d.action == KEEP}["b2"] == "lineage:b"
    # keep_last: 1 keeps the newest of each disk; the held ones never count nor go.
    assert by_action(decide(snaps, RetentionPolicy(keep_last=1), now))[KEEP] == {"a3", "b3", "c3"}
    # Held snapshots are never candidates, even where every rule would drop them.
    assert all(d.action == PROTECT for d in decide(snaps[-3:], RetentionPolicy(keep_last=1), now))


def test_lineage_groups_never_take_a_volumes_per_volume_policy():
    snaps = [snap("real-%d" % day, at(2024, 5, day), "vol-1") for day in (1, 2, 3)]
    snaps += [snap("copy-%d" % day, at(2024, 5, day), "vol-1", tags={"blockwise:lineage": "vol-1"}) for day in (1, 2, 3)]
    decisions = decide(snaps, RetentionPolicy(keep_last=1), at(2024, 5, 4), policy_by_volume={"vol-1": RetentionPolicy(keep_last=3)},
                       held_volumes={})
    assert by_action(decisions)[KEEP] == {"real-1", "real-2", "real-3", "copy-3"}
    held = decide(snaps, RetentionPolicy(keep_last=1), at(2024, 5, 4), held_volumes={"vol-1": "bad tag"})
    assert by_action(held)[PROTECT] == {"real-1", "real-2", "real-3"} and by_action(held)[KEEP] == {"copy-3"}


def test_snapshot_from_api():
    item = {
        "SnapshotId": "snap-1",
        "VolumeId": "vol-1",
        "StartTime": "2024-01-01T02:00:00.000Z",
        "State": "pending",
        "Tags": [{"Key": "Name", "Value": "x"}, {"Key": "blockwise:protect", "Value": ""}],
        "OwnerId": "111111111111",
    }
    snapshot = Snapshot.from_api(item)
    assert snapshot == Snapshot("snap-1", "vol-1", at(2024, 1, 1, 2), "pending", {"Name": "x", "blockwise:protect": ""}, "111111111111")
    minimal = Snapshot.from_api({"SnapshotId": "snap-2", "StartTime": at(2024, 1, 1), "Tags": {"a": "b"}})
    assert (minimal.volume_id, minimal.state, minimal.tags, minimal.owner_id) == ("", "completed", {"a": "b"}, None)
    assert hash(snapshot) == hash(Snapshot.from_api(item))


def test_snapshot_images():
    images = [
        {
            "ImageId": "ami-2",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-1"}}, {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"}],
        },
        {"ImageId": "ami-1", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}, {"Ebs": {"SnapshotId": "snap-2"}}, {"Ebs": {}}]},
        {"ImageId": "ami-3"},
    ]
    assert snapshot_images(images) == {"snap-1": ["ami-1", "ami-2"], "snap-2": ["ami-1"]}


def test_keep_reasons_direct():
    candidates = [snap("c%d" % i, at(2024, 1, 10 - i)) for i in range(5)]
    assert keep_reasons(candidates, RetentionPolicy(keep_last=2, minimum=1), at(2024, 1, 11)) == {0: ["keep_last", "minimum"], 1: ["keep_last"]}
    assert keep_reasons([], RetentionPolicy(keep_daily=3), at(2024, 1, 11)) == {}


def test_a_copy_is_ordered_and_aged_by_its_source_start_time():
    copied = "2026-01-01T00:00:00+00:00"
    item = {"SnapshotId": "snap-copy", "VolumeId": "vol-ffffffff", "StartTime": "2026-03-01T00:00:00+00:00",
            "Tags": [{"Key": "blockwise:source-snapshot", "Value": "snap-src"},
                     {"Key": "blockwise:source-start-time", "Value": copied}]}
    assert Snapshot.from_api(item).start_time.isoformat() == copied
    not_a_copy = dict(item, Tags=[{"Key": "blockwise:source-start-time", "Value": copied}])
    assert Snapshot.from_api(not_a_copy).start_time.isoformat() == "2026-03-01T00:00:00+00:00"
    unreadable = dict(item, Tags=[{"Key": "blockwise:source-snapshot", "Value": "snap-src"},
                                  {"Key": "blockwise:source-start-time", "Value": "yesterday"}])
    assert Snapshot.from_api(unreadable).start_time.isoformat() == "2026-03-01T00:00:00+00:00"
