# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the local endpoint's copies and sharing: it must not let a test pass that AWS would fail.

- The 20-copy quota under concurrent CopySnapshot calls ("There is a limit of 20 concurrent snapshot copy
  requests per destination", EBS user guide "Copy an Amazon EBS snapshot"): never more pending copies
  than the limit, however the calls interleave, and every refusal is ``ResourceLimitExceeded``.
- Visibility: no DescribeSnapshots parameter shows an account another account's private snapshot, nor
  another account's tags (EC2 API reference DescribeSnapshots; tags stay with their account).
- The aws/ebs refusal ("Snapshots encrypted with your default KMS key cannot be shared with other
  accounts", ModifySnapshotAttribute) cannot be slipped past with another parameter form or a mixed list.
"""
import threading

import pytest
from botocore.exceptions import ClientError

HOME, OTHER, THIRD = "123456789012", "210987654321", "333333333333"
SOURCE, DEST = "us-east-1", "eu-west-1"


def snapshot(ec2, **volume):
    """A completed snapshot of a new 1 GiB volume in the client's region."""
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=ec2.meta.region_name + "a", **volume)["VolumeId"]
    return ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]


def test_concurrent_copies_never_exceed_the_quota(aws):
    aws.set_copy_duration(3600)
    source_ec2 = aws.client("ec2", region=SOURCE)
    sources = [snapshot(source_ec2) for _index in range(40)]
    results, lock = [], threading.Lock()

    def worker(chunk):
        ec2 = aws.client("ec2", region=DEST, retries={"total_max_attempts": 1})
        for source in chunk:
            try:
                ec2.copy_snapshot(SourceRegion=SOURCE, SourceSnapshotId=source)
                outcome = "copied"
            except ClientError as exc:
                outcome = exc.response["Error"]["Code"]
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(sources[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(results)) == ["ResourceLimitExceeded", "copied"]
    assert results.count("copied") == 20
    pending = aws.client("ec2", region=DEST).describe_snapshots(Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    assert len(pending) == 20


def test_no_parameter_shows_another_accounts_private_snapshot(aws):
    home = aws.client("ec2", region=SOURCE)
    third = aws.client("ec2", region=SOURCE, account_id=THIRD)
    private = snapshot(home)
    shared = snapshot(home)
    home.create_tags(Resources=[private, shared], Tags=[{"Key": "secret", "Value": "yes"}])
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    attempts = [
        {}, {"OwnerIds": [HOME]}, {"OwnerIds": ["self", HOME, "amazon"]}, {"RestorableByUserIds": [HOME]},
        {"RestorableByUserIds": [THIRD, OTHER, "all"]}, {"RestorableByUserIds": ["self"]}, {"SnapshotIds": [private, shared]},
        {"Filters": [{"Name": "owner-id", "Values": [HOME]}]}, {"Filters": [{"Name": "tag:secret", "Values": ["yes"]}]},
        {"Filters": [{"Name": "snapshot-id", "Values": [private, shared]}]},
    ]
    for params in attempts:
        assert third.describe_snapshots(**params)["Snapshots"] == [], params
    other = aws.client("ec2", region=SOURCE, account_id=OTHER)
    for params in attempts:
        seen = other.describe_snapshots(**params)["Snapshots"]
        assert {item["SnapshotId"] for item in seen} <= {shared}, params
        assert all(not item.get("Tags") for item in seen), params
    for params in ({"SourceRegion": SOURCE, "SourceSnapshotId": private},):
        with pytest.raises(ClientError) as caught:
            aws.client("ec2", region=DEST, account_id=THIRD).copy_snapshot(**params)
        assert caught.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"


@pytest.mark.parametrize("params", [
    {"CreateVolumePermission": {"Add": [{"UserId": HOME}, {"UserId": OTHER}]}},
    {"Attribute": "createVolumePermission", "OperationType": "add", "UserIds": [OTHER, HOME]},
    {"OperationType": "add", "UserIds": [OTHER], "CreateVolumePermission": {"Add": [{"UserId": THIRD}]}},
    {"CreateVolumePermission": {"Add": [{"Group": "all"}]}},
])
def test_the_aws_managed_key_refusal_cannot_be_bypassed(aws, params):
    home = aws.client("ec2", region=SOURCE)
    managed = snapshot(home, Encrypted=True)
    with pytest.raises(ClientError) as caught:
        home.modify_snapshot_attribute(SnapshotId=managed, **params)
    assert caught.value.response["Error"]["Code"] in ("OperationNotPermitted", "UnsupportedOperation")
    assert home.describe_snapshot_attribute(SnapshotId=managed, Attribute="createVolumePermission")["CreateVolumePermissions"] == []
    for account in (OTHER, THIRD):
        assert aws.client("ec2", region=SOURCE, account_id=account).describe_snapshots()["Snapshots"] == []
    assert aws.mutating_calls().get("ec2:ModifySnapshotAttribute") == 1
