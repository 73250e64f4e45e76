# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the ebs_snapshot_policy planner: options, due volumes, what exactly is created."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications
from ansible_collections.blockwise.ebs.plugins.module_utils import policy
from ansible_collections.blockwise.ebs.plugins.module_utils.policy import POLICY_TAG, PolicyError

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def params(**overrides):
    base = dict(
        name="daily", volume_filters={"tag:backup": "yes"}, instance_filters=None, volume_ids=None, exclude=[], all_volumes=False,
        frequency="1d", timezone="UTC", grace=None, crash_consistent=False, exclude_boot_volume=False, name_template=None,
        description_template=None, copy_tags=False, tags={}, wait=False, wait_timeout=900, max_concurrency=4,
    )
    base.update(overrides)
    return base


def options(**overrides):
    return policy.options_from_params(params(**overrides))


def vol(volume_id, name=None, instance_id=None, device=None, tags=None):
    all_tags = dict(tags or {})
    if name:
        all_tags["Name"] = name
    item = {"VolumeId": volume_id, "tags": all_tags, "Attachments": []}
    if instance_id:
        item["Attachments"] = [{"InstanceId": instance_id, "Device": device, "State": "attached"}]
    return item


def inst(instance_id, name=None, root="/dev/xvda", tags=None):
    all_tags = dict(tags or {})
    if name:
        all_tags["Name"] = name
    return {"InstanceId": instance_id, "RootDeviceName": root, "tags": all_tags}


def snap(snapshot_id, volume_id, age, state="completed", name="daily"):
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "StartTime": NOW - age, "State": state,
            "tags": {POLICY_TAG: name} if name else {}}


def created_volumes(the_plan):
    return sorted(volume_id for action in the_plan.actions for volume_id in action["volume_ids"])


# --- options ------------------------------------------------------------------------------------


def test_options_defaults():
    opts = options()
    assert opts.name == "daily" and opts.frequency.interval == timedelta(days=1)
    assert opts.name_template == policy.DEFAULT_NAME_TEMPLATE
    assert opts.description_template == policy.DEFAULT_DESCRIPTION_TEMPLATE
    assert opts.grace is None and opts.grace_at(NOW) == timedelta(minutes=5)
    assert opts.snapshot_filters == {"tag:blockwise:policy": "daily"}


def test_options_crash_consistent_defaults_use_set_variables():
    opts = options(volume_filters=None, instance_filters={"tag:a": "b"}, crash_consistent=True)
    assert opts.name_template == policy.DEFAULT_SET_NAME_TEMPLATE
    assert opts.description_template == policy.DEFAULT_SET_DESCRIPTION_TEMPLATE


def test_options_grace_values():
    assert options(grace="0").grace == timedelta(0)
    assert options(grace="0s").grace == timedelta(0)
    assert options(grace="10m").grace == timedelta(minutes=10)
    assert options(frequency="30m").grace_at(NOW) == timedelta(minutes=3)
    assert options(frequency="0 2 * * *").grace_at(NOW) == timedelta(minutes=5)


def test_options_numeric_tag_values_become_strings():
    assert options(tags={"Daily_Gens": 7, "ratio": 1.5}).tags == {"Daily_Gens": "7", "ratio": "1.5"}


@pytest.mark.parametrize("overrides, message", [
    ({"volume_filters": None}, "empty selection"),
    ({"volume_filters": {}, "volume_ids": []}, "empty selection"),
    ({"all_volumes": True}, "all_volumes=true selects every volume of the region and cannot be combined with volume_filters"),
    ({"name": " "}, "name must be a non-empty string"),
    ({"name": "x" * 300}, "name: value"),
    ({"frequency": "often"}, "frequency: frequency 'often' is neither a duration"),
    ({"frequency": "1 year"}, "months and years"),
    ({"frequency": "0 0 30 2 *"}, "never fires"),
    ({"frequency": "0 2 * * *", "timezone": "Nowhere/Land"}, "timezone: unknown time zone 'Nowhere/Land'"),
    ({"grace": "1d"}, "grace='1d' must be shorter than frequency='1d'"),
    ({"grace": "-5m"}, "grace:"),
    ({"name_template": "{volume}"}, "name_template: unknown variable 'volume'"),
    ({"name_template": "{snapshot_id}"}, "name_template: unknown variable 'snapshot_id'"),
    ({"description_template": "{0}"}, "description_template"),
    ({"volume_filters": None, "instance_filters": {"a": "b"}, "crash_consistent": True, "name_template": "{volume_id}"},
     "only the set's variables"),
    ({"crash_consistent": True}, "crash_consistent=true needs instance_filters"),
    ({"tags": {"Name": "x"}}, "tags: the key 'Name' is reserved"),
    ({"tags": {POLICY_TAG: "x"}}, "tags: the key 'blockwise:policy' is reserved"),
    # Snapshots with these keys never count for their volume: the volume would be due at every run.
    ({"tags": {"blockwise:lineage": "disk-1"}}, "tags: the key 'blockwise:lineage' is reserved"),
    ({"tags": {"blockwise:source-snapshot": "snap-1"}}, "tags: the key 'blockwise:source-snapshot' is reserved"),
    ({"tags": {"aws:x": "y"}}, "reserved prefix 'aws:'"),
    ({"tags": {"k": ["list"]}}, "tags.k: tag values must be strings"),
    ({"volume_ids": ["snap-1"]}, "volume_ids: 'snap-1' is not a volume id (vol-...)"),
    ({"exclude": ["web"]}, "exclude: 'web' is not a volume id (vol-...) or instance id (i-...)"),
    ({"max_concurrency": 0}, "max_concurrency must be between 1 and 64, got 0"),
    ({"max_concurrency": 65}, "max_concurrency must be between 1 and 64, got 65"),
    ({"wait_timeout": 0}, "wait_timeout must be at least 1 second"),
    ({"frequency": "99999999 weeks"}, "frequency: duration '99999999 weeks' is too long"),
    ({"grace": "99999999 weeks"}, "grace: duration '99999999 weeks' is too long"),
    ({"frequency": "0 2 * * *", "grace": "99999999 weeks"}, "grace: duration '99999999 weeks' is too long"),
    ({"volume_filters": {"tag-key": []}}, "volume_filters['tag-key'] must be a value or a non-empty list of values, got []"),
    ({"volume_filters": None, "instance_filters": {"tag:Role": []}}, "instance_filters['tag:Role'] must be a value"),
    ({"volume_filters": {"tag:backup": "yes", "tag-key": [None]}}, "volume_filters['tag-key']"),
    ({"volume_filters": "tag:backup=yes"}, "volume_filters must be a dictionary of EC2 filters"),
])
def test_options_errors_name_the_option(overrides, message):
    with pytest.raises(PolicyError) as caught:
        options(**overrides)
    assert message in str(caught.value)


def test_missing_ids_keeps_request_order():
    assert policy.missing_ids(["vol-3", "vol-1", "vol-3", "vol-2"], ["vol-1"]) == ["vol-3", "vol-2"]


def test_attachment_and_unknown_instances():
    volumes = [vol("vol-1", instance_id="i-2", device="/dev/sdf"), vol("vol-2"), vol("vol-3", instance_id="i-1", device="/dev/sda1")]
    volumes[0]["Attachments"].append({"InstanceId": "i-9", "Device": "/dev/sdz", "State": "detached"})
    assert policy.attachment_of(volumes[0]) == ("i-2", "/dev/sdf")
    assert policy.attachment_of(volumes[1]) == (None, None)
    assert policy.unknown_instance_ids(volumes, [inst("i-1")]) == ["i-2"]


# --- due -----------------------------------------------------------------------------------------


def test_plan_due_not_due_in_flight_and_error_snapshots():
    volumes = [vol("vol-%d" % i) for i in range(1, 7)]
    snapshots = [
        snap("snap-2", "vol-2", timedelta(days=2)),  # due
        snap("snap-3", "vol-3", timedelta(hours=3)),  # recent: not due
        snap("snap-4", "vol-4", timedelta(days=3), state="pending"),  # in flight however old
        snap("snap-5", "vol-5", timedelta(hours=1), state="error"),  # does not count: due
        snap("snap-6", "vol-6", timedelta(hours=1), name="other"),  # another policy: due
        snap("snap-3b", "vol-3", timedelta(days=5)),
    ]
    the_plan = policy.plan(options(), volumes, [], snapshots, NOW)
    assert the_plan.matched == ["vol-1", "vol-2", "vol-3", "vol-4", "vol-5", "vol-6"]
    assert created_volumes(the_plan) == ["vol-1", "vol-2", "vol-5", "vol-6"]
    not_due = {item["volume_id"]: item for item in the_plan.not_due}
    assert not_due["vol-3"] == {
        "volume_id": "vol-3", "instance_id": None, "latest_snapshot_id": "snap-3",
        "latest_start_time": "2024-05-01T09:00:00+00:00", "latest_state": "completed", "in_flight": False,
        "next_due": "2024-05-02T09:00:00+00:00",
    }
    assert not_due["vol-4"]["in_flight"] is True and not_due["vol-4"]["next_due"] == NOW.isoformat()
    assert the_plan.changed


def test_not_due_only_rests_on_a_snapshot_of_the_volume_that_counts():
    volumes = [vol("vol-%d" % i) for i in range(1, 8)]
    copy_tags = {POLICY_TAG: "daily", "blockwise:source-snapshot": "snap-src", "blockwise:lineage": "vol-5"}
    snapshots = [
        snap("snap-1", "vol-1", timedelta(hours=1), state="recoverable"),  # deleted, in the Recycle Bin
        snap("snap-2", "vol-2", timedelta(hours=1), state="recovering"),  # being restored from it
        snap("snap-3", "vol-3", timedelta(hours=1), state="some-new-state"),  # unknown states never count
        dict(snap("snap-4", "vol-4", timedelta(hours=1)), tags={POLICY_TAG: "daily", "blockwise:lineage": "disk-4"}),
        dict(snap("snap-5", "vol-5", timedelta(hours=1)), tags=copy_tags),  # a copy (moto keeps the source's volume id)
        snap("snap-6", "vol-6", timedelta(hours=1)),  # counts
        snap("snap-7", "vol-7", timedelta(hours=1), state="pending"),  # in flight: counts
    ]
    the_plan = policy.plan(options(), volumes, [], snapshots, NOW)
    assert created_volumes(the_plan) == ["vol-1", "vol-2", "vol-3", "vol-4", "vol-5"]
    assert {item["volume_id"]: item["latest_snapshot_id"] for item in the_plan.not_due} == {"vol-6": "snap-6", "vol-7": "snap-7"}
    assert policy.pending_volumes(snapshots, "daily") == {"vol-7": ["snap-7"]}
    # The diff's "before" shows only a snapshot that counts.
    assert "vol-1" not in the_plan.latest and the_plan.latest["vol-6"]["SnapshotId"] == "snap-6"
    assert policy.counts_for_volume(snapshots[5], "daily") == "vol-6"
    assert policy.counts_for_volume(snapshots[5], "weekly") is None
    assert policy.counts_for_volume(snap("snap-x", "vol-ffffffff", timedelta(hours=1)), "daily") is None


def test_plan_grace_and_second_run_creates_nothing():
    volumes = [vol("vol-1"), vol("vol-2")]
    snapshots = [snap("snap-1", "vol-1", timedelta(hours=23, minutes=57)), snap("snap-2", "vol-2", timedelta(hours=23, minutes=50))]
    the_plan = policy.plan(options(), volumes, [], snapshots, NOW)
    assert created_volumes(the_plan) == ["vol-1"]
    assert created_volumes(policy.plan(options(grace="0"), volumes, [], snapshots, NOW)) == []
    # after creating, the next run finds everything taken
    snapshots += [snap("snap-new-1", "vol-1", timedelta(0)), snap("snap-new-2", "vol-2", timedelta(0))]
    assert not policy.plan(options(), volumes, [], snapshots, NOW + timedelta(seconds=30)).changed


def test_twelve_hour_job_with_jitter_never_skips_a_run():
    opts = options(frequency="12 hours")
    snapshots = []
    runs = [timedelta(hours=12 * k, seconds=(-40 if k % 2 else 35)) for k in range(20)]
    for index, offset in enumerate(runs):
        when = NOW + offset
        the_plan = policy.plan(opts, [vol("vol-1")], [], snapshots, when)
        assert created_volumes(the_plan) == ["vol-1"], index
        snapshots.append({"SnapshotId": "snap-%d" % index, "VolumeId": "vol-1", "StartTime": when, "State": "completed",
                          "tags": {POLICY_TAG: "daily"}})


def test_cron_policy_in_a_time_zone():
    opts = options(frequency="0 2 * * *", timezone="Europe/Berlin")  # 02:00 CEST = 00:00 UTC
    volumes = [vol("vol-1"), vol("vol-2")]
    snapshots = [snap("snap-1", "vol-1", timedelta(hours=12, minutes=30)), snap("snap-2", "vol-2", timedelta(hours=11, minutes=59))]
    the_plan = policy.plan(opts, volumes, [], snapshots, NOW)
    assert created_volumes(the_plan) == ["vol-1"]
    assert the_plan.not_due[0]["next_due"] == "2024-05-02T00:00:00+00:00"


# --- selection ---------------------------------------------------------------------------------


def test_exclude_volumes_instances_and_boot_volumes():
    instances = [inst("i-1", "web"), inst("i-2", "db")]
    volumes = [
        vol("vol-1", instance_id="i-1", device="/dev/xvda"),
        vol("vol-2", instance_id="i-1", device="/dev/sdf"),
        vol("vol-3", instance_id="i-2", device="/dev/sdf"),
        vol("vol-4"),
        vol("vol-4"),  # read twice (two selectors): counted once
    ]
    the_plan = policy.plan(options(exclude=["i-2", "vol-4"], exclude_boot_volume=True), volumes, instances, [], NOW)
    assert the_plan.matched == ["vol-2"]
    assert the_plan.excluded == [
        {"volume_id": "vol-1", "reason": "boot-volume"},
        {"volume_id": "vol-3", "reason": "exclude:i-2"},
        {"volume_id": "vol-4", "reason": "exclude"},
    ]


def test_names_descriptions_and_tags_of_a_volume_snapshot():
    instances = [inst("i-1", "web-1", tags={"Environment": "prod", "Owner": "ops", "aws:autoscaling:groupName": "g"})]
    volumes = [
        vol("vol-1", "data", instance_id="i-1", device="/dev/sdf",
            tags={"Owner": "dba", "blockwise:protect": "yes", "aws:cloudformation:stack-id": "s"}),
        vol("vol-2"),
    ]
    opts = options(name_template="{instance_name}_{volume_id}_daily", description_template="{volume_name} Snap {date}",
                   copy_tags=True, tags={"CostCenter": "7"})
    the_plan = policy.plan(opts, volumes, instances, [], NOW, selected_instance_ids=["i-1"])
    first, second = the_plan.actions
    assert first["name"] == "web-1_vol-1_daily"
    assert first["description"] == "data Snap 2024-05-01"
    assert first["tags"] == {"Environment": "prod", "Owner": "dba", "Name": "web-1_vol-1_daily", "CostCenter": "7", POLICY_TAG: "daily",
                             policy.PERIOD_TAG: policy.NO_PREVIOUS}
    assert first["devices"] == {"vol-1": "/dev/sdf"} and first["instance_id"] == "i-1"
    # unattached, unnamed volume: empty variables render as ''
    assert second["name"] == "_vol-2_daily" and second["description"] == " Snap 2024-05-01"
    assert second["instance_id"] is None


def test_instance_tags_only_for_instances_selected_by_instance_filters():
    instances = [inst("i-1", "web-1", tags={"Environment": "prod"})]
    volumes = [vol("vol-1", instance_id="i-1", device="/dev/sdf")]
    the_plan = policy.plan(options(copy_tags=True), volumes, instances, [], NOW, selected_instance_ids=[])
    assert "Environment" not in the_plan.actions[0]["tags"]


def test_default_name_and_empty_name_template():
    the_plan = policy.plan(options(), [vol("vol-1")], [], [], NOW)
    assert the_plan.actions[0]["name"] == "daily-vol-1-20240501T120000Z"
    the_plan = policy.plan(options(name_template=""), [vol("vol-1")], [], [], NOW)
    assert "Name" not in the_plan.actions[0]["tags"]


def test_rendered_values_are_checked():
    with pytest.raises(PolicyError, match="description_template renders 300 characters for vol-1"):
        policy.plan(options(description_template="{volume_name}"), [vol("vol-1", "x" * 300)], [], [], NOW)
    with pytest.raises(PolicyError, match="name_template \\(rendered for vol-1\\)"):
        policy.plan(options(name_template="{volume_name}"), [vol("vol-1", "x" * 300)], [], [], NOW)
    many = {"k%d" % i: "v" for i in range(60)}
    with pytest.raises(PolicyError, match="tags of the snapshot of vol-1: 62 tags; EC2 allows at most 50"):
        policy.plan(options(copy_tags=True), [vol("vol-1", tags=many)], [], [], NOW)


# --- crash-consistent sets -----------------------------------------------------------------------


def crash_fixture():
    instances = [inst("i-1", "db-1", root="/dev/xvda", tags={"Environment": "prod"}), inst("i-2", "db-2")]
    volumes = [
        vol("vol-10", instance_id="i-1", device="/dev/xvda"),
        vol("vol-11", instance_id="i-1", device="/dev/sdf"),
        vol("vol-12", instance_id="i-1", device="/dev/sdg"),
        vol("vol-13", instance_id="i-1", device="/dev/sdh"),
        vol("vol-20", instance_id="i-2", device="/dev/sdf"),
        vol("vol-30"),  # selected by volume_filters too: a single-volume snapshot
    ]
    return instances, volumes


def crash_options(**overrides):
    return options(volume_filters={"tag:x": "y"}, instance_filters={"tag:Environment": "prod"}, crash_consistent=True, **overrides)


def test_crash_consistent_one_set_per_instance_with_exclusions():
    instances, volumes = crash_fixture()
    snapshots = [
        snap("snap-11", "vol-11", timedelta(days=2)),  # due: the set of i-1 is due
        snap("snap-12", "vol-12", timedelta(hours=1)),  # not due, but taken with its set
        snap("snap-20", "vol-20", timedelta(hours=1)),  # i-2 not due
    ]
    opts = crash_options(exclude=["vol-13"], exclude_boot_volume=True, copy_tags=True, name_template="{instance_name}_{date}")
    the_plan = policy.plan(opts, volumes, instances, snapshots, NOW, selected_instance_ids=["i-1", "i-2"])
    sets = [action for action in the_plan.actions if action["kind"] == policy.INSTANCE]
    singles = [action for action in the_plan.actions if action["kind"] == policy.VOLUME]
    assert len(sets) == 1
    assert sets[0]["instance_id"] == "i-1" and sets[0]["volume_ids"] == ["vol-11", "vol-12"]
    assert sets[0]["exclude_boot_volume"] is True and sets[0]["exclude_data_volume_ids"] == ["vol-13"]
    assert sets[0]["name"] == "db-1_2024-05-01"
    marker = sets[0]["tags"].pop(policy.PERIOD_TAG)
    assert marker.startswith(policy.SET_MARKER_PREFIX)
    assert sets[0]["tags"] == {"Environment": "prod", "Name": "db-1_2024-05-01", POLICY_TAG: "daily"}
    assert [action["volume_id"] for action in singles] == ["vol-30"]
    assert [item["volume_id"] for item in the_plan.not_due] == ["vol-20"]

    method, kwargs = policy.create_request(sets[0], boto3_tag_specifications)
    assert method == "create_snapshots"
    assert kwargs["InstanceSpecification"] == {"InstanceId": "i-1", "ExcludeBootVolume": True, "ExcludeDataVolumeIds": ["vol-13"]}
    assert kwargs["TagSpecifications"][0]["ResourceType"] == "snapshot"
    assert {"Key": POLICY_TAG, "Value": "daily"} in kwargs["TagSpecifications"][0]["Tags"]


def test_crash_consistent_keeps_boot_volume_unless_excluded():
    instances, volumes = crash_fixture()
    the_plan = policy.plan(crash_options(), volumes, instances, [], NOW, selected_instance_ids=["i-1"])
    [set_action] = [a for a in the_plan.actions if a["kind"] == policy.INSTANCE]
    assert set_action["volume_ids"] == ["vol-10", "vol-11", "vol-12", "vol-13"]
    assert set_action["exclude_boot_volume"] is False and set_action["exclude_data_volume_ids"] == []
    method, kwargs = policy.create_request(set_action, boto3_tag_specifications)
    assert kwargs["InstanceSpecification"] == {"InstanceId": "i-1", "ExcludeBootVolume": False}


# --- requests, results, diff ---------------------------------------------------------------------


def test_volume_request_created_items_and_diff():
    snapshots = [snap("snap-old", "vol-1", timedelta(days=2))]
    the_plan = policy.plan(options(description_template=""), [vol("vol-1")], [], snapshots, NOW)
    [action] = the_plan.actions
    method, kwargs = policy.create_request(action, boto3_tag_specifications)
    assert method == "create_snapshot" and kwargs["VolumeId"] == "vol-1" and "Description" not in kwargs

    [planned] = policy.created_items(action)
    assert planned["snapshot_id"] is None and planned["state"] is None and planned["kind"] == "volume"
    response = {"SnapshotId": "snap-new", "State": "pending", "StartTime": NOW, "VolumeId": "vol-1"}
    [done] = policy.created_items(action, response)
    assert done["snapshot_id"] == "snap-new" and done["start_time"] == NOW.isoformat()
    diff = policy.build_diff(the_plan, [done])
    assert diff["before"] == {"vol-1": {"latest_snapshot_id": "snap-old", "latest_start_time": (NOW - timedelta(days=2)).isoformat()}}
    assert diff["after"]["vol-1"]["latest_snapshot_id"] == "snap-new"
    assert policy.build_diff(the_plan, [planned])["after"]["vol-1"]["latest_snapshot_id"] == "(new snapshot)"


def test_set_created_items_follow_the_response_and_failures():
    instances, volumes = crash_fixture()
    the_plan = policy.plan(crash_options(), volumes, instances, [], NOW, selected_instance_ids=["i-1"])
    [set_action] = [a for a in the_plan.actions if a["kind"] == policy.INSTANCE]
    response = {"Snapshots": [{"SnapshotId": "snap-b", "VolumeId": "vol-11", "StartTime": NOW}, {"SnapshotId": "snap-a", "VolumeId": "vol-10"}]}
    items = policy.created_items(set_action, response)
    assert [(i["volume_id"], i["snapshot_id"], i["device"]) for i in items] == [("vol-10", "snap-a", "/dev/xvda"), ("vol-11", "snap-b", "/dev/sdf")]
    failed = policy.failed_item(set_action, "InvalidInstanceID.NotFound: gone")
    assert failed["instance_id"] == "i-1" and failed["volume_ids"] == ["vol-10", "vol-11", "vol-12", "vol-13"]


def test_snapshot_states():
    items = [{"SnapshotId": "s1", "State": "pending"}, {"SnapshotId": "s2", "State": "completed"}, {"SnapshotId": "s3", "State": "error"}]
    assert policy.snapshot_states(items) == (["s1"], ["s3"])


def test_plan_requires_an_aware_now():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        policy.plan(options(), [], [], [], datetime(2024, 1, 1))


# --- runs that overlap ----------------------------------------------------------------------------


def made(snapshot_id, volume_id, seconds, state="completed", name="daily", tags=None):
    """A snapshot started ``seconds`` after NOW (server time)."""
    item = snap(snapshot_id, volume_id, -timedelta(seconds=seconds), state=state, name=name)
    item["tags"].update(tags or {})
    return item


def test_plan_actions_carry_the_due_threshold_of_their_due_volumes():
    volumes = [vol("vol-1"), vol("vol-2")]
    the_plan = policy.plan(options(), volumes, [], [snap("s", "vol-2", timedelta(days=3))], NOW)
    grace = timedelta(minutes=5)
    assert [a["since"] for a in the_plan.actions] == [{"vol-1": (NOW + grace - timedelta(days=1)).isoformat()},
                                                      {"vol-2": (NOW + grace - timedelta(days=1)).isoformat()}]
    cron = policy.plan(options(frequency="0 2 * * *"), volumes, [], [], NOW)
    assert cron.actions[0]["since"] == {"vol-1": (datetime(2024, 5, 1, 2, tzinfo=UTC) - grace).isoformat()}


def test_rival_is_an_older_snapshot_of_the_same_period():
    action = policy.plan(options(), [vol("vol-1")], [], [], NOW).actions[0]
    ours = [made("snap-b", "vol-1", 10)]
    assert policy.rival_of(action, ours, ours, "daily") is None
    older = made("snap-z", "vol-1", 9)
    assert policy.rival_of(action, ours, ours + [older], "daily") is older
    assert policy.rival_of(action, ours, ours + [made("snap-c", "vol-1", 11)], "daily") is None  # newer: its run removes it
    tie_lower, tie_higher = made("snap-a", "vol-1", 10), made("snap-c", "vol-1", 10)
    assert policy.rival_of(action, ours, ours + [tie_lower], "daily") is tie_lower  # same second: the lower id is older
    assert policy.rival_of(action, ours, ours + [tie_higher], "daily") is None
    # Not rivals: an earlier period's snapshot, one that does not count, another policy's, a copy.
    before = made("snap-0", "vol-1", -int(timedelta(days=1).total_seconds()))
    failed = made("snap-1", "vol-1", 5, state="error")
    other = made("snap-2", "vol-1", 5, name="weekly")
    copy = made("snap-3", "vol-1", 5, tags={"blockwise:source-snapshot": "snap-x", "blockwise:lineage": "vol-1"})
    assert policy.rival_of(action, ours, ours + [before, failed, other, copy], "daily") is None
    assert policy.rival_of(action, [], [older], "daily") is None


def test_rival_of_a_set_only_on_its_due_members():
    volumes = [vol("vol-1", instance_id="i-1", device="/dev/sdf"), vol("vol-2", instance_id="i-1", device="/dev/sdg")]
    recent = snap("snap-recent", "vol-2", timedelta(hours=1))  # vol-2 is not due, but is in the set
    the_plan = policy.plan(options(volume_filters=None, instance_filters={"a": "b"}, crash_consistent=True), volumes,
                           [inst("i-1")], [recent], NOW, ["i-1"])
    [action] = the_plan.actions
    assert set(action["since"]) == {"vol-1"}
    ours = [made("snap-m", "vol-1", 10), made("snap-n", "vol-2", 10)]
    assert policy.rival_of(action, ours, ours + [recent], "daily") is None  # vol-2's own recent snapshot is no rival
    rival = made("snap-a", "vol-1", 9)
    assert policy.rival_of(action, ours, ours + [recent, rival], "daily") is rival
    # Both members due: a set is only given up for another run's snapshots of all of them.
    both = policy.plan(options(volume_filters=None, instance_filters={"a": "b"}, crash_consistent=True), volumes,
                       [inst("i-1")], [], NOW, ["i-1"]).actions[0]
    assert set(both["since"]) == {"vol-1", "vol-2"}
    assert policy.rival_of(both, ours, ours + [rival], "daily") is None  # one member only: keep the whole set
    other_set = [made("snap-z1", "vol-1", 10), made("snap-b2", "vol-2", 10)]
    # Same second, ids interleaved with ours: the sets are compared as wholes, by their oldest snapshot.
    assert policy.rival_of(both, ours, ours + other_set, "daily")["SnapshotId"] == "snap-b2"
    assert policy.rival_of(both, other_set, ours + other_set, "daily") is None
    item = policy.superseded_item(action, ours, rival)
    assert item == {"kind": "instance", "volume_ids": ["vol-1", "vol-2"], "instance_id": "i-1", "snapshot_ids": ["snap-m", "snap-n"],
                    "kept_snapshot_id": "snap-a", "kept_start_time": (NOW + timedelta(seconds=9)).isoformat(), "status": "removed",
                    "reason": "overlap"}


# --- period markers: duplicates of one due period -------------------------------------------------

def _marked(snap_id, volume_id, seconds, marker, state="completed", run=None):
    tags = {POLICY_TAG: "daily", policy.PERIOD_TAG: marker}
    if run:
        tags[policy.RUN_TAG] = run
    return {"SnapshotId": snap_id, "VolumeId": volume_id, "StartTime": NOW + timedelta(seconds=seconds), "State": state, "tags": tags}


def test_every_planned_snapshot_names_its_run_and_the_period_it_fills():
    previous = _marked("snap-prev", "vol-1", -2 * 86400, policy.NO_PREVIOUS)
    volumes = [{"VolumeId": "vol-1", "tags": {}, "Attachments": []}, {"VolumeId": "vol-2", "tags": {}, "Attachments": []}]
    actions = policy.plan(options(), volumes, [], [previous], NOW, run_id="run-1").actions
    tags = {action["volume_id"]: action["tags"] for action in actions}
    assert tags["vol-1"][policy.PERIOD_TAG] == "snap-prev" and tags["vol-2"][policy.PERIOD_TAG] == policy.NO_PREVIOUS
    assert {t[policy.RUN_TAG] for t in tags.values()} == {"run-1"}


@pytest.mark.parametrize("key", [policy.RUN_TAG, policy.PERIOD_TAG])
def test_the_markers_are_reserved(key):
    with pytest.raises(policy.PolicyError, match="reserved"):
        options(tags={key: "x"})


def test_period_duplicates_keep_the_oldest_of_each_volume_and_period_whatever_the_order():
    snaps = [
        _marked("snap-b", "vol-1", 5, "snap-prev"), _marked("snap-a", "vol-1", 5, "snap-prev"),
        _marked("snap-c", "vol-1", 1, "snap-prev", state="pending"),
        _marked("snap-d", "vol-1", 0, "snap-older"),          # another period: no duplicate
        _marked("snap-e", "vol-1", 0, "snap-prev", state="error"),  # does not count
        _marked("snap-f", "vol-2", 9, "snap-prev"),           # another volume
        _marked("snap-s1", "vol-3", 1, "set:abc"), _marked("snap-s2", "vol-3", 2, "set:abc"),
    ]
    for order in (snaps, list(reversed(snaps))):
        duplicates = policy.period_duplicates(order, "daily")
        assert {k: v["SnapshotId"] for k, v in duplicates.items()} == {"snap-a": "snap-c", "snap-b": "snap-c"}
    assert set(policy.period_duplicates(snaps, "daily", include_sets=True)) == {"snap-a", "snap-b", "snap-s2"}
    assert policy.period_duplicates(snaps, "daily", volume_ids={"vol-2"}) == {}
    assert policy.period_duplicates(snaps, "weekly") == {}


def test_a_runs_own_snapshots_are_never_its_rivals():
    volumes = [{"VolumeId": "vol-1", "tags": {}, "Attachments": []}]
    action = policy.plan(options(), volumes, [], [], NOW, run_id="run-1").actions[0]
    first = _marked("snap-1", "vol-1", 1, policy.NO_PREVIOUS, run="run-1")
    retry = _marked("snap-2", "vol-1", 3, policy.NO_PREVIOUS, run="run-1")
    assert policy.rival_of(action, [retry], [first, retry], "daily") is first  # without the run id: a rival
    assert policy.rival_of(action, [retry], [first, retry], "daily", run_id="run-1") is None
    assert [s["SnapshotId"] for s in policy.ours_by_run(action, [retry, first], "run-1", "daily")] == ["snap-1", "snap-2"]
