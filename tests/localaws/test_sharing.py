# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot sharing between two accounts of one endpoint (an account per 12-digit access key id).

References:
- EC2 API reference, ModifySnapshotAttribute: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifySnapshotAttribute.html
  ("you cannot do both in a single operation", "up to 500 modifications", "Encrypted snapshots ... cannot be
  made public", "Snapshots encrypted with your default KMS key cannot be shared with other accounts")
- EC2 API reference, DescribeSnapshots (available snapshots, OwnerIds, RestorableByUserIds, SnapshotIds):
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSnapshots.html
- EC2 API reference, DescribeSnapshotAttribute / ResetSnapshotAttribute.
- EBS user guide, "Share an Amazon EBS snapshot": https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
- AMI user guide, "Share an AMI with specific AWS accounts" (user-defined tags stay with the account that wrote them).

Error codes the references do not name are the ones EC2 answers in practice: ``OperationNotPermitted``
("Encrypted snapshots with EBS default key cannot be shared") for the aws/ebs key, ``UnsupportedOperation``
for public sharing of an encrypted snapshot, ``InvalidUserID.Malformed`` for an account id that is not 12 digits.
"""

import pytest
from botocore.exceptions import ClientError

HOME, OTHER, THIRD = "123456789012", "210987654321", "333333333333"
REGION = "us-east-1"


def error_of(call, **kwargs):
    """Run a call that must fail; return ``(HTTP status, code)``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


@pytest.fixture
def home(aws):
    """EC2 of the home account."""
    return aws.client("ec2", region=REGION)


@pytest.fixture
def other(aws):
    """EC2 of the other account."""
    return aws.client("ec2", region=REGION, account_id=OTHER)


def snapshot(ec2, encrypted=False, kms_key_id=None, tags=None):
    """A completed snapshot of a new 1 GiB volume."""
    params = {"Encrypted": True} if encrypted else {}
    if kms_key_id:
        params["KmsKeyId"] = kms_key_id
    volume = ec2.create_volume(Size=1, AvailabilityZone=REGION + "a", **params)["VolumeId"]
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_snapshot(VolumeId=volume, TagSpecifications=spec)["SnapshotId"]


def ids(ec2, **params):
    """The ids DescribeSnapshots lists."""
    return {item["SnapshotId"] for item in ec2.describe_snapshots(**params)["Snapshots"]}


def permissions(ec2, snapshot_id):
    """The createVolumePermission list of a snapshot."""
    return ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")["CreateVolumePermissions"]


def test_shared_snapshot_is_visible_to_the_other_account_until_unshared(home, other):
    shared, private = snapshot(home), snapshot(home)
    own = snapshot(other)
    home.modify_snapshot_attribute(SnapshotId=shared, Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER])
    assert permissions(home, shared) == [{"UserId": OTHER}]
    assert ids(other) == {own, shared}  # owned + shared with you (+ public)
    assert ids(other, OwnerIds=[HOME]) == {shared}
    assert ids(other, OwnerIds=["self"]) == {own}
    assert ids(other, RestorableByUserIds=["self"]) == {own, shared}
    assert ids(home, RestorableByUserIds=[OTHER]) == {shared}  # "account IDs (if you own the snapshots)"
    assert ids(other, SnapshotIds=[shared, own]) == {shared, own}
    assert ids(other, SnapshotIds=[private]) == set()  # "If you specify a snapshot ID for which you do not have access, it is not included"
    assert other.describe_snapshots(SnapshotIds=[shared])["Snapshots"][0]["OwnerId"] == HOME
    home.modify_snapshot_attribute(SnapshotId=shared, Attribute="createVolumePermission", OperationType="remove", UserIds=[OTHER])
    assert permissions(home, shared) == []
    assert ids(other) == {own}
    assert ids(other, OwnerIds=[HOME]) == set()
    assert ids(other, SnapshotIds=[shared]) == set()


def test_unknown_snapshot_id_is_an_error(other):
    assert error_of(other.describe_snapshots, SnapshotIds=["snap-0123456789abcdef0"]) == (400, "InvalidSnapshot.NotFound")


def test_create_volume_permission_structure_form(home, other):
    shared = snapshot(home)
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": OTHER}, {"UserId": THIRD}]})
    assert permissions(home, shared) == [{"UserId": OTHER}, {"UserId": THIRD}]
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Remove": [{"UserId": THIRD}]})
    assert permissions(home, shared) == [{"UserId": OTHER}]
    assert error_of(home.modify_snapshot_attribute, SnapshotId=shared,
                    CreateVolumePermission={"Add": [{"UserId": THIRD}], "Remove": [{"UserId": OTHER}]}) == (400, "InvalidParameterCombination")
    assert permissions(home, shared) == [{"UserId": OTHER}]
    assert shared in ids(other)


def test_public_snapshot_is_visible_to_every_account(aws, home, other):
    public = snapshot(home)
    home.modify_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"])
    assert permissions(home, public) == [{"Group": "all"}]
    third = aws.client("ec2", region=REGION, account_id=THIRD)
    assert public in ids(third)
    assert ids(other, RestorableByUserIds=["all"]) == {public}
    assert ids(other, RestorableByUserIds=["self"]) == set()  # "self for snapshots for which you own or have explicit permissions"
    home.modify_snapshot_attribute(SnapshotId=public, CreateVolumePermission={"Remove": [{"Group": "all"}]})
    assert public not in ids(third)


def test_shared_snapshot_is_visible_only_in_its_region(aws, home):
    shared = snapshot(home)
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    assert ids(aws.client("ec2", region="eu-west-1", account_id=OTHER)) == set()


def test_encrypted_snapshot_cannot_be_made_public(aws, home):
    key = aws.client("kms", region=REGION).create_key()["KeyMetadata"]["Arn"]
    encrypted = snapshot(home, encrypted=True, kms_key_id=key)
    for call in ({"OperationType": "add", "GroupNames": ["all"]},
                 {"CreateVolumePermission": {"Add": [{"Group": "all"}, {"UserId": OTHER}]}}):
        assert error_of(home.modify_snapshot_attribute, SnapshotId=encrypted, Attribute="createVolumePermission", **call) == (
            400, "UnsupportedOperation")
    assert permissions(home, encrypted) == []  # nothing of a refused request is applied


def test_snapshot_encrypted_with_the_aws_managed_key_cannot_be_shared(aws, home, other):
    """"Snapshots encrypted with your default KMS key cannot be shared with other accounts"."""
    managed = snapshot(home, encrypted=True)  # no key: the region's default, the AWS managed aws/ebs key
    with pytest.raises(ClientError) as caught:
        home.modify_snapshot_attribute(SnapshotId=managed, Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER])
    assert caught.value.response["Error"] == {"Code": "OperationNotPermitted", "Message": "Encrypted snapshots with EBS default key cannot be shared"}
    assert permissions(home, managed) == []
    assert managed not in ids(other)
    key = aws.client("kms", region=REGION).create_key()["KeyMetadata"]["Arn"]
    customer = snapshot(home, encrypted=True, kms_key_id=key)
    home.modify_snapshot_attribute(SnapshotId=customer, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    assert customer in ids(other)


def test_a_customer_key_made_the_default_can_be_shared(aws, home, other):
    """The refusal is about the AWS managed key, not whichever key is the region's default."""
    key = aws.client("kms", region=REGION).create_key()["KeyMetadata"]["Arn"]
    home.modify_ebs_default_kms_key_id(KmsKeyId=key)
    by_default = snapshot(home, encrypted=True)
    home.modify_snapshot_attribute(SnapshotId=by_default, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    assert by_default in ids(other)


@pytest.mark.parametrize("params, code", [
    ({"OperationType": "add", "UserIds": ["12345"]}, "InvalidUserID.Malformed"),
    ({"OperationType": "add", "GroupNames": ["everyone"]}, "InvalidParameterValue"),
    ({"UserIds": [OTHER]}, "MissingParameter"),
    ({}, "MissingParameter"),
    ({"Attribute": "productCodes", "OperationType": "add", "UserIds": [OTHER]}, "InvalidParameterValue"),
    ({"OperationType": "add", "UserIds": [f"{n:012d}" for n in range(1, 502)]}, "InvalidParameterValue"),
])
def test_bad_modifications_are_refused(home, params, code):
    target = snapshot(home)
    assert error_of(home.modify_snapshot_attribute, SnapshotId=target, **params) == (400, code)
    assert permissions(home, target) == []


def test_reset_removes_every_permission(aws, home, other):
    target = snapshot(home)
    home.modify_snapshot_attribute(SnapshotId=target, CreateVolumePermission={"Add": [{"UserId": OTHER}, {"Group": "all"}]})
    home.reset_snapshot_attribute(SnapshotId=target, Attribute="createVolumePermission")
    assert permissions(home, target) == []
    assert target not in ids(other)
    assert error_of(home.reset_snapshot_attribute, SnapshotId=target, Attribute="productCodes") == (400, "InvalidParameterValue")
    assert home.describe_snapshot_attribute(SnapshotId=target, Attribute="productCodes")["ProductCodes"] == []


def test_only_the_owner_changes_deletes_or_tags_a_shared_snapshot(aws, home, other):
    shared = snapshot(home, tags={"blockwise:policy": "daily"})
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    tag = [{"Key": "Name", "Value": "mine"}]
    calls = [
        (other.modify_snapshot_attribute, {"SnapshotId": shared, "CreateVolumePermission": {"Add": [{"UserId": THIRD}]}}),
        (other.reset_snapshot_attribute, {"SnapshotId": shared, "Attribute": "createVolumePermission"}),
        (other.describe_snapshot_attribute, {"SnapshotId": shared, "Attribute": "createVolumePermission"}),
        (other.delete_snapshot, {"SnapshotId": shared}),
        (other.create_tags, {"Resources": [shared], "Tags": tag}),
        (other.delete_tags, {"Resources": [shared], "Tags": [{"Key": "blockwise:policy"}]}),
    ]
    for call, params in calls:
        assert error_of(call, **params) == (403, "UnauthorizedOperation"), call
    assert permissions(home, shared) == [{"UserId": OTHER}]
    assert home.describe_snapshots(SnapshotIds=[shared])["Snapshots"][0]["Tags"] == [{"Key": "blockwise:policy", "Value": "daily"}]
    unshared = snapshot(home)
    assert error_of(other.describe_snapshot_attribute, SnapshotId=unshared, Attribute="createVolumePermission") == (400, "InvalidSnapshot.NotFound")


def test_the_owners_tags_are_not_shared(home, other):
    """Tags belong to the account that wrote them: a shared snapshot shows none of its owner's tags."""
    shared = snapshot(home, tags={"blockwise:policy": "daily"})
    home.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": OTHER}]})
    seen = other.describe_snapshots(SnapshotIds=[shared])["Snapshots"][0]
    assert "Tags" not in seen or seen["Tags"] == []
    assert ids(other, Filters=[{"Name": "tag:blockwise:policy", "Values": ["daily"]}]) == set()
    assert ids(other, Filters=[{"Name": "tag-key", "Values": ["blockwise:policy"]}]) == set()
    assert ids(other, Filters=[{"Name": "owner-id", "Values": [HOME]}]) == {shared}
    assert ids(home, Filters=[{"Name": "tag:blockwise:policy", "Values": ["daily"]}]) == {shared}


def test_dry_runs_change_nothing(home, other):
    target = snapshot(home)
    for call, params in (
        (home.modify_snapshot_attribute, {"SnapshotId": target, "CreateVolumePermission": {"Add": [{"UserId": OTHER}]}}),
        (home.reset_snapshot_attribute, {"SnapshotId": target, "Attribute": "createVolumePermission"}),
        (home.describe_snapshot_attribute, {"SnapshotId": target, "Attribute": "createVolumePermission"}),
        (home.describe_snapshots, {}),
    ):
        assert error_of(call, DryRun=True, **params) == (412, "DryRunOperation")
    assert ids(other) == set()


def test_foreign_snapshot_helper_shares_from_the_owner_account(aws, home):
    foreign = aws.add_foreign_snapshot(owner_id=OTHER, volume_size=4, tags={"team": "other"}, description="theirs")
    seen = home.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]
    assert (seen["OwnerId"], seen["VolumeSize"], seen["Description"], seen["State"]) == (OTHER, 4, "theirs", "completed")
    owner = aws.client("ec2", region=REGION, account_id=OTHER)
    assert permissions(owner, foreign) == [{"UserId": HOME}]
    assert owner.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["Tags"] == [{"Key": "team", "Value": "other"}]
