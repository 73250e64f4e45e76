# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One region's (or one part's) failure must not cost another region its backup, its report or its alert.

Two seeded regions; ``RegionDenial`` denies one action in one region only (as an IAM policy scoped to a
region would), and the real playbooks run through it with ``ansible-playbook``. Every other region must
still run every part, the recap must count what was changed, and the run must fail at the end naming the
region and the part that failed.
"""
import json
import shutil
from pathlib import Path

import pytest

from tests.functional.harness import ansible_env
from tests.functional.two_regions import (  # noqa: F401  pylint: disable=unused-import
    DENIED, HEALTHY, NOT_AUTHORIZED, POLICY, REGIONS, denial, encrypted, final_failure, fleets, named_ami_snapshots, recap, run,
    snapshot_ids, taken_today, topic_with_queue)
from tests.localaws.seed import KMS_ALIAS


def test_site_a_region_denied_encryption_still_backs_up_names_and_notifies_everywhere(aws, denial, fleets, run):
    """Item 15: EnableEbsEncryptionByDefault denied in one region; every part still runs in every region."""
    topic, read_messages = topic_with_queue(aws)
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(DENIED, "EnableEbsEncryptionByDefault")

    out = run("site", {"regions": REGIONS, "kms_key_id": KMS_ALIAS, "policies": [POLICY], "notify_topic_arn": topic})

    assert out.rc != 0, out
    assert encrypted(aws, HEALTHY) and not encrypted(aws, DENIED)
    for region in REGIONS:  # snapshots, retention and AMI names in both regions, the denied one included
        assert len(taken_today(aws, region)) == 7, region
        assert before[region] - snapshot_ids(aws, region), region
        assert [name.split("(")[1] for name in named_ami_snapshots(aws, region, fleets[region])] == ["001)", "002)"], region
    messages = read_messages()
    assert len(messages) == 1 and "{0} daily snapshot: 7 volume(s) selected, 7 snapshot(s) taken".format(DENIED) in messages[0]["Message"]
    stats = recap(out)["localhost"]
    assert stats["changed"] >= 4 and stats["failures"] == 1, stats  # encryption, snapshots, prune, names
    assert out.result("blockwise.ebs.encryption_baseline : Manage EBS encryption by default")["changed"] is True
    message = final_failure(out)
    assert "{0} encryption".format(DENIED) in message and NOT_AUTHORIZED in message, message
    assert HEALTHY not in message, message


def test_backup_a_region_denied_describe_volumes_still_snapshots_prunes_and_notifies(aws, denial, fleets, run):
    """Item 16: DescribeVolumes denied in one region; the other snapshots and prunes, and the alert names the failure."""
    topic, read_messages = topic_with_queue(aws)
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(DENIED, "DescribeVolumes")

    out = run("backup", {"regions": REGIONS, "policies": [POLICY], "notify_topic_arn": topic})

    assert out.rc != 0, out
    assert len(taken_today(aws, HEALTHY)) == 7 and before[HEALTHY] - snapshot_ids(aws, HEALTHY)
    assert snapshot_ids(aws, DENIED) == before[DENIED]  # nothing taken, nothing pruned where the snapshot step failed
    messages = read_messages()
    assert len(messages) == 1, messages
    subject, text = messages[0]["Subject"], messages[0]["Message"]
    assert "FAILED" in subject, subject
    assert "{0} daily snapshot: 7 volume(s) selected, 7 snapshot(s) taken".format(HEALTHY) in text, text
    assert "{0} daily prune: ".format(HEALTHY) in text and " deleted, " in text, text
    assert "{0} daily snapshot: FAILED".format(DENIED) in text and NOT_AUTHORIZED in text, text
    assert "{0} daily prune: SKIPPED".format(DENIED) in text, text
    message = final_failure(out)
    assert "{0} daily snapshot".format(DENIED) in message and NOT_AUTHORIZED in message, message


def test_backup_never_prunes_a_region_whose_snapshot_step_failed(aws, denial, fleets, run):
    """Item 16, the prune decision: CreateSnapshot denied in one region; its prune (which would work) is skipped."""
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(DENIED, "CreateSnapshot")

    out = run("backup", {"regions": REGIONS, "policies": [POLICY]})

    assert out.rc != 0, out
    assert before[HEALTHY] - snapshot_ids(aws, HEALTHY)  # the healthy region pruned
    assert snapshot_ids(aws, DENIED) == before[DENIED]
    prunes = out.result("blockwise.ebs.snapshot_schedule : Prune by retention")["results"]
    assert [res["item"][0] for res in prunes if not res.get("skipped")] == [HEALTHY], prunes
    summary = out.result("blockwise.ebs.snapshot_schedule : Summarise the snapshots and the retention per region and policy")["msg"]
    assert any(line.startswith("{0} daily prune: SKIPPED".format(DENIED)) for line in summary), summary


def test_audit_errors_belong_to_the_region_that_raised_them(aws, denial, fleets, run, tmp_path):
    """Item 17: a healthy, compliant region stays compliant when another region cannot be read."""
    common = {"regions": REGIONS, "kms_key_id": KMS_ALIAS, "policies": [POLICY]}
    assert run("site", common).rc == 0
    for action in ("GetEbsEncryptionByDefault", "DescribeVolumes", "DescribeImages"):
        denial.deny(DENIED, action)

    out = run("audit", dict(common, report_dir=str(tmp_path / "report")))

    assert out.rc == 0, out
    report = json.loads((tmp_path / "report" / "audit.json").read_text())
    healthy, denied = report["regions"][HEALTHY], report["regions"][DENIED]
    assert healthy["compliant"] is True and healthy["errors"] == [], healthy
    assert NOT_AUTHORIZED not in json.dumps(healthy), healthy
    assert denied["compliant"] is False and NOT_AUTHORIZED in denied["encryption"]["error"]
    assert any(NOT_AUTHORIZED in error for error in denied["errors"]), denied
    assert report["summary"]["non_compliant"] == [DENIED]


@pytest.fixture
def stray_root_report():
    """Removes what a report written to the file system root would leave (only if this test made it)."""
    path = Path("/blockwise-ebs-audit")
    existed = path.exists()
    yield path
    if not existed and path.exists():
        shutil.rmtree(path)


@pytest.mark.parametrize("pwd", [None, "stale"])
def test_audit_report_dir_follows_the_real_working_directory_not_pwd(aws, denial, run, tmp_path, pwd, stray_root_report):
    """Item 18: the default report_dir is under the working directory of ansible-playbook, whatever PWD says."""
    elsewhere = tmp_path / "unrelated"
    elsewhere.mkdir()
    env = ansible_env(denial.endpoint_url)
    env.pop("PWD", None)
    if pwd == "stale":
        env["PWD"] = str(elsewhere)

    out = run("audit", {"regions": [HEALTHY]}, env=env)

    assert out.rc == 0, out
    workdir = tmp_path / "run1"
    assert json.loads((workdir / "blockwise-ebs-audit" / "audit.json").read_text())["summary"]["regions"] == 1
    assert (workdir / "blockwise-ebs-audit" / "audit.md").is_file()
    assert not list(elsewhere.iterdir()) and not stray_root_report.exists()
    lines = out.result("Show the compliance report")["msg"]
    assert lines[-1].endswith("report: {0}/audit.json, audit.md".format(workdir / "blockwise-ebs-audit")), lines
