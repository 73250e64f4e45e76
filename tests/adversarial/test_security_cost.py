# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the security and cost modules through their public interface: make them lie, write, or crash."""
from datetime import datetime, timedelta, timezone

REGION = "us-east-1"
AUDIT = "blockwise.ebs.ebs_audit_controls_info"
BPA = "blockwise.ebs.ebs_snapshot_block_public_access"
COST = "blockwise.ebs.ebs_snapshot_cost_info"


def rows_of(result):
    return {row["control"]: row for row in result["findings"]}


def public_snapshot(ec2):
    volume = ec2.create_volume(Size=1, AvailabilityZone=REGION + "a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    return snapshot_id


def test_public_snapshot_hidden_by_block_all_sharing_is_still_a_finding(aws, playbook):
    """Lifting the block would make it public again: with the permissions read, the audit must say so."""
    ec2 = aws.client("ec2", region=REGION)
    snapshot_id = public_snapshot(ec2)
    ec2.enable_snapshot_block_public_access(State="block-all-sharing")
    run = playbook([{"name": "a", AUDIT: {"regions": [REGION], "check_account_shares": True}, "register": "out"}], check=True)
    row = rows_of(run.result("a"))["snapshot-public"]
    assert row["resource_ids"] == [snapshot_id]
    assert row["detail"] == {"hidden_by_block_public_access": [snapshot_id]}


def test_unblocking_in_check_mode_does_not_expose_anything(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    snapshot_id = public_snapshot(ec2)
    ec2.enable_snapshot_block_public_access(State="block-all-sharing")
    other = aws.client("ec2", region=REGION, account_id="210987654321")
    aws.reset_counters()
    run = playbook([{"name": "u", BPA: {"regions": [REGION], "state": "unblocked"}, "register": "out"}], check=True, diff=True)
    assert run.result("u")["changed"] is True
    assert aws.mutating_calls() == {}
    visible = {s["SnapshotId"] for s in other.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]}
    assert snapshot_id not in visible


def test_throttled_audit_still_reports_every_control(aws, playbook):
    ec2 = aws.client("ec2", region=REGION)
    for _round in range(3):
        public_snapshot(ec2)
    aws.reset_counters()
    aws.set_faults(throttle_rate=0.3, error_rate=0.05, seed=11, services=["ec2"])
    run = playbook([{"name": "a", AUDIT: {"regions": [REGION], "check_account_shares": True}, "register": "out"}], check=True)
    aws.clear_faults()
    result = run.result("a")
    assert run.rc == 0, run
    assert rows_of(result)["snapshot-public"]["count"] == 3
    assert aws.mutating_calls() == {}


def test_snapshot_deleted_between_listing_and_attribute_read_is_an_error_not_a_pass(aws, playbook):
    """A read that fails must not turn into 'not shared': the region reports the error and no rows."""
    ec2 = aws.client("ec2", region=REGION)
    public_snapshot(ec2)
    aws.inject_error("DescribeSnapshotAttribute", status=400, code="InvalidSnapshot.NotFound", message="gone", count=1)
    run = playbook([{"name": "a", AUDIT: {"regions": [REGION], "check_account_shares": True}, "register": "out"}], check=True)
    result = run.result("a")
    assert result["failed_regions"] == [REGION]
    assert "InvalidSnapshot.NotFound" in result["regions"][REGION]["error"]
    assert result["findings"] == []


def test_cost_of_a_chain_with_a_pending_snapshot_leaves_it_out_and_says_so(aws, playbook):
    ebs = aws.client("ebs", region=REGION)
    from tests.localaws.blockdata import block, write_snapshot  # noqa: E402  pylint: disable=import-outside-toplevel
    done = write_snapshot(ebs, {0: block(1)})
    pending = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=done)["SnapshotId"]
    aws.backdate_snapshot(done, datetime.now(timezone.utc) - timedelta(days=1))
    run = playbook([{"name": "c", COST: {"snapshot_ids": [done, pending]}, "register": "out"}], check=True)
    result = run.result("c")
    assert run.rc == 0, run
    assert [row["snapshot_id"] for row in result["snapshots"]] == [done]
    assert result["not_completed"] == [pending]
