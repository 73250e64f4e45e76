# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_share, and the cross-account copy composed from it, against the local endpoint.

AWS facts (EC2 API reference ModifySnapshotAttribute / DescribeSnapshotAttribute / DescribeSnapshots;
EBS user guide "Share an Amazon EBS snapshot" and "Share the KMS key used to encrypt a shared Amazon
EBS snapshot"): sharing is the ``createVolumePermission`` attribute; the other account then sees the
snapshot with ``DescribeSnapshots(OwnerIds=[owner])`` but not the owner's tags; "You can't share
snapshots that are encrypted with the default AWS managed key"; the other account needs permission
on the customer managed key to copy an encrypted snapshot.
"""
import json

from tests.functional.test_snapshot_copy import DR, HOME, copies_in, sources, tag_list, tags_of
from tests.localaws.blockdata import block, write_snapshot

MODULE = "blockwise.ebs.ebs_snapshot_share"
COPY = "blockwise.ebs.ebs_snapshot_copy"
OWNER = "123456789012"
A, B, C = "210987654321", "222233334444", "333344445555"


def share_task(title="share", check_mode=None, **params):
    args = dict({"region": HOME, "policy": "dr"}, **params)
    result = {"name": title, MODULE: args, "ignore_errors": True}
    if check_mode is not None:
        result["check_mode"] = check_mode
    return result


def visible_to(aws, account, region=HOME):
    ec2 = aws.client("ec2", region=region, account_id=account)
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=[OWNER])["Snapshots"]}


def permissions(aws, snapshot_id):
    answer = aws.client("ec2", region=HOME).describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    return sorted(entry.get("UserId") or "group:" + entry["Group"] for entry in answer["CreateVolumePermissions"])


def test_share_and_unshare_are_idempotent_and_change_what_the_other_account_sees(aws, playbook):
    made = {snap for snaps in sources(aws, volumes=3, per_volume=1).values() for snap in snaps}
    aws.reset_counters()
    res = playbook([share_task(account_ids=[A, B])], diff=True).result("share")
    assert not res.get("failed") and res["changed"], res
    assert {item["snapshot_id"]: item["added"] for item in res["snapshots"]} == {snap: [A, B] for snap in made}
    assert res["diff"]["after"] == {snap: [A, B] for snap in made}
    assert visible_to(aws, A) == made and visible_to(aws, B) == made and visible_to(aws, C) == set()
    assert sorted(res["source_tags"]) == sorted(made) and all(tags["blockwise:policy"] == "dr" for tags in res["source_tags"].values())

    aws.reset_counters()
    again = playbook([share_task(account_ids=[B, A])]).result("share")
    assert not again.get("failed") and not again["changed"], again
    assert aws.mutating_calls() == {}
    assert aws.counters().get("ec2:DescribeSnapshots") == 3  # the selection, then one per account

    aws.reset_counters()
    planned = playbook([share_task(account_ids=[B], state="absent", check_mode=True)], diff=True).result("share")
    assert planned["changed"] and aws.mutating_calls() == {} and visible_to(aws, B) == made
    assert planned["diff"] == {"before": {snap: [B] for snap in made}, "after": {snap: [] for snap in made}}
    gone = playbook([share_task(account_ids=[B], state="absent")]).result("share")
    assert not gone.get("failed") and gone["changed"], gone
    assert visible_to(aws, B) == set() and visible_to(aws, A) == made


def test_purge_removes_other_accounts_and_public_access(aws, playbook):
    made = sorted(snap for snaps in sources(aws, volumes=2, per_volume=1).values() for snap in snaps)
    ec2 = aws.client("ec2", region=HOME)
    ec2.modify_snapshot_attribute(SnapshotId=made[0], Attribute="createVolumePermission", OperationType="add", UserIds=[A, C])
    ec2.modify_snapshot_attribute(SnapshotId=made[0], Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    aws.reset_counters()
    res = playbook([share_task(account_ids=[A], purge=True)], diff=True).result("share")
    assert not res.get("failed") and res["changed"], res
    assert aws.counters().get("ec2:DescribeSnapshotAttribute") == 2  # one per selected snapshot
    by_id = {item["snapshot_id"]: item for item in res["snapshots"]}
    assert by_id[made[0]]["removed"] == [C, "group:all"] and by_id[made[0]]["added"] == []
    assert by_id[made[1]]["added"] == [A]
    assert res["diff"]["before"][made[0]] == [A, C, "group:all"] and res["diff"]["after"][made[0]] == [A]
    assert permissions(aws, made[0]) == [A] and permissions(aws, made[1]) == [A]
    assert not playbook([share_task(account_ids=[A], purge=True)]).result("share")["changed"]


def test_sharing_a_snapshot_encrypted_with_aws_ebs_is_refused_before_any_write(aws, playbook):
    fine = sources(aws, volumes=1, per_volume=1)
    managed = write_snapshot(aws.client("ebs", region=HOME), {0: block(3)}, Encrypted=True, Tags=tag_list({"blockwise:policy": "dr"}))
    aws.reset_counters()
    res = playbook([share_task(account_ids=[A])]).result("share")
    assert res.get("failed") and "aws/ebs" in res["msg"] and managed in res["msg"] and "account_ids" in res["msg"], res
    assert aws.mutating_calls() == {}
    assert aws.counters().get("kms:DescribeKey") == 1
    assert visible_to(aws, A) == set()
    # The other snapshots of the policy are not shared either: the run stopped before its first write.
    assert not visible_to(aws, A) & {snap for snaps in fine.values() for snap in snaps}


def customer_key_snapshot(aws):
    """A snapshot in HOME encrypted with a customer managed key whose policy lets account A use it."""
    kms = aws.client("kms", region=HOME)
    key = kms.create_key(Description="production")["KeyMetadata"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % OWNER}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "BackupAccountCopiesSnapshots", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root" % A},
         "Action": ["kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    ]}
    snapshot_id = write_snapshot(aws.client("ebs", region=HOME), {0: block(7), 3: block(8)}, Encrypted=True, KmsKeyArn=key["Arn"],
                                 Tags=tag_list({"blockwise:policy": "dr", "blockwise:lineage": "disk-x", "team": "db"}))
    return key, policy, snapshot_id


def cross_account_tasks(dest_key_alias, wait_timeout=60):
    backup_account = {"access_key": A, "secret_key": "testing"}
    return [
        {"name": "share", MODULE: {"region": HOME, "policy": "dr", "account_ids": [A]}, "register": "shared"},
        {"name": "copy", COPY: dict(backup_account, region=DR, source_region=HOME, source_owner_id=OWNER, policy="dr",
                                    source_tags="{{ shared.source_tags }}", kms_key_id=dest_key_alias, wait=True,
                                    wait_timeout=wait_timeout), "ignore_errors": True},
        {"name": "unshare", MODULE: {"region": HOME, "policy": "dr", "account_ids": [A], "state": "absent"}},
    ]


def test_cross_account_copy_of_a_customer_key_encrypted_snapshot(aws, playbook):
    key, policy, source = customer_key_snapshot(aws)
    aws.client("kms", region=HOME).put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(policy))
    backup_kms = aws.client("kms", region=DR, account_id=A)
    backup_key = backup_kms.create_key(Description="backup account")["KeyMetadata"]
    backup_kms.create_alias(AliasName="alias/backup", TargetKeyId=backup_key["KeyId"])

    run = playbook(cross_account_tasks("alias/backup"))
    assert run.rc == 0 and not run.result("copy").get("failed"), run.result("copy")
    copy = run.result("copy")["copies"][0]
    assert copy["source_snapshot_id"] == source and copy["state"] == "completed"

    described = aws.client("ec2", region=DR, account_id=A).describe_snapshots(SnapshotIds=[copy["snapshot_id"]])["Snapshots"][0]
    assert described["OwnerId"] == A and described["Encrypted"] and described["KmsKeyId"] == backup_key["Arn"]
    tags = tags_of(described)
    # The owner's tags are invisible to account A: lineage, policy and team came through source_tags.
    assert (tags["blockwise:source-snapshot"], tags["blockwise:source-region"], tags["blockwise:source-account"]) == (source, HOME, OWNER)
    assert tags["blockwise:lineage"] == "disk-x" and tags["blockwise:policy"] == "dr" and tags["team"] == "db"
    assert run.result("unshare")["changed"] and visible_to(aws, A) == set()
    assert copies_in(aws, DR) == {}  # nothing in the owner's account


def test_cross_account_copy_without_the_key_permission_fails_and_says_so(aws, playbook):
    dummy, dummy2, source = customer_key_snapshot(aws)  # the key policy is never applied
    backup_kms = aws.client("kms", region=DR, account_id=A)
    backup_kms.create_alias(AliasName="alias/backup", TargetKeyId=backup_kms.create_key()["KeyMetadata"]["KeyId"])
    run = playbook(cross_account_tasks("alias/backup"))
    res = run.result("copy")
    assert res.get("failed") and "ended in state error" in res["msg"], res
    assert [item["source_snapshot_id"] for item in res["failed_copies"]] == [source]
