# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two seeded regions behind ``RegionDenial``, and what the playbook tests read back from them.

Import the fixtures (``denial``, ``fleets``, ``run``) into a test module to use them.
"""
import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tests.functional.region_denial import RegionDenial
from tests.localaws.seed import DAILY_POLICY, seed_fleet

HEALTHY, DENIED = "us-east-1", "eu-west-1"
REGIONS = [HEALTHY, DENIED]
# No per-volume retention tag: the prune then reads no volumes, so a denied DescribeVolumes or CreateSnapshot
# stops only the snapshot step, and whether the prune runs afterwards is the role's decision alone.
POLICY = dict({k: v for k, v in DAILY_POLICY.items() if k != "retention_tag"}, name_template="{volume_name}-{date}")
NOT_AUTHORIZED = "You are not authorized to perform this operation."


@pytest.fixture
def denial(aws):
    """A front door to the endpoint that denies chosen actions in chosen regions."""
    door = RegionDenial(aws)
    yield door
    door.stop()


@pytest.fixture
def fleets(aws):
    """Both regions seeded: 10 days of daily snapshots ending two days ago (every tagged volume is due)."""
    return seed_fleet(aws, regions=REGIONS, days=10, now=datetime.now(timezone.utc) - timedelta(days=2))


@pytest.fixture
def run(denial, tmp_path):
    """``run(playbook, extra_vars, env=None, check=False)`` through the denying endpoint, in a fresh directory."""
    counter = {"n": 0}

    def _run(name, extra_vars, env=None, check=False):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": denial.endpoint_url}, **extra_vars)
        return run_playbook_file("blockwise.ebs." + name, workdir, check=check, extra_vars=extra_vars,
                                 env=env or ansible_env(denial.endpoint_url))

    return _run


def topic_with_queue(aws):
    """An SNS topic with an SQS queue subscribed: ``(topic_arn, read_messages)``."""
    sns, sqs = aws.client("sns", region=HEALTHY), aws.client("sqs", region=HEALTHY)
    topic = sns.create_topic(Name="backups")["TopicArn"]
    queue = sqs.create_queue(QueueName="backup-reports")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def read_messages():
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        return [json.loads(message["Body"]) for message in answer.get("Messages", [])]

    return topic, read_messages


def recap(run):
    """The PLAY RECAP counters per host, from the JSON callback."""
    return json.loads(run.stdout[run.stdout.find("{"):])["stats"]


def final_failure(run):
    """The message of the last failed task: the one that ends the run."""
    failed = [res for res in run.results if res.get("failed")]
    assert failed, run
    return failed[-1]["msg"]


def encrypted(aws, region):
    return aws.client("ec2", region=region).get_ebs_encryption_by_default()["EbsEncryptionByDefault"]


def snapshot_ids(aws, region, **filters):
    params = {"OwnerIds": ["self"], "Filters": [{"Name": k, "Values": [v]} for k, v in filters.items()]}
    return {s["SnapshotId"] for s in aws.client("ec2", region=region).describe_snapshots(**params)["Snapshots"]}


def taken_today(aws, region):
    return snapshot_ids(aws, region, **{"tag:Name": "*-" + datetime.now(timezone.utc).strftime("%Y-%m-%d")})


def named_ami_snapshots(aws, region, fleet):
    described = aws.client("ec2", region=region).describe_snapshots(SnapshotIds=fleet["ami_snapshots"])["Snapshots"]
    return sorted(next(t["Value"] for t in s["Tags"] if t["Key"] == "Name") for s in described)
