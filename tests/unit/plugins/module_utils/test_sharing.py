# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ebs_snapshot_share core: options, selection, the aws/ebs refusal, plan, requests, result."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import sharing

HOME = "123456789012"
A = "111111111111"
B = "222222222222"
C = "333333333333"
MANAGED = "arn:aws:kms:us-east-1:123456789012:key/aaaa-managed"
CUSTOMER = "arn:aws:kms:us-east-1:123456789012:key/bbbb-customer"


def params(**overrides):
    base = dict(account_ids=[A], state="present", purge=False, policy="daily", filters=None, snapshot_ids=None, max_concurrency=4)
    base.update(overrides)
    return base


def options(**overrides):
    return sharing.options_from_params(params(**overrides))


def snap(snapshot_id, state="completed", encrypted=False, key=None, policy="daily", volume_id="vol-1"):
    tags = {"blockwise:policy": policy} if policy else {}
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "State": state, "Encrypted": encrypted, "KmsKeyId": key,
            "StartTime": datetime(2024, 5, 1, tzinfo=timezone.utc), "OwnerId": HOME, "tags": tags}


@pytest.mark.parametrize("overrides, expect", [
    (dict(account_ids=["all"]), "account_ids: 'all' would make the snapshots public"),
    (dict(account_ids=[A, "ALL"]), "'all' would make the snapshots public"),
    (dict(account_ids=["12345"]), "account_ids: '12345' is not a 12-digit AWS account id"),
    (dict(account_ids=[]), "account_ids must list at least one"),
    (dict(purge=True, state="absent"), "purge=true only goes with state=present"),
    (dict(policy=None), "no selection"),
    (dict(filters={"owner-alias": "amazon"}), "module only shares the account's own snapshots"),
    (dict(max_concurrency=0), "max_concurrency must be between 1 and 64, got 0"),
    (dict(state="public"), "state must be present or absent"),
])
def test_bad_options_name_the_option(overrides, expect):
    with pytest.raises(sharing.ShareError) as info:
        options(**overrides)
    assert expect in str(info.value)


def test_account_ids_are_deduplicated_and_sorted():
    assert options(account_ids=[B, A, B]).account_ids == (A, B)
    assert options(filters={"tag:team": "db"}).snapshot_filters == {"tag:team": "db", "tag:blockwise:policy": "daily"}


def test_selection_checks_ids_and_policy():
    assert [s["SnapshotId"] for s in sharing.select([snap("snap-2"), snap("snap-1"), snap("snap-3", policy="weekly")], options())] == ["snap-1", "snap-2"]
    with pytest.raises(sharing.ShareError, match="snapshot_ids: not among this account's snapshots in this region with policy='daily': snap-9"):
        sharing.select([snap("snap-1")], options(snapshot_ids=["snap-1", "snap-9"]))
    with pytest.raises(sharing.ShareError, match="policy: no snapshot of this account in this region carries blockwise:policy=daily"):
        sharing.select([], options())


def test_the_aws_managed_key_is_refused_before_any_write():
    snapshots = [snap("snap-1", encrypted=True, key=CUSTOMER), snap("snap-2", encrypted=True, key=MANAGED), snap("snap-3")]
    assert sharing.needs_managed_key(snapshots, options())
    with pytest.raises(sharing.ShareError, match=r"account_ids: 1 snapshot\(s\) are encrypted with the AWS managed key aws/ebs .*snap-2"):
        sharing.check_managed_key(snapshots, options(), MANAGED)
    with pytest.raises(sharing.ShareError, match="snap-4"):
        sharing.check_managed_key([snap("snap-4", encrypted=True, key="alias/aws/ebs")], options(), None)
    sharing.check_managed_key(snapshots[:1] + snapshots[2:], options(), MANAGED)
    sharing.check_managed_key(snapshots, options(state="absent"), MANAGED)  # unsharing is always allowed
    assert not sharing.needs_managed_key([snap("snap-3")], options())


def test_plan_without_purge_only_speaks_of_the_listed_accounts():
    snapshots = [snap("snap-1"), snap("snap-2"), snap("snap-p", state="pending")]
    shared = {A: {"snap-1"}, B: set()}
    changes = {c["snapshot_id"]: c for c in sharing.plan(snapshots, options(account_ids=[A, B]), shared=shared)}
    assert changes["snap-1"]["add"] == [B] and changes["snap-1"]["before"] == [A] and changes["snap-1"]["after"] == [A, B]
    assert changes["snap-2"]["add"] == [A, B]
    assert changes["snap-p"]["add"] == [] and not sharing.is_change(changes["snap-p"])
    removed = {c["snapshot_id"]: c for c in sharing.plan(snapshots, options(account_ids=[A, B], state="absent"), shared=shared)}
    assert removed["snap-1"]["remove"] == [A] and removed["snap-1"]["after"] == [] and not sharing.is_change(removed["snap-2"])


def test_plan_with_purge_removes_others_and_public():
    permissions = {"snap-1": {"user_ids": [A, C], "groups": ["all"]}, "snap-2": {"user_ids": [A], "groups": []}}
    changes = {c["snapshot_id"]: c for c in sharing.plan([snap("snap-1"), snap("snap-2")], options(purge=True), permissions=permissions)}
    assert changes["snap-1"]["add"] == [] and changes["snap-1"]["remove"] == [C] and changes["snap-1"]["remove_groups"] == ["all"]
    assert changes["snap-1"]["before"] == [A, C, "group:all"] and changes["snap-1"]["after"] == [A]
    assert not sharing.is_change(changes["snap-2"])
    assert sharing.requests(changes["snap-1"]) == [
        {"SnapshotId": "snap-1", "Attribute": "createVolumePermission", "OperationType": "remove", "UserIds": [C]},
        {"SnapshotId": "snap-1", "Attribute": "createVolumePermission", "OperationType": "remove", "GroupNames": ["all"]},
    ]


def test_requests_never_add_a_group():
    change = sharing.plan([snap("snap-1")], options(account_ids=[A, B]), shared={})[0]
    calls = sharing.requests(change)
    assert calls == [{"SnapshotId": "snap-1", "Attribute": "createVolumePermission", "OperationType": "add", "UserIds": [A, B]}]


def test_result_statuses_diff_and_source_tags():
    snapshots = [snap("snap-1"), snap("snap-2"), snap("snap-3")]
    changes = sharing.plan(snapshots, options(), shared={A: {"snap-3"}})
    planned = sharing.build_result(snapshots, changes, check_mode=True)
    assert planned["changed"] and [i["status"] for i in planned["snapshots"]] == ["planned", "planned", "unchanged"]
    assert planned["diff"] == {"before": {"snap-1": [], "snap-2": []}, "after": {"snap-1": [A], "snap-2": [A]}}
    assert planned["source_tags"] == {"snap-1": {"blockwise:policy": "daily"}, "snap-2": {"blockwise:policy": "daily"},
                                      "snap-3": {"blockwise:policy": "daily"}}
    done = sharing.build_result(snapshots, changes, {"snap-1": None, "snap-2": "InvalidSnapshot.NotFound: gone"})
    assert [i["status"] for i in done["snapshots"]] == ["changed", "failed", "unchanged"]
    assert done["errors"] == [{"snapshot_id": "snap-2", "error": "InvalidSnapshot.NotFound: gone"}]
    assert done["snapshots"][1]["accounts"] == [] and done["snapshots"][0]["accounts"] == [A]
    assert done["diff"] == {"before": {"snap-1": []}, "after": {"snap-1": [A]}}
    assert done["summary"] == {"snapshots": 3, "changed": 1, "unchanged": 1, "errors": 1, "accounts_added": 1, "accounts_removed": 0}
    again = sharing.build_result(snapshots, sharing.plan(snapshots, options(), shared={A: {"snap-1", "snap-2", "snap-3"}}), {})
    assert not again["changed"] and again["diff"] == {"before": {}, "after": {}}
