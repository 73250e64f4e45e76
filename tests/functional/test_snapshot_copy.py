# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_copy through ansible-playbook against the local endpoint: copies into another region.

AWS facts these tests rely on (EC2 API reference, CopySnapshot; EBS user guide, "Copy an Amazon EBS
snapshot"): the copy request goes to the destination region with SourceRegion/SourceSnapshotId; a
copy starts ``pending`` and its VolumeId is arbitrary; at most 20 concurrent copies per destination
region, beyond that ``ResourceLimitExceeded``; tags given in TagSpecifications are set at creation.
"""
import threading
import time
from datetime import datetime, timedelta, timezone

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from tests.localaws.blockdata import block, write_snapshot

MODULE = "blockwise.ebs.ebs_snapshot_copy"
HOME, DR = "us-east-1", "eu-west-1"
POLICY = "dr"
ACCOUNT = "123456789012"  # moto's default account (access key "testing")
SOURCE_TAGS = ("blockwise:source-snapshot", "blockwise:source-region", "blockwise:source-account")


def tags_of(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags") or []}


def tag_list(tags):
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def copy_task(title="copy", check_mode=None, **params):
    args = dict({"region": DR, "source_region": HOME, "policy": POLICY}, **params)
    result = {"name": title, MODULE: args, "ignore_errors": True}
    if check_mode is not None:
        result["check_mode"] = check_mode
    return result


def sources(aws, volumes=2, per_volume=2, policy=POLICY, tags=None):
    """``volumes`` volumes in HOME with ``per_volume`` policy snapshots each: {volume id: [snapshot ids, oldest first]}."""
    ec2 = aws.client("ec2", region=HOME)
    made = {}
    for number in range(volumes):
        volume_id = ec2.create_volume(Size=1, AvailabilityZone=HOME + "a")["VolumeId"]
        made[volume_id] = []
        for index in range(per_volume):
            snap_tags = dict(tags or {}, Name="vol%d-%d" % (number, index), **{"blockwise:policy": policy})
            made[volume_id].append(ec2.create_snapshot(VolumeId=volume_id, Description="source %d-%d" % (number, index),
                                                       TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(snap_tags)}])["SnapshotId"])
    return made


def copies_in(aws, region=DR):
    ec2 = aws.client("ec2", region=region)
    items = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["blockwise:source-snapshot"]}])["Snapshots"]
    return {tags_of(item)["blockwise:source-snapshot"]: item for item in items}


def test_copies_carry_their_source_and_lineage_and_a_second_run_copies_nothing(aws, playbook):
    made = sources(aws, tags={"team": "web", "blockwise:protect": "yes"})
    ebs = aws.client("ebs", region=HOME)
    image = write_snapshot(ebs, {0: block(1)}, Tags=tag_list({"blockwise:policy": POLICY, "blockwise:lineage": "disk-image"}))
    loose = write_snapshot(ebs, {0: block(2)}, Tags=tag_list({"blockwise:policy": POLICY}))
    aws.reset_counters()
    run = playbook([copy_task(wait=True, wait_timeout=120, tags={"dr": "yes"})], diff=True)
    res = run.result("copy")
    assert not res.get("failed"), res
    expected_lineage = {snap: volume for volume, snaps in made.items() for snap in snaps}
    expected_lineage.update({image: "disk-image", loose: loose})
    assert res["changed"] and sorted(item["source_snapshot_id"] for item in res["copies"]) == sorted(expected_lineage)
    counts = aws.counters()
    assert counts.get("ec2:CopySnapshot") == 6 and not counts.get("ec2:DeleteSnapshot")

    found = copies_in(aws)
    assert sorted(found) == sorted(expected_lineage)
    for source_id, copy in found.items():
        tags = tags_of(copy)
        assert (tags["blockwise:source-snapshot"], tags["blockwise:source-region"], tags["blockwise:source-account"]) == (source_id, HOME, ACCOUNT)
        assert tags["blockwise:lineage"] == expected_lineage[source_id]
        assert tags["blockwise:policy"] == POLICY and tags["dr"] == "yes"
        assert "blockwise:protect" not in tags  # a source's protection is not the copy's
        assert copy["Description"] == "blockwise.ebs copy of {0} from {1}".format(source_id, HOME)
    for source_id in made[next(iter(made))]:
        assert tags_of(found[source_id])["team"] == "web"
    assert set(res["diff"]["after"]) == set(expected_lineage.values())
    assert all(before == [] for before in res["diff"]["before"].values())

    aws.reset_counters()
    again = playbook([copy_task(wait=True, wait_timeout=120)]).result("copy")
    assert not again.get("failed") and not again["changed"], again
    assert again["copies"] == [] and len(again["present"]) == 6
    assert not aws.mutating_calls()
    assert aws.counters().get("ec2:DescribeSnapshots") == 2  # sources once, destination copies once


def test_check_mode_writes_nothing_and_the_diff_shows_copies_per_source_volume(aws, playbook):
    made = sources(aws, volumes=2, per_volume=2)
    first_volume = next(iter(made))
    playbook([copy_task(snapshot_ids=[made[first_volume][0]])])
    aws.reset_counters()
    res = playbook([copy_task(check_mode=True)], diff=True).result("copy")
    assert not res.get("failed") and res["changed"], res
    assert aws.mutating_calls() == {}
    assert all(item["snapshot_id"] is None for item in res["copies"]) and len(res["copies"]) == 3
    second_volume = [volume for volume in made if volume != first_volume][0]
    assert res["diff"]["before"] == {first_volume: [made[first_volume][0]], second_volume: []}
    assert res["diff"]["after"] == {first_volume: sorted(made[first_volume]), second_volume: sorted(made[second_volume])}


def failed_copy(aws, source_id):
    """A snapshot in state error in DR that carries the tags of a copy of ``source_id`` (an EBS direct
    snapshot completed with a wrong block count ends in error)."""
    ebs = aws.client("ebs", region=DR)
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Tags=tag_list({"blockwise:source-snapshot": source_id, "blockwise:source-region": HOME,
                                                                  "blockwise:source-account": ACCOUNT}))["SnapshotId"]
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=3)
    state = aws.client("ec2", region=DR).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
    assert state == "error"
    return snapshot_id


def test_a_copy_in_error_is_deleted_and_copied_again(aws, playbook):
    made = sources(aws, volumes=1, per_volume=2)
    broken_source, fine_source = made[next(iter(made))]
    broken = failed_copy(aws, broken_source)
    aws.reset_counters()
    res = playbook([copy_task()]).result("copy")
    assert not res.get("failed"), res
    replaced = {item["source_snapshot_id"]: item["replaced"] for item in res["copies"]}
    assert replaced == {broken_source: [broken], fine_source: []}
    assert any(broken in warning for warning in res.get("warnings", []))
    counts = aws.counters()
    assert counts.get("ec2:DeleteSnapshot") == 1 and counts.get("ec2:CopySnapshot") == 2
    found = copies_in(aws)
    assert found[broken_source]["SnapshotId"] != broken and found[broken_source]["State"] != "error"
    ec2 = aws.client("ec2", region=DR)
    assert not ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [broken]}])["Snapshots"]


def test_quota_refusal_queues_instead_of_failing_and_the_next_run_continues(aws, playbook):
    made = sources(aws, volumes=3, per_volume=1)
    aws.inject_error("CopySnapshot", status=400, code="ResourceLimitExceeded",
                     message="Too many snapshot copies in progress. The limit is 20 for this destination region.", count=1)
    res = playbook([copy_task()]).result("copy")
    assert not res.get("failed"), res
    assert res["copies"] == [] and not res["changed"]
    reasons = sorted(item["reason"] for item in res["queued"])
    assert len(reasons) == 3 and reasons[0].startswith("ResourceLimitExceeded") and reasons[1:] == ["max_in_flight", "max_in_flight"]
    assert any("queued" in warning for warning in res.get("warnings", []))
    assert copies_in(aws) == {}
    res = playbook([copy_task()]).result("copy")
    assert not res.get("failed") and len(res["copies"]) == 3 and res["queued"] == []
    assert sorted(copies_in(aws)) == sorted(snap for snaps in made.values() for snap in snaps)


def test_a_server_error_never_leads_to_a_second_copy_in_the_same_run(aws, playbook):
    made = sources(aws, volumes=2, per_volume=1)
    aws.inject_error("CopySnapshot", status=500, code="InternalError", message="An internal error has occurred", count=1000)
    aws.reset_counters()
    once = playbook([copy_task()]).result("copy")
    single_run = aws.counters().get("ec2:CopySnapshot")  # one request per source, with botocore's own retries
    aws.reset_counters()
    res = playbook([copy_task(wait=True, wait_timeout=20)]).result("copy")
    for result in (once, res):
        assert not result.get("failed"), result
        assert result["copies"] == [] and len(result["queued"]) == 2
        assert all(item["reason"].startswith("outcome unknown") for item in result["queued"])
    # Waiting polled and re-planned, but a source whose request may have created a copy is not asked again.
    assert single_run and aws.counters().get("ec2:CopySnapshot") == single_run
    aws.clear_faults()
    res = playbook([copy_task()]).result("copy")
    assert not res.get("failed") and len(res["copies"]) == 2
    assert sorted(copies_in(aws)) == sorted(snap for snaps in made.values() for snap in snaps)


class PendingSampler:
    """Counts the collection's pending copies in a region every few milliseconds, in a thread."""

    def __init__(self, aws, region=DR):
        self.ec2 = aws.client("ec2", region=region)
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        filters = [{"Name": "tag-key", "Values": ["blockwise:source-snapshot"]}, {"Name": "status", "Values": ["pending"]}]
        while not self._stop.is_set():
            self.samples.append(len(self.ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()


def test_quota_under_load_never_more_than_20_pending(aws, playbook):
    """60 sources, copies that take 3 s: one waiting run copies them all in rounds of at most 20."""
    made = sources(aws, volumes=20, per_volume=3)
    aws.set_copy_duration(3)
    aws.reset_counters()
    with PendingSampler(aws) as sampler:
        res = playbook([copy_task(wait=True, wait_timeout=300)]).result("copy")
    assert not res.get("failed"), res
    assert len(res["copies"]) == 60 and res["queued"] == [] and all(item["state"] == "completed" for item in res["copies"])
    assert max(sampler.samples) == 20, sampler.samples  # the quota was reached, never passed
    assert aws.counters().get("ec2:CopySnapshot") == 60  # never refused: the module kept within max_in_flight
    assert sorted(copies_in(aws)) == sorted(snap for snaps in made.values() for snap in snaps)


def test_quota_over_runs_without_waiting(aws, playbook):
    """Without wait: 20 per run while the earlier ones are pending; a run with a full queue changes nothing."""
    sources(aws, volumes=20, per_volume=3)
    aws.set_copy_duration(600)
    started, queued, changed = [], [], []
    with PendingSampler(aws) as sampler:
        for dummy in range(5):
            aws.reset_counters()
            res = playbook([copy_task()]).result("copy")
            assert not res.get("failed"), res
            started.append(aws.counters().get("ec2:CopySnapshot", 0))
            queued.append(len(res["queued"]))
            changed.append(res["changed"])
            if dummy % 2:
                aws.advance_clock(601)  # the pending copies complete
    assert started == [20, 0, 20, 0, 20] and queued == [40, 40, 20, 20, 0] and changed == [True, False, True, False, True]
    assert max(sampler.samples) <= 20


def test_a_lower_account_quota_is_met_with_queueing_not_failure(aws, playbook):
    """Copies of other tools count in AWS's quota: ResourceLimitExceeded queues the rest."""
    sources(aws, volumes=4, per_volume=1)
    aws.set_copy_limit(2)
    aws.set_copy_duration(600)
    res = playbook([copy_task()]).result("copy")
    assert not res.get("failed"), res
    assert len(res["copies"]) == 2 and len(res["queued"]) == 2
    assert res["queued"][0]["reason"].startswith("ResourceLimitExceeded")
    assert res["summary"]["in_flight"] == 2


def test_a_copy_that_ends_in_error_fails_the_run_and_the_next_run_retries_it(aws, playbook):
    made = sources(aws, volumes=1, per_volume=1)
    source_id = made[next(iter(made))][0]
    aws.set_copy_duration(600)
    res = playbook([copy_task()]).result("copy")
    first_copy = res["copies"][0]["snapshot_id"]
    aws.fail_copy(first_copy, region=DR, message="The snapshot copy failed.")
    aws.set_copy_duration(1)
    res = playbook([copy_task(wait=True, wait_timeout=60)]).result("copy")
    # Found in error by this run: deleted, copied again, waited for.
    assert not res.get("failed"), res
    assert res["copies"][0]["replaced"] == [first_copy] and res["copies"][0]["state"] == "completed"

    # A copy this run makes and sees fail is reported, the task fails, and the next run retries it.
    aws.client("ec2", region=DR).delete_snapshot(SnapshotId=res["copies"][0]["snapshot_id"])
    aws.set_copy_duration(600)
    failer = threading.Timer(3, lambda: [aws.fail_copy(copy["SnapshotId"], region=DR) for copy in copies_in(aws).values()])
    failer.start()
    res = playbook([copy_task(wait=True, wait_timeout=60)]).result("copy")
    failer.join()
    assert res.get("failed") and "ended in state error" in res["msg"], res
    assert [item["source_snapshot_id"] for item in res["failed_copies"]] == [source_id]
    assert res["copies"][0]["state"] == "error"
    aws.set_copy_duration(1)
    res = playbook([copy_task(wait=True, wait_timeout=60)]).result("copy")
    assert not res.get("failed") and res["copies"][0]["replaced"] and res["copies"][0]["state"] == "completed", res


def test_copies_are_encrypted_with_the_destination_key_and_lineage_never_comes_from_their_volume(aws, playbook):
    made = sources(aws, volumes=2, per_volume=1)
    kms = aws.client("kms", region=DR)
    key = kms.create_key(Description="dr")["KeyMetadata"]
    kms.create_alias(AliasName="alias/dr", TargetKeyId=key["KeyId"])
    res = playbook([copy_task(kms_key_id="alias/dr", wait=True, wait_timeout=60)]).result("copy")
    assert not res.get("failed"), res
    for source_id, copy in copies_in(aws).items():
        assert copy["Encrypted"] and copy["KmsKeyId"] == key["Arn"]
        assert copy["VolumeId"] == "vol-ffffffff"  # AWS: arbitrary
        volume_id = [volume for volume, snaps in made.items() if source_id in snaps][0]
        assert tags_of(copy)["blockwise:lineage"] == volume_id
    assert {item["kms_key_id"] for item in res["copies"]} == {key["Arn"]}


def prune_task(title, region=HOME, **params):
    return {"name": title, "blockwise.ebs.ebs_snapshot_prune": dict({"region": region, "policy": POLICY, "max_deletions": 100}, **params),
            "ignore_errors": True}


def test_a_source_whose_copy_is_pending_is_protected_from_pruning(aws, playbook):
    made = sources(aws, volumes=1, per_volume=4)
    for age, snapshot_id in enumerate(reversed(made[next(iter(made))])):
        aws.backdate_snapshot(snapshot_id, datetime.now(timezone.utc) - timedelta(days=age + 1), region=HOME)
    aws.set_copy_duration(600)
    assert len(playbook([copy_task()]).result("copy")["copies"]) == 4
    aws.reset_counters()
    res = playbook([prune_task("prune", retention={"keep_last": 1}, copy_regions=[DR])], diff=True).result("prune")
    assert not res.get("failed"), res
    assert res["deleted"] == [] and sorted(item["snapshot_id"] for item in res["protected"]) == sorted(made[next(iter(made))])
    assert all(item["reasons"] == ["copy-pending:" + DR] for item in res["protected"])
    assert aws.counters().get("ec2:DescribeSnapshots") == 2  # the scope at home, one read in DR
    assert all(copy["State"] == "pending" for copy in copies_in(aws).values())

    aws.advance_clock(601)  # the copies complete: the home retention applies again
    res = playbook([prune_task("prune", retention={"keep_last": 1}, copy_regions=[DR])]).result("prune")
    assert not res.get("failed") and len(res["deleted"]) == 3, res
    assert all(copy["State"] == "completed" for copy in copies_in(aws).values())  # the copies survived their sources


def test_without_the_protection_a_pruned_source_loses_its_pending_copy(aws, playbook):
    """Why copy_regions exists: deleting the source of a pending copy makes the copy fail (the endpoint's model)."""
    made = sources(aws, volumes=1, per_volume=2)
    older = made[next(iter(made))][0]
    aws.backdate_snapshot(older, datetime.now(timezone.utc) - timedelta(days=3), region=HOME)
    aws.set_copy_duration(600)
    playbook([copy_task()])
    res = playbook([prune_task("prune", retention={"keep_last": 1})]).result("prune")
    assert [item["snapshot_id"] for item in res["deleted"]] == [older]
    aws.advance_clock(601)
    assert copies_in(aws)[older]["State"] == "error"


def test_a_source_still_shared_with_a_copy_account_is_protected(aws, playbook):
    made = sources(aws, volumes=1, per_volume=3)
    ids = made[next(iter(made))]
    for age, snapshot_id in enumerate(reversed(ids)):
        aws.backdate_snapshot(snapshot_id, datetime.now(timezone.utc) - timedelta(days=age + 1), region=HOME)
    aws.client("ec2", region=HOME).modify_snapshot_attribute(
        SnapshotId=ids[0], Attribute="createVolumePermission", OperationType="add", UserIds=["210987654321"])
    res = playbook([prune_task("prune", retention={"keep_last": 1}, copy_accounts=["210987654321"])]).result("prune")
    assert not res.get("failed"), res
    assert [(item["snapshot_id"], item["reasons"]) for item in res["protected"]] == [(ids[0], ["copy-shared:210987654321"])]
    assert [item["snapshot_id"] for item in res["deleted"]] == [ids[1]]


def test_the_destination_prunes_copies_with_its_own_retention_per_source_volume(aws, playbook):
    made = sources(aws, volumes=2, per_volume=4)
    for volume_id, ids in made.items():
        for age, snapshot_id in enumerate(reversed(ids)):
            aws.backdate_snapshot(snapshot_id, datetime.now(timezone.utc) - timedelta(days=age + 1), region=HOME)
    res = playbook([copy_task(wait=True, wait_timeout=60)]).result("copy")
    assert not res.get("failed") and len(res["copies"]) == 8, res
    by_source = copies_in(aws)
    # Copies are all made now: give each the age of its source, as time passing would.
    for source_id, copy in by_source.items():
        source = aws.client("ec2", region=HOME).describe_snapshots(SnapshotIds=[source_id])["Snapshots"][0]
        aws.backdate_snapshot(copy["SnapshotId"], source["StartTime"], region=DR)
    run = playbook([prune_task("home", retention={"keep_last": 3}), prune_task("dr", region=DR, retention={"keep_last": 1})])
    home, dr = run.result("home"), run.result("dr")
    assert not home.get("failed") and not dr.get("failed"), run
    assert len(home["deleted"]) == 2 and len(dr["deleted"]) == 6
    kept = {by_source[source]["SnapshotId"]: volume for volume, ids in made.items() for source in ids}
    assert sorted(kept[item["snapshot_id"]] for item in dr["kept"]) == sorted(made)  # one per source volume
    newest = {ids[-1] for ids in made.values()}
    assert {item["snapshot_id"] for item in dr["kept"]} == {by_source[source]["SnapshotId"] for source in newest}
    assert set(dr["volumes"]) == {"lineage:" + volume for volume in made}


NEW_SOURCES = 100


def seed_many(count, volumes, now, source_region=HOME, dest_region=DR, policy=POLICY):
    """``count`` policy snapshots over ``volumes`` volumes in ``source_region``, and ``count`` copies in
    ``dest_region``: copies of all but the newest NEW_SOURCES, plus NEW_SOURCES whose source was pruned.
    Made directly in moto's in-process backend (the objects the endpoint serves). Returns the source ids."""
    home, dest = ec2_backends[DEFAULT_ACCOUNT_ID][source_region], ec2_backends[DEFAULT_ACCOUNT_ID][dest_region]
    made = []
    for index in range(volumes):
        volume = home.create_volume(size=1, zone_name=source_region + "a")
        for day in range(count // volumes):
            snapshot = home.create_snapshot(volume.id, "bench")
            snapshot.start_time = (now - timedelta(days=day, minutes=index)).astimezone(timezone.utc).replace(tzinfo=None)
            home.create_tags([snapshot.id], {"blockwise:policy": policy})
            made.append((snapshot.start_time, snapshot.id, volume.id))
    made.sort(reverse=True)
    covered = [(snapshot_id, volume_id) for dummy, snapshot_id, volume_id in made[NEW_SOURCES:]]
    covered += [("snap-gone%08d" % number, "vol-gone") for number in range(NEW_SOURCES)]
    holder = dest.create_volume(size=1, zone_name=dest_region + "a")
    for source_id, volume_id in covered:
        copy = dest.create_snapshot(holder.id, "copy")
        dest.create_tags([copy.id], {"blockwise:source-snapshot": source_id, "blockwise:source-region": source_region,
                                     "blockwise:source-account": DEFAULT_ACCOUNT_ID, "blockwise:lineage": volume_id,
                                     "blockwise:policy": policy})
    return [snapshot_id for dummy, snapshot_id, dummy2 in made]


def test_the_plan_for_2000_sources_and_2000_copies_costs_at_most_25_describe_calls(aws, playbook):
    seed_many(2000, 200, datetime.now(timezone.utc) - timedelta(hours=1))
    aws.reset_counters()
    res = playbook([copy_task(check_mode=True)]).result("copy")
    assert not res.get("failed"), res
    assert res["summary"]["present"] == 1900 and len(res["copies"]) == 20 and len(res["queued"]) == 80
    describes = {key: count for key, count in aws.counters().items() if ":Describe" in key}
    assert sum(describes.values()) <= 25, describes
    assert aws.mutating_calls() == {}


def test_destination_retention_orders_copies_by_their_source_start_time(aws, playbook):
    """A backlog copied in one run (latest_only: false) gets copy start times in the order the copies were made, not
    the order of their sources: the destination's retention must keep the copies of the newest sources."""
    made = sources(aws, volumes=1, per_volume=3)
    now = datetime.now(timezone.utc)
    ordered = made[next(iter(made))]  # oldest first
    for age, snapshot_id in enumerate(reversed(ordered)):
        aws.backdate_snapshot(snapshot_id, now - timedelta(days=age + 1), region=HOME)
    res = playbook([copy_task(latest_only=False, wait=True, wait_timeout=120)]).result("copy")
    assert not res.get("failed"), res
    found = copies_in(aws)
    assert sorted(found) == sorted(ordered)
    for age, source_id in enumerate(ordered):  # the copy of the newest source looks the oldest by its own start time
        aws.backdate_snapshot(found[source_id]["SnapshotId"], now - timedelta(hours=1 + age), region=DR)
    res = playbook([prune_task("prune", region=DR, retention={"keep_last": 1})]).result("prune")
    assert not res.get("failed"), res
    left = copies_in(aws)
    assert sorted(left) == [ordered[-1]], (sorted(left), ordered)
