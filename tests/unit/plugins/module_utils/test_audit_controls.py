# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import audit_controls as core

NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
REGION = "eu-west-1"


def vol(volume_id, size=1, tags=None, encrypted=True):
    return {"VolumeId": volume_id, "Size": size, "Encrypted": encrypted, "tags": tags or {}}


def snap(snapshot_id, volume_id, age_days, size=1, tags=None, state="completed", encrypted=True):
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "VolumeSize": size, "State": state, "Encrypted": encrypted,
            "StartTime": NOW - timedelta(days=age_days), "tags": tags or {}}


def data(volumes=(), snapshots=(), **extra):
    base = {"volumes": list(volumes), "snapshots": list(snapshots), "image_snapshot_ids": set(), "public_snapshot_ids": [],
            "shares": {}, "block_public_access": "block-all-sharing", "encryption_by_default": True}
    base.update(extra)
    return base


def rows(d, policies=(), **kw):
    return {r["control"]: r for r in core.evaluate(REGION, d, core.audit_policies(list(policies), NOW), NOW, **kw)}


def test_every_control_has_a_row_with_a_stable_id():
    assert set(rows(data())) == set(core.CONTROLS)
    assert all(r["status"] == "pass" for r in rows(data()).values())


def test_rpo_uses_the_smallest_frequency_plus_grace_of_the_selecting_policies():
    policies = [{"name": "daily", "target_tags": {"b": "d"}, "frequency": "1d", "grace": "1h"},
                {"name": "weekly", "all_volumes": True, "frequency": "7d"}]
    volumes = [vol("vol-1", tags={"b": "d"}), vol("vol-2")]
    fresh = [snap("snap-1", "vol-1", 1.02), snap("snap-2", "vol-2", 6)]
    assert rows(data(volumes, fresh), policies)["volume-rpo-exceeded"]["resource_ids"] == []
    late = [snap("snap-1", "vol-1", 1.05), snap("snap-2", "vol-2", 6)]
    assert rows(data(volumes, late), policies)["volume-rpo-exceeded"]["resource_ids"] == ["vol-1"]


def test_pending_snapshots_are_no_recovery_point():
    policies = [{"name": "daily", "all_volumes": True, "frequency": "1d"}]
    found = rows(data([vol("vol-1")], [snap("snap-1", "vol-1", 0, state="pending")]), policies)
    assert found["volume-rpo-exceeded"]["resource_ids"] == ["vol-1"]


def test_orphans_exclude_ami_policy_scope_existing_volumes_and_uploads():
    snapshots = [snap("snap-a", "vol-gone", 1, size=4), snap("snap-b", "vol-gone", 1, tags={"blockwise:policy": "daily"}),
                 snap("snap-c", "vol-gone", 1), snap("snap-d", "vol-1", 1),
                 snap("snap-e", "vol-ffffffff", 1, tags={"blockwise:lineage": "disk"}),
                 snap("snap-f", "vol-gone", 1, tags={"blockwise:policy": "other"})]
    d = data([vol("vol-1")], snapshots, image_snapshot_ids={"snap-c"})
    found = rows(d, [{"name": "daily"}])["snapshot-orphan"]
    assert found["resource_ids"] == ["snap-a", "snap-f"] and found["total_gib"] == 5


def test_shares_not_read_is_not_checked_never_pass():
    found = rows(data(shares=None))["snapshot-shared-outside"]
    assert found["status"] == "not-checked"
    assert core.summary(list(rows(data(shares=None)).values()))["not_checked"] == ["snapshot-shared-outside"]


def test_shared_outside_the_allow_list():
    d = data([], [snap("snap-1", "vol-1", 1, size=2)], shares={"snap-1": ["111111111111", "222222222222"]})
    found = rows(d, allowed_accounts=["111111111111"])["snapshot-shared-outside"]
    assert found["resource_ids"] == ["snap-1"] and found["detail"] == {"snap-1": ["222222222222"]} and found["total_gib"] == 2


@pytest.mark.parametrize("policies, fragment", [
    ([{"frequency": "1d"}], "policies[0]"),
    ([{"name": "a", "frequency": "soon"}], "policies[0] (a)"),
    ([{"name": "a", "target_tags": ["x"]}], "policies[0].target_tags"),
])
def test_bad_policies_name_the_option(policies, fragment):
    with pytest.raises(ValueError) as caught:
        core.audit_policies(policies, NOW)
    assert fragment in str(caught.value)
