# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ebs_snapshot_prune core: options, plan, circuit breaker, outcomes, result, diff."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import prune, retention
from ansible_collections.blockwise.ebs.plugins.module_utils.policy import POLICY_TAG

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
ACCOUNT = "123456789012"


def params(**overrides):
    base = dict(policy="daily", filters=None, retention={"keep_last": 2, "minimum": 0, "timezone": "UTC"}, retention_tag=None,
                protect_tag="blockwise:protect", max_deletions=50, max_concurrency=4, fail_on_deletion_error=True)
    base.update(overrides)
    return base


def options(**overrides):
    return prune.options_from_params(params(**overrides))


def item(snapshot_id, volume_id, days, state="completed", tags=None, policy="daily", owner=ACCOUNT):
    all_tags = dict(tags or {})
    if policy:
        all_tags[POLICY_TAG] = policy
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "StartTime": NOW - timedelta(days=days), "State": state,
            "OwnerId": owner, "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()], "tags": all_tags}


def ids(items):
    return [i["snapshot_id"] for i in items]


# --- options ------------------------------------------------------------------------------------


def test_options_and_scope_filters():
    opts = options(filters={"description": "Created by*"})
    assert opts.snapshot_filters == {"description": "Created by*", "tag:blockwise:policy": "daily"}
    assert opts.retention == retention.RetentionPolicy(keep_last=2)
    assert opts.protect_tag == "blockwise:protect" and opts.max_deletions == 50
    assert options(policy=None, filters={"tag:made-by": "x"}).snapshot_filters == {"tag:made-by": "x"}
    assert options(protect_tag=None, max_deletions=None).max_deletions == prune.DEFAULT_MAX_DELETIONS
    assert options(max_concurrency=None).max_concurrency == prune.DEFAULT_CONCURRENCY == 4
    assert options(max_concurrency=1).max_concurrency == 1


@pytest.mark.parametrize("overrides, error, message", [
    ({"policy": None}, prune.PruneError, "no scope: set policy"),
    ({"policy": " "}, prune.PruneError, "policy must be a non-empty policy name"),
    ({"filters": ["x"]}, prune.PruneError, "filters must be a dictionary"),
    ({"filters": {"tag:blockwise:policy": "other"}}, prune.PruneError, "contradicts policy='daily'"),
    ({"filters": {"owner-alias": "amazon"}}, prune.PruneError, "owner filters are not allowed"),
    ({"retention": {"minimum": 3}}, retention.RetentionError, "retention: at least one rule is required"),
    ({"retention": {"keep_last": 0}}, retention.RetentionError, "retention.keep_last must be >= 1, got 0"),
    ({"retention": {"keep_within": "soon"}}, retention.RetentionError, "retention.keep_within: cannot parse duration 'soon'"),
    ({"retention": None}, retention.RetentionError, "retention: at least one rule is required"),
    ({"retention_tag": ""}, prune.PruneError, "retention_tag: tag keys must be non-empty"),
    ({"protect_tag": " "}, prune.PruneError, "protect_tag must be a non-empty tag key"),
    ({"max_deletions": 0}, prune.PruneError, "max_deletions must be an integer >= 1, got 0"),
    ({"max_deletions": -5}, prune.PruneError, "max_deletions must be an integer >= 1, got -5"),
    ({"max_concurrency": 100}, prune.PruneError, "max_concurrency must be between 1 and 64, got 100"),
    ({"max_concurrency": 0}, prune.PruneError, "max_concurrency must be between 1 and 64, got 0"),
    ({"max_concurrency": -1}, prune.PruneError, "max_concurrency must be between 1 and 64, got -1"),
    ({"retention": {"keep_last": 1, "keep_within": ""}}, retention.RetentionError, "retention.keep_within: an empty duration is refused"),
    ({"retention": {"keep_within": "99999999 weeks"}}, retention.RetentionError, "retention.keep_within: duration '99999999 weeks' is too long"),
    ({"filters": {"tag-key": []}}, prune.PruneError, "filters['tag-key'] must be a value or a non-empty list of values, got []"),
    ({"policy": None, "filters": {"tag-key": []}}, prune.PruneError, "filters['tag-key'] must be a value"),
    ({"filters": {"tag:team": [None]}}, prune.PruneError, "filters['tag:team']"),
    ({"filters": {"": "x"}}, prune.PruneError, "filters: a filter name must be a non-empty string"),
])
def test_options_errors(overrides, error, message):
    with pytest.raises(error) as caught:
        options(**overrides)
    assert message in str(caught.value)


def test_volume_ids_of_skips_direct_api_snapshots():
    items = [item("s1", "vol-2", 1), item("s2", "vol-1", 1), item("s3", "vol-ffffffff", 1), item("s4", "vol-2", 2)]
    assert prune.volume_ids_of(items) == ["vol-1", "vol-2"]


# --- plan ----------------------------------------------------------------------------------------


def fleet():
    items = [item("snap-%d" % day, "vol-1", day) for day in range(1, 9)]
    items[4]["State"] = "pending"
    items[5]["tags"]["blockwise:protect"] = ""
    items[5]["Tags"].append({"Key": "blockwise:protect", "Value": ""})
    items[6]["OwnerId"] = "999999999999"
    items.append(item("snap-other", "vol-1", 10, policy="weekly"))
    images = [{"ImageId": "ami-1", "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-8"}}]}]
    return items, images


def test_plan_protects_before_deciding():
    items, images = fleet()
    the_plan = prune.plan(items, images, {}, options(), NOW, ACCOUNT)
    assert [d.snapshot_id for d in the_plan.of(retention.KEEP)] == ["snap-1", "snap-2"]
    assert [d.snapshot_id for d in the_plan.deletions] == ["snap-3", "snap-4"]
    protected = {d.snapshot_id: d.reasons for d in the_plan.of(retention.PROTECT)}
    assert protected == {
        "snap-5": ("pending",),
        "snap-6": ("protect-tag",),
        "snap-7": ("owner:999999999999",),
        "snap-8": ("ami:ami-1",),
        "snap-other": ("out-of-scope",),
    }


def test_plan_without_account_id_still_protects_the_rest():
    items, images = fleet()
    the_plan = prune.plan(items, images, {}, options(), NOW, None)
    assert "snap-7" in [d.snapshot_id for d in the_plan.deletions]


def test_plan_with_retention_tag():
    items = [item("a%d" % d, "vol-a", d) for d in range(1, 6)] + [item("b%d" % d, "vol-b", d) for d in range(1, 4)]
    items += [item("c%d" % d, "vol-c", d) for d in range(1, 4)]
    tags = {"vol-a": {"Gens": "1"}, "vol-b": {"Gens": "zero"}}
    the_plan = prune.plan(items, [], tags, options(retention_tag="Gens"), NOW, ACCOUNT)
    assert [d.snapshot_id for d in the_plan.deletions] == ["a2", "a3", "a4", "a5", "c3"]
    assert the_plan.tag_counts == {"vol-a": 1}
    assert "vol-b" in the_plan.held and "Gens='zero'" in the_plan.held["vol-b"]
    result = prune.build_result(the_plan, check_mode=True)
    assert result["volumes"]["vol-a"] == {"keep": 1, "delete": 4, "protect": 0, "keep_last": 1}
    assert result["volumes"]["vol-b"]["protect"] == 3 and "held" in result["volumes"]["vol-b"]


# --- circuit breaker, outcomes, result -------------------------------------------------------------


def big_plan():
    items = [item("%s-%d" % (vol, d), vol, d) for vol in ("vol-1", "vol-2") for d in range(1, 7)]
    return prune.plan(items, [], {}, options(), NOW, ACCOUNT)


def test_circuit_breaker():
    the_plan = big_plan()
    assert len(the_plan.deletions) == 8
    assert prune.circuit_breaker(the_plan, 8) is None
    message = prune.circuit_breaker(the_plan, 7)
    assert message.startswith("circuit breaker: the plan deletes 8 snapshots of 2 volumes, more than max_deletions=7; nothing was deleted.")
    result = prune.build_result(the_plan, blocked=True)
    assert result["changed"] is False and result["deleted"] == [] and len(result["blocked"]) == 8
    assert all(i["status"] == "blocked" for i in result["blocked"])
    assert result["diff"] == {"before": {}, "after": {}}


def test_deletion_outcome():
    assert prune.deletion_outcome("InvalidSnapshot.NotFound") == prune.ALREADY_GONE
    assert prune.deletion_outcome("InvalidSnapshot.InUse") == prune.FAILED
    assert prune.deletion_outcome("RequestLimitExceeded") == prune.FAILED


def test_build_result_with_outcomes_and_diff():
    the_plan = big_plan()
    outcomes = {d.snapshot_id: (prune.DELETED, None) for d in the_plan.deletions}
    outcomes["vol-1-3"] = (prune.ALREADY_GONE, "InvalidSnapshot.NotFound: gone")
    outcomes["vol-2-6"] = (prune.FAILED, "InvalidSnapshot.InUse: in use by ami-1")
    result = prune.build_result(the_plan, outcomes)
    assert result["changed"] is True
    assert ids(result["deleted"]) == ["vol-1-4", "vol-1-5", "vol-1-6", "vol-2-3", "vol-2-4", "vol-2-5"]
    assert {i["status"] for i in result["deleted"]} == {"deleted"}
    assert ids(result["already_gone"]) == ["vol-1-3"] and result["already_gone"][0]["status"] == "already-gone"
    assert result["errors"] == [{"snapshot_id": "vol-2-6", "volume_id": "vol-2", "group": "vol-2", "start_time": (NOW - timedelta(days=6)).isoformat(),
                                 "reasons": ["no rule keeps it"], "status": "failed", "error": "InvalidSnapshot.InUse: in use by ami-1"}]
    assert result["summary"] == {"snapshots": 12, "volumes": 2, "deleted": 6, "kept": 4, "protected": 0, "errors": 1,
                                 "already_gone": 1, "planned_deletions": 8}
    assert result["diff"]["before"]["vol-2"] == ["vol-2-%d" % d for d in range(1, 7)]
    assert result["diff"]["after"]["vol-2"] == ["vol-2-1", "vol-2-2", "vol-2-6"]
    # The snapshot that was already gone is no change of this run: the diff does not show it going.
    assert result["diff"]["after"]["vol-1"] == ["vol-1-1", "vol-1-2", "vol-1-3"]
    assert ids(result["kept"]) == ["vol-1-1", "vol-1-2", "vol-2-1", "vol-2-2"]
    assert result["kept"][0]["reasons"] == ["keep_last"]


def test_deletions_that_were_all_already_gone_change_nothing():
    the_plan = big_plan()
    outcomes = {d.snapshot_id: (prune.ALREADY_GONE, "InvalidSnapshot.NotFound: gone") for d in the_plan.deletions}
    result = prune.build_result(the_plan, outcomes)
    assert result["changed"] is False and result["deleted"] == []
    assert len(result["already_gone"]) == 8 and result["summary"]["already_gone"] == 8 and result["summary"]["deleted"] == 0
    assert result["diff"] == {"before": {}, "after": {}}


def test_build_result_check_mode_and_nothing_to_do():
    the_plan = big_plan()
    result = prune.build_result(the_plan, check_mode=True)
    assert result["changed"] is True and all(i["status"] == "planned" for i in result["deleted"])
    assert len(result["diff"]["before"]) == 2
    quiet = prune.plan([item("s1", "vol-1", 1)], [], {}, options(), NOW, ACCOUNT)
    result = prune.build_result(quiet, {})
    assert result["changed"] is False and result["diff"] == {"before": {}, "after": {}}
    missing = prune.build_result(the_plan, {})  # an attempted deletion without outcome is never reported as done
    assert len(missing["errors"]) == 8 and missing["changed"] is False


def test_reference_time_follows_aws_when_the_local_clock_is_off():
    aws_now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = "Wed, 01 May 2024 12:00:00 GMT"
    assert prune.reference_time(aws_now + timedelta(minutes=4), header) == (aws_now + timedelta(minutes=4), None)
    now, warning = prune.reference_time(aws_now + timedelta(days=30), header)
    assert now == aws_now and "30 days, 0:00:00 ahead of AWS's" in warning
    now, warning = prune.reference_time(aws_now - timedelta(hours=2), header)
    assert now == aws_now and "2:00:00 behind AWS's" in warning
    local = aws_now + timedelta(days=30)
    assert prune.reference_time(local, None) == (local, None)
    assert prune.reference_time(local, "not a date") == (local, None)


def test_a_clock_far_ahead_keeps_what_keep_within_keeps_by_aws_time():
    items = [item("snap-%d" % day, "vol-1", day) for day in range(1, 6)]
    opts = options(retention={"keep_within": "7 days"})
    skewed, dummy = prune.reference_time(NOW + timedelta(days=30), NOW.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert not prune.plan(items, [], {}, opts, skewed, ACCOUNT).deletions
    assert len(prune.plan(items, [], {}, opts, NOW + timedelta(days=30), ACCOUNT).deletions) == 5  # what the local clock would do


# --- one generation per due period, overdue volumes, the snapshots the same run takes -------------

def _policy_snap(snap_id, volume_id, start, marker=None, state="completed"):
    tags = {POLICY_TAG: "daily"}
    if marker:
        tags["blockwise:due-after"] = marker
    return {"SnapshotId": snap_id, "VolumeId": volume_id, "StartTime": start, "State": state,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()], "tags": tags}


def _prune_options(**extra):
    return prune.options_from_params(dict({"policy": "daily", "retention": {"keep_last": 2, "minimum": 2}}, **extra))


def test_duplicates_of_one_period_are_one_generation_never_counted_nor_deleted():
    now = datetime(2024, 5, 10, 12, tzinfo=timezone.utc)
    items = [_policy_snap("snap-h%d" % day, "vol-1", now - timedelta(days=day), "snap-h%d" % (day + 1)) for day in (1, 2, 3)]
    items += [_policy_snap("snap-a", "vol-1", now - timedelta(minutes=2), "snap-h1"),
              _policy_snap("snap-b", "vol-1", now - timedelta(minutes=1), "snap-h1")]
    the_plan = prune.plan(items, [], {}, _prune_options(), now)
    actions = {d.snapshot_id: (d.action, d.reasons) for d in the_plan.decisions}
    assert actions["snap-b"] == ("protect", ("duplicate-of:snap-a",))
    assert actions["snap-a"][0] == "keep" and actions["snap-h1"][0] == "keep"  # keep_last 2: today's and yesterday's
    assert {d.snapshot_id for d in the_plan.deletions} == {"snap-h2", "snap-h3"}


def test_an_overdue_volume_is_never_pruned_by_age():
    now = datetime(2024, 5, 10, 12, tzinfo=timezone.utc)
    items = [_policy_snap("snap-%d" % day, "vol-1", now - timedelta(days=day)) for day in (4, 5, 6)]
    items += [_policy_snap("snap-v2-%d" % day, "vol-2", now - timedelta(days=day, hours=-1)) for day in (1, 5, 6)]
    rules = {"policy": "daily", "retention": {"keep_within": "3 days", "minimum": 1}}
    blind = prune.plan(items, [], {}, prune.options_from_params(rules), now)
    assert {d.snapshot_id for d in blind.deletions if d.volume_id == "vol-1"} == {"snap-5", "snap-6"}  # the finding
    guarded = prune.plan(items, [], {}, prune.options_from_params(dict(rules, frequency="1d")), now)
    deleted = {(d.volume_id, d.snapshot_id) for d in guarded.deletions}
    assert not any(volume == "vol-1" for volume, dummy in deleted)  # overdue: counted from its newest (4 days ago)
    assert {snap for volume, snap in deleted if volume == "vol-2"} == {"snap-v2-5", "snap-v2-6"}  # up to date: pruned by age
    assert list(guarded.overdue) == ["vol-1"]
    with pytest.raises(prune.PruneError, match="frequency"):
        prune.options_from_params(dict(rules, frequency="every other day"))
    with pytest.raises(prune.PruneError, match="grace needs frequency"):
        prune.options_from_params(dict(rules, grace="5m"))


def test_planned_snapshots_are_counted_as_taken_now():
    now = datetime(2024, 5, 10, 12, tzinfo=timezone.utc)
    items = [_policy_snap("snap-%d" % day, "vol-1", now - timedelta(days=day)) for day in (1, 2, 3, 4, 5)]
    options = prune.options_from_params({"policy": "daily", "retention": {"keep_last": 3}, "planned_snapshots": ["vol-1"]})
    the_plan = prune.plan(items, [], {}, options, now)
    assert {d.snapshot_id for d in the_plan.deletions} == {"snap-3", "snap-4", "snap-5"}
    assert "(new snapshot of vol-1)" in {d.snapshot_id for d in the_plan.of("keep")}
    with pytest.raises(prune.PruneError, match="planned_snapshots"):
        prune.options_from_params({"policy": "daily", "retention": {"keep_last": 3}, "planned_snapshots": ["snap-1"]})
