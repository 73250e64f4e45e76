# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security controls section of playbooks/audit.yml: rows in audit.json, compliance, still zero writes."""
import json

REGION = "us-east-1"


def test_audit_reports_the_controls_and_a_public_snapshot_breaks_compliance(aws, playbook_file, tmp_path):
    ec2 = aws.client("ec2", region=REGION)
    ec2.enable_ebs_encryption_by_default()
    volume = ec2.create_volume(Size=2, AvailabilityZone=REGION + "a")["VolumeId"]
    public = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    aws.reset_counters()
    out = playbook_file("audit", {"regions": [REGION], "policies": [], "report_dir": str(tmp_path)})
    assert out.rc == 0, out
    assert aws.mutating_calls() == {}
    region = json.loads((tmp_path / "audit.json").read_text())["regions"][REGION]
    rows = {row["control"]: row for row in region["controls"]}
    assert rows["snapshot-public"]["resource_ids"] == [public] and rows["snapshot-public"]["fsbp"] == "EC2.1"
    assert rows["snapshot-block-public-access"]["status"] == "fail"
    assert "snapshot-public" in region["controls_failed"]
    assert region["controls_not_checked"] == ["snapshot-shared-outside"]
    assert region["compliant"] is False


def test_required_controls_all_and_account_shares(aws, playbook_file, tmp_path):
    ec2 = aws.client("ec2", region=REGION)
    ec2.enable_ebs_encryption_by_default()
    ec2.enable_snapshot_block_public_access(State="block-all-sharing")
    volume = ec2.create_volume(Size=1, AvailabilityZone=REGION + "a")["VolumeId"]
    shared = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.modify_snapshot_attribute(SnapshotId=shared, Attribute="createVolumePermission", OperationType="add", UserIds=["333333333333"])
    out = playbook_file("audit", {"regions": [REGION], "report_dir": str(tmp_path),
                                  "audit_check_account_shares": True, "audit_allowed_share_accounts": ["210987654321"],
                                  "audit_required_controls": ["all"], "audit_cost": True,
                                  "policies": [{"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d"}]})
    assert out.rc == 0, out
    region = json.loads((tmp_path / "audit.json").read_text())["regions"][REGION]
    rows = {row["control"]: row for row in region["controls"]}
    assert rows["snapshot-shared-outside"]["detail"] == {shared: ["333333333333"]}
    assert region["controls_not_checked"] == [] and region["compliant"] is False
    assert region["policy_costs"] == [{"region": REGION, "policy": "daily", "chains": 0, "snapshots": 0, "stored_gib": 0.0,
                                       "standard_monthly_cost": 0.0}]
