# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit's "last verification" section: per policy, the newest verification recorded on the snapshots."""
import json

from tests.functional.test_restore_drill import policy_snapshot
from tests.localaws.blockdata import block

REGION = "us-east-1"
POLICIES = [{"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d", "retention": {"keep_last": 30}},
            {"name": "weekly", "target_tags": {"backup": "weekly"}, "frequency": "7d", "retention": {"keep_last": 30}}]


def tag(aws, snap, result, at, mode="full"):
    aws.client("ec2").create_tags(Resources=[snap], Tags=[
        {"Key": "blockwise:verified", "Value": result}, {"Key": "blockwise:verified-at", "Value": at},
        {"Key": "blockwise:verify-mode", "Value": mode}])


def test_audit_shows_each_policys_last_verification_and_changes_nothing(aws, playbook_file, tmp_path):
    a_old = policy_snapshot(aws, "daily", "disk-a", {0: block(1)}, 3)
    a_new = policy_snapshot(aws, "daily", "disk-a", {0: block(2)}, 1)
    b_new = policy_snapshot(aws, "daily", "disk-b", {0: block(3)}, 1)
    policy_snapshot(aws, "weekly", "disk-c", {0: block(4)}, 1)
    tag(aws, a_old, "ok", "2026-11-20T08:00:00Z")
    tag(aws, a_new, "ok", "2026-11-27T08:00:00Z", "sample")
    tag(aws, b_new, "mismatch", "2026-11-26T08:00:00Z")
    report_dir = tmp_path / "reports"
    aws.reset_counters()
    run = playbook_file("audit", {"regions": [REGION], "policies": POLICIES, "report_dir": str(report_dir)})
    assert run.rc == 0, run
    assert aws.mutating_calls() == {}
    report = json.loads((report_dir / "audit.json").read_text())
    section = report["verification"][REGION]
    assert section["error"] is None
    daily, weekly = section["policies"]["daily"], section["policies"]["weekly"]
    assert daily["last_verified_at"] == "2026-11-27T08:00:00Z" and daily["last_result"] == "ok"
    assert daily["last_snapshot_id"] == a_new and daily["verified"] == 2 and daily["volumes"] == 2
    assert daily["failing"] == ["disk-b"] and daily["never_verified"] == []
    assert weekly["last_verified_at"] is None and weekly["never_verified"] == ["disk-c"]
    volumes = {v["volume"]: v for v in section["volumes"]}
    assert volumes["disk-a"]["restore_point_verified"] is True and volumes["disk-a"]["snapshot_id"] == a_new
    markdown = (report_dir / "audit.md").read_text()
    assert "## Last verification" in markdown
    assert "`daily`: last verified 2026-11-27T08:00:00Z, ok (" + a_new + ")" in markdown
    assert "last result not ok: disk-b" in markdown and "`weekly`: never verified" in markdown
    shown = run.result("Show the last verification of each policy")["msg"]
    assert any(line.startswith(REGION + " daily: last verified 2026-11-27T08:00:00Z ok") for line in shown)
    # A second run leaves one section in the Markdown report, not two.
    assert playbook_file("audit", {"regions": [REGION], "policies": POLICIES, "report_dir": str(report_dir)}).rc == 0
    assert (report_dir / "audit.md").read_text().count("## Last verification") == 1
