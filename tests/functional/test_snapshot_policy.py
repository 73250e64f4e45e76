# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_policy through ansible-playbook against the local endpoint, with back-dated snapshots."""
from datetime import datetime, timedelta, timezone

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

MODULE = "blockwise.ebs.ebs_snapshot_policy"
POLICY_TAG = "blockwise:policy"
AZ = "us-east-1a"
DESCRIBE = ("ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeImages")


def task(title="policy", **params):
    params.setdefault("name", "daily")
    return {"name": title, MODULE: params, "register": "out", "ignore_errors": True}


def now():
    return datetime.now(timezone.utc)


def volume(ec2, tags=None, size=1):
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_volume(Size=size, AvailabilityZone=AZ, TagSpecifications=spec)["VolumeId"]


def snapshot(aws, ec2, volume_id, age, policy="daily", state=None, tags=None):
    """A snapshot of ``volume_id`` made ``age`` ago by ``policy`` (None: untagged)."""
    all_tags = dict(tags or {})
    if policy:
        all_tags[POLICY_TAG] = policy
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}] if all_tags else []
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]
    aws.backdate_snapshot(snapshot_id, now() - age)
    if state:
        ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].snapshots[snapshot_id].status = state
    return snapshot_id


def policy_snapshots(ec2, policy="daily"):
    items = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:" + POLICY_TAG, "Values": [policy]}])["Snapshots"]
    return {item["SnapshotId"]: item for item in items}


def tags_of(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}


MARKERS = ("blockwise:run", "blockwise:due-after")


def without_markers(tags):
    """The tags without the run and period markers every policy snapshot carries."""
    return {key: value for key, value in tags.items() if key not in MARKERS}


def instance(ec2, name, data_volumes=2, tags=None):
    """A running instance with a root volume (/dev/sda1) and ``data_volumes`` attached data volumes."""
    image = ec2.register_image(Name="img-" + name, RootDeviceName="/dev/sda1",
                               BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    all_tags = dict(tags or {}, Name=name)
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": AZ}, TagSpecifications=spec)["Instances"][0]
    instance_id = inst["InstanceId"]
    root = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    data = []
    for index in range(data_volumes):
        volume_id = volume(ec2, {"Name": "%s-data%d" % (name, index), "team": "db"})
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sd" + "fghijk"[index])
        data.append(volume_id)
    return instance_id, root, data


def describe_calls(aws):
    counts = aws.counters()
    return {key: counts[key] for key in DESCRIBE if key in counts}


# --------------------------------------------------------------------------------------- due / idempotence


def test_creates_exactly_the_due_snapshots_then_nothing(aws, playbook):
    ec2 = aws.client("ec2")
    fresh = volume(ec2, {"backup": "yes", "Name": "fresh"})
    stale = volume(ec2, {"backup": "yes", "Name": "stale"})
    recent = volume(ec2, {"backup": "yes", "Name": "recent"})
    in_flight = volume(ec2, {"backup": "yes", "Name": "in-flight"})
    failed = volume(ec2, {"backup": "yes", "Name": "failed"})
    other = volume(ec2, {"backup": "no"})
    snapshot(aws, ec2, fresh, timedelta(hours=1), policy="another-policy")  # another policy's snapshot does not count
    snapshot(aws, ec2, stale, timedelta(hours=13))
    recent_snap = snapshot(aws, ec2, recent, timedelta(hours=2))
    pending_snap = snapshot(aws, ec2, in_flight, timedelta(hours=20), state="pending")  # in flight: not due
    snapshot(aws, ec2, failed, timedelta(hours=1), state="error")  # an error snapshot does not count
    snapshot(aws, ec2, other, timedelta(days=3))
    before = set(policy_snapshots(ec2))

    aws.reset_counters()
    params = dict(volume_filters={"tag:backup": "yes"}, frequency="12 hours", name_template="{volume_name} Snap",
                  description_template="{policy} of {volume_id}", tags={"CostCenter": "42"})
    run = playbook([task(**params)])
    res = run.result("policy")
    assert run.rc == 0, run
    assert res["changed"] is True
    assert sorted(item["volume_id"] for item in res["created"]) == sorted([fresh, stale, failed])
    assert sorted(res["matched"]) == sorted([fresh, stale, recent, in_flight, failed])
    not_due = {item["volume_id"]: item for item in res["not_due"]}
    assert set(not_due) == {recent, in_flight}
    assert not_due[recent]["latest_snapshot_id"] == recent_snap
    assert not_due[in_flight]["latest_snapshot_id"] == pending_snap and not_due[in_flight]["latest_state"] == "pending"
    assert aws.mutating_calls() == {"ec2:CreateSnapshot": 3}  # tags travel with the create call: no CreateTags

    after = policy_snapshots(ec2)
    new = {sid: item for sid, item in after.items() if sid not in before}
    assert sorted(item["VolumeId"] for item in new.values()) == sorted([fresh, stale, failed])
    by_volume = {item["VolumeId"]: item for item in new.values()}
    assert without_markers(tags_of(by_volume[stale])) == {"Name": "stale Snap", POLICY_TAG: "daily", "CostCenter": "42"}
    assert len({tags_of(item)["blockwise:run"] for item in new.values()}) == 1  # one run
    assert tags_of(by_volume[fresh])["blockwise:due-after"] == "none"  # its first snapshot
    assert by_volume[stale]["Description"] == "daily of " + stale
    created = {item["volume_id"]: item for item in res["created"]}
    assert created[stale]["snapshot_id"] == by_volume[stale]["SnapshotId"]
    assert created[stale]["name"] == "stale Snap"

    aws.reset_counters()
    again = playbook([task(**params)])
    res = again.result("policy")
    assert again.rc == 0, again
    assert res["changed"] is False and res["created"] == []
    assert len(res["not_due"]) == 5
    assert aws.mutating_calls() == {}


def test_check_mode_shows_what_would_be_created_and_writes_nothing(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes", "Name": "db", "Owner": "alice", "aws:cloudformation:stack-name": "x"})
    old = snapshot(aws, ec2, vol, timedelta(days=2))
    aws.reset_counters()
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d", copy_tags=True)], check=True, diff=True)
    res = run.result("policy")
    assert run.rc == 0, run
    assert res["changed"] is True
    [item] = res["created"]
    assert item["volume_id"] == vol and item["snapshot_id"] is None
    assert item["name"].startswith("daily-%s-" % vol)
    assert item["tags"]["Owner"] == "alice" and item["tags"][POLICY_TAG] == "daily"
    assert not any(key.startswith("aws:") for key in item["tags"])
    assert res["diff"]["before"][vol]["latest_snapshot_id"] == old
    assert res["diff"]["after"][vol]["latest_snapshot_id"] == "(new snapshot)"
    assert aws.mutating_calls() == {}
    assert list(policy_snapshots(ec2)) == [old]


def test_grace_tolerates_a_run_that_starts_a_little_early(aws, playbook):
    ec2 = aws.client("ec2")
    early = volume(ec2, {"backup": "yes"})
    too_early = volume(ec2, {"backup": "yes"})
    snapshot(aws, ec2, early, timedelta(hours=11, minutes=57))  # within the default 5 minutes of grace
    snapshot(aws, ec2, too_early, timedelta(hours=11, minutes=50))
    run = playbook([
        task("default grace", volume_filters={"tag:backup": "yes"}, frequency="12 hours"),
    ], check=True)
    res = run.result("default grace")
    assert [item["volume_id"] for item in res["created"]] == [early]
    assert [item["volume_id"] for item in res["not_due"]] == [too_early]
    run = playbook([
        task("no grace", volume_filters={"tag:backup": "yes"}, frequency="12 hours", grace="0"),
        task("wide grace", volume_filters={"tag:backup": "yes"}, frequency="12 hours", grace="15m"),
    ], check=True)
    assert run.result("no grace")["created"] == []
    assert len(run.result("wide grace")["created"]) == 2


def test_cron_frequency(aws, playbook):
    ec2 = aws.client("ec2")
    due = volume(ec2, {"backup": "yes"})
    taken = volume(ec2, {"backup": "yes"})
    snapshot(aws, ec2, due, timedelta(hours=2))  # before the last hourly fire time
    snapshot(aws, ec2, taken, timedelta(seconds=5))
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="0 * * * *", timezone="Asia/Kolkata")])
    res = run.result("policy")
    assert run.rc == 0, run
    assert [item["volume_id"] for item in res["created"]] == [due]
    [not_due] = res["not_due"]
    next_due = datetime.fromisoformat(not_due["next_due"])
    assert next_due > now() and next_due.astimezone(timezone(timedelta(hours=5, minutes=30))).minute == 0


# --------------------------------------------------------------------------------------- instances


def test_instance_selection_names_from_instance_and_device(aws, playbook):
    ec2 = aws.client("ec2")
    instance_id, root, data = instance(ec2, "web-1", data_volumes=2, tags={"Environment": "prod", "Owner": "ops"})
    instance(ec2, "dev-1", data_volumes=1, tags={"Environment": "dev"})
    aws.reset_counters()
    run = playbook([task(instance_filters={"tag:Environment": "prod"}, exclude_boot_volume=True, frequency="1d",
                         name_template="{instance_name}_{device}_{volume_id}", copy_tags=True)])
    res = run.result("policy")
    assert run.rc == 0, run
    created = {item["volume_id"]: item for item in res["created"]}
    assert set(created) == set(data)
    assert created[data[0]]["name"] == "web-1_/dev/sdf_" + data[0]
    assert created[data[0]]["instance_id"] == instance_id and created[data[0]]["device"] == "/dev/sdf"
    assert res["excluded"] == [{"volume_id": root, "reason": "boot-volume"}]
    snaps = {item["VolumeId"]: without_markers(tags_of(item)) for item in policy_snapshots(ec2).values()}
    # instance tags, then volume tags (volume wins on Name but Name comes from the template)
    assert snaps[data[1]] == {"Environment": "prod", "Owner": "ops", "team": "db", "Name": "web-1_/dev/sdg_" + data[1], POLICY_TAG: "daily"}
    assert aws.mutating_calls() == {"ec2:CreateSnapshot": 2}


def test_crash_consistent_set_per_instance(aws, playbook):
    ec2 = aws.client("ec2")
    instance_id, root, data = instance(ec2, "db-1", data_volumes=2, tags={"Environment": "prod"})
    other_id, other_root, other_data = instance(ec2, "db-2", data_volumes=1, tags={"Environment": "prod"})
    params = dict(name="sets", instance_filters={"tag:Environment": "prod"}, crash_consistent=True, exclude_boot_volume=True,
                  frequency="1d", name_template="{instance_name}_{date}", copy_tags=True)
    snapshot(aws, ec2, other_data[0], timedelta(minutes=30), policy="sets")  # db-2 is not due
    aws.reset_counters()
    run = playbook([task(**params)], diff=True)
    res = run.result("policy")
    assert run.rc == 0, run
    assert sorted(item["volume_id"] for item in res["created"]) == sorted(data)
    assert {item["instance_id"] for item in res["created"]} == {instance_id}
    assert all(item["kind"] == "instance" for item in res["created"])
    assert aws.mutating_calls() == {"ec2:CreateSnapshots": 1}
    snaps = [item for item in policy_snapshots(ec2, "sets").values() if item["VolumeId"] in data]
    assert len(snaps) == 2
    assert {tags_of(item)["Name"] for item in snaps} == {"db-1_" + now().strftime("%Y-%m-%d")}
    assert all(tags_of(item)["Environment"] == "prod" for item in snaps)
    assert [item["volume_id"] for item in res["not_due"]] == [other_data[0]]

    aws.reset_counters()
    again = playbook([task(**params)])
    assert again.result("policy")["changed"] is False
    assert aws.mutating_calls() == {}


def test_crash_consistent_set_leaves_out_excluded_data_volumes(aws, playbook):
    ec2 = aws.client("ec2")
    dummy, root, data = instance(ec2, "db-3", data_volumes=3, tags={"Environment": "prod"})
    run = playbook([task(name="sets", instance_filters={"tag:Environment": "prod"}, crash_consistent=True, frequency="1d",
                         exclude=[data[2]])])
    assert run.rc == 0, run
    made = sorted(item["VolumeId"] for item in policy_snapshots(ec2, "sets").values())
    assert made == sorted([root, data[0], data[1]])


# --------------------------------------------------------------------------------------- scale and faults


def test_one_region_pass_whatever_the_number_of_volumes(aws, playbook):
    ec2 = aws.client("ec2")
    volumes = [volume(ec2, {"backup": "yes"}) for dummy in range(40)]
    for index, vol in enumerate(volumes):
        for age_days in (1, 2, 3):
            snapshot(aws, ec2, vol, timedelta(days=age_days, hours=index % 2 * 22))
    aws.reset_counters()
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d")], check=True)
    res = run.result("policy")
    assert run.rc == 0, run
    assert len(res["matched"]) == 40
    assert describe_calls(aws) == {"ec2:DescribeVolumes": 1, "ec2:DescribeSnapshots": 1}


def test_converges_under_throttling_and_5xx(aws, playbook):
    ec2 = aws.client("ec2")
    volumes = [volume(ec2, {"backup": "yes"}) for dummy in range(8)]
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, seed=11)
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d", max_concurrency=8)])
    aws.clear_faults()
    assert run.rc == 0, run
    assert len(run.result("policy")["created"]) == 8
    snaps = policy_snapshots(ec2)
    assert sorted(item["VolumeId"] for item in snaps.values()) == sorted(volumes)
    again = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d")])
    assert again.result("policy")["changed"] is False


def test_create_error_is_reported_and_the_task_fails(aws, playbook):
    ec2 = aws.client("ec2")
    volumes = [volume(ec2, {"backup": "yes"}) for dummy in range(3)]
    aws.inject_error("CreateSnapshot", status=400, code="SnapshotCreationPerVolumeRateExceeded",
                     message="The maximum per volume CreateSnapshot request rate has been exceeded.", count=1)
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d", max_concurrency=1)])
    res = run.result("policy")
    assert res["failed"] is True
    assert "1 of 3 snapshot requests failed" in res["msg"]
    assert len(res["created"]) == 2 and len(res["errors"]) == 1
    assert "SnapshotCreationPerVolumeRateExceeded" in res["errors"][0]["error"]
    assert len(policy_snapshots(ec2)) == 2
    assert {item["volume_id"] for item in res["created"]} | set(res["errors"][0]["volume_ids"]) == set(volumes)


def test_wait_until_completed(aws, playbook):
    ec2 = aws.client("ec2")
    volume(ec2, {"backup": "yes"})
    run = playbook([task(volume_filters={"tag:backup": "yes"}, frequency="1d", wait=True, wait_timeout=30)])
    res = run.result("policy")
    assert run.rc == 0, run
    assert [item["state"] for item in res["created"]] == ["completed"]


# --------------------------------------------------------------------------------------- bad input

BAD_INPUT = [
    ({"frequency": "1d"}, "empty selection"),
    ({"frequency": "1d", "all_volumes": True, "volume_filters": {"tag:backup": "yes"}}, "all_volumes=true selects every volume"),
    ({"frequency": "every tuesday", "all_volumes": True}, "frequency 'every tuesday' is neither a duration"),
    ({"frequency": "0 25 * * *", "all_volumes": True}, "invalid cron expression '0 25 * * *'"),
    ({"frequency": "0 2 * * *", "timezone": "Mars/Olympus", "all_volumes": True}, "timezone: unknown time zone 'Mars/Olympus'"),
    ({"frequency": "1d", "grace": "2d", "all_volumes": True}, "grace='2d' must be shorter than frequency='1d'"),
    ({"frequency": "1d", "all_volumes": True, "name_template": "{volume}-{date}"}, "name_template: unknown variable 'volume'"),
    ({"frequency": "1d", "instance_filters": {"tag:a": "b"}, "crash_consistent": True, "name_template": "{device}"},
     "only the set's variables"),
    ({"frequency": "1d", "volume_filters": {"tag:a": "b"}, "crash_consistent": True},
     "crash_consistent is True but all of the following are missing: instance_filters"),
    ({"frequency": "1d", "volume_ids": ["vol-0123456789abcdef0"]}, "volume_ids: no such volume in this region: vol-0123456789abcdef0"),
    ({"frequency": "1d", "all_volumes": True, "tags": {"Name": "x"}}, "tags: the key 'Name' is reserved"),
    ({"frequency": "1d", "all_volumes": True, "max_concurrency": 0}, "max_concurrency must be between 1 and 64"),
]


def test_bad_input_fails_naming_the_option_without_writes(aws, playbook):
    ec2 = aws.client("ec2")
    volume(ec2, {"backup": "yes"})
    aws.reset_counters()
    tasks = [task("bad %d" % index, **params) for index, (params, dummy) in enumerate(BAD_INPUT)]
    run = playbook(tasks)
    for index, (params, fragment) in enumerate(BAD_INPUT):
        res = run.result("bad %d" % index)
        assert res.get("failed") is True, (params, res)
        assert fragment in res["msg"], (params, res["msg"])
    assert aws.mutating_calls() == {}
    assert policy_snapshots(ec2) == {}
