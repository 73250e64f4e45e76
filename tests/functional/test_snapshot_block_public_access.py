# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_block_public_access through ansible-playbook against the local endpoint."""
import pytest

REGIONS = ["us-east-1", "eu-west-1"]
MODULE = "blockwise.ebs.ebs_snapshot_block_public_access"


def task(name="bpa", **params):
    return {"name": name, MODULE: params, "register": "out", "ignore_errors": True}


def state(aws, region):
    return aws.client("ec2", region=region).get_snapshot_block_public_access_state()["State"]


def test_check_mode_predicts_and_changes_nothing(aws, playbook):
    aws.reset_counters()
    run = playbook([task(regions=REGIONS)], check=True, diff=True)
    res = run.result("bpa")
    assert run.rc == 0, run
    assert res["changed"] is True
    for region in REGIONS:
        assert res["regions"][region] == {"state": "block-all-sharing", "changed": True, "actions": ["enable"]}
        assert state(aws, region) == "unblocked"
    assert res["diff"] == {"before": {r: {"state": "unblocked"} for r in REGIONS},
                           "after": {r: {"state": "block-all-sharing"} for r in REGIONS}}
    assert aws.mutating_calls() == {}


def test_apply_then_idempotent_then_switch_and_unblock(aws, playbook):
    run = playbook([task(regions=REGIONS, state="block-new-sharing")], diff=True)
    assert run.rc == 0, run
    assert run.result("bpa")["diff"]["after"]["eu-west-1"] == {"state": "block-new-sharing"}
    assert [state(aws, r) for r in REGIONS] == ["block-new-sharing"] * 2
    assert state(aws, "us-west-2") == "unblocked"  # untouched region
    aws.reset_counters()
    again = playbook([task(regions=REGIONS, state="block-new-sharing")])
    assert again.result("bpa")["changed"] is False
    assert aws.mutating_calls() == {}
    switched = playbook([task(regions=["us-east-1"], state="block-all-sharing")])
    assert switched.result("bpa")["regions"]["us-east-1"]["actions"] == ["enable"]
    assert state(aws, "us-east-1") == "block-all-sharing"
    aws.reset_counters()
    unblocked = playbook([task(regions=["us-east-1"], state="unblocked")])
    assert unblocked.result("bpa")["regions"]["us-east-1"] == {"state": "unblocked", "changed": True, "actions": ["disable"]}
    assert aws.mutating_calls() == {"ec2:DisableSnapshotBlockPublicAccess": 1}
    assert state(aws, "us-east-1") == "unblocked"


def test_blocked_region_refuses_public_sharing(aws, playbook):
    run = playbook([task(region="eu-west-1")], region="eu-west-1")
    assert run.rc == 0, run
    ec2 = aws.client("ec2", region="eu-west-1")
    volume = ec2.create_volume(Size=1, AvailabilityZone="eu-west-1a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    with pytest.raises(Exception):
        ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])


@pytest.mark.parametrize("params, option", [
    ({"state": "blocked"}, "state"),
    ({"regions": []}, "regions"),
    ({"regions": ["all", "us-east-1"]}, "regions"),
    ({"regions": ["mars-north-1"]}, "regions"),
    ({"regions": ["us-east-1"], "fail_on_region_error": "sometimes"}, "fail_on_region_error"),
])
def test_bad_input_fails_naming_the_option_before_any_write(aws, playbook, params, option):
    aws.reset_counters()
    run = playbook([task(**params)])
    res = run.result("bpa")
    assert res["failed"] is True
    assert option in res["msg"]
    assert aws.mutating_calls() == {}


def test_region_error_reported_other_regions_done(aws, playbook):
    aws.inject_error("GetSnapshotBlockPublicAccessState", status=403, code="UnauthorizedOperation",
                     message="You are not authorized to perform this operation.", count=1, region="us-east-1")
    run = playbook([task(regions=REGIONS)])
    res = run.result("bpa")
    assert res["failed"] is True
    assert res["failed_regions"] == ["us-east-1"]
    assert "UnauthorizedOperation" in res["regions"]["us-east-1"]["error"]
    assert res["regions"]["eu-west-1"]["changed"] is True
    assert state(aws, "eu-west-1") == "block-all-sharing"
    assert "1 of 2 regions" in res["msg"]


def test_write_error_reports_the_state_before(aws, playbook):
    aws.inject_error("EnableSnapshotBlockPublicAccess", status=403, code="UnauthorizedOperation", message="denied", count=1)
    run = playbook([task(regions=["us-east-1"], fail_on_region_error=False)], diff=True)
    res = run.result("bpa")
    assert run.rc == 0, run
    region = res["regions"]["us-east-1"]
    assert region["state"] == "unblocked" and region["changed"] is False and "enable failed" in region["error"]
    assert res["changed"] is False
    assert res["diff"]["after"]["us-east-1"] == {"state": "unblocked"}
    assert any("us-east-1" in w for w in res.get("warnings", []))
