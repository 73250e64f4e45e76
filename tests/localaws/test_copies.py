# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CopySnapshot across regions and accounts, through plain boto3 clients.

References:
- EC2 API reference, CopySnapshot: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopySnapshot.html
- EBS user guide, "Copy an Amazon EBS snapshot" (considerations, encryption outcomes):
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
- EBS user guide, "Time-based copies": https://docs.aws.amazon.com/ebs/latest/userguide/time-based-copies.html
- EBS quotas, "Concurrent snapshot copies per destination Region: 20":
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html
"""

import json

import pytest
from botocore.exceptions import ClientError

from tests.localaws import LocalAWSControlError
from tests.localaws.blockdata import block, write_snapshot

HOME, OTHER = "123456789012", "210987654321"
SOURCE, DEST = "us-east-1", "eu-west-1"


def error_of(call, **kwargs):
    """Run a call that must fail; return ``(HTTP status, code, message)``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def snapshot_of(ec2, snapshot_id):
    """DescribeSnapshots of one snapshot."""
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def ec2_snapshot(ec2, size=8, tags=None, **volume):
    """A completed EC2 snapshot of a new volume of ``size`` GiB in the client's region."""
    zone = ec2.meta.region_name + "a"
    volume_id = ec2.create_volume(Size=size, AvailabilityZone=zone, **volume)["VolumeId"]
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}] if tags else []
    return ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]


@pytest.fixture
def source_ec2(aws):
    """EC2 in the source region, home account."""
    return aws.client("ec2", region=SOURCE)


@pytest.fixture
def dest_ec2(aws):
    """EC2 in the destination region, home account."""
    return aws.client("ec2", region=DEST)


def copy(dest_ec2, snapshot_id, **params):
    """CopySnapshot of ``snapshot_id`` from the source region; returns the copy's id."""
    return dest_ec2.copy_snapshot(SourceRegion=SOURCE, SourceSnapshotId=snapshot_id, **params)["SnapshotId"]


# -- the copy and its progress ------------------------------------------------------------------


def test_copy_belongs_to_the_destination_and_starts_pending(aws, source_ec2, dest_ec2):
    """Sent to the destination; arbitrary VolumeId; only TagSpecifications tags ("User-defined tags are not copied")."""
    aws.set_copy_duration(3600)  # the copy stays at 0% while the test reads it
    source = ec2_snapshot(source_ec2, size=8, tags={"blockwise:policy": "daily", "Name": "source"})
    answer = dest_ec2.copy_snapshot(
        SourceRegion=SOURCE, SourceSnapshotId=source, Description="DR copy",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "blockwise:source-snapshot", "Value": source}]}],
        PresignedUrl="https://ec2.us-east-1.amazonaws.com/?Action=CopySnapshot", DestinationRegion=DEST,
    )
    assert answer["Tags"] == [{"Key": "blockwise:source-snapshot", "Value": source}]
    described = snapshot_of(dest_ec2, answer["SnapshotId"])
    assert described["State"] == "pending" and described["Progress"] == "0%"
    assert described["VolumeId"] == "vol-ffffffff"
    assert described["VolumeSize"] == 8
    assert described["Description"] == "DR copy"
    assert described["OwnerId"] == HOME
    assert described["Tags"] == [{"Key": "blockwise:source-snapshot", "Value": source}]
    assert described["TransferType"] == "standard"
    assert described["Encrypted"] is False
    assert answer["SnapshotId"] not in {s["SnapshotId"] for s in source_ec2.describe_snapshots()["Snapshots"]}
    assert aws.counters()["ec2:CopySnapshot"] == 1


def test_progress_rises_on_the_endpoint_clock_until_completed(aws, source_ec2, dest_ec2):
    aws.set_copy_duration(1000)
    copy_id = copy(dest_ec2, ec2_snapshot(source_ec2))
    assert snapshot_of(dest_ec2, copy_id)["Progress"] == "0%"
    aws.advance_clock(500)
    halfway = snapshot_of(dest_ec2, copy_id)
    assert halfway["State"] == "pending"
    assert 50 <= int(halfway["Progress"].rstrip("%")) <= 51
    filtered = dest_ec2.describe_snapshots(Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in filtered] == [copy_id]
    aws.advance_clock(500)
    done = snapshot_of(dest_ec2, copy_id)
    assert (done["State"], done["Progress"]) == ("completed", "100%")
    assert done["CompletionTime"] >= done["StartTime"]


def test_default_copy_duration_is_a_few_seconds(aws, source_ec2, dest_ec2):
    assert aws.copy_settings() == {"duration_seconds": 2.0, "limit": 20}
    copy_id = copy(dest_ec2, ec2_snapshot(source_ec2))
    aws.advance_clock(2)
    assert snapshot_of(dest_ec2, copy_id)["State"] == "completed"


def test_copy_duration_setting_is_validated_and_reset(aws):
    for bad in (-1, "soon", True):
        with pytest.raises(LocalAWSControlError):
            aws.set_copy_duration(bad)
    for bad in (0, 2.5, "20"):
        with pytest.raises(LocalAWSControlError):
            aws.set_copy_limit(bad)
    assert aws.set_copy_duration(0.5) == {"duration_seconds": 0.5, "limit": 20}
    assert aws.set_copy_limit(3) == {"duration_seconds": 0.5, "limit": 3}
    aws.reset()
    assert aws.copy_settings() == {"duration_seconds": 2.0, "limit": 20}


def test_time_based_copy_takes_the_completion_duration(aws, source_ec2, dest_ec2):
    """Time-based copies: "a completion duration, between 15 minutes and 48 hours ... in 15 minute increments"."""
    copy_id = copy(dest_ec2, ec2_snapshot(source_ec2), CompletionDurationMinutes=15)
    aws.advance_clock(15 * 60 - 1)
    pending = snapshot_of(dest_ec2, copy_id)
    assert pending["State"] == "pending"
    assert (pending["TransferType"], pending["CompletionDurationMinutes"]) == ("time-based", 15)
    aws.advance_clock(2)
    assert snapshot_of(dest_ec2, copy_id)["State"] == "completed"


@pytest.mark.parametrize("minutes", [10, 20, 45 + 1])
def test_completion_duration_must_be_15_minute_steps(source_ec2, dest_ec2, minutes):
    source = ec2_snapshot(source_ec2)
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id=source, CompletionDurationMinutes=minutes)[:2] == (400, "InvalidParameterValue")
    assert len(dest_ec2.describe_snapshots()["Snapshots"]) == 0


def test_copy_of_a_copy_needs_the_first_copy_completed(aws, source_ec2, dest_ec2):
    """"After you create a snapshot, and it has reached the completed state, you can create a copy of it"."""
    first = copy(dest_ec2, ec2_snapshot(source_ec2))
    assert error_of(dest_ec2.copy_snapshot, SourceRegion=DEST, SourceSnapshotId=first)[:2] == (400, "IncorrectState")
    aws.advance_clock(2)
    second = dest_ec2.copy_snapshot(SourceRegion=DEST, SourceSnapshotId=first)["SnapshotId"]
    assert snapshot_of(dest_ec2, second)["VolumeId"] == "vol-ffffffff"


def test_pending_direct_snapshot_cannot_be_copied(aws, dest_ec2):
    pending = aws.client("ebs", region=SOURCE).start_snapshot(VolumeSize=1)["SnapshotId"]
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id=pending)[:2] == (400, "IncorrectState")


def test_unknown_source_and_region_are_refused(dest_ec2):
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id="snap-0123456789abcdef0") == (
        400, "InvalidSnapshot.NotFound", "The snapshot 'snap-0123456789abcdef0' does not exist.")
    status, code, _message = error_of(dest_ec2.copy_snapshot, SourceRegion="mars-north-1", SourceSnapshotId="snap-0123456789abcdef0")
    assert (status, code) == (400, "InvalidParameterValue")
    assert dest_ec2.describe_snapshots()["Snapshots"] == []


def test_dry_run_copies_nothing(aws, source_ec2, dest_ec2):
    source = ec2_snapshot(source_ec2)
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id=source, DryRun=True)[:2] == (412, "DryRunOperation")
    assert dest_ec2.describe_snapshots()["Snapshots"] == []


# -- content for the EBS direct APIs ------------------------------------------------------------


def blocks_of(ebs, snapshot_id):
    """``{index: bytes}`` of a snapshot through ListSnapshotBlocks and GetSnapshotBlock."""
    listing = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    return {item["BlockIndex"]: ebs.get_snapshot_block(
        SnapshotId=snapshot_id, BlockIndex=item["BlockIndex"], BlockToken=item["BlockToken"])["BlockData"].read()
        for item in listing}


@pytest.mark.parametrize("made_by", ["ebs-direct", "create-snapshot"])
def test_completed_copy_reads_like_its_source(aws, source_ec2, dest_ec2, made_by):
    source_ebs, dest_ebs = aws.client("ebs", region=SOURCE), aws.client("ebs", region=DEST)
    if made_by == "ebs-direct":
        source = write_snapshot(source_ebs, {0: block(1), 5: block(2), 2047: block(3)}, volume_size=1)
    else:
        source = ec2_snapshot(source_ec2, size=1)
    copy_id = copy(dest_ec2, source)
    with pytest.raises(ClientError) as caught:
        dest_ebs.list_snapshot_blocks(SnapshotId=copy_id)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    aws.advance_clock(2)
    assert blocks_of(dest_ebs, copy_id) == blocks_of(source_ebs, source)
    assert snapshot_of(dest_ec2, copy_id)["VolumeSize"] == 1


def test_copy_keeps_the_data_it_started_with(aws, dest_ec2):
    """The source can be deleted once the copy completed; the copy keeps its blocks."""
    source_ebs, dest_ebs = aws.client("ebs", region=SOURCE), aws.client("ebs", region=DEST)
    source = write_snapshot(source_ebs, {3: block(9)}, volume_size=1)
    copy_id = copy(dest_ec2, source)
    aws.advance_clock(2)
    aws.client("ec2", region=SOURCE).delete_snapshot(SnapshotId=source)
    assert blocks_of(dest_ebs, copy_id) == {3: block(9)}


# -- encryption ---------------------------------------------------------------------------------


def managed_key(aws, region):
    """The ARN of the AWS managed aws/ebs key of ``region``."""
    return aws.client("kms", region=region).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]


def encrypted_source(aws, region=SOURCE, account_id=None, policy=None):
    """A snapshot of a volume encrypted with a new customer managed key; returns ``(snapshot id, key ARN)``."""
    kms = aws.client("kms", region=region, account_id=account_id)
    key = kms.create_key(**({"Policy": json.dumps(policy)} if policy else {}))["KeyMetadata"]["Arn"]
    ec2 = aws.client("ec2", region=region, account_id=account_id)
    return ec2_snapshot(ec2, Encrypted=True, KmsKeyId=key), key


def test_copy_of_an_encrypted_snapshot_is_encrypted_with_the_destination_managed_key(aws, dest_ec2):
    """Encryption outcomes table: encryption by default disabled, source encrypted -> the AWS managed key (aws/ebs)."""
    source, source_key = encrypted_source(aws)
    copy_id = copy(dest_ec2, source, Encrypted=False)  # "You cannot set this parameter to false": no effect
    described = snapshot_of(dest_ec2, copy_id)
    assert described["Encrypted"] is True
    assert described["KmsKeyId"] == managed_key(aws, DEST) != source_key


def test_encrypted_true_encrypts_with_the_destination_default_key(aws, source_ec2, dest_ec2):
    """Source unencrypted, Encrypted=true, no key: "the key specified for encryption by default is used"."""
    custom = aws.client("kms", region=DEST).create_key()["KeyMetadata"]["Arn"]
    dest_ec2.modify_ebs_default_kms_key_id(KmsKeyId=custom)
    copy_id = copy(dest_ec2, ec2_snapshot(source_ec2), Encrypted=True)
    described = snapshot_of(dest_ec2, copy_id)
    assert (described["Encrypted"], described["KmsKeyId"]) == (True, custom)


def test_encryption_by_default_in_the_destination_encrypts_every_copy(aws, source_ec2, dest_ec2):
    dest_ec2.enable_ebs_encryption_by_default()
    copy_id = copy(dest_ec2, ec2_snapshot(source_ec2))
    described = snapshot_of(dest_ec2, copy_id)
    assert (described["Encrypted"], described["KmsKeyId"]) == (True, dest_ec2.get_ebs_default_kms_key_id()["KmsKeyId"])
    unencrypted_here = copy(aws.client("ec2", region="us-west-2"), ec2_snapshot(source_ec2))
    assert snapshot_of(aws.client("ec2", region="us-west-2"), unencrypted_here)["Encrypted"] is False


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias_arn"])
def test_kms_key_of_the_destination_in_every_form(aws, source_ec2, dest_ec2, form):
    kms = aws.client("kms", region=DEST)
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/dr", TargetKeyId=key["KeyId"])
    identifier = {"id": key["KeyId"], "arn": key["Arn"], "alias": "alias/dr", "alias_arn": f"arn:aws:kms:{DEST}:{HOME}:alias/dr"}[form]
    copy_id = copy(dest_ec2, encrypted_source(aws)[0], Encrypted=True, KmsKeyId=identifier)
    aws.advance_clock(2)
    described = snapshot_of(dest_ec2, copy_id)
    assert (described["State"], described["KmsKeyId"]) == ("completed", key["Arn"])


def test_kms_key_missing_in_the_destination_fails_the_copy_later(aws, dest_ec2):
    """"Amazon Web Services authenticates the KMS key asynchronously ... the action can appear to complete,
    but eventually fails"; the user guide names the status message "Given key ID is not accessible"."""
    source, source_key = encrypted_source(aws)  # a key of the SOURCE region only
    copy_id = copy(dest_ec2, source, Encrypted=True, KmsKeyId=source_key)
    assert snapshot_of(dest_ec2, copy_id)["State"] == "pending"
    aws.advance_clock(2)
    described = snapshot_of(dest_ec2, copy_id)
    assert (described["State"], described["StateMessage"]) == ("error", "Given key ID is not accessible")
    with pytest.raises(ClientError):
        aws.client("ebs", region=DEST).list_snapshot_blocks(SnapshotId=copy_id)


def test_kms_key_needs_encrypted_true(aws, source_ec2, dest_ec2):
    """"If KmsKeyId is specified, the encrypted state must be true"."""
    key = aws.client("kms", region=DEST).create_key()["KeyMetadata"]["Arn"]
    for source in (ec2_snapshot(source_ec2), encrypted_source(aws)[0]):
        status, code, _message = error_of(copy, dest_ec2=dest_ec2, snapshot_id=source, KmsKeyId=key)
        assert (status, code) == (400, "InvalidParameterDependency")
    assert dest_ec2.describe_snapshots()["Snapshots"] == []


# -- the concurrent copy quota ------------------------------------------------------------------


def test_twenty_first_pending_copy_is_refused(aws, source_ec2, dest_ec2):
    """"There is a limit of 20 concurrent snapshot copy requests per destination ... ResourceLimitExceeded"."""
    sources = [ec2_snapshot(source_ec2, size=1) for _index in range(22)]
    copies = [copy(dest_ec2, source) for source in sources[:20]]
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id=sources[20]) == (
        400, "ResourceLimitExceeded", "Too many snapshot copies in progress. The limit is 20 for this destination region.")
    assert len(dest_ec2.describe_snapshots()["Snapshots"]) == 20
    other_destination = aws.client("ec2", region="us-west-2")
    copy(other_destination, sources[20])  # the quota is per destination region
    dest_ec2.delete_snapshot(SnapshotId=copies[0])  # a deleted copy no longer counts
    copy(dest_ec2, sources[20])
    assert error_of(copy, dest_ec2=dest_ec2, snapshot_id=sources[21])[1] == "ResourceLimitExceeded"
    aws.advance_clock(2)  # completed copies free the quota
    copy(dest_ec2, sources[21])
    assert aws.counters()["ec2:CopySnapshot"] == 20 + 1 + 1 + 1 + 1 + 1


def test_quota_is_per_account_and_settable(aws, source_ec2):
    aws.set_copy_limit(2)
    sources = [ec2_snapshot(source_ec2, size=1) for _index in range(3)]
    dest_home = aws.client("ec2", region=DEST)
    for source in sources[:2]:
        copy(dest_home, source)
    assert error_of(copy, dest_ec2=dest_home, snapshot_id=sources[2])[2] == (
        "Too many snapshot copies in progress. The limit is 2 for this destination region.")
    source_ec2.modify_snapshot_attribute(SnapshotId=sources[2], Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER])
    copy(aws.client("ec2", region=DEST, account_id=OTHER), sources[2])  # another account's copies do not count


def test_failed_copy_no_longer_counts(aws, source_ec2, dest_ec2):
    aws.set_copy_limit(1)
    first = copy(dest_ec2, ec2_snapshot(source_ec2))
    assert aws.fail_copy(first, region=DEST, message="copy failed") == "error"
    described = snapshot_of(dest_ec2, first)
    assert (described["State"], described["StateMessage"], described["Progress"]) == ("error", "copy failed", "0%")
    copy(dest_ec2, ec2_snapshot(source_ec2))
    with pytest.raises(LocalAWSControlError):
        aws.fail_copy(first, region=DEST)  # no longer pending
    with pytest.raises(LocalAWSControlError):
        aws.fail_copy(ec2_snapshot(source_ec2), region=SOURCE)  # not a copy


# -- the source deleted while a copy is pending -------------------------------------------------


def test_deleting_the_source_of_a_pending_copy_fails_the_copy(aws, source_ec2, dest_ec2):
    """The delete succeeds; "If you delete any snapshots after initiation, you are still charged for the data
    that has already been transferred": the copy does not complete (see docs/localaws.md)."""
    source, other = ec2_snapshot(source_ec2), ec2_snapshot(source_ec2)
    doomed, kept = copy(dest_ec2, source), copy(dest_ec2, other)
    source_ec2.delete_snapshot(SnapshotId=source)
    described = snapshot_of(dest_ec2, doomed)
    assert described["State"] == "error"
    assert described["StateMessage"] == "The source snapshot was deleted before the copy completed."
    aws.advance_clock(2)
    assert snapshot_of(dest_ec2, doomed)["State"] == "error"
    assert snapshot_of(dest_ec2, kept)["State"] == "completed"


def test_a_refused_delete_leaves_the_copy_pending(aws, source_ec2, dest_ec2):
    source = ec2_snapshot(source_ec2)
    source_ec2.register_image(Name="pinned", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": source}}])
    copy_id = copy(dest_ec2, source)
    assert error_of(source_ec2.delete_snapshot, SnapshotId=source)[1] == "InvalidSnapshot.InUse"
    aws.advance_clock(2)
    assert snapshot_of(dest_ec2, copy_id)["State"] == "completed"


# -- across accounts ----------------------------------------------------------------------------


def share(ec2, snapshot_id, account_id):
    """Grant ``account_id`` createVolumePermission on ``snapshot_id``."""
    ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                  CreateVolumePermission={"Add": [{"UserId": account_id}]})


def test_cross_account_copy_of_a_shared_snapshot(aws, source_ec2):
    """"You can copy snapshots that you own and snapshots that are shared with you"."""
    source = ec2_snapshot(source_ec2, size=4)
    other_dest = aws.client("ec2", region=DEST, account_id=OTHER)
    assert error_of(copy, dest_ec2=other_dest, snapshot_id=source)[1] == "InvalidSnapshot.NotFound"
    share(source_ec2, source, OTHER)
    copy_id = copy(other_dest, source)
    aws.advance_clock(2)
    described = snapshot_of(other_dest, copy_id)
    assert (described["OwnerId"], described["State"], described["VolumeSize"]) == (OTHER, "completed", 4)
    assert copy_id not in {s["SnapshotId"] for s in aws.client("ec2", region=DEST).describe_snapshots()["Snapshots"]}


def test_cross_account_copy_needs_the_source_key_shared(aws):
    """"To copy an encrypted snapshot that is shared from another AWS account, you must have permissions to use
    customer managed key that was used to encrypt that snapshot"; otherwise "Given key ID is not accessible"."""
    home = aws.client("ec2", region=SOURCE)
    other_dest = aws.client("ec2", region=DEST, account_id=OTHER)
    other_key = aws.client("kms", region=DEST, account_id=OTHER).create_key()["KeyMetadata"]["Arn"]
    private, _key = encrypted_source(aws)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{OTHER}:root"]}, "Action": ["kms:Decrypt", "kms:CreateGrant"], "Resource": "*"},
    ]}
    shared, _key = encrypted_source(aws, policy=policy)
    for snapshot_id in (private, shared):
        share(home, snapshot_id, OTHER)
    failing = copy(other_dest, private, Encrypted=True, KmsKeyId=other_key)
    working = copy(other_dest, shared, Encrypted=True, KmsKeyId=other_key)
    aws.advance_clock(2)
    assert (snapshot_of(other_dest, failing)["State"], snapshot_of(other_dest, failing)["StateMessage"]) == ("error", "Given key ID is not accessible")
    assert (snapshot_of(other_dest, working)["State"], snapshot_of(other_dest, working)["KmsKeyId"]) == ("completed", other_key)


def test_copy_actions_are_counted_as_writes(aws, source_ec2, dest_ec2):
    source = ec2_snapshot(source_ec2)
    aws.set_copy_duration(3600)
    aws.reset_counters()
    copy_id = copy(dest_ec2, source)
    share(source_ec2, source, OTHER)
    source_ec2.describe_snapshot_attribute(SnapshotId=source, Attribute="createVolumePermission")
    source_ec2.reset_snapshot_attribute(SnapshotId=source, Attribute="createVolumePermission")
    assert aws.mutating_calls() == {"ec2:CopySnapshot": 1, "ec2:ModifySnapshotAttribute": 1, "ec2:ResetSnapshotAttribute": 1}
    assert aws.counters()["ec2:DescribeSnapshotAttribute"] == 1
    progress = aws.snapshot_progress(copy_id, region=DEST)
    assert (progress["status"], progress["progress"], progress["copy"]) == ("pending", 0, True)
