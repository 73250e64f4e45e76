# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the restore drill through its public interface (the playbook against the local endpoint).

Each tries to make the drill lie (certify a snapshot it did not read, pass with nothing proven), lose data
or leave a mess.
"""
import json
import os

from tests.functional.test_restore_drill import drill_vars, policy_snapshot, report_of, run_drill, state, two_volumes
from tests.localaws.blockdata import block, put_block

VERIFY_TAGS = ("blockwise:verified", "blockwise:verified-at", "blockwise:verify-mode")


def test_a_pending_or_archived_newest_snapshot_is_never_the_restore_point(aws, playbook_file, tmp_path):
    """A snapshot still being written, or one in the archive tier, cannot be restored as it is: the drill proves the
    newest one that can, and says which."""
    older = policy_snapshot(aws, "daily", "disk-a", {0: block(1)}, 3)
    archived = policy_snapshot(aws, "daily", "disk-a", {0: block(2)}, 2)
    aws.client("ec2").modify_snapshot_tier(SnapshotId=archived, StorageTier="archive")
    ebs = aws.client("ebs")
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, pending, 0, block(3))
    aws.client("ec2").create_tags(Resources=[pending], Tags=[{"Key": "blockwise:policy", "Value": "daily"},
                                                             {"Key": "blockwise:lineage", "Value": "disk-a"}])
    extra, report_dir, _work = drill_vars(tmp_path)
    run = playbook_file("restore_drill", extra)
    assert run.rc == 0, run
    rows = report_of(report_dir)["volumes"]
    assert [(r["volume"], r["snapshot_id"], r["result"]) for r in rows] == [("disk-a", older, "ok")]
    assert rows[0]["age_seconds"] >= 3 * 86400 - 60  # the age says how old the data a restore would bring back is


def test_a_snapshot_deleted_while_it_is_read_is_an_error_not_a_verdict(aws, playbook_file, tmp_path):
    """ResourceNotFound during the reads (the snapshot deleted meanwhile) says nothing about the content: no tag, the
    drill fails, every other volume is still verified, and the work directory is gone."""
    newest = two_volumes(aws)
    aws.inject_block_fault(newest["disk-a"], [0], mode="error", status=404, code="ResourceNotFoundException",
                           message="The snapshot does not exist")
    extra, report_dir, work = drill_vars(tmp_path)
    run = run_drill(aws, playbook_file, extra, work)
    assert run.rc != 0
    rows = {r["volume"]: r for r in report_of(report_dir)["volumes"]}
    assert rows["disk-a"]["result"] == "error" and rows["disk-b"]["result"] == "ok"
    snaps, _other = state(aws)
    assert not any(k in snaps[newest["disk-a"]] for k in VERIFY_TAGS)
    assert os.listdir(str(work)) == []


def test_a_report_dir_that_is_a_file_fails_without_touching_the_file(aws, playbook_file, tmp_path):
    two_volumes(aws)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    extra, _report_dir, _work = drill_vars(tmp_path)
    run = playbook_file("restore_drill", dict(extra, report_dir=str(precious)))
    assert run.rc != 0
    assert precious.read_text() == "keep me"


def test_a_drill_of_a_policy_with_only_old_verifications_does_not_reuse_them(aws, playbook_file, tmp_path):
    """A snapshot tagged ok long ago is read again: the drill never trusts an earlier verdict."""
    newest = two_volumes(aws)
    aws.client("ec2").create_tags(Resources=list(newest.values()), Tags=[
        {"Key": "blockwise:verified", "Value": "ok"}, {"Key": "blockwise:verified-at", "Value": "2020-01-01T00:00:00Z"},
        {"Key": "blockwise:verify-mode", "Value": "full"}])
    aws.inject_block_fault(newest["disk-b"], [2], mode="corrupt")
    aws.reset_counters()
    extra, report_dir, _work = drill_vars(tmp_path)
    run = playbook_file("restore_drill", extra)
    assert run.rc != 0
    rows = {r["volume"]: r for r in report_of(report_dir)["volumes"]}
    assert rows["disk-b"]["result"] == "unreadable" and rows["disk-a"]["result"] == "ok"
    assert aws.counters()["ebs:GetSnapshotBlock"] >= 5
    snaps, _other = state(aws)
    assert snaps[newest["disk-b"]]["blockwise:verified"] == "unreadable"
    assert snaps[newest["disk-a"]]["blockwise:verified-at"] > "2020-01-01T00:00:00Z"


def test_a_lineage_that_breaks_the_markdown_table_is_escaped(aws, playbook_file, tmp_path):
    policy_snapshot(aws, "daily", "host|sda", {0: block(1)}, 1)
    extra, report_dir, _work = drill_vars(tmp_path)
    assert playbook_file("restore_drill", extra).rc == 0
    table = [line for line in (report_dir / "drill.md").read_text().splitlines() if line.startswith("| us-east-1")]
    assert len(table) == 1 and "host\\|sda" in table[0] and table[0].count(" | ") == 9
    assert json.loads((report_dir / "drill.json").read_text())["volumes"][0]["volume"] == "host|sda"
