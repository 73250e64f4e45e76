# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 behaviours the local endpoint adds to moto, through plain boto3 clients."""

import pytest
from botocore.exceptions import ClientError

from tests.localaws.blockdata import block, write_snapshot


@pytest.fixture
def ec2(aws):
    """An EC2 client in us-east-1."""
    return aws.client("ec2")


def ec2_error(call, **kwargs):
    """Run a call that must fail; return ``(HTTP status, error code)``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# -- default KMS key ------------------------------------------------------------------------------


def test_default_kms_key_is_the_aws_managed_ebs_key(aws, ec2):
    default = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert default == aws.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    assert default.startswith("arn:aws:kms:us-east-1:123456789012:key/")


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias_arn"])
def test_modify_default_kms_key_accepts_every_key_form(aws, ec2, form):
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/backup", TargetKeyId=key["KeyId"])
    identifier = {"id": key["KeyId"], "arn": key["Arn"], "alias": "alias/backup", "alias_arn": "arn:aws:kms:us-east-1:123456789012:alias/backup"}[form]
    assert ec2.modify_ebs_default_kms_key_id(KmsKeyId=identifier)["KmsKeyId"] == key["Arn"]
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == key["Arn"]


def test_default_kms_key_is_per_region_and_used_for_new_volumes(aws, ec2):
    key_arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=key_arn)
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", Encrypted=True)
    assert volume["KmsKeyId"] == key_arn
    other_region = aws.client("ec2", region="eu-west-1").get_ebs_default_kms_key_id()["KmsKeyId"]
    assert other_region.startswith("arn:aws:kms:eu-west-1:") and other_region != key_arn


def test_reset_default_kms_key_returns_to_the_managed_key(aws, ec2):
    managed = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=aws.client("kms").create_key()["KeyMetadata"]["Arn"])
    assert ec2.reset_ebs_default_kms_key_id()["KmsKeyId"] == managed
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == managed


def test_modify_default_kms_key_accepts_the_managed_alias(ec2):
    managed = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert ec2.modify_ebs_default_kms_key_id(KmsKeyId="alias/aws/ebs")["KmsKeyId"] == managed


@pytest.mark.parametrize("key_id", [
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "alias/missing",
])
def test_modify_default_kms_key_refuses_unknown_keys(ec2, key_id):
    assert ec2_error(ec2.modify_ebs_default_kms_key_id, KmsKeyId=key_id) == (400, "InvalidParameterValue")


def test_encryption_by_default_is_per_region(aws, ec2):
    other = aws.client("ec2", region="eu-west-1")
    assert ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert other.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


# -- regions --------------------------------------------------------------------------------------


def test_describe_regions_lists_the_regions_enabled_by_default(ec2):
    regions = {region["RegionName"]: region for region in ec2.describe_regions()["Regions"]}
    assert len(regions) == 17
    assert {"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2", "sa-east-1"} <= set(regions)
    assert "ap-east-1" not in regions
    assert regions["eu-west-1"]["Endpoint"] == "ec2.eu-west-1.amazonaws.com"
    assert regions["eu-west-1"]["OptInStatus"] == "opt-in-not-required"


def test_describe_regions_all_regions_and_filters(ec2):
    everything = ec2.describe_regions(AllRegions=True)["Regions"]
    assert len(everything) > 17
    assert {"opt-in-not-required", "not-opted-in"} == {region["OptInStatus"] for region in everything}
    opted_out = ec2.describe_regions(AllRegions=True, Filters=[{"Name": "opt-in-status", "Values": ["not-opted-in"]}])["Regions"]
    assert opted_out and all(region["OptInStatus"] == "not-opted-in" for region in opted_out)
    named = ec2.describe_regions(RegionNames=["eu-central-1", "us-east-2"])["Regions"]
    assert sorted(region["RegionName"] for region in named) == ["eu-central-1", "us-east-2"]


def test_every_region_answers_through_the_one_endpoint(aws, ec2):
    regions = [region["RegionName"] for region in ec2.describe_regions()["Regions"]]
    for region in regions:
        aws.client("ec2", region=region).create_volume(Size=1, AvailabilityZone=f"{region}a")
    for region in regions:
        volumes = aws.client("ec2", region=region).describe_volumes()["Volumes"]
        assert [volume["AvailabilityZone"] for volume in volumes] == [f"{region}a"]


# -- images ---------------------------------------------------------------------------------------


@pytest.fixture
def two_snapshots(aws, ec2):
    """An EC2-created snapshot (8 GiB volume) and a direct-API snapshot (2 GiB)."""
    volume = ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")["VolumeId"]
    root = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    data = write_snapshot(aws.client("ebs"), {0: block(1)}, volume_size=2)
    return root, data


def test_register_image_keeps_the_given_block_device_mappings(ec2, two_snapshots):
    root, data = two_snapshots
    snapshots_before = len(ec2.describe_snapshots()["Snapshots"])
    image_id = ec2.register_image(
        Name="disk-image", RootDeviceName="/dev/xvda", Architecture="arm64",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root, "VolumeType": "gp3"}},
            {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": data, "VolumeSize": 4, "DeleteOnTermination": False}},
            {"DeviceName": "/dev/xvdc", "VirtualName": "ephemeral0"},
        ],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "Name", "Value": "web"}]}],
    )["ImageId"]
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root, "Encrypted": False, "VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True}},
        {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": data, "Encrypted": False, "VolumeSize": 4, "VolumeType": "gp2", "DeleteOnTermination": False}},
        {"DeviceName": "/dev/xvdc", "VirtualName": "ephemeral0"},
    ]
    assert image["RootDeviceName"] == "/dev/xvda"
    assert image["RootDeviceType"] == "ebs"
    assert image["Architecture"] == "arm64"
    assert image["Tags"] == [{"Key": "Name", "Value": "web"}]
    assert len(ec2.describe_snapshots()["Snapshots"]) == snapshots_before


def test_register_image_refuses_unknown_snapshots(ec2):
    mappings = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}]
    assert ec2_error(ec2.register_image, Name="broken", BlockDeviceMappings=mappings) == (400, "InvalidSnapshot.NotFound")


def test_snapshots_of_a_registered_image_cannot_be_deleted_until_it_is_deregistered(ec2, two_snapshots):
    root, data = two_snapshots
    image_id = ec2.register_image(
        Name="pinned", RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}}, {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": data}}],
    )["ImageId"]
    for snapshot_id in (root, data):
        assert ec2_error(ec2.delete_snapshot, SnapshotId=snapshot_id) == (400, "InvalidSnapshot.InUse")
    ec2.deregister_image(ImageId=image_id)
    for snapshot_id in (root, data):
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert ec2.describe_snapshots()["Snapshots"] == []


def test_in_use_error_is_ec2_xml(ec2, two_snapshots):
    root = two_snapshots[0]
    ec2.register_image(Name="pinned", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}}])
    with pytest.raises(ClientError) as caught:
        ec2.delete_snapshot(SnapshotId=root)
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "text/xml"
    assert root in caught.value.response["Error"]["Message"]


def test_create_image_maps_every_attached_volume(aws, ec2):
    instance = aws.client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    data_volume = ec2.create_volume(Size=5, AvailabilityZone=instance["Placement"]["AvailabilityZone"])["VolumeId"]
    ec2.attach_volume(VolumeId=data_volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    image_id = ec2.create_image(
        InstanceId=instance["InstanceId"], Name="from-instance",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "origin", "Value": "ami"}]}],
    )["ImageId"]
    mappings = {mapping["DeviceName"]: mapping["Ebs"] for mapping in ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]}
    assert sorted(mappings) == ["/dev/sda1", "/dev/sdf"]
    assert mappings["/dev/sdf"]["VolumeSize"] == 5
    snapshots = {snapshot["SnapshotId"]: snapshot for snapshot in ec2.describe_snapshots()["Snapshots"]}
    assert set(snapshots) == {mapping["SnapshotId"] for mapping in mappings.values()}
    assert snapshots[mappings["/dev/sdf"]["SnapshotId"]]["VolumeId"] == data_volume
    assert all(snapshot["Tags"] == [{"Key": "origin", "Value": "ami"}] for snapshot in snapshots.values())
    assert ec2_error(ec2.delete_snapshot, SnapshotId=mappings["/dev/sdf"]["SnapshotId"]) == (400, "InvalidSnapshot.InUse")


def test_owner_ids_filter_describe_snapshots(aws):
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    mine = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    foreign = aws.add_foreign_snapshot(owner_id="210987654321", tags={"team": "other"})
    everything = {s["SnapshotId"]: s["OwnerId"] for s in ec2.describe_snapshots()["Snapshots"]}
    assert everything[foreign] == "210987654321"
    assert mine in everything
    own = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert own == {mine}
    theirs = {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["210987654321"])["Snapshots"]}
    assert theirs == {foreign}
    ec2.create_tags(Resources=[mine], Tags=[{"Key": "team", "Value": "other"}])
    filtered = ec2.describe_snapshots(OwnerIds=["self", "210987654321"], Filters=[{"Name": "tag:team", "Values": ["other"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in filtered] == [mine]  # the owner's tags of a shared snapshot are not the caller's


def test_foreign_snapshot_cannot_be_deleted_or_tagged(aws):
    ec2 = aws.client("ec2")
    foreign = aws.add_foreign_snapshot()
    for call in (lambda: ec2.delete_snapshot(SnapshotId=foreign),
                 lambda: ec2.create_tags(Resources=[foreign], Tags=[{"Key": "Name", "Value": "x"}])):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert excinfo.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["OwnerId"] == "210987654321"


def _instance_with_volumes(ec2):
    instance = ec2.run_instances(
        ImageId="ami-12345678", MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
                             {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 20}},
                             {"DeviceName": "/dev/xvdc", "Ebs": {"VolumeSize": 30}}],
    )["Instances"][0]
    return instance["InstanceId"], {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}


def test_create_snapshots_honours_exclusions_and_copies_tags(aws):
    ec2 = aws.client("ec2")
    instance_id, volumes = _instance_with_volumes(ec2)
    ec2.create_tags(Resources=[volumes["/dev/xvdb"]], Tags=[{"Key": "team", "Value": "db"}, {"Key": "Name", "Value": "data"}])
    answer = ec2.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": True, "ExcludeDataVolumeIds": [volumes["/dev/xvdc"]]},
        Description="set", CopyTagsFromSource="volume",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": "from-set"}]}],
    )["Snapshots"]
    assert [s["VolumeId"] for s in answer] == [volumes["/dev/xvdb"]]
    assert answer[0]["State"] == "completed"
    tags = {t["Key"]: t["Value"] for t in ec2.describe_snapshots(SnapshotIds=[answer[0]["SnapshotId"]])["Snapshots"][0]["Tags"]}
    assert tags == {"team": "db", "Name": "from-set"}


def test_create_snapshots_refuses_root_in_exclusions(aws):
    ec2 = aws.client("ec2")
    instance_id, volumes = _instance_with_volumes(ec2)
    with pytest.raises(ClientError) as excinfo:
        ec2.create_snapshots(InstanceSpecification={"InstanceId": instance_id, "ExcludeDataVolumeIds": [volumes["/dev/xvda"]]})
    assert excinfo.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert len(ec2.create_snapshots(InstanceSpecification={"InstanceId": instance_id})["Snapshots"]) == 3


def test_snapshots_carry_the_key_of_their_encrypted_volume(aws):
    """A snapshot of an encrypted volume is encrypted with the volume's key (DescribeSnapshots ``KmsKeyId``:
    "The Amazon Resource Name (ARN) of the KMS key that was used to protect the volume encryption key for the
    parent volume"), whatever form the key was given in; CreateSnapshots does the same for each volume."""
    ec2, kms = aws.client("ec2"), aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/volumes", TargetKeyId=key["KeyId"])
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", Encrypted=True, KmsKeyId="alias/volumes")["VolumeId"]
    single = ec2.create_snapshot(VolumeId=volume)
    assert single["KmsKeyId"] == key["Arn"]
    assert ec2.describe_snapshots(SnapshotIds=[single["SnapshotId"]])["Snapshots"][0]["KmsKeyId"] == key["Arn"]
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    made = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance["InstanceId"], "ExcludeBootVolume": True})["Snapshots"]
    assert ec2.describe_snapshots(SnapshotIds=[made[0]["SnapshotId"]])["Snapshots"][0]["KmsKeyId"] == key["Arn"]
    plain = ec2.create_snapshot(VolumeId=ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"])
    assert "KmsKeyId" not in plain and plain["Encrypted"] is False
