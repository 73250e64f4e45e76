# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make demo``: the collection end to end against a local AWS endpoint, then a summary.

1. Starts the local endpoint (an in-process moto server with the EBS fidelity layer, on a free loopback
   port) and seeds a realistic fleet in three regions: instances with tagged volumes (some with
   ``Daily_Gens``), 90 days of back-dated daily snapshots, a protected snapshot, snapshots of an older
   tool, AMIs, a KMS key alias; plus an SNS topic (with an SQS queue subscribed) for the backup summary.
2. Runs ``blockwise.ebs.site`` (encryption by default, snapshots and retention, AMI snapshot names).
3. Runs ``blockwise.ebs.audit`` (check mode) and shows its table; it must find every region compliant
   and make no mutating call.
   The ``daily`` policy also has disaster-recovery ``copies``: into ``eu-central-1`` (this account) and into a
   second account, each with its own retention (``keep_last: 2``); the two older copies of each volume seeded
   there (as earlier runs would have made them) leave one to prune per volume. The audit also reports the
   recovery point age of every destination.
4. Runs ``blockwise.ebs.demo``: a sparse disk image is uploaded as a snapshot, restored into another
   file, and the two files must have the same sha256.
5. Prints a summary (what was created, deleted, named, encrypted; API calls per step) and stops the
   endpoint. Nothing talks to real AWS and nothing is left running. Exits non-zero on any failure.

The playbooks run with Ansible's default (human-readable) output.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.functional.harness import ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws.faults import is_mutating  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws.seed import KMS_ALIAS, seed_fleet  # noqa: E402  pylint: disable=wrong-import-position

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
DR_REGION = "eu-central-1"
DR_ACCOUNT = "210987654321"  # a second account of the local endpoint (a 12-digit access key id pins it)
DR_CREDENTIALS = {DR_ACCOUNT: {"access_key": DR_ACCOUNT, "secret_key": "demo-backup-account"}}
DESTINATIONS = [(DR_REGION, None), ("us-east-1", DR_ACCOUNT)]
DAYS = 90
REPORT_DIR = ROOT / ".build" / "demo" / "audit"
TOPIC = "blockwise-demo-backups"
POLICIES = [
    {
        "name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d", "name_template": "{volume_name}-{date}",
        "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3, "minimum": 3}, "retention_tag": "Daily_Gens",
        "max_deletions": 1000,
        "copies": [
            {"region": DR_REGION, "retention": {"keep_last": 2}, "wait": True, "wait_timeout": 120},
            {"region": "us-east-1", "account": DR_ACCOUNT, "retention": {"keep_last": 2}, "wait": True, "wait_timeout": 120},
        ],
    },
    {
        # adopt the snapshots of the tool this replaces: keep 120 days of them, at least the newest
        "name": "legacy-snapper", "snapshot": False, "prune_filters": {"tag:CreatedBy": "ebs-snapper"},
        "retention": {"keep_within": "120 days", "minimum": 1},
    },
]


class DemoError(RuntimeError):
    """A step of the demo failed."""


def banner(text):
    print("\n" + "=" * 100 + "\n== " + text + "\n" + "=" * 100, flush=True)


def playbook(name, extra_vars, endpoint_url):
    """Run ``blockwise.ebs.<name>`` with the default callback (its output goes to our stdout)."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "blockwise.ebs." + name, "-e", json.dumps(extra_vars)]
    shown = {k: v for k, v in extra_vars.items() if k not in ("policies", "copy_credentials")}
    print("+ ansible-playbook blockwise.ebs.{0} -e '{1}'{2}".format(
        name, json.dumps(shown), " -e @policies" if "policies" in extra_vars else ""), flush=True)
    env = ansible_env(endpoint_url, REGIONS[0])
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    started = time.monotonic()
    rc = subprocess.call(cmd, cwd=str(ROOT), env=env)
    if rc != 0:
        raise DemoError("blockwise.ebs.{0} failed (exit code {1})".format(name, rc))
    return time.monotonic() - started


def state(aws):
    """Per region: {snapshot id: tags}, and encryption by default with its key."""
    out = {}
    for region in REGIONS:
        ec2 = aws.client("ec2", region=region)
        snaps = {}
        for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"]):
            for snap in page["Snapshots"]:
                snaps[snap["SnapshotId"]] = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
        out[region] = {
            "snapshots": snaps,
            "encrypted": ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"],
            "key": ec2.get_ebs_default_kms_key_id()["KmsKeyId"],
        }
    return out


def counted(aws):
    calls = aws.counters()
    return sum(calls.values()), sum(n for key, n in calls.items() if is_mutating(key))


def notification_queue(aws):
    """An SNS topic for the backup summary, with an SQS queue subscribed so that the demo can read it."""
    sns, sqs = aws.client("sns", region=REGIONS[0]), aws.client("sqs", region=REGIONS[0])
    topic = sns.create_topic(Name=TOPIC)["TopicArn"]
    queue = sqs.create_queue(QueueName=TOPIC)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue


def received(aws, queue):
    messages = aws.client("sqs", region=REGIONS[0]).receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def seed_copies(aws, fleet):
    """Two older copies of each daily volume in each destination, made and dated as earlier runs would have."""
    aws.set_copy_duration(0)
    for home in REGIONS:
        ec2 = aws.client("ec2", region=home)
        owner = aws.client("sts", region=home).get_caller_identity()["Account"]
        for volume_id in fleet[home]["volumes"]:
            snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]},
                                                                       {"Name": "tag:blockwise:policy", "Values": ["daily"]}])["Snapshots"]
            for source in sorted(snaps, key=lambda item: item["StartTime"], reverse=True)[1:3]:
                tags = {"blockwise:source-snapshot": source["SnapshotId"], "blockwise:source-region": home, "blockwise:source-account": owner,
                        "blockwise:lineage": volume_id, "blockwise:policy": "daily"}
                for region, account in DESTINATIONS:
                    if account:
                        ec2.modify_snapshot_attribute(SnapshotId=source["SnapshotId"], Attribute="createVolumePermission",
                                                      OperationType="add", UserIds=[account])
                    dest = aws.client("ec2", region=region, **({"account_id": account} if account else {}))
                    copy_id = dest.copy_snapshot(SourceRegion=home, SourceSnapshotId=source["SnapshotId"], TagSpecifications=[
                        {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["SnapshotId"]
                    aws.backdate_snapshot(copy_id, source["StartTime"] + timedelta(hours=1), region=region, account_id=account)
                    if account:
                        ec2.modify_snapshot_attribute(SnapshotId=source["SnapshotId"], Attribute="createVolumePermission",
                                                      OperationType="remove", UserIds=[account])
    aws.set_copy_duration(2)


def copies_by_destination(aws):
    """(region, account) -> {lineage: number of copies}."""
    out = {}
    for region, account in DESTINATIONS:
        ec2 = aws.client("ec2", region=region, **({"account_id": account} if account else {}))
        counts = {}
        for page in ec2.get_paginator("describe_snapshots").paginate(
                OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["blockwise:source-snapshot"]}]):
            for snap in page["Snapshots"]:
                lineage = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}.get("blockwise:lineage")
                counts[lineage] = counts.get(lineage, 0) + 1
        out[(region, account)] = counts
    return out


def run(aws, workdir):
    results = {"steps": {}}
    now = datetime.now(timezone.utc)

    banner("Seeding the local endpoint: {0} regions, {1} days of daily snapshots".format(len(REGIONS), DAYS))
    # the newest seeded snapshots are two days old, so every tagged volume is due now
    fleet = seed_fleet(aws, regions=REGIONS, days=DAYS, now=now - timedelta(days=1))
    topic, queue = notification_queue(aws)
    seed_copies(aws, fleet)
    copies_before = copies_by_destination(aws)
    before = state(aws)
    for region in REGIONS:
        print("  {0:<15} {1} volumes ({2} tagged backup=daily), {3} snapshots, {4} AMIs, KMS alias {5}".format(
            region, len(fleet[region]["volumes"]) + 1, len(fleet[region]["volumes"]), len(before[region]["snapshots"]),
            len(fleet[region]["images"]), KMS_ALIAS), flush=True)

    common = {"regions": REGIONS, "endpoint_url": aws.endpoint_url, "copy_credentials": DR_CREDENTIALS}

    banner("blockwise.ebs.site: encryption by default, snapshots by policy and retention, AMI snapshot names")
    aws.reset_counters()
    seconds = playbook("site", dict(common, kms_key_id=KMS_ALIAS, policies=POLICIES, notify_topic_arn=topic), aws.endpoint_url)
    results["steps"]["site"] = counted(aws) + (seconds,)
    after = state(aws)
    copies_after = copies_by_destination(aws)
    volumes = sorted(volume for region in REGIONS for volume in fleet[region]["volumes"])
    for where, counts in copies_after.items():
        if sorted(counts) != volumes or set(counts.values()) != {2}:
            raise DemoError("{0}: expected 2 copies (keep_last 2) of each of {1} volumes, found {2}".format(where, len(volumes), counts))

    banner("blockwise.ebs.audit: compliance report per region (check mode)")
    if REPORT_DIR.exists():
        shutil.rmtree(REPORT_DIR)
    aws.reset_counters()
    seconds = playbook("audit", dict(common, kms_key_id=KMS_ALIAS, policies=POLICIES, report_dir=str(REPORT_DIR)), aws.endpoint_url)
    results["steps"]["audit"] = counted(aws) + (seconds,)
    mutating = aws.mutating_calls()
    if mutating:
        raise DemoError("the audit made mutating calls: {0}".format(mutating))
    report = json.loads((REPORT_DIR / "audit.json").read_text(encoding="utf-8"))
    if report["summary"]["non_compliant"]:
        raise DemoError("the audit found regions not compliant after site: {0}".format(report["summary"]["non_compliant"]))

    banner("blockwise.ebs.demo: a sparse disk image to an EBS snapshot and back")
    result_file = workdir / "image.json"
    aws.reset_counters()
    seconds = playbook("demo", dict(common, result_file=str(result_file)), aws.endpoint_url)
    results["steps"]["disk image"] = counted(aws) + (seconds,)
    image = json.loads(result_file.read_text(encoding="utf-8"))
    if image["sha256_image"] != image["sha256_restored"]:
        raise DemoError("the restored image differs: {0} != {1}".format(image["sha256_image"], image["sha256_restored"]))
    snap = aws.client("ec2", region=image["region"]).describe_snapshots(SnapshotIds=[image["snapshot_id"]])["Snapshots"][0]
    image["encrypted"] = snap.get("Encrypted", False)

    results.update(copies_before=copies_before, copies_after=copies_after)
    results.update(fleet=fleet, before=before, after=after, report=report, image=image, messages=received(aws, queue))
    return results


def summary(results, seconds):
    before, after, report, image = results["before"], results["after"], results["report"], results["image"]
    created = deleted = named = 0
    for region in REGIONS:
        old, new = before[region]["snapshots"], after[region]["snapshots"]
        created += len([s for s in new if s not in old and "blockwise:policy" in new[s]])
        deleted += len([s for s in old if s not in new])
        named += len([s for s, tags in new.items() if "blockwise:image-id" in tags])
    encrypted = [r for r in REGIONS if after[r]["encrypted"]]
    protected = sum(1 for r in REGIONS for s in [results["fleet"][r]["protected_snapshot"]] + results["fleet"][r]["ami_snapshots"]
                    if s in after[r]["snapshots"])
    kept = sum(len(after[r]["snapshots"]) for r in REGIONS)
    subjects = [m.get("Subject", "") for m in results["messages"]]

    banner("Summary")
    lines = [
        ("regions", ", ".join(REGIONS)),
        ("encryption by default", "on with {0} in {1} of {2} regions (it was on in {3})".format(
            KMS_ALIAS, len(encrypted), len(REGIONS), len([r for r in REGIONS if before[r]["encrypted"]]))),
        ("snapshots created", "{0} (every backup=daily volume was due)".format(created)),
        ("snapshots deleted", "{0} by retention, {1} kept; {2} protected ones (AMI-backed, blockwise:protect) untouched".format(
            deleted, kept, protected)),
        ("disaster-recovery copies", "; ".join(
            "{0}: {1} before, {2} new, {3} pruned (keep_last 2 there)".format(
                region + ("/" + account if account else ""), sum(results["copies_before"][(region, account)].values()),
                len(results["copies_after"][(region, account)]),
                sum(results["copies_before"][(region, account)].values()) + len(results["copies_after"][(region, account)])
                - sum(results["copies_after"][(region, account)].values()))
            for region, account in DESTINATIONS)),
        ("AMI snapshots named", "{0} (<image name>(001), (002), ...)".format(named)),
        ("SNS summary", subjects[0] if subjects else "NOT RECEIVED"),
        ("audit", "{0} of {1} regions compliant, no mutating call; report {2}/audit.md and audit.json".format(
            report["summary"]["compliant"], report["summary"]["regions"], REPORT_DIR)),
        ("disk image", "1 GiB sparse image -> {0} ({1}{2}) -> restored file; sha256 identical: {3}".format(
            image["snapshot_id"], image["region"],
            ", encrypted by default: all {0} blocks written".format(image["blocks_uploaded"]) if image["encrypted"]
            else ", {0} data blocks written".format(image["blocks_uploaded"]), image["sha256_image"])),
    ]
    for step, (calls, mutating, step_seconds) in results["steps"].items():
        lines.append(("API calls: " + step, "{0} ({1} mutating) in {2:.0f} s".format(calls, mutating, step_seconds)))
    for label, text in lines:
        print("  {0:<24} {1}".format(label, text))
    print("\nDemo finished in {0:.0f} s; the local endpoint is stopped.".format(seconds), flush=True)
    return bool(subjects)


def main():
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="blockwise-ebs-demo-"))
    try:
        with LocalAWS() as aws:
            print("Local AWS endpoint: {0} (moto + EBS fidelity layer; nothing talks to real AWS)".format(aws.endpoint_url), flush=True)
            results = run(aws, workdir)
        notified = summary(results, time.monotonic() - started)
    except DemoError as exc:
        print("\nDemo FAILED after {0:.0f} s: {1}; the local endpoint is stopped.".format(time.monotonic() - started, exc), file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if notified else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
