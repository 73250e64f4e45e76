# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/site.yml (blockwise.ebs.site) through ansible-playbook against the local endpoint.

site = encryption, then backup, then ami_names, with one set of extra vars checked before any change.
"""
from datetime import datetime, timedelta, timezone

import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tests.localaws.seed import KMS_ALIAS, seed_fleet

PLAYBOOK = "blockwise.ebs.site"
REGION = "us-east-1"
MODULE_TASKS = (
    "blockwise.ebs.encryption_baseline : Manage EBS encryption by default",
    "blockwise.ebs.snapshot_schedule : Take the snapshots that are due",
    "blockwise.ebs.snapshot_schedule : Prune by retention",
    "blockwise.ebs.ami_snapshot_names : Name the snapshots behind the selected AMIs",
)
POLICY = {
    "name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d",
    "retention": {"keep_daily": 7, "keep_weekly": 2, "minimum": 3}, "retention_tag": "Daily_Gens", "max_deletions": 500,
}
VARS = {"regions": [REGION], "kms_key_id": KMS_ALIAS, "policies": [POLICY]}


@pytest.fixture
def fleet(aws):
    return seed_fleet(aws, regions=(REGION,), days=20, now=datetime.now(timezone.utc) - timedelta(days=2))[REGION]


@pytest.fixture
def run(aws, tmp_path):
    counter = {"n": 0}

    def _run(extra_vars, check=False):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": aws.endpoint_url}, **extra_vars)
        return run_playbook_file(PLAYBOOK, workdir, check=check, extra_vars=extra_vars, env=ansible_env(aws.endpoint_url))

    return _run


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
