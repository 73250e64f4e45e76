# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/audit.yml (blockwise.ebs.audit) through ansible-playbook against the local endpoint.

The endpoint is seeded with ``seed_fleet`` (one region, 20 days of daily policy snapshots ending three days
ago): encryption by default is off, every tagged volume is due, retention has snapshots to delete, the
snapshots behind the two AMIs have no image Name. The audit must report all of it and change nothing.
"""
import json

import pytest

from tests.functional.harness import ansible_env
from tests.localaws.seed import DAILY_POLICY, KMS_ALIAS, LEGACY_POLICY
from tools.collection_link import ROOT

REGION = "us-east-1"
REPORT = "Show the compliance report"
POLICY = DAILY_POLICY
LEGACY = LEGACY_POLICY


@pytest.fixture
def run(playbook_file):
    """``run(playbook, extra_vars, inventory=None, env=None)``: a playbook against the endpoint."""
    return playbook_file


def test_audit_reports_every_finding_and_changes_nothing(aws, run, fleet, tmp_path):
    aws.reset_counters()
    report_dir = tmp_path / "reports"
    out = run("audit", {"regions": [REGION], "kms_key_id": KMS_ALIAS, "policies": [POLICY, LEGACY], "report_dir": str(report_dir)})
    assert out.rc == 0, out
    assert aws.mutating_calls() == {}

    report = json.loads((report_dir / "audit.json").read_text())
    assert report["check_mode"] is True
    assert report["summary"]["non_compliant"] == [REGION]
    region = report["regions"][REGION]
    assert region["compliant"] is False

    encryption = region["encryption"]
    assert encryption["encryption_by_default"] is False
    assert encryption["actions"] == ["enable", "set_kms_key"] and encryption["expected_kms_key_id"] == KMS_ALIAS

    daily = region["policies"]["daily"]
    assert daily["matched"] == 7
    assert sorted(v["volume_id"] for v in daily["due"]) == sorted(fleet["volumes"])
    assert daily["prune"]["blocked"] is False and daily["prune"]["would_delete"]
    assert all(d["reasons"] == ["no rule keeps it"] for d in daily["prune"]["would_delete"])
    doomed = {d["snapshot_id"] for d in daily["prune"]["would_delete"]}
    assert not doomed & (set(fleet["ami_snapshots"]) | {fleet["protected_snapshot"]})
    legacy = region["policies"]["legacy-snapper"]
    assert legacy["matched"] is None  # prune only
    assert sorted(d["snapshot_id"] for d in legacy["prune"]["would_delete"]) == sorted(fleet["legacy_snapshots"][:2])

    unnamed = region["ami_snapshots_without_name"]
    assert len(unnamed) == 4
    assert {s["image_id"] for s in unnamed} == set(fleet["images"].values())
    assert any(s["expected_name"].startswith("front-web-") and s["expected_name"].endswith("(001)") for s in unnamed)
    assert region["counts"] == {"volumes_due": 7, "snapshots_to_delete": len(doomed) + 2, "prunes_blocked": 0,
                                "ami_snapshots_without_name": 4}

    markdown = (report_dir / "audit.md").read_text()
    assert "| Region | Encryption by default |" in markdown and "**not compliant**" in markdown
    assert "### Policy `daily`" in markdown and "no rule keeps it" in markdown
    table = out.result(REPORT)["msg"]
    assert table[0].split() == ["REGION", "ENCRYPTION", "BY", "DEFAULT", "DUE", "DELETE", "UNNAMED", "STATUS"]
    assert table[1].split()[0] == REGION and table[1].endswith("NOT COMPLIANT")


def test_circuit_breaker_is_a_finding_not_a_failure(aws, run, fleet, tmp_path):
    """The default policy (max_deletions 50) would be blocked: the audit says so and succeeds."""
    aws.reset_counters()
    out = run("audit", {"regions": REGION, "report_dir": str(tmp_path)})
    assert out.rc == 0, out
    prune = json.loads((tmp_path / "audit.json").read_text())["regions"][REGION]["policies"]["daily"]["prune"]
    assert prune["blocked"] is True and prune["max_deletions"] == 50 and len(prune["would_delete"]) > 50
    assert "BLOCKED by max_deletions=50" in " ".join(out.result(REPORT)["msg"])
    assert aws.mutating_calls() == {}


def test_after_site_the_region_is_compliant(aws, run, fleet, tmp_path):
    common = {"regions": [REGION], "kms_key_id": KMS_ALIAS, "policies": [POLICY, LEGACY]}
    assert run("site", common).rc == 0
    aws.reset_counters()
    out = run("audit", dict(common, report_dir=str(tmp_path), fail_on_findings=True))
    assert out.rc == 0, out
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["summary"]["non_compliant"] == [] and report["regions"][REGION]["compliant"] is True
    assert aws.mutating_calls() == {}


def test_fail_on_findings_fails_after_writing_the_report(aws, run, fleet, tmp_path):
    out = run("audit", {"regions": [REGION], "policies": [POLICY], "report_dir": str(tmp_path), "fail_on_findings": "true"})
    assert out.rc != 0
    assert "Not compliant: us-east-1" in out.result("Check the findings")["msg"]
    assert (tmp_path / "audit.json").exists() and (tmp_path / "audit.md").exists()


def test_example_inventory_reports_per_host(aws, run, fleet, tmp_path):
    """Region hosts of two accounts; the report is keyed by host, each account audited against its own policies."""
    credentials = tmp_path / "credentials"
    credentials.write_text("".join("[{0}]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n".format(profile)
                                   for profile in ("production", "staging")))
    env = ansible_env(aws.endpoint_url, extra={"AWS_SHARED_CREDENTIALS_FILE": str(credentials),
                                               "AWS_CONFIG_FILE": str(tmp_path / "no-config")})
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)
    aws.reset_counters()
    out = run("audit", {"target_hosts": "production-us-east-1:staging-eu-west-1", "report_dir": str(tmp_path / "r")},
              inventory=ROOT / "inventories" / "example", env=env)
    assert out.rc == 0, out
    report = json.loads((tmp_path / "r" / "audit.json").read_text())
    assert sorted(report["regions"]) == ["production-us-east-1", "staging-eu-west-1"]
    production, staging = report["regions"]["production-us-east-1"], report["regions"]["staging-eu-west-1"]
    assert production["region"] == "us-east-1" and staging["region"] == "eu-west-1"
    assert sorted(production["policies"]) == ["daily", "db-sets", "legacy-snapper"]  # group_vars/account_production.yml
    # the production account's key alias does not exist in us-east-1: a finding, and the other parts are still audited
    assert "kms_key_id='alias/ebs-default' was not found in us-east-1" in production["encryption"]["error"]
    assert production["compliant"] is False and production["policies"]["daily"]["matched"] >= 4
    assert sorted(staging["policies"]) == ["daily"] and staging["policies"]["daily"]["matched"] == 0
    assert aws.mutating_calls() == {}


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"encryption_state": "on"}, "Validate the extra vars", "encryption_state must be one of: enabled, disabled"),
    ({"policies": "daily"}, "Check that policies is a list of named policies", "policies must be a list of policies"),
    ({"image_filters": "[x]"}, "Check that image_filters is a dictionary", "image_filters must be a dictionary"),
    ({"fail_on_findings": "perhaps"}, "Validate the extra vars", "fail_on_findings"),
])
def test_bad_extra_vars_fail_before_any_call(aws, run, tmp_path, extra_vars, task, fragment):
    aws.reset_counters()
    out = run("audit", dict({"regions": [REGION], "report_dir": str(tmp_path / "r")}, **extra_vars))
    assert out.rc != 0
    res = out.result(task)
    assert res.get("failed") is True and fragment in res["msg"], res
    assert aws.counters() == {}
    assert not (tmp_path / "r").exists()
