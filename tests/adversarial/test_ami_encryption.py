# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on ami_snapshot_tag and ebs_default_encryption through ansible-playbook.

Each test tries to make a module lose a control tag, report something AWS does not hold, or leave a
mess, and then checks the result against AWS's state read with plain boto3:

- image tags that try to set, change or remove the collection's ``blockwise:`` keys (keys in every
  case, with and without purge, on snapshots shared by several images);
- snapshots deleted while a run is writing (some needing writes, some already right);
- concurrent runs, identical or conflicting;
- a failing region under ``--diff`` with throttling and server errors around it;
- check mode predictions compared with what the real run then does.
"""
import random
import threading
import time

from tests.functional.conftest import playbook  # noqa: F401  pylint: disable=unused-import
from tests.functional.harness import run_playbook
from tests.functional.test_ami_snapshot_tag import IMAGE_ID_TAG, Fleet, task

ENCRYPTION = "blockwise.ebs.ebs_default_encryption"
CONFLICT = "changed by another writer during the run"


def collection_keys(tags):
    return {key: value for key, value in tags.items() if key.lower().startswith("blockwise:") and key != IMAGE_ID_TAG}


def hostile_image_tags(rng):
    """Image tags with blockwise: keys in random case, next to ordinary tags."""
    keys = ["blockwise:protect", "blockwise:policy", "blockwise:lineage", "blockwise:verified", "blockwise:parent", "blockwise:new-key"]
    tags = {"team": rng.choice(["web", "db"])}
    for key in rng.sample(keys, rng.randint(1, len(keys))):
        spelled = "".join(char.upper() if rng.random() < 0.3 else char for char in key)
        tags[spelled] = rng.choice(["", "no", "yes", "daily", "snap-0123456789abcdef0"])
    return tags


def concurrently(*jobs):
    results = [None] * len(jobs)

    def run(position, job):
        results[position] = job()

    threads = [threading.Thread(target=run, args=(position, job)) for position, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


# ------------------------------------------------------------------------- the collection's keys


def test_hostile_image_tags_never_touch_a_snapshots_collection_keys(aws, playbook):  # noqa: F811
    rng = random.Random(20)
    fleet = Fleet(aws)
    shared = fleet.snapshot(tags={"blockwise:protect": "yes"})
    images = []
    for number in range(8):
        devices = [("/dev/xvda", shared) if number % 3 == 0 else "/dev/xvda", "/dev/sdb"]
        image_id, snaps = fleet.image("hostile-%d" % number, devices, tags=hostile_image_tags(rng))
        images.append((image_id, snaps))
    snapshots = sorted({snap for dummy, snaps in images for snap in snaps.values()})
    own = {}
    for snap in snapshots:
        if rng.random() < 0.5:
            fleet.ec2.create_tags(Resources=[snap], Tags=[{"Key": "blockwise:protect", "Value": "keep-%s" % snap[-4:]}])
        own[snap] = collection_keys(fleet.tags(snap))
    for purge in (False, True, False):
        run = playbook([task(aws, filters={"name": "hostile-*"}, copy_image_tags=True, purge_tags=purge)])
        assert run.rc == 0, run
        for snap in snapshots:
            tags = fleet.tags(snap)
            assert collection_keys(tags) == own[snap], (snap, tags)
            assert tags.get("team") in ("web", "db")


# ------------------------------------------------------------------------- deletions mid-run


def test_snapshots_deleted_at_random_moments_are_never_reported_as_named(aws, playbook):  # noqa: F811
    rng = random.Random(7)
    fleet = Fleet(aws)
    images = [fleet.image("app-%02d" % number, ["/dev/xvda", "/dev/sdb"]) for number in range(8)]
    assert playbook([task(aws, image_ids=[image_id for image_id, dummy in images[:4]])]).rc == 0  # half already right
    doomed = rng.sample(images, 4)
    aws.set_faults(latency=0.15, actions=["CreateTags"])
    aws.reset_counters()

    def delete_some():
        for image_id, snaps in doomed:
            wanted = rng.randint(1, 8)  # the run makes 9 CreateTags: delete while it writes, never after
            deadline = time.monotonic() + 60
            while aws.counters().get("ec2:CreateTags", 0) < wanted and time.monotonic() < deadline:
                time.sleep(0.01)
            fleet.ec2.deregister_image(ImageId=image_id)
            for snap in snaps.values():
                fleet.ec2.delete_snapshot(SnapshotId=snap)

    worker = threading.Thread(target=delete_some, daemon=True)
    worker.start()
    run = playbook([task(aws, filters={"name": "app-*"}, tags={"team": "storage"})], diff=True)
    worker.join()
    aws.clear_faults()
    res = run.result("tag")
    assert run.rc == 0, run
    alive = {s["SnapshotId"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])}
             for s in fleet.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    for entry in res["snapshots"]:
        assert entry["snapshot_id"] in alive, entry  # nothing reported that AWS no longer holds
        assert alive[entry["snapshot_id"]]["Name"] == entry["name"]
        assert alive[entry["snapshot_id"]]["team"] == "storage"
        assert res["diff"]["after"].get(entry["snapshot_id"], alive[entry["snapshot_id"]]) == alive[entry["snapshot_id"]]
    reported = {entry["snapshot_id"] for entry in res["snapshots"]} | {entry["snapshot_id"] for entry in res["skipped_snapshots"]}
    gone = {snap for dummy, snaps in doomed for snap in snaps.values()}
    assert gone - set(alive) == gone
    # Every deleted snapshot whose image the run still selected is accounted for as vanished, never as named.
    assert {entry["snapshot_id"] for entry in res["snapshots"]} & gone == set()
    assert reported >= set(alive) & {snap for dummy, snaps in images for snap in snaps.values()}
    assert all(entry["reason"] == "vanished" for entry in res["skipped_snapshots"])


# ------------------------------------------------------------------------- concurrent runs


def test_two_identical_runs_at_once_both_succeed_and_agree(aws, tmp_path):
    fleet = Fleet(aws)
    images = [fleet.image("twin-%d" % number, ["/dev/xvda", "/dev/sdb"], tags={"env": "prod"}) for number in range(6)]
    aws.set_faults(latency=0.05, actions=["CreateTags", "DescribeSnapshots"])
    tasks = [task(aws, filters={"name": "twin-*"}, copy_image_tags=True)]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    runs = concurrently(*(lambda name=name: run_playbook(aws.endpoint_url, tasks, tmp_path / name) for name in ("a", "b")))
    aws.clear_faults()
    for run in runs:
        assert run.rc == 0, run
        assert not any("error" in entry for entry in run.result("tag")["snapshots"])
    for number, (image_id, snaps) in enumerate(images):
        assert fleet.tags(snaps["/dev/sdb"]) == {"Name": "twin-%d(002)" % number, IMAGE_ID_TAG: image_id, "env": "prod"}


def test_two_conflicting_runs_at_once_never_both_claim_the_snapshots(aws, tmp_path):
    """Two templates for the same snapshots: whatever the interleaving, each run tells what it saw last."""
    fleet = Fleet(aws)
    images = [fleet.image("fight-%d" % number, ["/dev/xvda"]) for number in range(6)]
    aws.set_faults(latency=0.4, actions=["CreateTags"])  # long write phases, so that they overlap
    templates = {"a": "{image_name}-A{index}", "b": "{image_name}-B{index}"}
    for name in templates:
        (tmp_path / name).mkdir()
    runs = dict(zip(templates, concurrently(*(
        lambda name=name: run_playbook(aws.endpoint_url, [task(aws, filters={"name": "fight-*"}, name_template=templates[name])],
                                       tmp_path / name, diff=True)
        for name in templates))))
    aws.clear_faults()
    final = {snaps["/dev/xvda"]: fleet.name(snaps["/dev/xvda"]) for dummy, snaps in images}
    for name, run in runs.items():
        res = run.result("tag")
        assert "Traceback" not in run.stderr + run.stdout
        other = "B" if name == "a" else "A"
        for entry in res["snapshots"]:
            after = res["diff"]["after"].get(entry["snapshot_id"])
            if "error" in entry:  # flagged: it saw the other run's name, and says so
                assert CONFLICT in entry["error"] and "-%s1'" % other in entry["error"], entry
                assert after["Name"].endswith("-%s1" % other)
            elif after is not None:  # reported named: that is what it read back
                assert after["Name"] == entry["name"]
        if res.get("failed"):
            assert CONFLICT in res["msg"] and "rerun to converge" in res["msg"], res["msg"]
    for snapshot_id, name_tag in final.items():
        assert name_tag.rsplit("-", 1)[1] in ("A1", "B1"), (snapshot_id, name_tag)
    # A run alone converges whatever the fight left.
    alone = run_playbook(aws.endpoint_url, [task(aws, filters={"name": "fight-*"}, name_template=templates["a"])], tmp_path / "a")
    assert alone.rc == 0, alone
    assert all(fleet.name(snaps["/dev/xvda"]) == "fight-%d-A1" % number for number, (dummy, snaps) in enumerate(images))


# ------------------------------------------------------------------------- predictions and diffs


def test_check_mode_predicts_exactly_what_the_real_run_does(aws, playbook):  # noqa: F811
    fleet = Fleet(aws)
    images = [fleet.image("p-%d" % number, ["/dev/xvda", "/dev/sdb"], tags={"env": "prod", "blockwise:protect": "no"}) for number in range(3)]
    fleet.ec2.create_tags(Resources=[images[0][1]["/dev/sdb"]], Tags=[{"Key": "stale", "Value": "1"}, {"Key": "blockwise:protect", "Value": "yes"}])
    params = {"filters": {"name": "p-*"}, "copy_image_tags": True, "purge_tags": True}
    predicted = playbook([task(aws, **params)], check=True, diff=True).result("tag")
    done = playbook([task(aws, **params)], diff=True).result("tag")
    assert predicted["diff"] == done["diff"]
    assert [(e["snapshot_id"], e["changed"], e["name"]) for e in predicted["snapshots"]] == \
        [(e["snapshot_id"], e["changed"], e["name"]) for e in done["snapshots"]]
    for snapshot_id, after in done["diff"]["after"].items():
        assert fleet.tags(snapshot_id) == after


def encryption_state(aws, region):
    ec2 = aws.client("ec2", region=region)
    return ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]


def test_encryption_diff_matches_aws_whatever_fails(aws, playbook):  # noqa: F811
    regions = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]
    aws.set_faults(throttle_rate=0.15, error_rate=0.02, seed=11)
    # The first region applied (us-east-1) is denied; throttling and 5xx everywhere else are retried.
    aws.inject_error("EnableEbsEncryptionByDefault", status=403, code="UnauthorizedOperation", message="denied by SCP", count=1)
    run = playbook([{"name": "enc", ENCRYPTION: {"regions": regions, "fail_on_region_error": False}, "register": "out"}], diff=True)
    aws.clear_faults()
    res = run.result("enc")
    assert run.rc == 0, run
    assert res["failed_regions"] == ["us-east-1"]
    for region in regions:
        actual = encryption_state(aws, region)
        assert res["regions"][region].get("encryption_by_default", actual) == actual, region
        if region in res["diff"]["after"]:
            assert res["diff"]["after"][region]["encryption_by_default"] is actual, region
        assert (region in res["failed_regions"]) is (not actual), region
    # Then the check-mode prediction of a clean rerun is exactly what that rerun does.
    predicted = playbook([{"name": "enc", ENCRYPTION: {"regions": regions}, "register": "out"}], check=True, diff=True).result("enc")
    done = playbook([{"name": "enc", ENCRYPTION: {"regions": regions}, "register": "out"}], diff=True).result("enc")
    assert predicted["diff"] == done["diff"]
    assert all(encryption_state(aws, region) for region in regions)


def test_two_encryption_runs_at_once_both_tell_the_truth(aws, tmp_path):
    regions = ["us-east-1", "eu-west-1", "eu-north-1"]
    aws.set_faults(latency=0.05, actions=["EnableEbsEncryptionByDefault"])
    tasks = [{"name": "enc", ENCRYPTION: {"regions": regions}, "register": "out"}]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    runs = concurrently(*(lambda name=name: run_playbook(aws.endpoint_url, tasks, tmp_path / name, diff=True) for name in ("a", "b")))
    aws.clear_faults()
    for run in runs:
        assert run.rc == 0, run
        res = run.result("enc")
        for region in regions:
            assert res["regions"][region]["encryption_by_default"] is True
            assert res["diff"]["after"].get(region, {"encryption_by_default": True})["encryption_by_default"] is True
    assert all(encryption_state(aws, region) for region in regions)
