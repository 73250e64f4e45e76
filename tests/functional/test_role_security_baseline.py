# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The security_baseline role through ansible-playbook: apply, idempotence, check mode, region errors."""
REGIONS = ["us-east-1", "eu-west-1"]


def role(**variables):
    return {"name": "baseline", "ansible.builtin.include_role": {"name": "blockwise.ebs.security_baseline"}, "vars": variables}


def state(aws, region):
    return aws.client("ec2", region=region).get_snapshot_block_public_access_state()["State"]


def test_role_applies_then_is_idempotent_and_check_mode_writes_nothing(aws, playbook):
    aws.reset_counters()
    checked = playbook([role(security_baseline_regions=REGIONS)], check=True)
    assert checked.rc == 0, checked
    assert aws.mutating_calls() == {}
    assert state(aws, "us-east-1") == "unblocked"
    run = playbook([role(security_baseline_regions=REGIONS)])
    assert run.rc == 0, run
    assert [state(aws, r) for r in REGIONS] == ["block-all-sharing"] * 2
    aws.reset_counters()
    again = playbook([role(security_baseline_regions=REGIONS)])
    assert again.rc == 0 and aws.mutating_calls() == {}


def test_role_fails_naming_the_region_after_handling_the_others(aws, playbook):
    aws.inject_error("GetSnapshotBlockPublicAccessState", status=403, code="UnauthorizedOperation", message="denied", count=1,
                     region="eu-west-1")
    run = playbook([role(security_baseline_regions=REGIONS)])
    assert run.rc != 0
    assert state(aws, "us-east-1") == "block-all-sharing"
    assert "eu-west-1: UnauthorizedOperation" in run.stdout + run.stderr
