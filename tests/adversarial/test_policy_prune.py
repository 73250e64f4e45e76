# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on ebs_snapshot_policy and ebs_snapshot_prune through their public interface.

Each attack tries to make the modules lose data (delete what should stay), lie (report what did not
happen), leave a mess (duplicates) or crash, through real ``ansible-playbook`` runs against the local
endpoint, or through the pure plans the modules run, with generated input:

* several runs of one policy at once, on single volumes and crash-consistent sets, with the creations
  slowed down so that every run finds every volume due;
* a control node whose clock is far ahead, which would make ``keep_within`` keep nothing;
* filters and policy names that would widen what a run reads, selects or prunes;
* snapshot times around every clock change of zones with 1 hour and 30 minute shifts, and uploads of
  many disks, which must never be merged into one retention bucket or group.
"""
import json
import textwrap
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import policy as policy_core
from ansible_collections.blockwise.ebs.plugins.module_utils import prune as prune_core
from ansible_collections.blockwise.ebs.plugins.module_utils import retention
from ansible_collections.blockwise.ebs.plugins.module_utils.schedule import get_zone
from tests.functional.conftest import playbook  # noqa: F401  pylint: disable=unused-import
from tests.functional.harness import ansible_env, run_playbook, run_playbook_file

POLICY = "blockwise.ebs.ebs_snapshot_policy"
PRUNE = "blockwise.ebs.ebs_snapshot_prune"
POLICY_TAG = "blockwise:policy"
AZ = "us-east-1a"
UTC = timezone.utc


def task(module, title, **params):
    return {"name": title, module: params, "register": "out", "ignore_errors": True}


def volume(ec2, tags=None):
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=spec)["VolumeId"]


def policy_snapshots(ec2, name="daily"):
    items = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:" + POLICY_TAG, "Values": [name]}])["Snapshots"]
    return {item["SnapshotId"]: item for item in items}


def all_snapshots(ec2):
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def together(aws, tmp_path, task_lists, name="together"):
    """One ansible-playbook process per task list, all started at the same moment."""
    from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

    dirs = []
    for index in range(len(task_lists)):
        path = tmp_path / ("%s%d" % (name, index))
        path.mkdir(parents=True)
        dirs.append(path)
    with ThreadPoolExecutor(max_workers=len(task_lists)) as pool:
        futures = [pool.submit(run_playbook, aws.endpoint_url, tasks, path) for tasks, path in zip(task_lists, dirs)]
        return [future.result() for future in futures]


def instance_with_data_volumes(ec2, name, count):
    image = ec2.register_image(Name="img-" + name, RootDeviceName="/dev/sda1",
                               BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}, {"Key": "role", "Value": "db"}]}]
    inst = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": AZ}, TagSpecifications=spec)["Instances"][0]
    data = []
    for index in range(count):
        vol = volume(ec2, {"Name": "%s-data%d" % (name, index)})
        ec2.attach_volume(VolumeId=vol, InstanceId=inst["InstanceId"], Device="/dev/sd" + "fghij"[index])
        data.append(vol)
    return inst["InstanceId"], data


# ------------------------------------------------------------------------------------------ concurrent runs


def test_three_simultaneous_runs_leave_one_snapshot_per_volume_and_one_set_per_instance(aws, tmp_path):
    ec2 = aws.client("ec2")
    singles = sorted(volume(ec2, {"backup": "yes"}) for dummy in range(4))
    instance_id, members = instance_with_data_volumes(ec2, "db-1", 2)
    # Creations held back 6 seconds: every run reads before any other run's snapshot exists.
    aws.set_faults(latency=6.0, actions=["CreateSnapshot", "CreateSnapshots"])
    tasks = [task(POLICY, "singles", name="daily", volume_filters={"tag:backup": "yes"}, frequency="1d"),
             task(POLICY, "sets", name="daily", instance_filters={"tag:role": "db"}, crash_consistent=True,
                  exclude_boot_volume=True, frequency="1d")]
    runs = together(aws, tmp_path, [tasks, tasks, tasks])
    aws.clear_faults()
    for run in runs:
        assert run.rc == 0, run
        for name in ("singles", "sets"):
            res = run.result(name)
            assert not res.get("failed") and res["errors"] == [], res
    snaps = policy_snapshots(ec2)
    by_volume = {}
    for item in snaps.values():
        by_volume.setdefault(item["VolumeId"], []).append(item)
    assert sorted(by_volume) == sorted(singles + members)
    assert all(len(items) == 1 for items in by_volume.values()), by_volume  # no duplicate left anywhere
    # The set stays whole: both members' snapshots come from one CreateSnapshots call of one run.
    kept_sets = [item for run in runs for item in run.result("sets")["created"]]
    assert sorted(item["volume_id"] for item in kept_sets) == sorted(members)
    assert len({item["name"] for item in kept_sets}) == 1 and len({item["start_time"] for item in kept_sets}) == 1
    # What the runs say adds up to what exists: created once, superseded for every other run.
    created = [item["snapshot_id"] for run in runs for name in ("singles", "sets") for item in run.result(name)["created"]]
    assert sorted(created) == sorted(snaps)
    removed = {sid for run in runs for name in ("singles", "sets") for item in run.result(name)["superseded"]
               for sid in item["snapshot_ids"]}
    assert not removed & all_snapshots(ec2)
    # And the next run finds nothing due.
    again = run_playbook(aws.endpoint_url, tasks, tmp_path)
    assert again.result("singles")["changed"] is False and again.result("sets")["changed"] is False


# ------------------------------------------------------------------------------------------ clock far ahead

CLOCK_SHIFT = textwrap.dedent('''
    """Shift the clock of module processes by BLOCKWISE_TEST_CLOCK_SHIFT seconds (a node whose clock is off)."""
    import datetime as _datetime
    import os as _os
    import sys as _sys
    import time as _time

    _SHIFT = float(_os.environ.get("BLOCKWISE_TEST_CLOCK_SHIFT", "0"))
    if _SHIFT and "AnsiballZ_" in (_sys.argv[0] if _sys.argv else ""):
        _real_time = _time.time
        _time.time = lambda: _real_time() + _SHIFT

        class _ShiftedDatetime(_datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return _datetime.datetime.fromtimestamp(_time.time(), tz)

            @classmethod
            def utcnow(cls):
                return _datetime.datetime.now(_datetime.timezone.utc).replace(tzinfo=None)

        _ShiftedDatetime.__name__ = _ShiftedDatetime.__qualname__ = "datetime"
        _ShiftedDatetime.__module__ = "datetime"
        _datetime.datetime = _ShiftedDatetime
''')


def endpoint_refuses_skewed_signatures(aws, shift):
    """True when the endpoint refuses a request signed ``shift`` ahead of its clock, as AWS does beyond 15 minutes."""
    import botocore.auth  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

    ec2 = aws.client("ec2")
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *args, **kwargs: real(*args, **kwargs) + shift
    try:
        ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("RequestTimeTooSkewed", "RequestExpired", "InvalidSignatureException",
                                                 "SignatureDoesNotMatch", "AuthFailure")
    finally:
        botocore.auth.get_current_datetime = real
    return False


def test_a_control_node_clock_far_ahead_never_prunes_by_keep_within(aws, tmp_path):
    """The module processes run with their clock 30 days ahead. AWS refuses their requests (signed more than
    15 minutes off) when the endpoint models that; if it does not, the module must still not prune by
    keep_within, since it counts back from AWS's time (the Date of AWS's answers) when its own is off."""
    shift = timedelta(days=30)
    refused = endpoint_refuses_skewed_signatures(aws, shift)
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    snaps = []
    for days in (1, 2, 3, 4, 5):
        spec = [{"ResourceType": "snapshot", "Tags": [{"Key": POLICY_TAG, "Value": "daily"}]}]
        snapshot_id = ec2.create_snapshot(VolumeId=vol, TagSpecifications=spec)["SnapshotId"]
        aws.backdate_snapshot(snapshot_id, datetime.now(UTC) - timedelta(days=days))
        snaps.append(snapshot_id)
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(CLOCK_SHIFT)
    env = ansible_env(aws.endpoint_url, extra={"PYTHONPATH": str(shim), "BLOCKWISE_TEST_CLOCK_SHIFT": str(shift.total_seconds())})
    path = tmp_path / "prune.yml"
    play = {"hosts": "localhost", "gather_facts": False,
            "module_defaults": {"group/blockwise.ebs.aws": {"endpoint_url": aws.endpoint_url, "region": "us-east-1"}},
            "tasks": [task(PRUNE, "prune", policy="daily", retention={"keep_within": "7 days"}, max_deletions=100)]}
    path.write_text(json.dumps([play]))
    run = run_playbook_file(path, tmp_path, env=env)
    res = run.result("prune")
    if refused:
        assert res.get("failed") is True, res  # as AWS refuses a skewed signature
    else:
        assert run.rc == 0, run
        assert any("ahead of AWS's" in warning for warning in res.get("warnings", [])), res
        assert sorted(item["snapshot_id"] for item in res["kept"]) == sorted(snaps)
    assert res.get("deleted", []) == [] and aws.counters().get("ec2:DeleteSnapshot", 0) == 0
    assert set(snaps) <= all_snapshots(ec2)


# ------------------------------------------------------------------------------------------ widening filters

EMPTY_VALUES = st.sampled_from([[], [None], None, [[]], [{}], {}])
FILTER_NAMES = st.sampled_from(["tag-key", "tag:backup", "tag:blockwise:policy", "volume-id", "description", "status"])


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=FILTER_NAMES, value=EMPTY_VALUES, extra=st.dictionaries(st.sampled_from(["tag:team", "size"]), st.just("x"), max_size=1),
       option=st.sampled_from(["volume_filters", "instance_filters", "filters"]))
def test_no_filter_without_a_value_ever_reaches_ec2(name, value, extra, option):
    """A filter that EC2 would ignore (no value) is refused by the option validation that runs before any call."""
    filters = dict(extra, **{name: value})
    if option == "filters":
        with pytest.raises(prune_core.PruneError, match=r"filters\[%r\]" % name):
            prune_core.options_from_params({"policy": "daily", "filters": filters, "retention": {"keep_last": 1}})
    else:
        params = dict(name="daily", frequency="1d", volume_filters=None, instance_filters=None, volume_ids=None, all_volumes=False,
                      exclude=[], tags={}, max_concurrency=4, wait_timeout=900)
        params[option] = filters
        with pytest.raises(policy_core.PolicyError, match=r"%s\[%r\]" % (option, name)):
            policy_core.options_from_params(params)


WIDENING = [
    (PRUNE, {"filters": {"tag-key": []}, "retention": {"keep_last": 1}}, "filters['tag-key']"),
    (PRUNE, {"policy": "daily", "filters": {"tag:blockwise:policy": ["daily", "weekly"]}, "retention": {"keep_last": 1}}, "contradicts"),
    (PRUNE, {"filters": {"owner-id": "999999999999"}, "retention": {"keep_last": 1}}, "owner filters are not allowed"),
    (PRUNE, {"policy": "daily", "retention": {"keep_last": 1, "keep_within": ""}}, "retention.keep_within"),
    (PRUNE, {"policy": "daily", "retention": {"keep_last": 1}, "max_concurrency": 0}, "max_concurrency"),
    (POLICY, {"name": "daily", "frequency": "1d", "volume_filters": {"tag-key": []}}, "volume_filters['tag-key']"),
    (POLICY, {"name": "daily", "frequency": "1d", "instance_filters": {"tag:role": [None]}}, "instance_filters['tag:role']"),
    (POLICY, {"name": "daily", "frequency": "99999999 weeks", "all_volumes": True}, "frequency: duration"),
]


def test_widening_input_is_refused_before_any_call_and_wildcard_policies_prune_only_their_own(aws, playbook):  # noqa: F811
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    snaps = {}
    for name in ("daily", "weekly", "daily-old"):
        for days in (1, 2, 3):
            spec = [{"ResourceType": "snapshot", "Tags": [{"Key": POLICY_TAG, "Value": name}]}]
            snapshot_id = ec2.create_snapshot(VolumeId=vol, TagSpecifications=spec)["SnapshotId"]
            aws.backdate_snapshot(snapshot_id, datetime.now(UTC) - timedelta(days=days))
            snaps[snapshot_id] = name
    aws.reset_counters()
    run = playbook([task(module, "bad %d" % index, **params) for index, (module, params, dummy) in enumerate(WIDENING)])
    for index, (module, params, fragment) in enumerate(WIDENING):
        res = run.result("bad %d" % index)
        assert res.get("failed") is True and fragment in res["msg"], (params, res)
    assert aws.counters() == {}
    # A policy name with EC2 wildcards matches other policies' tags server-side; none of theirs is touched.
    run = playbook([task(PRUNE, "star", policy="*", retention={"keep_last": 1}), task(PRUNE, "prefix", policy="daily*", retention={"keep_last": 1})])
    for name in ("star", "prefix"):
        res = run.result(name)
        assert res["deleted"] == [] and res["changed"] is False, res
        assert {tuple(item["reasons"]) for item in res["protected"]} <= {("out-of-scope",)}
    assert set(snaps) <= all_snapshots(ec2)


# ------------------------------------------------------------------------------------------ DST and lineage

DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Auckland", "America/St_Johns")


def _transitions(zone_name):
    zone = get_zone(zone_name)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    found = []
    for hour in range(365 * 24):
        before, after = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
        if before.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            found.append(after)
    return found


TRANSITIONS = [(zone, instant) for zone in DST_ZONES for instant in _transitions(zone)]


def item(snapshot_id, volume_id, start, tags=None):
    all_tags = dict(tags or {}, **{POLICY_TAG: "daily"})
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "StartTime": start, "State": "completed", "OwnerId": "123456789012",
            "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}


@settings(max_examples=300, deadline=None, database=None)
@given(where=st.sampled_from(TRANSITIONS), minutes=st.lists(st.integers(-300, 300), min_size=2, max_size=30, unique=True),
       rule=st.sampled_from(["keep_hourly", "keep_daily"]), count=st.integers(1, 10))
def test_dst_buckets_never_drop_a_snapshot_for_one_of_another_real_hour_or_day(where, minutes, rule, count):
    """Through the prune module's plan: a snapshot is only deleted by keep_hourly (keep_daily) for a newer kept
    one of the same local hour and UTC offset, less than an hour later (of the same local date)."""
    zone_name, instant = where
    zone = get_zone(zone_name)
    items = [item("snap-%+04d" % m, "vol-1", instant + timedelta(minutes=m)) for m in minutes]
    options = prune_core.options_from_params({"policy": "daily", "retention": {rule: count, "timezone": zone_name}, "max_deletions": 1000})
    the_plan = prune_core.plan(items, [], {}, options, instant + timedelta(days=2), "123456789012")
    kept = [d.snapshot for d in the_plan.of(retention.KEEP)]

    def bucket(snap):
        local = snap.start_time.astimezone(zone)
        return (local.date(), local.hour, local.utcoffset()) if rule == "keep_hourly" else local.date()

    assert len({bucket(s) for s in kept}) == len(kept)
    for decision in the_plan.deletions:
        same = [s for s in kept if bucket(s) == bucket(decision.snapshot)]
        if same:
            assert same[0].start_time > decision.snapshot.start_time
            if rule == "keep_hourly":
                assert same[0].start_time - decision.snapshot.start_time < timedelta(hours=1)
        else:  # its bucket is beyond the count: every kept bucket is newer
            assert all(s.start_time > decision.snapshot.start_time for s in kept)


@settings(max_examples=200, deadline=None, database=None)
@given(disks=st.lists(st.sampled_from(["disk-a", "disk-b", "disk-c", "vol-0aaa", None, ""]), min_size=1, max_size=40),
       days=st.lists(st.integers(0, 20), min_size=40, max_size=40))
def test_uploads_of_many_disks_keep_their_newest_each_and_unlabelled_ones_are_never_deleted(disks, days):
    """keep_last: 1 over uploads (placeholder volume id) of several disks and real snapshots of vol-0aaa."""
    now = datetime(2025, 6, 1, tzinfo=UTC)
    items = []
    for index, disk in enumerate(disks):
        start = now - timedelta(days=days[index], minutes=index)
        tags = {} if disk is None else {"blockwise:lineage": disk}
        items.append(item("snap-u%03d" % index, "vol-ffffffff", start, tags))
        items.append(item("snap-r%03d" % index, "vol-0aaa", start - timedelta(seconds=30)))
    options = prune_core.options_from_params({"policy": "daily", "retention": {"keep_last": 1}, "max_deletions": 1000})
    the_plan = prune_core.plan(items, [], {}, options, now, "123456789012")
    decisions = {d.snapshot_id: d for d in the_plan.decisions}
    for index, disk in enumerate(disks):
        if not disk:
            assert decisions["snap-u%03d" % index].action == retention.PROTECT
            assert "no-lineage" in decisions["snap-u%03d" % index].reasons
    groups = {}
    for decision in the_plan.decisions:
        if decision.action != retention.PROTECT:
            groups.setdefault(decision.group, []).append(decision)
    for group, members in groups.items():
        assert sum(d.action == retention.KEEP for d in members) == 1, group
        newest = max(members, key=lambda d: (d.snapshot.start_time, d.snapshot_id))
        assert newest.action == retention.KEEP
    assert "vol-0aaa" in groups and all(g == "vol-0aaa" or g.startswith("lineage:") for g in groups)
