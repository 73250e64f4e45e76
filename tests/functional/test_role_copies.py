# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""snapshot_schedule policies with `copies:` through ansible-playbook against the local endpoint.

The role runs snapshot -> share (cross-account only) -> copy -> unshare -> prune at home -> prune in each
destination. AWS facts relied on (EC2 API reference, CopySnapshot and ModifySnapshotAttribute; EBS user
guide, "Copy an Amazon EBS snapshot" and "Share an Amazon EBS snapshot"): a copy starts ``pending`` in the
destination; at most 20 concurrent copies per destination region (``ResourceLimitExceeded``); another
account copies a snapshot only while it is shared with it (``createVolumePermission``); a snapshot
encrypted with the AWS managed key ``aws/ebs`` cannot be shared.
"""
import json
from datetime import datetime, timedelta, timezone

from tests.functional.test_snapshot_copy import PendingSampler
from tests.functional.test_snapshot_share import customer_key_snapshot, visible_to
from tests.localaws.blockdata import block, write_snapshot

ROLE = "blockwise.ebs.snapshot_schedule"
TASK = ROLE + " : "
COPY = TASK + "Copy into each destination"
SHARE = TASK + "Share the snapshots to copy with the other accounts"
UNSHARE = TASK + "Stop sharing with the other accounts whose copies are complete"
HOME_PRUNE = TASK + "Prune by retention"
DEST_PRUNE = TASK + "Prune the copies in each destination by its own retention"
STATUS = TASK + "Measure the recovery point age of the copies"
SUMMARY = TASK + "Summarise the copies per home region, policy and destination"
HOME, DR = "us-east-1", "eu-west-1"
OWNER = "123456789012"   # moto's default account (access key "testing")
BACKUP = "210987654321"  # a second account: a 12-digit access key id pins it
SECRET = "backup-secret-never-logged"
CREDENTIALS = {BACKUP: {"access_key": BACKUP, "secret_key": SECRET}}


def tags_of(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags") or []}


def policy(copies, **overrides):
    return dict({"name": "dr", "target_tags": {"backup": "dr"}, "frequency": "1d", "retention": {"keep_last": 5}, "copies": copies},
                **overrides)


def role_task(policies, **role_vars):
    return {"name": "schedule", "ansible.builtin.include_role": {"name": ROLE},
            "vars": dict({"snapshot_schedule_regions": [HOME], "snapshot_schedule_policies": policies}, **role_vars)}


def volumes(aws, count=2, tagged=True):
    """``count`` volumes in HOME; ``tagged``: selected by the policy (else only their seeded snapshots are the policy's)."""
    ec2 = aws.client("ec2", region=HOME)
    specs = [{"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": "dr" if tagged else "no"}]}]
    return [ec2.create_volume(Size=1, AvailabilityZone=HOME + "a", TagSpecifications=specs)["VolumeId"] for dummy in range(count)]


def history(aws, volume_ids, days):
    """``days`` daily policy snapshots per volume, the newest ``days`` days ago... the oldest; returns them newest first."""
    ec2 = aws.client("ec2", region=HOME)
    made = []
    for age in range(days, 0, -1):
        for volume_id in volume_ids:
            snap = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": [{"Key": "blockwise:policy", "Value": "dr"}]}])["SnapshotId"]
            aws.backdate_snapshot(snap, datetime.now(timezone.utc) - timedelta(days=age), region=HOME)
            made.append(snap)
    return made[::-1]


def copies_in(aws, region=DR, account_id=None):
    ec2 = aws.client("ec2", region=region, **({"account_id": account_id} if account_id else {}))
    items = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["blockwise:source-snapshot"]}])["Snapshots"]
    return {tags_of(item)["blockwise:source-snapshot"]: item for item in items}


def failures(run):
    """What failed in a run, for assertion messages."""
    out = []
    for name, res in zip(run.names, run.results):
        for item in [res] + list(res.get("results", [])):
            if item.get("failed"):
                out.append((name, item.get("msg")))
    return out or run


def results(run, name):
    return run.result(name).get("results", [])


def add_snapshots(aws, volume_ids):
    ec2 = aws.client("ec2", region=HOME)
    return [ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "blockwise:policy", "Value": "dr"}]}])["SnapshotId"] for volume_id in volume_ids]


def test_copies_to_a_region_are_pruned_there_by_their_own_retention_and_a_second_run_copies_nothing(aws, playbook):
    vols = volumes(aws)
    history(aws, vols, days=4)  # 4 days of snapshots at home
    dest = {"region": DR, "wait": True, "wait_timeout": 120, "retention": {"keep_last": 2}}  # latest_only by default
    copied = []
    for number in range(3):
        run = playbook([role_task([policy([dest])])])
        assert run.rc == 0, failures(run)
        if number == 0:
            newest = [item["snapshot_id"] for item in results(run, TASK + "Take the snapshots that are due")[0]["created"]]
        copy = results(run, COPY)[0]
        # The endpoint completes EC2 snapshots at once: each run copies the newest snapshot of each volume only.
        assert sorted(c["source_snapshot_id"] for c in copy["copies"]) == sorted(newest), copy
        assert copy["queued"] == [] and all(c["state"] == "completed" for c in copy["copies"])
        copied.append(newest)
        # keep_last 2 per source volume in the destination: the third run deletes the first run's copies.
        assert results(run, DEST_PRUNE)[0]["summary"]["deleted"] == (2 if number == 2 else 0)
        newest = add_snapshots(aws, vols)
    found = copies_in(aws)
    assert sorted(found) == sorted(copied[1] + copied[2])
    assert sorted(tags_of(item)["blockwise:lineage"] for item in found.values()) == sorted(vols * 2)
    home_left = aws.client("ec2", region=HOME).describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert len(home_left) == 12  # keep_last 5 per volume at home, whatever the destination keeps, and the 2 added since

    # A run with nothing new: no copy, nothing changed anywhere.
    for snap in newest:
        aws.client("ec2", region=HOME).delete_snapshot(SnapshotId=snap)
    aws.reset_counters()
    again = playbook([role_task([policy([dest])])])
    assert again.rc == 0, failures(again)
    copy = results(again, COPY)[0]
    assert copy["summary"]["copies"] == 0 and not copy["changed"]
    assert aws.counters().get("ec2:CopySnapshot", 0) == 0 and aws.mutating_calls() == {}
    assert not any(r.get("changed") for name in (DEST_PRUNE, HOME_PRUNE, TASK + "Take the snapshots that are due") for r in results(again, name))


def test_sources_whose_copy_is_pending_are_protected_from_the_home_prune(aws, playbook):
    vols = volumes(aws, tagged=False)
    old = history(aws, vols, days=3)
    aws.set_copy_duration(600)
    pol = policy([{"region": DR, "latest_only": False}], retention={"keep_last": 1})
    run = playbook([role_task([pol])])
    assert run.rc == 0, failures(run)
    assert results(run, COPY)[0]["summary"]["copies"] == 6
    home = results(run, HOME_PRUNE)[0]
    assert home["summary"]["deleted"] == 0, home  # keep_last 1 would delete 4: their copies are pending
    protected = {item["snapshot_id"]: item["reasons"] for item in home["protected"]}
    assert all("copy-pending:" + DR in protected[snap] for snap in old[2:]), protected

    aws.advance_clock(601)  # the copies complete
    run = playbook([role_task([pol])])
    assert run.rc == 0, failures(run)
    assert results(run, COPY)[0]["summary"]["copies"] == 0
    assert sorted(item["snapshot_id"] for item in results(run, HOME_PRUNE)[0]["deleted"]) == sorted(old[2:])
    assert sorted(copies_in(aws)) == sorted(old)  # every copy survived its source's prune


def test_sixty_copies_never_more_than_20_in_flight_and_all_done_over_runs(aws, playbook):
    vols = volumes(aws, count=20, tagged=False)  # not selected: no new snapshot, 60 seeded ones to copy
    made = history(aws, vols, days=3)
    aws.set_copy_duration(600)
    pol = policy([{"region": DR, "latest_only": False}])
    started, queued = [], []
    with PendingSampler(aws) as sampler:
        for dummy in range(4):
            aws.reset_counters()
            run = playbook([role_task([pol])])
            assert run.rc == 0, failures(run)  # a full queue is not a failure
            copy = results(run, COPY)[0]
            started.append(aws.counters().get("ec2:CopySnapshot", 0))
            queued.append(len(copy["queued"]))
            aws.advance_clock(601)
    assert started == [20, 20, 20, 0] and queued == [40, 20, 0, 0]
    assert max(sampler.samples) <= 20 and sorted(copies_in(aws)) == sorted(made)


def test_cross_account_copy_of_a_customer_key_snapshot_through_the_role(aws, playbook):
    key, key_policy, source = customer_key_snapshot(aws)
    aws.client("kms", region=HOME).put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(key_policy))
    backup_kms = aws.client("kms", region=DR, account_id=BACKUP)
    backup_key = backup_kms.create_key(Description="backup account")["KeyMetadata"]
    backup_kms.create_alias(AliasName="alias/backup", TargetKeyId=backup_key["KeyId"])
    dest = {"region": DR, "account": BACKUP, "kms_key_id": "alias/backup", "wait": True, "wait_timeout": 60, "retention": {"keep_last": 3}}
    task = role_task([policy([dest])], snapshot_schedule_copy_credentials=CREDENTIALS)

    aws.reset_counters()
    check = playbook([task], check=True)
    assert check.rc == 0, failures(check)
    assert results(check, SHARE)[0]["snapshots"][0]["status"] == "planned" and results(check, COPY)[0].get("skipped")
    assert aws.mutating_calls() == {} and visible_to(aws, BACKUP) == set()

    run = playbook([task])
    assert run.rc == 0, failures(run)
    assert SECRET not in run.stdout and SECRET not in run.stderr
    copy = results(run, COPY)[0]["copies"]
    assert [item["source_snapshot_id"] for item in copy] == [source] and copy[0]["state"] == "completed"
    found = copies_in(aws, DR, account_id=BACKUP)
    described = found[source]
    assert described["OwnerId"] == BACKUP and described["Encrypted"] and described["KmsKeyId"] == backup_key["Arn"]
    tags = tags_of(described)
    assert (tags["blockwise:policy"], tags["blockwise:lineage"], tags["blockwise:source-account"]) == ("dr", "disk-x", OWNER)
    assert results(run, UNSHARE)[0]["changed"] and visible_to(aws, BACKUP) == set()  # unshared once the copy completed
    assert copies_in(aws, DR) == {}  # nothing in the home account's DR region
    status = results(run, STATUS)[0]
    row = status["rpo"]["volumes"][0]
    assert row["lineage"] == "disk-x" and row["destinations"][DR + "/" + BACKUP]["source_snapshot_id"] == source

    aws.reset_counters()
    again = playbook([task])
    assert again.rc == 0, failures(again)
    assert aws.mutating_calls() == {}  # nothing shared again, nothing copied, nothing unshared
    assert results(again, COPY)[0].get("skipped") and not results(again, UNSHARE)[0].get("changed")
    assert SECRET not in again.stdout


def test_a_snapshot_encrypted_with_aws_ebs_is_never_shared_and_the_role_says_why(aws, playbook):
    managed = write_snapshot(aws.client("ebs", region=HOME), {0: block(3)}, Encrypted=True,
                             Tags=[{"Key": "blockwise:policy", "Value": "dr"}])
    aws.reset_counters()
    run = playbook([role_task([policy([{"region": DR, "account": BACKUP}])], snapshot_schedule_copy_credentials=CREDENTIALS)])
    assert run.rc != 0
    share = results(run, SHARE)[0]
    assert share["failed"] and "aws/ebs" in share["msg"] and managed in share["msg"]
    failed = run.result(TASK + "Fail naming each region and step that failed")
    assert "share" in failed["msg"] and "aws/ebs" in failed["msg"]
    assert not aws.counters().get("ec2:ModifySnapshotAttribute") and not aws.counters().get("ec2:CopySnapshot")
    assert visible_to(aws, BACKUP) == set()


def test_the_audit_reports_the_recovery_point_age_of_the_copies_and_a_late_destination(aws, playbook_file, tmp_path):
    vols = volumes(aws)
    history(aws, vols, days=3)
    pol = policy([{"region": DR}], retention={"keep_last": 10})
    common = {"regions": [HOME], "policies": [pol], "encryption_state": "disabled", "copy_rpo_grace": "1h"}

    def audit(name):
        out = playbook_file("audit", dict(common, report_dir=str(tmp_path / name)))
        assert out.rc == 0, out
        return json.loads((tmp_path / name / "audit.json").read_text())["regions"][HOME]

    aws.reset_counters()
    before = audit("before")
    assert aws.mutating_calls() == {}
    copies = before["copies"]["dr"]
    assert copies["limit_seconds"] == 25 * 3600  # the daily gap plus the grace
    dest = copies["destinations"][DR]
    # No copy at all, and the first home snapshots are 3 days old: both volumes are late.
    assert sorted(dest["late"]) == sorted(vols) and before["counts"]["copies_late"] == 2 and before["compliant"] is False
    assert {row["destinations"][DR]["reason"] for row in copies["volumes"]} == {"no-completed-copy"}
    homes = {row["lineage"]: row["home"]["age_seconds"] for row in copies["volumes"]}
    assert all(86400 - 600 < age < 86400 + 600 for age in homes.values()), homes  # the newest home snapshot is 1 day old

    backup = playbook_file("backup", {"regions": [HOME], "policies": [pol]})
    assert backup.rc == 0, backup
    after = audit("after")
    dest = after["copies"]["dr"]["destinations"][DR]
    assert dest["late"] == [] and dest["oldest_age_seconds"] < 600 and after["counts"]["copies_late"] == 0
    assert after["compliant"] is True, after
