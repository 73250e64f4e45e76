# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore_drill role through blockwise.ebs.restore_drill (real ansible-playbook) against the local endpoint.

Snapshots are written with the EBS direct APIs (so they hold real blocks) and tagged as a policy's snapshots of
two volumes (``blockwise:lineage``); what the drill reports is checked against the endpoint's counters and the
tags read back with boto3.
"""
import json
import os
from datetime import datetime, timedelta, timezone

from tests.functional.harness import ansible_env
from tests.localaws.blockdata import block, write_snapshot

ROLE = "blockwise.ebs.restore_drill : "
VERIFY_TAGS = ("blockwise:verified", "blockwise:verified-at", "blockwise:verify-mode")


def policy_snapshot(aws, policy, lineage, blocks, days_ago, volume_size=1):
    snap = write_snapshot(aws.client("ebs"), blocks, volume_size=volume_size)
    aws.client("ec2").create_tags(Resources=[snap], Tags=[{"Key": "blockwise:policy", "Value": policy},
                                                          {"Key": "blockwise:lineage", "Value": lineage}])
    aws.backdate_snapshot(snap, datetime.now(timezone.utc) - timedelta(days=days_ago))
    return snap


def two_volumes(aws):
    """Two volumes of policy "daily", each with an older and a newer snapshot; returns the newer ones."""
    policy_snapshot(aws, "daily", "disk-a", {0: block(1)}, 3)
    policy_snapshot(aws, "daily", "disk-b", {0: block(2)}, 3)
    newest_a = policy_snapshot(aws, "daily", "disk-a", {0: block(3), 4: block(4)}, 1)
    newest_b = policy_snapshot(aws, "daily", "disk-b", {0: block(5), 2: block(6), 3: block(7)}, 1)
    policy_snapshot(aws, "weekly", "disk-c", {0: block(8)}, 1)
    return {"disk-a": newest_a, "disk-b": newest_b}


def state(aws):
    """Every snapshot (id -> tags), volume and image of the account: what a drill must leave as it was."""
    ec2 = aws.client("ec2")
    snaps = {s["SnapshotId"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])}
             for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    volumes = sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"])
    return snaps, volumes


def without_verify_tags(snaps):
    return {sid: {k: v for k, v in tags.items() if k not in VERIFY_TAGS} for sid, tags in snaps.items()}


def drill_vars(tmp_path, **extra):
    report_dir = tmp_path / "report"
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return dict({"policies": ["daily"], "report_dir": str(report_dir), "regions": ["us-east-1"]}, **extra), report_dir, work


def report_of(report_dir):
    return json.loads((report_dir / "drill.json").read_text())


def run_drill(aws, playbook_file, extra, tmp_dir):
    """The playbook with the system's temporary directory (where the role makes its work directory) at ``tmp_dir``."""
    return playbook_file("restore_drill", extra, env=ansible_env(aws.endpoint_url, extra={"TMPDIR": str(tmp_dir)}))


def test_drill_verifies_the_newest_snapshot_of_every_volume_and_reports_the_fleet_rto(aws, playbook_file, tmp_path):
    newest = two_volumes(aws)
    extra, report_dir, _work = drill_vars(tmp_path)
    aws.reset_counters()
    run = playbook_file("restore_drill", extra)
    assert run.rc == 0, (run, run.results[-1].get("msg"))
    report = report_of(report_dir)
    rows = {r["volume"]: r for r in report["volumes"]}
    assert sorted(rows) == ["disk-a", "disk-b"]  # every volume of the policy, not the other policy's
    assert {v: r["snapshot_id"] for v, r in rows.items()} == newest
    for row in rows.values():
        assert row["result"] == "ok" and row["mode"] == "full" and row["policy"] == "daily" and row["region"] == "us-east-1"
        assert 23 * 3600 <= row["age_seconds"] <= 25 * 3600 + 600
        assert row["restore_estimate_seconds"] is not None and row["throughput_mib_s"] is not None
    assert rows["disk-a"]["blocks_read"] == 2 and rows["disk-b"]["blocks_read"] == 3
    summary = report["summary"]
    assert summary["passed"] is True and summary["volumes"] == 2 and summary["ok"] == 2 and summary["failed"] == 0
    assert summary["fleet_rto_seconds"] == max(r["restore_estimate_seconds"] for r in rows.values())
    assert summary["slowest"]["volume"] == max(rows.values(), key=lambda r: r["restore_estimate_seconds"])["volume"]
    # Only the newest snapshots were read (2 + 3 blocks), and the outcome recorded once on each.
    counts = aws.counters()
    assert counts["ebs:GetSnapshotBlock"] == 5 and aws.mutating_calls() == {"ec2:CreateTags": 2}
    snaps, _other = state(aws)
    for snap in newest.values():
        assert snaps[snap]["blockwise:verified"] == "ok" and snaps[snap]["blockwise:verify-mode"] == "full"
    markdown = (report_dir / "drill.md").read_text()
    assert "PASSED" in markdown and newest["disk-a"] in markdown and newest["disk-b"] in markdown
    assert "Fleet RTO" in markdown


def test_check_mode_is_a_plan_that_reads_no_block_and_writes_nothing(aws, playbook_file, tmp_path):
    newest = two_volumes(aws)
    extra, report_dir, _work = drill_vars(tmp_path)
    before = state(aws)
    aws.reset_counters()
    run = playbook_file("restore_drill", extra, check=True)
    assert run.rc == 0, (run, run.results[-1].get("msg"))
    plan = run.result(ROLE + "Build the report")["ansible_facts"]["restore_drill_report"]
    assert sorted(r["snapshot_id"] for r in plan["volumes"]) == sorted(newest.values())
    assert {r["result"] for r in plan["volumes"]} == {"planned"} and plan["summary"]["passed"] is None
    assert aws.mutating_calls() == {} and aws.counters().get("ebs:GetSnapshotBlock", 0) == 0
    assert aws.counters().get("ebs:ListSnapshotBlocks", 0) == 0
    assert not report_dir.exists() and state(aws) == before


def test_a_sample_of_volumes_is_the_same_in_the_plan_and_the_run(aws, playbook_file, tmp_path):
    for index in range(6):
        policy_snapshot(aws, "daily", "disk-{0}".format(index), {0: block(index + 1)}, 1)
    extra, report_dir, _work = drill_vars(tmp_path, volumes=2, seed="drill-42")
    plan = playbook_file("restore_drill", extra, check=True)
    planned = sorted(r["volume"] for r in plan.result(ROLE + "Build the report")["ansible_facts"]["restore_drill_report"]["volumes"])
    run = playbook_file("restore_drill", extra)
    assert run.rc == 0, (run, run.results[-1].get("msg"))
    assert len(planned) == 2 and sorted(r["volume"] for r in report_of(report_dir)["volumes"]) == planned
    assert aws.counters()["ebs:GetSnapshotBlock"] == 2


def test_a_failing_drill_reports_every_volume_fails_and_leaves_nothing_behind(aws, playbook_file, tmp_path):
    """One snapshot has an unreadable block, another cannot be read at all (access denied): the drill goes on,
    reports every volume, fails at its end, and leaves no file, volume, snapshot or tag of its own behind."""
    newest = two_volumes(aws)
    third = policy_snapshot(aws, "daily", "disk-c2", {0: block(9), 1: block(10)}, 1)
    aws.inject_block_fault(newest["disk-a"], [4], mode="corrupt")
    aws.inject_block_fault(third, [1], mode="error", status=403, code="AccessDeniedException", message="Denied")
    extra, report_dir, work = drill_vars(tmp_path, fs_check="true {image}")
    before = state(aws)
    run = run_drill(aws, playbook_file, extra, work)
    assert run.rc != 0
    fail = run.result(ROLE + "Fail naming what did not verify")
    assert fail["failed"] and "disk-a" in fail["msg"] and "disk-c2" in fail["msg"] and "disk-b" not in fail["msg"]
    report = report_of(report_dir)
    rows = {r["volume"]: r for r in report["volumes"]}
    assert sorted(rows) == ["disk-a", "disk-b", "disk-c2"]
    assert rows["disk-a"]["result"] == "unreadable" and rows["disk-a"]["bad_blocks"] == [4]
    assert rows["disk-b"]["result"] == "ok" and rows["disk-b"]["fs_check_passed"] is True
    assert rows["disk-c2"]["result"] == "error" and "Denied" in rows["disk-c2"]["error"]
    assert report["summary"]["passed"] is False and report["summary"]["failed"] == 2
    # Nothing of the drill's own is left: the work directory (with the fs_check images) is gone ...
    assert os.listdir(str(work)) == []
    # ... no volume or snapshot was made or removed, and the only tags written are the verification records of the
    # snapshots that were read (none on the one that could not be read: that says nothing about the snapshot).
    after = state(aws)
    assert after[1] == before[1] and sorted(after[0]) == sorted(before[0])
    assert without_verify_tags(after[0]) == without_verify_tags(before[0])
    assert after[0][newest["disk-a"]]["blockwise:verified"] == "unreadable"
    assert not any(k in after[0][third] for k in VERIFY_TAGS)


def test_record_false_leaves_every_snapshot_as_it_was(aws, playbook_file, tmp_path):
    two_volumes(aws)
    extra, report_dir, _work = drill_vars(tmp_path, record=False)
    before = state(aws)
    aws.reset_counters()
    run = playbook_file("restore_drill", extra)
    assert run.rc == 0, (run, run.results[-1].get("msg"))
    assert report_of(report_dir)["summary"]["passed"] is True
    assert aws.mutating_calls() == {} and state(aws) == before


def test_no_restore_point_is_a_failed_drill_not_a_pass(aws, playbook_file, tmp_path):
    extra, report_dir, _work = drill_vars(tmp_path)
    run = playbook_file("restore_drill", extra)
    assert run.rc != 0 and "no restore point" in run.result(ROLE + "Fail naming what did not verify")["msg"]
    assert report_of(report_dir)["summary"]["volumes"] == 0


def test_bad_input_fails_naming_the_option_before_any_aws_call(aws, playbook_file, tmp_path):
    for bad, option in (({"volumes": -1}, "volumes"), ({"policies": {"daily": 1}}, "policies"),
                        ({"endpoint_url": "ftp://x"}, "endpoint_url")):
        aws.reset_counters()
        extra, _report_dir, _work = drill_vars(tmp_path)
        run = playbook_file("restore_drill", dict(extra, **bad))
        assert run.rc != 0 and option in run.stdout
        assert aws.counters() == {}


def test_check_mode_set_by_the_play_not_the_command_line_is_a_plan_too(aws, playbook, tmp_path):
    """The audit runs roles in plays with `check_mode: true` (ansible_check_mode is then false): still a plan."""
    newest = two_volumes(aws)
    work = tmp_path / "work"
    work.mkdir()
    aws.reset_counters()
    role = {"name": "drill", "ansible.builtin.include_role": {"name": "blockwise.ebs.restore_drill"},
            "vars": {"restore_drill_policies": ["daily"], "restore_drill_tmp_dir": str(work),
                     "restore_drill_report_dir": str(tmp_path / "report")}}
    run = playbook([{"name": "in check mode", "check_mode": True, "block": [role]}])
    assert run.rc == 0, [(n, str(r.get("msg"))[:600]) for n, r in zip(run.names, run.results) if r.get("failed")]
    plan = run.result(ROLE + "Build the report")["ansible_facts"]["restore_drill_report"]
    assert sorted(r["snapshot_id"] for r in plan["volumes"]) == sorted(newest.values())
    assert {r["result"] for r in plan["volumes"]} == {"planned"} and plan["check_mode"] is True
    assert aws.counters().get("ebs:GetSnapshotBlock", 0) == 0 and aws.mutating_calls() == {}
    assert os.listdir(str(work)) == [] and not (tmp_path / "report").exists()


def test_dr_regions_are_drilled_and_backup_policies_are_accepted(aws, playbook_file, tmp_path):
    """The copies in a DR region keep the source's policy and lineage: they are restore points of that region."""
    newest = two_volumes(aws)
    ebs, ec2 = aws.client("ebs", region="eu-west-1"), aws.client("ec2", region="eu-west-1")
    copy = write_snapshot(ebs, {0: block(3), 4: block(4)})
    ec2.create_tags(Resources=[copy], Tags=[{"Key": "blockwise:policy", "Value": "daily"},
                                            {"Key": "blockwise:lineage", "Value": "disk-a"},
                                            {"Key": "blockwise:source-region", "Value": "us-east-1"},
                                            {"Key": "blockwise:source-snapshot", "Value": newest["disk-a"]}])
    extra, report_dir, _work = drill_vars(
        tmp_path, dr_regions="eu-west-1", policies=[{"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d"}])
    run = playbook_file("restore_drill", extra)
    assert run.rc == 0, (run, run.results[-1].get("msg"))
    rows = {(r["region"], r["volume"]): r for r in report_of(report_dir)["volumes"]}
    assert sorted(rows) == [("eu-west-1", "disk-a"), ("us-east-1", "disk-a"), ("us-east-1", "disk-b")]
    dr = rows[("eu-west-1", "disk-a")]
    assert dr["snapshot_id"] == copy and dr["source_region"] == "us-east-1" and dr["result"] == "ok"
    tags = {t["Key"]: t["Value"] for t in ec2.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]["Tags"]}
    assert tags["blockwise:verified"] == "ok"
