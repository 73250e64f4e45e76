# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/backup.yml (blockwise.ebs.backup) through ansible-playbook against the local endpoint.

The endpoint is seeded with ``seed_fleet`` (one region, 20 days of daily policy snapshots ending three days
ago, so that every tagged volume is due), and the snapshots are read back with plain boto3 calls.
"""
import json
from datetime import datetime, timezone

import pytest

from tests.localaws.seed import DAILY_POLICY, LEGACY_POLICY

PLAYBOOK = "blockwise.ebs.backup"
ROLE = "blockwise.ebs.snapshot_schedule : "
SNAPSHOT = ROLE + "Take the snapshots that are due"
PRUNE = ROLE + "Prune by retention"
SUMMARY = ROLE + "Summarise the snapshots and the retention per region and policy"
REGION = "us-east-1"
POLICY = dict(DAILY_POLICY, name_template="{volume_name}-{date}")
LEGACY = LEGACY_POLICY


@pytest.fixture
def run(playbook_file):
    """``run(extra_vars, check=False)``: the playbook against the endpoint, with --diff."""
    return lambda extra_vars, check=False: playbook_file(PLAYBOOK, dict({"regions": [REGION]}, **extra_vars), check=check, diff=True)


def snapshots(aws, **filters):
    ec2 = aws.client("ec2", region=REGION)
    params = {"OwnerIds": ["self"], "Filters": [{"Name": k, "Values": [v]} for k, v in filters.items()]}
    return {s["SnapshotId"]: s for s in ec2.describe_snapshots(**params)["Snapshots"]}


def test_check_mode_plans_and_changes_nothing(aws, run, fleet):
    before = snapshots(aws)
    aws.reset_counters()
    out = run({"policies": [POLICY, LEGACY]}, check=True)
    assert out.rc == 0, out
    planned = out.result(SNAPSHOT)["results"][0]
    assert planned["summary"]["created"] == 7 and all(c["snapshot_id"] is None for c in planned["created"])
    prune = out.result(PRUNE)["results"]
    assert [p["item"][1]["name"] for p in prune] == ["daily", "legacy-snapper"]
    assert prune[0]["summary"]["planned_deletions"] > 0
    assert {d["status"] for d in prune[0]["deleted"]} == {"planned"}
    assert len(prune[1]["deleted"]) == 2  # the two legacy snapshots older than 120 days
    assert aws.mutating_calls() == {}
    assert snapshots(aws) == before
    summary = out.result(SUMMARY)["msg"]
    assert summary[0] == "us-east-1 daily snapshot: 7 volume(s) selected, 7 snapshot(s) would be taken, 0 not due"
    assert summary[1].startswith("us-east-1 daily prune: ") and " would be deleted, " in summary[1]


def test_apply_snapshots_prunes_and_protects_then_second_run_changes_nothing(aws, run, fleet):
    out = run({"policies": [POLICY, LEGACY]})
    assert out.rc == 0, out
    created = out.result(SNAPSHOT)["results"][0]["created"]
    assert len(created) == 7
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert all(c["name"].endswith("-" + today) and c["tags"]["blockwise:policy"] == "daily" for c in created)
    deleted = out.result(PRUNE)["results"][0]["deleted"]
    remaining = snapshots(aws)
    assert deleted and not {d["snapshot_id"] for d in deleted} & set(remaining)
    # never deleted: the snapshots behind the AMI, the protect-tagged one, the newest legacy one
    assert set(fleet["ami_snapshots"]) <= set(remaining)
    assert fleet["protected_snapshot"] in remaining
    assert [s for s in fleet["legacy_snapshots"] if s in remaining] == [fleet["legacy_snapshots"][-1]]
    # each volume keeps 7 dailies + up to 2 weeklies (Daily_Gens=10 volumes keep 10), never fewer than 3
    policy_snaps = snapshots(aws, **{"tag:blockwise:policy": "daily"})
    per_volume = {}
    for snap in policy_snaps.values():
        per_volume.setdefault(snap["VolumeId"], 0)
        per_volume[snap["VolumeId"]] += 1
    assert len(per_volume) == 7 and all(7 <= n <= 12 for n in per_volume.values()), per_volume

    aws.reset_counters()
    again = run({"policies": [POLICY, LEGACY]})
    assert again.rc == 0, again
    assert again.result(SNAPSHOT)["changed"] is False
    assert again.result(PRUNE)["changed"] is False
    assert aws.mutating_calls() == {}


def test_survey_text_policies_prune_step_only(aws, run, fleet):
    """Survey answers are text: policies as YAML, steps as a comma separated string."""
    policies = "- name: daily\n  target_tags: {backup: daily}\n  frequency: 1d\n  retention: {keep_last: 5}\n  max_deletions: 500\n"
    out = run({"policies": policies, "steps": "prune"})
    assert out.rc == 0, out
    assert out.result(SNAPSHOT)["results"] == []  # no snapshot step
    assert out.result(PRUNE)["results"][0]["summary"]["deleted"] > 0
    assert not snapshots(aws, **{"tag:Name": "*-" + datetime.now(timezone.utc).strftime("%Y-%m-%d")})


def test_summary_goes_to_the_sns_topic(aws, run, fleet):
    sns, sqs = aws.client("sns", region=REGION), aws.client("sqs", region=REGION)
    topic = sns.create_topic(Name="backups")["TopicArn"]
    queue = sqs.create_queue(QueueName="backup-reports")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    out = run({"policies": [POLICY], "notify_topic_arn": topic})
    assert out.rc == 0, out
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"].startswith("blockwise.ebs snapshot_schedule: 7 snapshot(s) taken, ")
    assert "us-east-1 daily snapshot: 7 volume(s) selected, 7 snapshot(s) taken, 0 not due" in envelope["Message"]

    aws.reset_counters()
    out = run({"policies": [POLICY], "notify_topic_arn": topic}, check=True)  # an audit notifies nobody
    assert out.rc == 0, out
    assert aws.mutating_calls() == {}
    assert "sns:Publish" not in aws.counters()


def test_circuit_breaker_of_the_default_policy_stops_the_first_prune(aws, run, fleet):
    """The default policy (max_deletions 50) meets 20 days of history: snapshots are taken, nothing is deleted."""
    out = run({})
    assert out.rc != 0
    res = out.result(PRUNE)["results"][0]
    assert "circuit breaker" in res["msg"] and res["blocked"]
    assert aws.counters().get("ec2:DeleteSnapshot", 0) == 0


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"policies": '{"name": "daily"}'}, "Check that policies is a list of named policies", "policies must be a list of policies"),
    ({"policies": [{"frequency": "1d"}]}, "Check that policies is a list of named policies", "policies must be a list of policies"),
    ({"steps": "backup"}, "Validate the extra vars", "steps"),
    ({"notify_topic_arn": "backups"}, "Check that notify_topic_arn is an SNS topic ARN", "notify_topic_arn=backups is not an SNS topic ARN"),
    ({"target_hosts": "nowhere"}, "Check that target_hosts matches inventory hosts", "target_hosts=nowhere matches no host"),
    ({"policies": [dict(POLICY, frequency=None)]}, ROLE + "Check the policies", "policies that snapshot need a frequency: daily"),
    ({"policies": [dict(POLICY, target_tags={})]}, ROLE + "Check the policies", "policies that snapshot need a selection"),
    ({"policies": [dict(POLICY, retention={"keep_dialy": 7})]}, ROLE + "Validating arguments against arg spec 'main' - "
     "Snapshot EBS volumes on a schedule and prune them by retention, per policy and region", "keep_dialy"),
    ({"policies": [dict(POLICY, frequency="7")]}, SNAPSHOT, "frequency"),
])
def test_bad_extra_vars_fail_clearly_without_writes(aws, run, fleet, extra_vars, task, fragment):
    for policy in extra_vars.get("policies", []) if isinstance(extra_vars.get("policies"), list) else []:
        for key in [k for k, v in policy.items() if v is None]:
            del policy[key]
    aws.reset_counters()
    out = run(extra_vars)
    assert out.rc != 0, out
    res = out.result(task)
    assert res.get("failed") is True, res
    message = res["msg"] if "results" not in res else " ".join(r.get("msg", "") for r in res["results"])
    assert fragment in message, message
    assert aws.mutating_calls() == {}
