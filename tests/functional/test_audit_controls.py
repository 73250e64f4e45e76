# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_audit_controls_info through ansible-playbook: each control finds a planted offender; a clean account has none."""
from datetime import datetime, timedelta, timezone

import pytest

REGION = "us-east-1"
MODULE = "blockwise.ebs.ebs_audit_controls_info"
ALLOWED, STRANGER = "210987654321", "333333333333"
POLICY = {"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d", "retention": {"keep_daily": 7}}
CONTROLS = {"snapshot-public", "snapshot-shared-outside", "snapshot-block-public-access", "encryption-by-default",
            "volume-unencrypted", "snapshot-unencrypted", "volume-without-policy", "volume-rpo-exceeded", "snapshot-orphan"}


def task(**params):
    params.setdefault("regions", [REGION])
    return {"name": "controls", MODULE: params, "register": "out", "ignore_errors": True}


def by_control(result):
    return {row["control"]: row for row in result["findings"]}


def volume(ec2, size=1, tags=None, encrypted=False):
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}] if tags else []
    return ec2.create_volume(Size=size, AvailabilityZone=REGION + "a", Encrypted=encrypted, TagSpecifications=spec)["VolumeId"]


def snapshot(ec2, volume_id, tags=None):
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}] if tags else []
    return ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]


def harden(ec2):
    ec2.enable_ebs_encryption_by_default()
    ec2.enable_snapshot_block_public_access(State="block-all-sharing")


def test_clean_account_has_zero_findings_and_makes_no_write(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    harden(ec2)
    covered = volume(ec2, tags={"backup": "daily"}, encrypted=True)
    snapshot(ec2, covered)
    aws.reset_counters()
    run = playbook([task(policies=[POLICY], check_account_shares=True)], check=True)
    res = run.result("controls")
    assert run.rc == 0, run
    rows = by_control(res)
    assert set(rows) == CONTROLS
    assert all(row["status"] == "pass" and row["count"] == 0 for row in rows.values()), rows
    assert res["regions"][REGION] == {"failed": [], "not_checked": [], "compliant": True}
    assert aws.mutating_calls() == {}


def test_each_control_finds_its_planted_offender(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    bare = volume(ec2, size=3)  # unencrypted, in no policy, never snapshotted
    late = volume(ec2, size=2, tags={"backup": "daily"}, encrypted=True)
    old = snapshot(ec2, late)
    aws.backdate_snapshot(old, datetime.now(timezone.utc) - timedelta(days=3))
    public = snapshot(ec2, bare)
    ec2.modify_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    shared = snapshot(ec2, bare)
    ec2.modify_snapshot_attribute(SnapshotId=shared, Attribute="createVolumePermission", OperationType="add", UserIds=[ALLOWED, STRANGER])
    allowed_only = snapshot(ec2, bare)
    ec2.modify_snapshot_attribute(SnapshotId=allowed_only, Attribute="createVolumePermission", OperationType="add", UserIds=[ALLOWED])
    gone = volume(ec2, size=5)
    orphan = snapshot(ec2, gone)
    in_scope = snapshot(ec2, gone, tags={"blockwise:policy": "daily"})
    behind_ami = snapshot(ec2, gone)
    ec2.register_image(Name="img", RootDeviceName="/dev/xvda",
                       BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": behind_ami}}])
    ec2.delete_volume(VolumeId=gone)
    aws.reset_counters()
    run = playbook([task(policies=[POLICY], check_account_shares=True, allowed_share_accounts=[ALLOWED])], check=True)
    res = run.result("controls")
    assert run.rc == 0, run
    rows = by_control(res)
    assert rows["snapshot-public"]["resource_ids"] == [public] and rows["snapshot-public"]["fsbp"] == "EC2.1"
    assert rows["snapshot-shared-outside"]["resource_ids"] == [shared]
    assert rows["snapshot-shared-outside"]["detail"] == {shared: [STRANGER]}
    assert rows["snapshot-block-public-access"]["resource_ids"] == [REGION]
    assert rows["snapshot-block-public-access"]["detail"] == {"state": "unblocked"}
    assert rows["encryption-by-default"]["status"] == "fail" and rows["encryption-by-default"]["fsbp"] == "EC2.7"
    assert rows["volume-unencrypted"]["resource_ids"] == [bare] and rows["volume-unencrypted"]["total_gib"] == 3
    unencrypted = {public, shared, allowed_only, orphan, in_scope, behind_ami}
    assert set(rows["snapshot-unencrypted"]["resource_ids"]) == unencrypted
    assert rows["volume-without-policy"]["resource_ids"] == []  # bare has a fresh snapshot
    assert rows["volume-rpo-exceeded"]["resource_ids"] == [late] and rows["volume-rpo-exceeded"]["total_gib"] == 2
    assert rows["snapshot-orphan"]["resource_ids"] == [orphan] and rows["snapshot-orphan"]["total_gib"] == 5
    assert res["regions"][REGION]["compliant"] is False
    assert aws.mutating_calls() == {}


def test_volume_in_no_policy_without_recent_snapshot(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    never = volume(ec2, size=4)
    stale = volume(ec2)
    aws.backdate_snapshot(snapshot(ec2, stale), datetime.now(timezone.utc) - timedelta(days=10))
    fresh = volume(ec2)
    snapshot(ec2, fresh)
    run = playbook([task(policies=[POLICY])], check=True)
    rows = by_control(run.result("controls"))
    assert rows["volume-without-policy"]["resource_ids"] == sorted([never, stale])
    assert rows["volume-without-policy"]["fsbp"] == "EC2.28"
    assert rows["snapshot-shared-outside"]["status"] == "not-checked"  # never a pass when not read


def test_describe_calls_are_batched(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    for _round in range(12):
        snapshot(ec2, volume(ec2))
    aws.reset_counters()
    run = playbook([task(policies=[POLICY])], check=True)
    assert run.rc == 0, run
    calls = {k: v for k, v in aws.counters().items() if k.startswith("ec2:")}
    assert calls == {"ec2:DescribeRegions": 1, "ec2:DescribeVolumes": 1, "ec2:DescribeSnapshots": 2, "ec2:DescribeImages": 1,
                     "ec2:GetSnapshotBlockPublicAccessState": 1, "ec2:GetEbsEncryptionByDefault": 1}


@pytest.mark.parametrize("params, option", [
    ({"policies": [{"target_tags": {"a": "b"}}]}, "policies[0]"),
    ({"policies": [{"name": "p", "frequency": "often"}]}, "policies[0]"),
    ({"allowed_share_accounts": ["12345"]}, "allowed_share_accounts"),
    ({"recent_snapshot_age": "soon"}, "recent_snapshot_age"),
    ({"regions": ["mars-1"]}, "regions"),
    ({"workers": 0}, "workers"),
])
def test_bad_input_fails_naming_the_option(aws, playbook, params, option):
    aws.reset_counters()
    run = playbook([task(**params)])
    res = run.result("controls")
    assert res["failed"] is True and option in res["msg"]
    assert aws.mutating_calls() == {}


def test_unreadable_region_is_reported_others_evaluated(aws, playbook):
    aws.inject_error("DescribeVolumes", status=403, code="UnauthorizedOperation", message="denied", count=1, region="eu-west-1")
    run = playbook([task(regions=[REGION, "eu-west-1"])], check=True)
    res = run.result("controls")
    assert run.rc == 0, run
    assert res["failed_regions"] == ["eu-west-1"] and "UnauthorizedOperation" in res["regions"]["eu-west-1"]["error"]
    assert {row["region"] for row in res["findings"]} == {REGION}


def test_cost_per_policy_matches_the_hand_computed_chains(aws, playbook):
    from tests.localaws.blockdata import block, write_snapshot  # pylint: disable=import-outside-toplevel
    ebs = aws.client("ebs", region=REGION)

    def tags(lineage):
        return [{"Key": "blockwise:policy", "Value": "daily"}, {"Key": "blockwise:lineage", "Value": lineage}]

    s0 = write_snapshot(ebs, {0: block(1), 1: block(2)}, Tags=tags("disk-a"))
    s1 = write_snapshot(ebs, {1: block(3), 2: block(4)}, ParentSnapshotId=s0, Tags=tags("disk-a"))
    write_snapshot(ebs, {0: block(5), 5: block(6), 9: block(7)}, Tags=tags("disk-b"))
    archived = write_snapshot(ebs, {0: block(8)}, Tags=tags("disk-c"))
    aws.client("ec2", region=REGION).modify_snapshot_tier(SnapshotId=archived, StorageTier="archive")
    now = datetime.now(timezone.utc)
    aws.backdate_snapshot(s0, now - timedelta(days=2))
    aws.backdate_snapshot(s1, now - timedelta(days=1))
    aws.reset_counters()
    run = playbook([task(policies=[POLICY], cost=True, standard_price=1.0)], check=True)
    res = run.result("controls")
    assert run.rc == 0, run
    [row] = res["costs"]
    assert row["policy"] == "daily" and row["region"] == REGION
    assert row["chains"] == 2 and row["snapshots"] == 3  # the archived chain is not counted...
    assert row["stored_gib"] == round(7 * 524288 / 2 ** 30, 6)
    assert row["standard_monthly_cost"] == pytest.approx(7 * 524288 / 2 ** 30, abs=1e-5)
    assert len(row["errors"]) == 1 and archived in row["errors"][0]  # ...and says why
    assert aws.mutating_calls() == {}
