# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the playbooks: deny one region each part in turn, and try to make a run lose a backup or lie.

Two seeded regions behind ``RegionDenial`` (one action denied in one region only, with the error AWS gives
a principal whose policy does not allow it). Whatever is denied, every other region must complete every part,
the denied region must complete every other part, the run must fail at its end naming the region and the
part, and the audit must keep each error under the region that raised it.
"""
import json

import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tests.functional.two_regions import (  # noqa: F401  pylint: disable=unused-import
    DENIED, HEALTHY, NOT_AUTHORIZED, POLICY, REGIONS, denial, encrypted, final_failure, fleets, named_ami_snapshots, recap, run,
    snapshot_ids, taken_today, topic_with_queue)
from tests.localaws.seed import KMS_ALIAS

SITE_VARS = {"regions": REGIONS, "kms_key_id": KMS_ALIAS, "policies": [POLICY]}

# (action denied in DENIED, the part named in the failure, the parts that cannot complete in DENIED)
ATTACKS = [
    ("GetEbsEncryptionByDefault", "encryption", {"encryption"}),
    ("EnableEbsEncryptionByDefault", "encryption", {"encryption"}),
    ("DescribeVolumes", "daily snapshot", {"snapshot", "prune"}),
    ("CreateSnapshot", "daily snapshot", {"snapshot", "prune"}),
    ("DeleteSnapshot", "daily prune", {"prune"}),
    ("DescribeImages", "daily prune", {"prune", "names"}),
    ("CreateTags", "AMI snapshot names", {"names"}),
]


def parts_done(aws, fleets, region, before):
    """Which parts completed in ``region``: encryption, snapshot (7 taken), prune (something deleted), names."""
    done = set()
    if encrypted(aws, region):
        done.add("encryption")
    if len(taken_today(aws, region)) == 7:
        done.add("snapshot")
    if before - snapshot_ids(aws, region):
        done.add("prune")
    if [name.split("(")[-1] for name in named_ami_snapshots(aws, region, fleets[region])] == ["001)", "002)"]:
        done.add("names")
    return done


@pytest.mark.parametrize("action, part, broken", ATTACKS, ids=[attack[0] for attack in ATTACKS])
def test_site_a_region_denied_one_action_loses_nothing_else(aws, denial, fleets, run, action, part, broken):
    topic, read_messages = topic_with_queue(aws)
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(DENIED, action)

    out = run("site", dict(SITE_VARS, notify_topic_arn=topic))

    assert out.rc != 0, out
    everything = {"encryption", "snapshot", "prune", "names"}
    assert parts_done(aws, fleets, HEALTHY, before[HEALTHY]) == everything
    assert parts_done(aws, fleets, DENIED, before[DENIED]) == everything - broken
    message = final_failure(out)
    assert "{0} {1}: ".format(DENIED, part) in message and NOT_AUTHORIZED in message, message
    assert "{0} ".format(HEALTHY) not in message, message
    assert recap(out)["localhost"]["failures"] == 1
    notes = read_messages()
    assert len(notes) == 1 and "{0} daily snapshot: 7 volume(s) selected, 7 snapshot(s) taken".format(HEALTHY) in notes[0]["Message"]
    if part.startswith("daily"):
        assert "FAILED" in notes[0]["Subject"] and NOT_AUTHORIZED in notes[0]["Message"], notes


def test_site_a_denied_notification_is_a_failure_after_every_backup(aws, denial, fleets, run):
    topic, read_messages = topic_with_queue(aws)
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(HEALTHY, "Publish")  # the topic's region

    out = run("site", dict(SITE_VARS, notify_topic_arn=topic))

    assert out.rc != 0, out
    for region in REGIONS:
        assert parts_done(aws, fleets, region, before[region]) == {"encryption", "snapshot", "prune", "names"}
    message = final_failure(out)
    assert "{0} notification: ".format(HEALTHY) in message, message
    assert read_messages() == []


def test_site_inventory_mode_a_host_denied_encryption_still_backs_up(aws, denial, fleets, tmp_path):
    """One host per region: a host whose encryption fails is not dropped from the backup and naming plays."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"aws_regions": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "hosts": {"region-" + region: {"aws_region": region} for region in REGIONS}}}))
    before = {region: snapshot_ids(aws, region) for region in REGIONS}
    denial.deny(DENIED, "EnableEbsEncryptionByDefault")

    extra_vars = dict(SITE_VARS, target_hosts="aws_regions", endpoint_url=denial.endpoint_url)
    del extra_vars["regions"]
    out = run_playbook_file("blockwise.ebs.site", tmp_path, extra_vars=extra_vars, inventory=inventory,
                            env=ansible_env(denial.endpoint_url))

    assert out.rc != 0, out
    assert parts_done(aws, fleets, HEALTHY, before[HEALTHY]) == {"encryption", "snapshot", "prune", "names"}
    assert parts_done(aws, fleets, DENIED, before[DENIED]) == {"snapshot", "prune", "names"}
    stats = recap(out)
    assert stats["region-" + HEALTHY]["failures"] == 0 and stats["region-" + DENIED]["failures"] == 1, stats
    assert "{0} encryption: ".format(DENIED) in final_failure(out)


@pytest.mark.parametrize("action", ["GetEbsEncryptionByDefault", "DescribeVolumes", "DescribeSnapshots", "DescribeImages"])
def test_audit_a_region_that_cannot_be_read_does_not_taint_another(aws, denial, fleets, run, tmp_path, action):
    assert run("site", SITE_VARS).rc == 0
    denial.deny(DENIED, action)

    out = run("audit", dict(SITE_VARS, report_dir=str(tmp_path / "report")))

    assert out.rc == 0, out
    report = json.loads((tmp_path / "report" / "audit.json").read_text())
    healthy, denied = report["regions"][HEALTHY], report["regions"][DENIED]
    assert healthy["compliant"] is True and healthy["errors"] == [], healthy
    assert NOT_AUTHORIZED not in json.dumps(healthy), healthy
    assert denied["compliant"] is False and NOT_AUTHORIZED in json.dumps(denied), denied
    assert report["summary"]["non_compliant"] == [DENIED]
