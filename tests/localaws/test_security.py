# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block public access for snapshots and the snapshot archive tier on the local endpoint, through plain boto3.

References:
- EC2 API reference, EnableSnapshotBlockPublicAccess:
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableSnapshotBlockPublicAccess.html
  (block-all-sharing / block-new-sharing; "unblocked is not a valid value for EnableSnapshotBlockPublicAccess";
  block-all-sharing "does not change the permissions for snapshots that are already publicly shared. Instead, it
  prevents these snapshots from be publicly visible and publicly accessible")
- EC2 API reference, DisableSnapshotBlockPublicAccess / GetSnapshotBlockPublicAccessState.
- EBS user guide, "Block public access for snapshots":
  https://docs.aws.amazon.com/ebs/latest/userguide/block-public-access-snapshots.html (per account and Region)
- EC2 API reference, ModifySnapshotTier: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifySnapshotTier.html
  ("You must specify archive"), RestoreSnapshotTier, DescribeSnapshotTierStatus, Snapshot (StorageTier).
- EBS user guide, "Archive Amazon EBS snapshots": https://docs.aws.amazon.com/ebs/latest/userguide/snapshot-archive.html
  (completed snapshots only; archived snapshots must be restored before creating volumes or using the EBS direct
  APIs; 90-day minimum in the archive tier).
"""

import pytest
from botocore.exceptions import ClientError

from .blockdata import block, write_snapshot

HOME, OTHER = "123456789012", "210987654321"
REGION, SECOND = "us-east-1", "eu-west-1"


def error_code(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"]


def new_snapshot(ec2):
    volume = ec2.create_volume(Size=1, AvailabilityZone=ec2.meta.region_name + "a")["VolumeId"]
    return ec2.create_snapshot(VolumeId=volume)["SnapshotId"]


def make_public(ec2, snapshot_id):
    return ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                         OperationType="add", GroupNames=["all"])


def test_block_public_access_is_per_account_and_region(aws):
    home, second = aws.client("ec2", region=REGION), aws.client("ec2", region=SECOND)
    other = aws.client("ec2", region=REGION, account_id=OTHER)
    assert home.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert home.enable_snapshot_block_public_access(State="block-all-sharing")["State"] == "block-all-sharing"
    assert home.get_snapshot_block_public_access_state()["State"] == "block-all-sharing"
    assert second.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert other.get_snapshot_block_public_access_state()["State"] == "unblocked"
    assert home.enable_snapshot_block_public_access(State="block-new-sharing")["State"] == "block-new-sharing"
    assert home.disable_snapshot_block_public_access()["State"] == "unblocked"
    assert home.get_snapshot_block_public_access_state()["State"] == "unblocked"


def test_enable_refuses_unblocked(aws):
    home = aws.client("ec2", region=REGION)
    assert error_code(home.enable_snapshot_block_public_access, State="unblocked") == "InvalidRequest"
    assert home.get_snapshot_block_public_access_state()["State"] == "unblocked"


def test_reset_forgets_the_state(aws):
    aws.client("ec2", region=REGION).enable_snapshot_block_public_access(State="block-new-sharing")
    aws.reset()
    assert aws.client("ec2", region=REGION).get_snapshot_block_public_access_state()["State"] == "unblocked"


@pytest.mark.parametrize("state", ["block-all-sharing", "block-new-sharing"])
def test_blocked_region_refuses_new_public_sharing_but_not_account_sharing(aws, state):
    home = aws.client("ec2", region=REGION)
    snapshot_id = new_snapshot(home)
    home.enable_snapshot_block_public_access(State=state)
    assert error_code(make_public, ec2=home, snapshot_id=snapshot_id) == "OperationNotPermitted"
    home.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                   OperationType="add", UserIds=[OTHER])
    permissions = home.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert permissions["CreateVolumePermissions"] == [{"UserId": OTHER}]
    second = aws.client("ec2", region=SECOND)
    make_public(second, new_snapshot(second))  # the other region is not blocked


def test_block_all_sharing_hides_already_public_snapshots_block_new_does_not(aws):
    home = aws.client("ec2", region=REGION)
    other = aws.client("ec2", region=REGION, account_id=OTHER)
    snapshot_id = new_snapshot(home)
    make_public(home, snapshot_id)

    def visible():
        return {s["SnapshotId"] for s in other.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]}

    assert snapshot_id in visible()
    home.enable_snapshot_block_public_access(State="block-new-sharing")
    assert snapshot_id in visible()
    home.enable_snapshot_block_public_access(State="block-all-sharing")
    assert snapshot_id not in visible()
    attribute = home.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    assert {"Group": "all"} in attribute["CreateVolumePermissions"]  # the permission stays; it is only not honoured
    home.disable_snapshot_block_public_access()
    assert snapshot_id in visible()
    home.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                   OperationType="remove", GroupNames=["all"])


def test_archive_and_describe_storage_tier(aws):
    home = aws.client("ec2", region=REGION)
    snapshot_id = new_snapshot(home)
    [described] = home.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert described["StorageTier"] == "standard"
    answer = home.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")
    assert answer["SnapshotId"] == snapshot_id and answer["TieringStartTime"]
    [described] = home.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert described["StorageTier"] == "archive"
    [status] = [s for s in home.describe_snapshot_tier_status()["SnapshotTierStatuses"] if s["SnapshotId"] == snapshot_id]
    assert status["StorageTier"] == "archive" and status["ArchivalCompleteTime"]
    assert error_code(home.modify_snapshot_tier, SnapshotId=snapshot_id, StorageTier="archive") == "IncorrectState"
    archived = home.describe_snapshots(Filters=[{"Name": "storage-tier", "Values": ["archive"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in archived] == [snapshot_id]


def test_pending_and_foreign_snapshots_cannot_be_archived(aws):
    ebs = aws.client("ebs", region=REGION)
    home = aws.client("ec2", region=REGION)
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    assert error_code(home.modify_snapshot_tier, SnapshotId=pending, StorageTier="archive") == "IncorrectState"
    other = aws.client("ec2", region=REGION, account_id=OTHER)
    foreign = new_snapshot(other)
    other.modify_snapshot_attribute(SnapshotId=foreign, Attribute="createVolumePermission", OperationType="add", UserIds=[HOME])
    assert error_code(home.modify_snapshot_tier, SnapshotId=foreign, StorageTier="archive") == "UnauthorizedOperation"


def test_archived_snapshot_refuses_create_volume_and_direct_reads_until_restored(aws):
    ebs = aws.client("ebs", region=REGION)
    home = aws.client("ec2", region=REGION)
    snapshot_id = write_snapshot(ebs, {0: block(1), 3: block(2)})
    home.modify_snapshot_tier(SnapshotId=snapshot_id, StorageTier="archive")
    assert error_code(home.create_volume, SnapshotId=snapshot_id, AvailabilityZone=REGION + "a") == "IncorrectState"
    assert error_code(ebs.list_snapshot_blocks, SnapshotId=snapshot_id) == "ValidationException"
    restored = home.restore_snapshot_tier(SnapshotId=snapshot_id, TemporaryRestoreDays=2)
    assert restored["RestoreDuration"] == 2 and not restored["IsPermanentRestore"]
    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]] == [0, 3]
    home.create_volume(SnapshotId=snapshot_id, AvailabilityZone=REGION + "a")
    aws.advance_clock(3 * 86400)  # the temporary restore expired
    assert error_code(ebs.list_snapshot_blocks, SnapshotId=snapshot_id) == "ValidationException"
    home.restore_snapshot_tier(SnapshotId=snapshot_id, PermanentRestore=True)
    [described] = home.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert described["StorageTier"] == "standard"
    assert error_code(home.restore_snapshot_tier, SnapshotId=snapshot_id, PermanentRestore=True) == "IncorrectState"


def test_describe_snapshots_and_volumes_page_with_max_results(aws):
    """EC2 API reference, DescribeSnapshots / DescribeVolumes: MaxResults 5-1000 / 5-500, NextToken, not with ids."""
    home = aws.client("ec2", region=REGION)
    made = {new_snapshot(home) for _index in range(7)}
    seen, pages, token = [], 0, None
    while True:
        answer = home.describe_snapshots(OwnerIds=["self"], MaxResults=5, **({"NextToken": token} if token else {}))
        seen += [s["SnapshotId"] for s in answer["Snapshots"]]
        pages += 1
        token = answer.get("NextToken")
        if not token:
            break
    assert pages == 2 and sorted(seen) == sorted(made)
    volumes = home.describe_volumes(MaxResults=5)
    assert len(volumes["Volumes"]) == 5 and volumes["NextToken"]
    rest = home.describe_volumes(MaxResults=5, NextToken=volumes["NextToken"])
    assert len(rest["Volumes"]) == 2 and "NextToken" not in rest
    assert len(home.describe_volumes()["Volumes"]) == 7  # without MaxResults: everything
    assert error_code(home.describe_snapshots, SnapshotIds=[seen[0]], MaxResults=5) == "InvalidParameterCombination"
    assert error_code(home.describe_volumes, MaxResults=4) == "InvalidParameterValue"
