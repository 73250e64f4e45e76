# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed the local endpoint with a realistic small fleet, for the demo, the audit and tests.

Per region:

- instances ``web-1``, ``web-2`` (tag ``backup=daily``) and ``db-1`` (``backup=daily``,
  ``Daily_Gens=10``), each with a root and a data volume; the volumes carry the same tags;
- a standalone volume ``shared-data`` (``backup=daily``, ``Daily_Gens=5``) and an untagged
  volume ``scratch`` that no policy selects;
- one snapshot a day for ``days`` days of every ``backup=daily`` volume, made by the ``daily``
  policy (tags ``blockwise:policy=daily`` and a Name), back-dated to 02:00 UTC of each day;
- on ``web-1``'s data volume: one old snapshot tagged ``blockwise:protect``;
- ``legacy-*`` snapshots of ``shared-data`` made by an older tool (tag ``CreatedBy=ebs-snapper``);
- an AMI ``front-web-<date>`` registered from two of ``web-1``'s oldest policy snapshots (so prune
  must keep them) plus an ephemeral mapping, and an AMI made by CreateImage from ``db-1``, whose
  snapshots have no Name;
- a KMS key with alias ``alias/blockwise-demo``.
"""
from datetime import datetime, timedelta, timezone

DEFAULT_REGIONS = ("us-east-1", "eu-west-1")
POLICY = "daily"
KMS_ALIAS = "alias/blockwise-demo"
# How the seeded fleet is meant to be managed: the policy that made its snapshots, and the adoption of
# the older tool's snapshots (prune-only), in the shape of the snapshot_schedule role's policies.
DAILY_POLICY = {
    "name": POLICY, "target_tags": {"backup": "daily"}, "frequency": "1d",
    "retention": {"keep_daily": 7, "keep_weekly": 2, "minimum": 3}, "retention_tag": "Daily_Gens", "max_deletions": 500,
}
LEGACY_POLICY = {"name": "legacy-snapper", "snapshot": False, "prune_filters": {"tag:CreatedBy": "ebs-snapper"},
                 "retention": {"keep_within": "120 days", "minimum": 1}}
INSTANCES = (
    ("web-1", {"backup": "daily", "env": "prod", "app": "front-web"}),
    ("web-2", {"backup": "daily", "env": "prod", "app": "front-web"}),
    ("db-1", {"backup": "daily", "env": "prod", "app": "db", "Daily_Gens": "10"}),
)


def _tags(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _seed_region(aws, region, now, days, policy):
    ec2 = aws.client("ec2", region=region)
    kms = aws.client("kms", region=region)
    key = kms.create_key(Description="blockwise.ebs demo key")["KeyMetadata"]
    kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key["KeyId"])

    volumes = {}  # volume id -> (name, tags)
    instances = {}
    for name, tags in INSTANCES:
        instance = ec2.run_instances(
            ImageId="ami-12345678", MinCount=1, MaxCount=1, InstanceType="t3.micro",
            TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(dict(tags, Name=name))}],
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
                                 {"DeviceName": "/dev/xvdb", "Ebs": {"VolumeSize": 20}}],
        )["Instances"][0]
        instances[name] = instance["InstanceId"]
        for mapping in instance["BlockDeviceMappings"]:
            volume_id = mapping["Ebs"]["VolumeId"]
            suffix = "root" if mapping["DeviceName"] == "/dev/xvda" else "data"
            volume_tags = {k: v for k, v in tags.items() if k != "app"}
            volume_tags["Name"] = "{0}-{1}".format(name, suffix)
            ec2.create_tags(Resources=[volume_id], Tags=_tags(volume_tags))
            volumes[volume_id] = volume_tags
    zone = "{0}a".format(region)
    shared = ec2.create_volume(AvailabilityZone=zone, Size=50, TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(
        {"Name": "shared-data", "backup": "daily", "Daily_Gens": "5"})}])["VolumeId"]
    volumes[shared] = {"Name": "shared-data", "backup": "daily", "Daily_Gens": "5"}
    ec2.create_volume(AvailabilityZone=zone, Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": _tags({"Name": "scratch"})}])

    snapshots_by_volume = {volume_id: [] for volume_id in volumes}
    first_day = (now - timedelta(days=days)).replace(hour=2, minute=0, second=0, microsecond=0)
    for day in range(days):
        when = first_day + timedelta(days=day)
        for volume_id, tags in volumes.items():
            name = "{0}-{1}".format(tags["Name"], when.strftime("%Y-%m-%d"))
            snapshot_id = ec2.create_snapshot(VolumeId=volume_id, Description="{0} Snap".format(tags["Name"]), TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": _tags({"Name": name, "blockwise:policy": policy})}])["SnapshotId"]
            aws.backdate_snapshot(snapshot_id, when, region=region)
            snapshots_by_volume[volume_id].append(snapshot_id)

    web1_data = next(v for v, t in volumes.items() if t["Name"] == "web-1-data")
    web1_root = next(v for v, t in volumes.items() if t["Name"] == "web-1-root")
    protected = ec2.create_snapshot(VolumeId=web1_data, TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(
        {"Name": "web-1-data-before-migration", "blockwise:policy": policy, "blockwise:protect": "migration"})}])["SnapshotId"]
    aws.backdate_snapshot(protected, first_day - timedelta(days=30), region=region)
    legacy = []
    for age in (200, 150, 100):
        snapshot_id = ec2.create_snapshot(VolumeId=shared, TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(
            {"Name": "legacy-shared-data", "CreatedBy": "ebs-snapper"})}])["SnapshotId"]
        aws.backdate_snapshot(snapshot_id, now - timedelta(days=age), region=region)
        legacy.append(snapshot_id)

    image_name = "front-web-{0}".format(first_day.strftime("%Y%m%d"))
    ami_snapshots = [snapshots_by_volume[web1_root][0], snapshots_by_volume[web1_data][0]]
    front_web = ec2.register_image(
        Name=image_name, RootDeviceName="/dev/xvda", Architecture="x86_64", VirtualizationType="hvm",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": ami_snapshots[0]}},
            {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": ami_snapshots[1]}},
            {"DeviceName": "/dev/xvdc", "VirtualName": "ephemeral0"},
        ],
    )["ImageId"]
    ec2.create_tags(Resources=[front_web], Tags=_tags({"app": "front-web", "team": "web"}))
    db_image = ec2.create_image(InstanceId=instances["db-1"], Name="db-golden-{0}".format(now.strftime("%Y%m%d")))["ImageId"]
    return {
        "instances": instances,
        "volumes": sorted(volumes),
        "policy_snapshots": sum(len(s) for s in snapshots_by_volume.values()) + 1,
        "protected_snapshot": protected,
        "legacy_snapshots": legacy,
        "images": {"front-web": front_web, "db-golden": db_image},
        "ami_snapshots": ami_snapshots,
        "kms_key_arn": key["Arn"],
    }


def seed_fleet(aws, regions=DEFAULT_REGIONS, now=None, days=90, policy=POLICY):
    """Seed every region; returns a per-region summary of what was made (ids)."""
    now = now or datetime.now(timezone.utc)
    return {region: _seed_region(aws, region, now, days, policy) for region in regions}
