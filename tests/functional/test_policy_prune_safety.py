# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regression tests of issue 10 for ebs_snapshot_policy and ebs_snapshot_prune, through ansible-playbook.

Each test names the item it pins. They run against the local endpoint over real HTTP; snapshots are
back-dated through its control API.
"""
from datetime import datetime, timedelta, timezone

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from tests.localaws.blockdata import block, write_snapshot

POLICY = "blockwise.ebs.ebs_snapshot_policy"
PRUNE = "blockwise.ebs.ebs_snapshot_prune"
POLICY_TAG = "blockwise:policy"
LINEAGE_TAG = "blockwise:lineage"
AZ = "us-east-1a"


def policy_task(title="policy", **params):
    params.setdefault("name", "daily")
    return {"name": title, POLICY: params, "register": "out", "ignore_errors": True}


def prune_task(title="prune", **params):
    return {"name": title, PRUNE: params, "register": "out", "ignore_errors": True}


def now():
    return datetime.now(timezone.utc)


def backend():
    return ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


def volume(ec2, tags=None):
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=spec)["VolumeId"]


def snapshot(aws, ec2, volume_id, age, policy="daily", tags=None):
    all_tags = dict(tags or {})
    if policy:
        all_tags[POLICY_TAG] = policy
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}] if all_tags else []
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]
    aws.backdate_snapshot(snapshot_id, now() - age)
    return snapshot_id


def existing(ec2, policy=None):
    filters = [{"Name": "tag:" + POLICY_TAG, "Values": [policy]}] if policy else []
    return {item["SnapshotId"]: item for item in ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]}


def expect_refused(run, cases):
    for index, (params, fragment) in enumerate(cases):
        res = run.result("bad %d" % index)
        assert res.get("failed") is True, (params, res)
        assert fragment in res["msg"], (params, res["msg"])
        assert "Module failed" not in res["msg"] and not res.get("module_stderr"), (params, res)  # no traceback


# ------------------------------------------------------------------- item 10: durations out of range


POLICY_RANGE = [
    ({"frequency": "99999999 weeks", "all_volumes": True}, "frequency: duration '99999999 weeks' is too long"),
    ({"frequency": "1d", "grace": "99999999 weeks", "all_volumes": True}, "grace: duration '99999999 weeks' is too long"),
    ({"frequency": "0 2 * * *", "grace": "99999999 weeks", "all_volumes": True}, "grace: duration '99999999 weeks' is too long"),
    ({"frequency": "36501d", "all_volumes": True}, "frequency: duration '36501d' is too long"),
]
PRUNE_RANGE = [
    ({"policy": "daily", "retention": {"keep_within": "99999999 weeks"}}, "retention.keep_within: duration '99999999 weeks' is too long"),
    ({"policy": "daily", "retention": {"keep_within": "36501 days"}}, "retention.keep_within: duration '36501 days' is too long"),
]


def test_item10_durations_out_of_range_fail_before_any_call(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    snapshot(aws, ec2, vol, timedelta(days=3))
    aws.reset_counters()
    run = playbook([policy_task("bad %d" % i, **p) for i, (p, dummy) in enumerate(POLICY_RANGE)])
    expect_refused(run, POLICY_RANGE)
    run = playbook([prune_task("bad %d" % i, **p) for i, (p, dummy) in enumerate(PRUNE_RANGE)])
    expect_refused(run, PRUNE_RANGE)
    assert aws.counters() == {}  # refused before any call, reads included


def test_item10_longest_durations_still_work(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    old = snapshot(aws, ec2, vol, timedelta(days=3))
    run = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="36500d", grace="1d"),
                    prune_task(policy="daily", retention={"keep_within": "36500 days"})])
    assert run.rc == 0, run
    assert run.result("policy")["changed"] is False
    assert run.result("prune")["changed"] is False and [item["snapshot_id"] for item in run.result("prune")["kept"]] == [old]


# ------------------------------------------------------------------- item 12: refused silently-changed input


PRUNE_REFUSED = [
    ({"policy": "daily", "retention": {"keep_last": 3}, "max_concurrency": 0}, "max_concurrency must be between 1 and 64, got 0"),
    ({"policy": "daily", "retention": {"keep_last": 3, "keep_within": ""}}, "retention.keep_within"),
    ({"policy": "daily", "retention": {"keep_within": " "}}, "retention.keep_within"),
    ({"retention": {"keep_last": 1}, "filters": {"tag-key": []}}, "filters['tag-key'] must be a value or a non-empty list"),
    ({"policy": "daily", "retention": {"keep_last": 1}, "filters": {"tag:team": [None]}}, "filters['tag:team']"),
]
POLICY_REFUSED = [
    ({"frequency": "1d", "volume_filters": {"tag-key": []}}, "volume_filters['tag-key'] must be a value or a non-empty list"),
    ({"frequency": "1d", "instance_filters": {"tag:Role": []}}, "instance_filters['tag:Role'] must be a value or a non-empty list"),
    ({"frequency": "1d", "volume_filters": {"tag:backup": "yes", "tag-key": [None]}}, "volume_filters['tag-key']"),
]


def test_item12_widening_or_silently_changed_options_are_refused_before_any_call(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    before = {snapshot(aws, ec2, vol, timedelta(days=day)) for day in range(1, 4)}
    before.add(snapshot(aws, ec2, vol, timedelta(days=5), policy=None, tags={"other-tool": "x"}))
    aws.reset_counters()
    run = playbook([prune_task("bad %d" % i, **p) for i, (p, dummy) in enumerate(PRUNE_REFUSED)])
    expect_refused(run, PRUNE_REFUSED)
    run = playbook([policy_task("bad %d" % i, **p) for i, (p, dummy) in enumerate(POLICY_REFUSED)])
    expect_refused(run, POLICY_REFUSED)
    assert aws.counters() == {}
    assert set(existing(ec2)) == before


def test_item12_deletions_that_were_already_gone_change_nothing(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    snaps = [snapshot(aws, ec2, vol, timedelta(days=day)) for day in range(1, 5)]
    # Another actor deleted the two oldest between this run's read and its deletions.
    aws.inject_error("DeleteSnapshot", status=400, code="InvalidSnapshot.NotFound",
                     message="The snapshot '%s' does not exist." % snaps[2], count=2)
    run = playbook([prune_task(policy="daily", retention={"keep_last": 2})], diff=True)
    res = run.result("prune")
    assert run.rc == 0, run
    assert res["changed"] is False
    assert res["deleted"] == []
    assert sorted(item["snapshot_id"] for item in res["already_gone"]) == sorted(snaps[2:])
    assert {item["status"] for item in res["already_gone"]} == {"already-gone"}
    assert res["summary"]["deleted"] == 0 and res["summary"]["already_gone"] == 2
    assert res["diff"] == {"before": {}, "after": {}}

    # One really deleted and one already gone: changed, and each reported as what happened.
    more = [snapshot(aws, ec2, vol, timedelta(days=day)) for day in (10, 11)]
    aws.inject_error("DeleteSnapshot", status=400, code="InvalidSnapshot.NotFound", message="gone", count=1)
    run = playbook([prune_task(policy="daily", retention={"keep_last": 2}, max_concurrency=1)])
    res = run.result("prune")
    assert run.rc == 0, run
    assert res["changed"] is True
    assert len(res["deleted"]) + len(res["already_gone"]) == 4
    assert len(res["already_gone"]) == 1 and {item["status"] for item in res["deleted"]} == {"deleted"}
    assert res["summary"]["deleted"] == len(res["deleted"])
    assert not {item["snapshot_id"] for item in res["deleted"]} & set(existing(ec2))
    assert set(more) <= {item["snapshot_id"] for item in res["deleted"] + res["already_gone"]}


# ------------------------------------------------------------------- item 21: retention groups by lineage


def uploaded(aws, ebs, lineage, age, fill, policy="images"):
    """A snapshot made through the EBS direct APIs (VolumeId vol-ffffffff), as ebs_block_put makes them."""
    tags = [{"Key": POLICY_TAG, "Value": policy}]
    if lineage is not None:
        tags.append({"Key": LINEAGE_TAG, "Value": lineage})
    snapshot_id = write_snapshot(ebs, {0: block(fill)}, Tags=tags)
    aws.backdate_snapshot(snapshot_id, now() - age)
    return snapshot_id


def test_item21_uploads_of_different_disks_are_never_merged_and_unlabelled_ones_are_held(aws, playbook):
    ec2, ebs = aws.client("ec2"), aws.client("ebs")
    disks = {}
    for index, disk in enumerate(("disk-a", "disk-b", "disk-c")):
        disks[disk] = [uploaded(aws, ebs, disk, timedelta(days=day, hours=index), fill=10 * index + day) for day in range(3)]
    unlabelled = [uploaded(aws, ebs, None, timedelta(days=day, hours=5), fill=100 + day) for day in range(4)]
    # A real volume's snapshots with the same policy are grouped by their volume, never with the uploads.
    vol = volume(ec2)
    real = [snapshot(aws, ec2, vol, timedelta(days=day, hours=7), policy="images") for day in range(4)]
    assert {item["VolumeId"] for sid, item in existing(ec2).items() if sid in unlabelled + disks["disk-a"]} == {"vol-ffffffff"}

    run = playbook([prune_task(policy="images", retention={"keep_daily": 3})], diff=True)
    res = run.result("prune")
    assert run.rc == 0, run
    assert [item["snapshot_id"] for item in res["deleted"]] == [real[3]]  # only the real volume's 4th day
    kept = {item["snapshot_id"]: item for item in res["kept"]}
    assert set(kept) == set(sum(disks.values(), [])) | set(real[:3])
    for disk, ids in disks.items():
        assert {kept[sid]["group"] for sid in ids} == {"lineage:" + disk}
        assert {kept[sid]["volume_id"] for sid in ids} == {"vol-ffffffff"}
    protected = {item["snapshot_id"]: item for item in res["protected"]}
    assert set(protected) == set(unlabelled)
    assert {tuple(item["reasons"]) for item in protected.values()} == {("no-lineage",)}
    assert set(res["volumes"]) == {"lineage:disk-a", "lineage:disk-b", "lineage:disk-c", vol, "vol-ffffffff"}
    assert res["volumes"]["vol-ffffffff"] == {"keep": 0, "delete": 0, "protect": 4}
    assert res["volumes"]["lineage:disk-b"] == {"keep": 3, "delete": 0, "protect": 0}
    assert set(existing(ec2)) == set(sum(disks.values(), [])) | set(unlabelled) | set(real[:3])

    # Even keep_last: 1 keeps one per disk, and still never touches the unlabelled uploads.
    run = playbook([prune_task(policy="images", retention={"keep_last": 1})])
    res = run.result("prune")
    assert run.rc == 0, run
    assert set(existing(ec2)) == {ids[0] for ids in disks.values()} | set(unlabelled) | {real[0]}


# ------------------------------------------------------------------- item 3: "not due" is confirmed against AWS


def test_item3_not_due_only_for_a_snapshot_that_exists_and_counts(aws, playbook):
    ec2 = aws.client("ec2")
    binned = volume(ec2, {"backup": "yes", "Name": "binned"})
    failed = volume(ec2, {"backup": "yes", "Name": "failed"})
    recovering = volume(ec2, {"backup": "yes", "Name": "recovering"})
    fine = volume(ec2, {"backup": "yes", "Name": "fine"})
    for vol in (binned, failed, recovering, fine):
        snapshot(aws, ec2, vol, timedelta(days=3))
    # The newest policy snapshot of each: deleted into the Recycle Bin ("recoverable"), failed, being restored
    # from the Recycle Bin, and completed (the one that really makes its volume not due).
    states = {binned: "recoverable", failed: "error", recovering: "recovering"}
    newest = {vol: snapshot(aws, ec2, vol, timedelta(hours=1)) for vol in (binned, failed, recovering, fine)}
    for vol, state in states.items():
        backend().snapshots[newest[vol]].status = state
    run = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="1d")])
    res = run.result("policy")
    assert run.rc == 0, run
    assert sorted(item["volume_id"] for item in res["created"]) == sorted([binned, failed, recovering])
    [not_due] = res["not_due"]
    assert not_due["volume_id"] == fine and not_due["latest_snapshot_id"] == newest[fine] and not_due["latest_state"] == "completed"


def test_item3_a_snapshot_deleted_between_runs_makes_the_volume_due_again(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    first = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="1d")]).result("policy")
    [made] = first["created"]
    again = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="1d")]).result("policy")
    assert again["changed"] is False and again["not_due"][0]["latest_snapshot_id"] == made["snapshot_id"]
    ec2.delete_snapshot(SnapshotId=made["snapshot_id"])
    third = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="1d")]).result("policy")
    assert third["changed"] is True and [item["volume_id"] for item in third["created"]] == [vol]
    assert third["created"][0]["snapshot_id"] != made["snapshot_id"] and third["not_due"] == []


def test_item3_a_copy_never_stands_for_a_fresh_snapshot_of_its_volume(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    old = snapshot(aws, ec2, vol, timedelta(days=3))
    # A copy made now of the 3-day-old snapshot, tagged as copies are (it keeps the policy tag so that
    # retention can prune it). Its StartTime is the copy's, not the data's.
    copy_tags = {POLICY_TAG: "daily", "blockwise:source-snapshot": old, "blockwise:source-region": "us-east-1",
                 LINEAGE_TAG: vol}
    copy = ec2.copy_snapshot(SourceSnapshotId=old, SourceRegion="us-east-1",
                             TagSpecifications=[{"ResourceType": "snapshot",
                                                 "Tags": [{"Key": k, "Value": v} for k, v in copy_tags.items()]}])["SnapshotId"]
    assert POLICY_TAG in {tag["Key"] for tag in existing(ec2)[copy].get("Tags", [])}
    run = playbook([policy_task(volume_filters={"tag:backup": "yes"}, frequency="1d")])
    res = run.result("policy")
    assert run.rc == 0, run
    assert [item["volume_id"] for item in res["created"]] == [vol]


# ------------------------------------------------------------------- item 5: concurrent runs of one policy


def run_together(aws, tmp_path, task_lists, check=False):
    """Start one ansible-playbook process per task list at the same moment; return their runs in order."""
    from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

    from tests.functional.harness import run_playbook  # pylint: disable=import-outside-toplevel

    dirs = []
    for index in range(len(task_lists)):
        path = tmp_path / ("together%d" % index)
        path.mkdir(parents=True)
        dirs.append(path)
    with ThreadPoolExecutor(max_workers=len(task_lists)) as pool:
        futures = [pool.submit(run_playbook, aws.endpoint_url, tasks, path, check=check) for tasks, path in zip(task_lists, dirs)]
        return [future.result() for future in futures]


def test_item5_two_runs_at_once_make_at_most_one_snapshot_per_volume(aws, tmp_path):
    ec2 = aws.client("ec2")
    volumes = sorted(volume(ec2, {"backup": "yes"}) for dummy in range(3))
    # A slow CreateSnapshot keeps each run's snapshots invisible to the other for 8 seconds, far longer than
    # the two processes' start-up skew: without coordination both find every volume due and both create.
    aws.set_faults(latency=8.0, actions=["CreateSnapshot"])
    aws.reset_counters()
    params = dict(volume_filters={"tag:backup": "yes"}, frequency="1d")
    runs = run_together(aws, tmp_path, [[policy_task(**params)], [policy_task(**params)]])
    aws.clear_faults()
    for run in runs:
        assert run.rc == 0, run
    snaps = existing(ec2, "daily")
    assert sorted(item["VolumeId"] for item in snaps.values()) == volumes  # exactly one each
    results = [run.result("policy") for run in runs]
    created = {item["volume_id"]: item["snapshot_id"] for res in results for item in res["created"]}
    assert sorted(created) == volumes and set(created.values()) == set(snaps)
    removed = [sid for res in results for item in res["superseded"] for sid in item["snapshot_ids"]]
    for res in results:
        # Every volume is accounted for in each run: kept from it, superseded by the other's older one, or not due.
        seen = [item["volume_id"] for item in res["created"]] + [v for item in res["superseded"] for v in item["volume_ids"]]
        seen += [item["volume_id"] for item in res["not_due"]]
        assert sorted(seen) == volumes, res
        assert res["changed"] is bool(res["created"])
        for item in res["superseded"]:
            assert item["status"] == "removed" and item["kept_snapshot_id"] == created[item["volume_ids"][0]]
    assert aws.counters().get("ec2:DeleteSnapshot", 0) == len(removed) == aws.counters()["ec2:CreateSnapshot"] - 3
    assert not set(removed) & set(existing(ec2))
    # A third run finds every volume not due.
    again = run_together(aws, tmp_path / "again", [[policy_task(**params)]])[0]
    assert again.result("policy")["changed"] is False and len(again.result("policy")["not_due"]) == 3
