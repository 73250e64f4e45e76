# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml (blockwise.ebs.site) through ansible-playbook against the local endpoint.

site = encryption, then backup, then ami_names, with one set of extra vars checked before any change.
"""
import pytest

from tests.localaws.seed import DAILY_POLICY, KMS_ALIAS

PLAYBOOK = "blockwise.ebs.site"
REGION = "us-east-1"
MODULE_TASKS = (
    "blockwise.ebs.encryption_baseline : Manage EBS encryption by default",
    "blockwise.ebs.snapshot_schedule : Take the snapshots that are due",
    "blockwise.ebs.snapshot_schedule : Prune by retention",
    "blockwise.ebs.ami_snapshot_names : Name the snapshots behind the selected AMIs",
)
POLICY = DAILY_POLICY
VARS = {"regions": [REGION], "kms_key_id": KMS_ALIAS, "policies": [POLICY]}


@pytest.fixture
def run(playbook_file):
    """``run(extra_vars, check=False)``: the playbook against the endpoint."""
    return lambda extra_vars, check=False: playbook_file(PLAYBOOK, extra_vars, check=check)


def encrypted(aws):
    return aws.client("ec2", region=REGION).get_ebs_encryption_by_default()["EbsEncryptionByDefault"]


def snapshot_ids(aws):
    return {s["SnapshotId"] for s in aws.client("ec2", region=REGION).describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_check_mode_then_apply_then_nothing_left(aws, run, fleet):
    before = snapshot_ids(aws)
    aws.reset_counters()
    check = run(VARS, check=True)
    assert check.rc == 0, check
    assert [check.result(task)["changed"] for task in MODULE_TASKS] == [True, True, True, True]
    assert aws.mutating_calls() == {}
    assert snapshot_ids(aws) == before and not encrypted(aws)

    out = run(VARS)
    assert out.rc == 0, out
    assert encrypted(aws)
    after = snapshot_ids(aws)
    assert len(after - before) == 7 and len(before - after) > 0
    named = out.result(MODULE_TASKS[3])["results"][0]["snapshots"]
    assert len(named) == 4 and all(s["name"].endswith(("(001)", "(002)")) for s in named)

    aws.reset_counters()
    again = run(VARS)
    assert again.rc == 0, again
    assert [again.result(task)["changed"] for task in MODULE_TASKS] == [False, False, False, False]
    assert aws.mutating_calls() == {}


@pytest.mark.parametrize("extra_vars, fragment", [
    ({"policies": {"name": "daily"}}, "policies must be a list of policies"),
    ({"image_filters": "[x]"}, "must be dictionaries"),
    ({"steps": ["snapshot", "backup"]}, "steps"),
    ({"encryption_state": "off"}, "encryption_state must be one of"),
])
def test_a_bad_value_of_any_part_stops_before_any_change(aws, run, fleet, extra_vars, fragment):
    """A wrong value for the last part (backup, ami_names) must not let the first part (encryption) run."""
    aws.reset_counters()
    out = run(dict(VARS, **extra_vars))
    assert out.rc != 0
    failed = [res for res in out.results if res.get("failed")]
    assert failed and fragment in failed[0]["msg"], failed
    assert out.names[0] == "Validate the extra vars" and MODULE_TASKS[0] not in out.names
    assert aws.mutating_calls() == {}
    assert not encrypted(aws)
