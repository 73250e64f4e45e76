# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ebs_snapshot_copy core: options, source selection, lineage, plan, requests, result."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications
from ansible_collections.blockwise.ebs.plugins.module_utils import copies

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
HOME = "123456789012"
OTHER = "210987654321"
REGIONS = {"us-east-1", "eu-west-1", "eu-central-1"}


def params(**overrides):
    base = dict(source_region="us-east-1", policy="daily", filters=None, snapshot_ids=None, source_owner_id=None, latest_only=False,
                kms_key_id=None, encrypted=False, copy_tags=True, tags={}, description=None, wait=False, wait_timeout=900,
                max_in_flight=20, completion_duration_minutes=None, source_tags=None)
    base.update(overrides)
    return base


def options(region="eu-west-1", **overrides):
    return copies.options_from_params(params(**overrides), region, REGIONS)


def snap(snapshot_id, volume_id="vol-1", days=0, state="completed", tags=None, policy="daily", owner=HOME, **extra):
    all_tags = dict(tags or {})
    if policy:
        all_tags[copies.POLICY_TAG] = policy
    item = {"SnapshotId": snapshot_id, "VolumeId": volume_id, "StartTime": NOW - timedelta(days=days), "State": state,
            "OwnerId": owner, "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()], "tags": all_tags}
    item.update(extra)
    return item


def copy_of(source_id, copy_id, state="completed", region="us-east-1", account=HOME, days=0):
    tags = {copies.SOURCE_SNAPSHOT_TAG: source_id, copies.SOURCE_REGION_TAG: region, copies.SOURCE_ACCOUNT_TAG: account}
    return {"SnapshotId": copy_id, "VolumeId": "vol-ffffffff", "StartTime": NOW - timedelta(days=days), "State": state,
            "Progress": "100%" if state == "completed" else "10%", "OwnerId": HOME, "tags": tags}


def ids(items, key="source_snapshot_id"):
    return [item[key] for item in items]


# --- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, expect", [
    (dict(policy=None), "no selection: set policy"),
    (dict(source_region="mars-north-1"), "source_region: unknown region 'mars-north-1'"),
    (dict(source_owner_id="12345"), "source_owner_id"),
    (dict(snapshot_ids=["vol-1"]), "snapshot_ids: 'vol-1'"),
    (dict(filters={"owner-id": HOME}), "filters: owner filters"),
    (dict(filters={"tag:blockwise:policy": "weekly"}), "contradicts policy='daily'"),
    (dict(filters={"tag:team": None}), "filters['tag:team']"),
    (dict(tags={"blockwise:lineage": "x"}), "tags: blockwise:lineage is reserved"),
    (dict(tags={"BlockWise:Policy": "x"}), "tags: BlockWise:Policy is reserved"),
    (dict(tags={"aws:x": "y"}), "tags: tag key 'aws:x'"),
    (dict(max_in_flight=0), "max_in_flight must be an integer between 1 and 100, got 0"),
    (dict(max_in_flight=101), "got 101"),
    (dict(wait_timeout=0), "wait_timeout"),
    (dict(completion_duration_minutes=20), "completion_duration_minutes must be 15 to 2880 in steps of 15"),
    (dict(completion_duration_minutes=2895), "got 2895"),
    (dict(kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc"), "kms_key_id='arn:aws:kms:us-east-1:123456789012:key/abc' is a key of us-east-1"),
    (dict(kms_key_id=" "), "kms_key_id must not be empty"),
    (dict(description="{volume_name}"), "description"),
    (dict(description="x" * 256), "at most 255"),
    (dict(source_tags={"vol-1": {}}), "source_tags: 'vol-1'"),
    (dict(source_tags={"snap-1": {"a": 1}}), "source_tags['snap-1']"),
])
def test_bad_options_name_the_option(overrides, expect):
    with pytest.raises(copies.CopyError, match=None) as info:
        options(**overrides)
    assert expect in str(info.value)


def test_same_region_needs_a_key_change_or_another_owner():
    with pytest.raises(copies.CopyError, match="source_region='eu-west-1' is the destination region"):
        options(source_region="eu-west-1")
    assert options(source_region="eu-west-1", encrypted=True).encrypted
    assert options(source_region="eu-west-1", kms_key_id="alias/dr").kms_key_id == "alias/dr"
    assert options(source_region="eu-west-1", source_owner_id=OTHER).cross_account
    with pytest.raises(copies.CopyError, match="region: the destination region is required"):
        options(region=None)


def test_options_defaults_and_filters():
    opts = options(filters={"tag:team": "db"})
    assert opts.source_filters == {"tag:team": "db", "tag:blockwise:policy": "daily"}
    assert opts.owner == "self" and opts.max_in_flight == 20 and opts.copy_tags and opts.description == copies.DEFAULT_DESCRIPTION
    cross = options(source_owner_id=OTHER)
    assert cross.source_filters == {} and cross.owner == OTHER  # another account's tags are invisible server-side
    assert options(tags={"Gens": 7}).tags == {"Gens": "7"}
    assert options(completion_duration_minutes=30).completion_duration_minutes == 30


# --- lineage and selection ----------------------------------------------------------------------

@pytest.mark.parametrize("item, tags, expected", [
    ({"SnapshotId": "snap-1", "VolumeId": "vol-1"}, {copies.LINEAGE_TAG: "disk-a"}, "disk-a"),
    ({"SnapshotId": "snap-1", "VolumeId": "vol-1"}, {}, "vol-1"),
    ({"SnapshotId": "snap-1", "VolumeId": "vol-ffffffff"}, {}, "snap-1"),
    ({"SnapshotId": "snap-1", "VolumeId": ""}, {}, "snap-1"),
    # A copy without lineage: its volume id is arbitrary, never a lineage.
    ({"SnapshotId": "snap-1", "VolumeId": "vol-2"}, {copies.SOURCE_SNAPSHOT_TAG: "snap-0"}, "snap-1"),
    ({"SnapshotId": "snap-1", "VolumeId": "vol-2"}, {copies.LINEAGE_TAG: " ", copies.SOURCE_SNAPSHOT_TAG: "snap-0"}, "snap-1"),
])
def test_lineage_rules(item, tags, expected):
    assert copies.lineage_of(item, tags) == expected


def test_selection_skips_unfinished_sources_and_orders_newest_first():
    items = [snap("snap-old", days=3), snap("snap-new", days=1), snap("snap-p", state="pending"), snap("snap-e", state="error"),
             snap("snap-other-policy", policy="weekly")]
    sources, skipped = copies.select_sources(items, options())
    assert [s.snapshot_id for s in sources] == ["snap-new", "snap-old"]
    assert {item["source_snapshot_id"]: item["reason"] for item in skipped} == {"snap-p": "source-pending", "snap-e": "source-error"}


def test_latest_only_keeps_the_newest_completed_per_lineage():
    items = [snap("snap-a1", "vol-a", days=1), snap("snap-a2", "vol-a", days=2), snap("snap-a0", "vol-a", state="pending"),
             snap("snap-b1", "vol-b", days=5), snap("snap-u1", "vol-ffffffff", days=1, tags={copies.LINEAGE_TAG: "img"}),
             snap("snap-u2", "vol-ffffffff", days=2, tags={copies.LINEAGE_TAG: "img"})]
    sources, skipped = copies.select_sources(items, options(latest_only=True))
    assert sorted(s.snapshot_id for s in sources) == ["snap-a1", "snap-b1", "snap-u1"]
    assert sorted(i["source_snapshot_id"] for i in skipped if i["reason"] == "latest_only") == ["snap-a2", "snap-u2"]


def test_unknown_ids_and_unknown_policy_fail():
    with pytest.raises(copies.CopyError, match="snapshot_ids: not found in us-east-1 for owner self with policy='daily': snap-x"):
        copies.select_sources([snap("snap-1")], options(snapshot_ids=["snap-1", "snap-x"]))
    with pytest.raises(copies.CopyError, match="policy: no snapshot of owner self in us-east-1 carries blockwise:policy=daily"):
        copies.select_sources([], options())
    with pytest.raises(copies.CopyError, match="pass source_tags"):
        copies.select_sources([snap("snap-1", policy=None, owner=OTHER)], options(source_owner_id=OTHER))
    # Filters alone may select nothing: an empty plan, not an error.
    assert copies.select_sources([], options(policy=None, filters={"tag:team": "db"})) == ([], [])


def test_cross_account_sources_use_the_owners_tags():
    items = [snap("snap-1", policy=None, owner=OTHER), snap("snap-2", policy=None, owner=OTHER)]
    source_tags = {"snap-1": {copies.POLICY_TAG: "daily", copies.LINEAGE_TAG: "disk-a", "team": "db"}}
    sources, dummy = copies.select_sources(items, options(source_owner_id=OTHER, source_tags=source_tags))
    assert [(s.snapshot_id, s.lineage, s.account) for s in sources] == [("snap-1", "disk-a", OTHER)]


def test_copies_made_here_are_never_sources():
    opts = options(source_region="eu-west-1", kms_key_id="alias/dr")
    items = [snap("snap-1"), snap("snap-copy", tags={copies.SOURCE_SNAPSHOT_TAG: "snap-1"})]
    sources, skipped = copies.select_sources(items, opts, {"snap-copy"})
    assert [s.snapshot_id for s in sources] == ["snap-1"]
    assert skipped[0]["reason"] == "copy-in-destination"


# --- plan ---------------------------------------------------------------------------------------

def sources_of(items, opts):
    return copies.select_sources(items, opts)[0]


def test_a_source_with_a_copy_in_any_state_is_never_copied_again():
    opts = options()
    sources = sources_of([snap("snap-1", "vol-1"), snap("snap-2", "vol-2"), snap("snap-3", "vol-3")], opts)
    existing = [copy_of("snap-1", "snap-c1", "completed"), copy_of("snap-2", "snap-c2", "pending")]
    the_plan = copies.plan(sources, existing, opts)
    assert ids(the_plan.start) == ["snap-3"]
    assert sorted(ids(the_plan.present)) == ["snap-1", "snap-2"]
    assert the_plan.in_flight == 1


def test_a_copy_of_another_region_or_account_does_not_count():
    opts = options()
    sources = sources_of([snap("snap-1")], opts)
    existing = [copy_of("snap-1", "snap-c1", region="eu-central-1"), copy_of("snap-1", "snap-c2", account=OTHER)]
    assert ids(copies.plan(sources, existing, opts).start) == ["snap-1"]


def test_an_error_copy_is_replaced_and_a_failed_copy_of_this_run_is_reported():
    opts = options()
    sources = sources_of([snap("snap-1"), snap("snap-2")], opts)
    existing = [copy_of("snap-1", "snap-bad", "error"), copy_of("snap-2", "snap-bad2", "error")]
    the_plan = copies.plan(sources, existing, opts)
    assert [(a["source_snapshot_id"], a["replaces"]) for a in the_plan.start] == [("snap-1", ["snap-bad"]), ("snap-2", ["snap-bad2"])]
    key = ("snap-2", "us-east-1", HOME)
    again = copies.plan(sources, existing, opts, started={key: "snap-bad2"})
    assert ids(again.failed) == ["snap-2"] and ids(again.start) == ["snap-1"]
    assert again.failed[0]["reason"] == copies.ENDED_IN_ERROR


def test_max_in_flight_counts_pending_copies_and_copies_not_visible_yet():
    opts = options(max_in_flight=3)
    sources = sources_of([snap("snap-%d" % i, "vol-%d" % i, days=i) for i in range(6)], opts)
    existing = [copy_of("snap-x", "snap-cx", "pending")]  # a pending copy of another source still takes a slot
    the_plan = copies.plan(sources, existing, opts, started={("snap-0", "us-east-1", HOME): "snap-new"})
    assert the_plan.in_flight == 2 and the_plan.slots == 1
    assert ids(the_plan.start) == ["snap-1"]
    assert ids(the_plan.queued(1)) == ["snap-2", "snap-3", "snap-4", "snap-5"]
    assert {item["reason"] for item in the_plan.queued(1)} == {"max_in_flight"}
    assert ids(the_plan.present) == ["snap-0"] and the_plan.present[0]["state"] == "pending"
    full = copies.plan(sources, [copy_of("snap-y%d" % i, "snap-cy%d" % i, "pending") for i in range(3)], opts)
    assert full.start == [] and len(full.queued()) == 6


def test_held_sources_are_queued_with_the_reason_and_duplicates_reported():
    opts = options()
    sources = sources_of([snap("snap-1"), snap("snap-2")], opts)
    hold = {("snap-1", "us-east-1", HOME): "outcome unknown"}
    existing = [copy_of("snap-2", "snap-a"), copy_of("snap-2", "snap-b", "pending")]
    the_plan = copies.plan(sources, existing, opts, hold=hold)
    assert the_plan.start == []
    assert the_plan.queued() == [dict(source_snapshot_id="snap-1", lineage="vol-1", source_start_time=NOW.isoformat(),
                                      reason="outcome unknown")]
    assert the_plan.duplicates == [{"source_snapshot_id": "snap-2", "copies": ["snap-a", "snap-b"]}]


def test_copy_tags_and_request():
    opts = options(kms_key_id="alias/dr", tags={"team": "dr", "Name": "mine"}, completion_duration_minutes=60,
                   description="{source_name} {snapshot_id} {lineage} {date} {source_description:.5}")
    source_tags = {"Name": "web", "team": "web", "aws:backup": "x", "blockwise:protect": "yes", "blockwise:lineage": "disk-a",
                   "blockwise:parent": "snap-0"}
    sources = sources_of([snap("snap-1", tags=source_tags, Description="nightly run", Encrypted=False)], opts)
    action = copies.plan(sources, [], opts).start[0]
    assert action["tags"] == {"Name": "mine", "team": "dr", "blockwise:source-snapshot": "snap-1", "blockwise:source-region": "us-east-1",
                              "blockwise:source-account": HOME, "blockwise:lineage": "disk-a", "blockwise:policy": "daily",
                              "blockwise:source-start-time": action["source_start_time"]}
    assert action["tags"]["blockwise:source-start-time"].startswith("20")
    assert action["description"] == "web snap-1 disk-a 2024-05-01 night"
    request = copies.copy_request(action, opts, boto3_tag_specifications)
    assert request["Encrypted"] is True and request["KmsKeyId"] == "alias/dr" and request["CompletionDurationMinutes"] == 60
    assert request["SourceRegion"] == "us-east-1" and request["SourceSnapshotId"] == "snap-1"
    assert {t["Key"] for t in request["TagSpecifications"][0]["Tags"]} == set(action["tags"])
    plain = options(copy_tags=False)
    action = copies.plan(sources_of([snap("snap-1", tags={"team": "web"})], plain), [], plain).start[0]
    assert "team" not in action["tags"] and "Encrypted" not in copies.copy_request(action, plain, boto3_tag_specifications)


def test_unwritable_copies_fail_before_any_write():
    opts = options(description="{source_description}")
    with pytest.raises(copies.CopyError, match="description renders 300 characters for snap-1"):
        copies.plan(sources_of([snap("snap-1", Description="d" * 300)], opts), [], opts)
    many = {"k%02d" % i: "v" for i in range(48)}
    opts = options()
    with pytest.raises(copies.CopyError, match="tags of the copy of snap-1"):
        copies.plan(sources_of([snap("snap-1", tags=many)], opts), [], opts)


@pytest.mark.parametrize("code, status, kind", [
    ("ResourceLimitExceeded", 400, copies.REQUEUE),
    ("RequestLimitExceeded", 503, copies.REQUEUE),
    ("InternalError", 500, copies.UNCERTAIN),
    ("", None, copies.UNCERTAIN),
    ("InvalidSnapshot.NotFound", 400, copies.FAILED),
    ("UnauthorizedOperation", 403, copies.FAILED),
])
def test_error_classes(code, status, kind):
    assert copies.classify_error(code, status) == kind


def test_poll_delays_grow_to_the_cap():
    assert [copies.poll_delay(n) for n in range(7)] == [1, 2, 4, 8, 15, 15, 15]


# --- result -------------------------------------------------------------------------------------

def test_result_in_check_mode_and_after_a_run():
    opts = options(max_in_flight=1)
    sources = sources_of([snap("snap-1", "vol-1", days=1), snap("snap-2", "vol-2", days=2), snap("snap-0", "vol-1", days=3)], opts)
    existing = [copy_of("snap-0", "snap-c0")]
    first = copies.plan(sources, existing, opts)
    planned = copies.build_result(first, first, [], [], check_mode=True)
    assert planned["changed"] and ids(planned["copies"]) == ["snap-1"] and planned["copies"][0]["snapshot_id"] is None
    assert ids(planned["queued"]) == ["snap-2"] and ids(planned["present"]) == ["snap-0"]
    assert planned["diff"] == {"before": {"vol-1": ["snap-0"]}, "after": {"vol-1": ["snap-0", "snap-1"]}}

    started = [dict(first.start[0], snapshot_id="snap-c1")]
    final = copies.plan(sources, existing + [copy_of("snap-1", "snap-c1", "pending")], opts, started={("snap-1", "us-east-1", HOME): "snap-c1"})
    done = copies.build_result(first, final, started, [], requeued={"snap-2": "ResourceLimitExceeded: too many"})
    assert done["copies"][0]["snapshot_id"] == "snap-c1" and done["copies"][0]["state"] == "pending"
    assert done["queued"][0]["reason"] == "ResourceLimitExceeded: too many"
    assert done["summary"]["copies"] == 1 and done["summary"]["queued"] == 1 and done["summary"]["in_flight"] == 1
    nothing = copies.build_result(final, final, [], [])
    assert not nothing["changed"] and nothing["diff"] == {"before": {}, "after": {}}


def test_a_copy_of_this_run_that_failed_is_reported_with_its_state():
    opts = options()
    sources = sources_of([snap("snap-1")], opts)
    first = copies.plan(sources, [], opts)
    started = [dict(first.start[0], snapshot_id="snap-c1")]
    final = copies.plan(sources, [copy_of("snap-1", "snap-c1", "error")], opts, started={("snap-1", "us-east-1", HOME): "snap-c1"})
    result = copies.build_result(first, final, started, [])
    assert result["copies"][0]["state"] == "error" and result["copies"][0]["snapshot_id"] == "snap-c1"
    assert [item["snapshot_id"] for item in result["failed_copies"]] == ["snap-c1"]
