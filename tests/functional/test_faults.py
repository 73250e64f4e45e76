# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults: throttling and 5xx on every API, SIGKILL in the middle of transfers and of a prune.

- With 20% of all requests throttled and 2% answered with a 500 (EC2, EBS direct, KMS, STS), every
  module reaches the state a fault-free run reaches, and a second run (faults still on) changes
  nothing and makes no write.
- An upload and a download killed at about half way are finished by a rerun (under the same
  faults): identical bytes, one completed snapshot, nothing left pending, and the upload resumes
  instead of starting over.
- A prune killed in the middle of its deletions is finished by a rerun, which deletes exactly what
  the plan deletes and nothing that the policy keeps.
"""
import json
import os
import signal
import time
from pathlib import Path

from tests.functional.test_block_put import (
    BS, GIB, assert_same_content, completed_snapshots, image_blocks, ok, random_blocks, write_image)
from tests.functional.test_block_resume import pending_snapshots, start_playbook
from tests.localaws.seed import seed_fleet

THROTTLE = 0.2
ERRORS = 0.02
POLICY = "daily"
KMS_ALIAS = "alias/ebs-default"
# Encryption by default is managed in other regions than the one of the uploads: in us-east-1 it would
# make every upload encrypted, and an encrypted snapshot has all of its blocks written (zeros too).
ENCRYPTION_REGIONS = ["eu-west-1", "ap-southeast-2"]


def faults_task(aws, seed=None, clear=False):
    """A task that switches the endpoint's random faults on (every service and action) or off."""
    url = "{0}/_localaws/faults".format(aws.endpoint_url)
    if clear:
        return {"name": "faults off", "ansible.builtin.uri": {"url": url, "method": "DELETE", "use_proxy": False, "status_code": [200, 204]}}
    body = {"latency": 0.0, "throttle_rate": THROTTLE, "error_rate": ERRORS, "services": [], "actions": [], "seed": seed}
    args = {"url": url, "method": "POST", "body_format": "json", "body": body, "use_proxy": False, "status_code": [200, 204]}
    return {"name": "faults on", "ansible.builtin.uri": args}


def assert_restored(image_path, dest_path):
    """dest holds the image's bytes and only zeros after them, up to a whole number of GiB.

    Past the image only the data extents of dest are read (SEEK_DATA/SEEK_HOLE): the holes of a
    sparse restore read as zeros without reading a GiB of them.
    """
    size = os.path.getsize(image_path)
    dest_size = os.path.getsize(dest_path)
    assert dest_size % GIB == 0 and dest_size >= size
    with open(image_path, "rb") as image, open(dest_path, "rb") as dest:
        assert dest.read(size) == image.read()
        fd = dest.fileno()
        offset = size
        while offset < dest_size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                return  # only holes left
            end = min(os.lseek(fd, start, os.SEEK_HOLE), dest_size)
            for chunk in range(start, end, 64 * 1024 * 1024):
                data = os.pread(fd, min(64 * 1024 * 1024, end - chunk), chunk)
                assert data.count(0) == len(data), "non-zero bytes after the image at {0}".format(chunk)
            offset = end


def successful(aws, key):
    """Requests of ``service:Action`` that were answered normally (not throttled or failed on purpose)."""
    return aws.counters().get(key, 0) - aws.faulted_counters().get(key, 0)


def tags_of(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags") or []}


def all_snapshots(aws, region="us-east-1"):
    return {item["SnapshotId"]: item for item in aws.client("ec2", region=region).describe_snapshots(OwnerIds=["self"])["Snapshots"]}


# ------------------------------------------------------------------------------ convergence under faults

def module_tasks(work, img):
    """One task per module, as a scheduled job would run them (prune in check mode first for the expected plan)."""
    prune = {"policy": POLICY, "retention": {"keep_daily": 2}, "max_deletions": 100}
    return {
        "encryption": {"blockwise.ebs.ebs_default_encryption": {"regions": ENCRYPTION_REGIONS, "kms_key_id": KMS_ALIAS}},
        "policy": {"blockwise.ebs.ebs_snapshot_policy": {"name": POLICY, "volume_filters": {"tag:backup": "daily"}, "frequency": "1h",
                                                         "max_concurrency": 4}},
        "plan": {"blockwise.ebs.ebs_snapshot_prune": prune, "check_mode": True},
        "prune": {"blockwise.ebs.ebs_snapshot_prune": dict(prune, max_concurrency=4)},
        "ami": {"blockwise.ebs.ami_snapshot_tag": {"all_images": True, "copy_image_tags": True}},
        "put": {"blockwise.ebs.ebs_block_put": {"src": img, "state_dir": work + "/state", "workers": 4, "manifest": work + "/put.manifest"},
                "register": "up"},
        "get": {"blockwise.ebs.ebs_block_get": {"snapshot_id": "{{ up.snapshot_id }}", "dest": work + "/restored.raw", "workers": 4}},
        "changed_blocks": {"blockwise.ebs.ebs_changed_blocks_info": {"second_snapshot_id": "{{ up.snapshot_id }}"}},
    }


def named(name, task):
    return dict(task, name=name)


def make_keys(aws):
    keys = {}
    for region in ENCRYPTION_REGIONS:
        kms = aws.client("kms", region=region)
        key = kms.create_key(Description="default EBS key")["KeyMetadata"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key["KeyId"])
        keys[region] = key["Arn"]
    return keys


def test_every_module_converges_under_throttling_and_5xx(aws, playbook, tmp_path):
    seeded = seed_fleet(aws, regions=["us-east-1"], days=4)["us-east-1"]
    keys = make_keys(aws)
    img = write_image(tmp_path / "disk.raw", 6 * 1024 * 1024 + 100, random_blocks(range(0, 12, 2), seed=31), pieces={12 * BS: b"tail"})
    tasks = module_tasks(str(tmp_path), img)
    before = all_snapshots(aws)

    # First run: faults on everywhere, except for the fault-free check-mode plan of the prune.
    first = playbook([faults_task(aws, seed=13), named("encryption", tasks["encryption"]), named("policy", tasks["policy"]),
                      faults_task(aws, clear=True), named("plan", tasks["plan"]), faults_task(aws, seed=12),
                      named("prune", tasks["prune"]), named("ami", tasks["ami"]), named("put", tasks["put"]),
                      named("get", tasks["get"]), named("changed_blocks", tasks["changed_blocks"])], diff=True)
    faulted = aws.faulted_counters()
    aws.clear_faults()
    results = {name: ok(first, name) for name in tasks}
    services = {key.split(":")[0] for key in faulted}
    assert {"ec2", "ebs", "kms"} <= services, faulted
    assert sum(faulted.values()) >= 10, faulted

    # Encryption by default: on, with the alias's key, in both regions.
    assert results["encryption"]["changed"]
    for region in ENCRYPTION_REGIONS:
        ec2 = aws.client("ec2", region=region)
        assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
        assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == keys[region]

    # Policy: exactly one new snapshot per selected volume (a retried create never doubles).
    created = results["policy"]["created"]
    assert len(created) == len(results["policy"]["matched"]) == 7
    assert sorted(item["volume_id"] for item in created) == sorted(results["policy"]["matched"])
    after_policy = {item["snapshot_id"] for item in created}
    assert after_policy.isdisjoint(before)

    # Prune: exactly the fault-free plan was deleted; what the policy keeps (and the new snapshots) remain.
    planned = {item["snapshot_id"] for item in results["plan"]["deleted"]}
    assert planned and results["prune"]["errors"] == []
    assert {item["snapshot_id"] for item in results["prune"]["deleted"]} == planned
    up = results["put"]
    now = all_snapshots(aws)
    assert set(now) == (set(before) | after_policy | {up["snapshot_id"]}) - planned
    assert set(seeded["ami_snapshots"]) <= set(now)
    assert seeded["protected_snapshot"] in now

    # AMI snapshot names: both images' snapshots carry their names and the image's tags.
    front_web = seeded["ami_snapshots"]
    for index, snapshot_id in enumerate(front_web, 1):
        tags = tags_of(now[snapshot_id])
        assert tags["Name"].endswith("({0:03d})".format(index)) and tags["Name"].startswith("front-web-"), tags
        assert tags["blockwise:image-id"] == seeded["images"]["front-web"] and tags["team"] == "web"

    # Upload, download and changed blocks: the same bytes end to end.
    assert up["state"] == "completed" and up["blocks_written"] == len(image_blocks(img))
    assert_same_content(aws, up["snapshot_id"], img)
    assert [s["SnapshotId"] for s in completed_snapshots(aws, up["content_digest"])] == [up["snapshot_id"]]
    assert pending_snapshots(aws) == [] or all(s["SnapshotId"] in after_policy for s in pending_snapshots(aws))
    assert_restored(img, str(tmp_path / "restored.raw"))
    assert results["changed_blocks"]["changed_blocks"] == len(image_blocks(img))

    # Second run, faults still on: nothing changes and nothing is written.
    aws.set_faults(throttle_rate=THROTTLE, error_rate=ERRORS, seed=13)
    aws.reset_counters()
    again = playbook([named(name, task) for name, task in tasks.items() if name != "plan"])
    mutating = aws.mutating_calls()
    faulted = aws.faulted_counters()
    aws.clear_faults()
    for name in tasks:
        if name != "plan":
            assert ok(again, name)["changed"] is False, (name, again.result(name))
    assert mutating == {}
    assert sum(faulted.values()) > 0
    assert set(all_snapshots(aws)) == set(now)


# ------------------------------------------------------------------------------------ SIGKILL helpers

def read_progress(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def kill_at(aws, tasks, workdir, progress, state, blocks, timeout=120):
    """Start the playbook, SIGKILL the module (pid from its progress file) once ``blocks`` blocks are done in ``state``."""
    proc = start_playbook(aws, tasks, workdir)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, "the transfer ended before it could be interrupted"
            assert time.monotonic() < deadline, "no {0} progress in {1}".format(state, progress)
            doc = read_progress(progress)
            if doc and doc.get("state") == state and doc.get("blocks_done", 0) >= blocks:
                os.kill(doc["pid"], signal.SIGKILL)
                return doc
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def descendants(pid):
    """Process ids of every descendant of ``pid`` (from /proc), deepest last."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{0}/stat".format(entry), encoding="utf-8") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# ------------------------------------------------------------------------------------ SIGKILL: upload, download

def test_upload_killed_half_way_is_finished_by_a_rerun_under_faults(aws, playbook, tmp_path):
    nblocks = 32
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=41))
    progress = str(tmp_path / "put.progress")
    args = {"endpoint_url": aws.endpoint_url, "region": "us-east-1", "src": img, "state_dir": str(tmp_path / "state"),
            "progress_file": progress, "workers": 2, "manifest": str(tmp_path / "put.manifest"), "tags": {"Name": "killed"}}
    tasks = [{"name": "put", "blockwise.ebs.ebs_block_put": args}]

    aws.set_faults(latency=0.25, actions=["PutSnapshotBlock"])
    doc = kill_at(aws, tasks, tmp_path / "killed", progress, "uploading", nblocks // 2)
    aws.clear_faults()
    assert nblocks // 2 <= doc["blocks_done"] < nblocks
    assert [s["SnapshotId"] for s in pending_snapshots(aws)] == [doc["snapshot_id"]]

    aws.reset_counters()
    aws.set_faults(throttle_rate=THROTTLE, error_rate=ERRORS, seed=42)
    res = ok(playbook(tasks), "put")
    put_ok = successful(aws, "ebs:PutSnapshotBlock")
    aws.clear_faults()
    assert res["resumed"] is True and res["snapshot_id"] == doc["snapshot_id"]
    assert res["blocks_confirmed_before"] >= doc["blocks_done"]
    fresh = len(image_blocks(img))  # what an upload from scratch puts
    assert res["blocks_written"] == put_ok == nblocks - res["blocks_confirmed_before"] < fresh
    assert res["state"] == "completed" and res["changed_blocks_count"] == nblocks
    assert_same_content(aws, res["snapshot_id"], img)
    assert [s["SnapshotId"] for s in completed_snapshots(aws, res["content_digest"])] == [res["snapshot_id"]]
    assert pending_snapshots(aws) == []
    assert read_progress(progress)["state"] == "done"

    aws.reset_counters()
    again = ok(playbook(tasks), "put")
    assert again["changed"] is False and aws.mutating_calls() == {}


def test_download_killed_half_way_is_finished_by_a_rerun_under_faults(aws, playbook, tmp_path):
    nblocks = 32
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=51))
    up = ok(playbook([{"name": "put", "blockwise.ebs.ebs_block_put": {"src": img, "state_dir": str(tmp_path / "state"), "workers": 8}}]), "put")
    restore_dir = tmp_path / "restore"
    restore_dir.mkdir()
    dest = str(restore_dir / "disk.raw")
    progress = str(tmp_path / "get.progress")
    args = {"endpoint_url": aws.endpoint_url, "region": "us-east-1", "snapshot_id": up["snapshot_id"], "dest": dest,
            "progress_file": progress, "workers": 2, "manifest": str(tmp_path / "get.manifest")}
    tasks = [{"name": "get", "blockwise.ebs.ebs_block_get": args}]

    aws.set_faults(latency=0.25, actions=["GetSnapshotBlock"])
    doc = kill_at(aws, tasks, tmp_path / "killed", progress, "downloading", nblocks // 2)
    aws.clear_faults()
    assert nblocks // 2 <= doc["blocks_done"] < nblocks
    assert not os.path.exists(dest)  # the download goes to a temporary file first

    aws.reset_counters()
    aws.set_faults(throttle_rate=THROTTLE, error_rate=ERRORS, seed=52)
    res = ok(playbook(tasks), "get")
    aws.clear_faults()
    assert res["changed"] and res["content_digest"] == up["content_digest"]
    assert_restored(img, dest)
    assert aws.mutating_calls() == {}
    assert pending_snapshots(aws) == []
    assert read_progress(progress)["state"] == "done"

    aws.reset_counters()
    again = ok(playbook(tasks), "get")
    assert again["changed"] is False and again["method"] == "unchanged"
    assert_restored(img, dest)

    # The killed run's partial file has a name derived from dest, so the rerun found and removed it.
    assert sorted(os.listdir(restore_dir)) == ["disk.raw"]


# ------------------------------------------------------------------------------------ SIGKILL: prune

def test_prune_killed_mid_way_is_finished_by_a_rerun_keeping_what_the_policy_keeps(aws, playbook, tmp_path):
    seeded = seed_fleet(aws, regions=["us-east-1"], days=6)["us-east-1"]
    args = {"endpoint_url": aws.endpoint_url, "region": "us-east-1", "policy": POLICY, "retention": {"keep_daily": 2, "minimum": 1},
            "max_deletions": 100, "max_concurrency": 1}
    task = {"name": "prune", "blockwise.ebs.ebs_snapshot_prune": args}
    plan = ok(playbook([dict(task, check_mode=True)]), "prune")
    planned = {item["snapshot_id"] for item in plan["deleted"]}
    kept = {item["snapshot_id"] for item in plan["kept"]} | {item["snapshot_id"] for item in plan["protected"]}
    assert len(planned) >= 10
    before = set(all_snapshots(aws))

    aws.reset_counters()
    aws.set_faults(latency=0.3, actions=["DeleteSnapshot"])
    proc = start_playbook(aws, [task], tmp_path / "killed")
    try:
        deadline = time.monotonic() + 120
        while aws.counters().get("ec2:DeleteSnapshot", 0) < 4:
            assert proc.poll() is None, "the prune ended before it could be interrupted"
            assert time.monotonic() < deadline, "the prune never started deleting"
            time.sleep(0.05)
        for pid in reversed(descendants(proc.pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    aws.clear_faults()
    time.sleep(0.5)  # let requests already in flight reach the endpoint
    gone = before - set(all_snapshots(aws))
    assert gone and gone < planned, "the kill should have left part of the plan undone: {0} of {1}".format(len(gone), len(planned))

    aws.set_faults(throttle_rate=THROTTLE, error_rate=ERRORS, seed=61)
    rerun = ok(playbook([task]), "prune")
    aws.clear_faults()
    assert rerun["errors"] == []
    assert {item["snapshot_id"] for item in rerun["deleted"]} == planned - gone
    remaining = set(all_snapshots(aws))
    assert remaining == before - planned
    assert kept <= remaining
    assert set(seeded["ami_snapshots"]) | {seeded["protected_snapshot"]} <= remaining

    aws.reset_counters()
    again = ok(playbook([task]), "prune")
    assert again["changed"] is False and again["deleted"] == [] and aws.mutating_calls() == {}
