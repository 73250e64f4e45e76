# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_block_put under faults: throttling/5xx, fail-fast errors, SIGKILL mid-upload and resume."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.functional.harness import ansible_env, play
from tests.functional.test_block_put import (
    BS, MIB, assert_restored, assert_same_content, completed_snapshots, get_task, image_blocks, ok, put_task, puts,
    random_blocks, write_image)


def _ansible_playbook():
    import sys
    return str(Path(sys.executable).parent / "ansible-playbook")


def start_playbook(aws, tasks, workdir):
    """ansible-playbook in its own session (so the module process can be killed with it)."""
    workdir = Path(workdir)
    workdir.mkdir(exist_ok=True)
    path = workdir / "playbook.yml"
    path.write_text(json.dumps([play(aws.endpoint_url, tasks)], default=str))
    env = ansible_env(aws.endpoint_url)
    return subprocess.Popen([_ansible_playbook(), str(path)], cwd=str(workdir), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for_progress(path, proc, blocks, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the upload ended before it could be interrupted"
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            doc = None
        if doc and doc.get("state") == "uploading" and doc.get("blocks_done", 0) >= blocks:
            return doc
        time.sleep(0.05)
    raise AssertionError("no upload progress in {0}".format(path))


def kill_when_uploading(aws, tasks, tmp_path, progress, blocks=6):
    """SIGKILL the module process (its pid is in the progress file) in the middle of the upload.

    ansible-playbook runs each task in a worker process of its own session, so the module is
    killed by pid, then the playbook's process group.
    """
    proc = start_playbook(aws, tasks, tmp_path / "killed")
    try:
        doc = wait_for_progress(progress, proc, blocks)
        os.kill(doc["pid"], signal.SIGKILL)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return doc


def pending_snapshots(aws):
    ec2 = aws.client("ec2")
    return [s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] if s["State"] == "pending"]


def test_sigkill_mid_upload_then_rerun_resumes(aws, playbook, tmp_path):
    nblocks = 40
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=21))
    state_dir, progress = str(tmp_path / "state"), str(tmp_path / "progress.json")
    tasks = [put_task(aws, src=img, state_dir=state_dir, progress_file=progress, workers=2,
                      manifest=str(tmp_path / "m"), description="resumable")]
    aws.set_faults(latency=0.15, actions=["PutSnapshotBlock"])
    doc = kill_when_uploading(aws, tasks, tmp_path, progress)
    pending = pending_snapshots(aws)
    assert [s["SnapshotId"] for s in pending] == [doc["snapshot_id"]]
    assert os.listdir(state_dir)  # the journal survived the kill

    aws.clear_faults()
    aws.reset_counters()
    run = playbook(tasks)
    res = ok(run, "put")
    assert res["changed"] and res["resumed"] is True
    assert res["snapshot_id"] == doc["snapshot_id"]
    assert res["blocks_confirmed_before"] >= doc["blocks_done"] >= 6
    assert res["blocks_written"] == nblocks - res["blocks_confirmed_before"] == puts(aws) < nblocks
    assert res["changed_blocks_count"] == nblocks and res["state"] == "completed"
    assert res["abandoned_snapshot_ids"] == []
    assert_same_content(aws, res["snapshot_id"], img)
    snaps = completed_snapshots(aws, res["content_digest"])
    assert [(s["SnapshotId"], s["State"]) for s in snaps] == [(res["snapshot_id"], "completed")]
    assert pending_snapshots(aws) == []
    assert os.listdir(state_dir) == []  # journal removed once completed
    final = json.loads(Path(progress).read_text())
    assert final["state"] == "done" and final["blocks_done"] == final["blocks_total"] == nblocks

    aws.reset_counters()
    again = ok(playbook(tasks), "put")
    assert again["changed"] is False and puts(aws) == 0


def test_interrupted_upload_with_changed_arguments_is_reported(aws, playbook, tmp_path):
    nblocks = 30
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=22))
    state_dir, progress = str(tmp_path / "state"), str(tmp_path / "progress.json")
    aws.set_faults(latency=0.15, actions=["PutSnapshotBlock"])
    doc = kill_when_uploading(aws, [put_task(aws, src=img, state_dir=state_dir, progress_file=progress, workers=2,
                                             description="first try")], tmp_path, progress, blocks=3)
    aws.clear_faults()
    run = playbook([put_task(aws, src=img, state_dir=state_dir, description="second try")])
    res = ok(run, "put")
    assert res["changed"] and res["resumed"] is False
    assert res["snapshot_id"] != doc["snapshot_id"]
    assert res["abandoned_snapshot_ids"] == [doc["snapshot_id"]]
    assert any(doc["snapshot_id"] in w for w in res.get("warnings", []))
    assert_same_content(aws, res["snapshot_id"], img)


def test_throttling_and_server_errors_keep_content_identical(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 6 * MIB + 999, random_blocks([0, 1, 2, 5, 6, 7, 9, 10, 11], seed=23),
                      pieces={12 * BS + 5: b"tail"})
    dest = str(tmp_path / "restore.raw")
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, services=["ebs"], seed=5)
    run = playbook([
        put_task(aws, src=img, state_dir=str(tmp_path / "state"), workers=4, register="up"),
        get_task(aws, snapshot_id="{{ up.snapshot_id }}", dest=dest, workers=4),
    ])
    up, got = ok(run, "put"), ok(run, "get")
    faulted = aws.faulted_counters()
    assert sum(faulted.values()) > 0, faulted
    aws.clear_faults()
    assert up["blocks_written"] == len(image_blocks(img))
    assert_same_content(aws, up["snapshot_id"], img)
    assert got["blocks_fetched"] == len(image_blocks(img))
    assert_restored(img, dest)


def test_retryable_block_errors_are_retried(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 2 * MIB, random_blocks([0, 1, 3], seed=24))
    aws.inject_error("PutSnapshotBlock", status=404, code="ResourceNotFoundException",
                     message="The snapshot does not exist", count=2)
    aws.inject_error("PutSnapshotBlock", status=400, code="ValidationException", message="Failed to read block data",
                     count=2)
    aws.inject_error("GetSnapshotBlock", status=503, code="ServiceUnavailable", message="slow down", count=2)
    run = playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"), workers=2, register="up"),
                    get_task(aws, snapshot_id="{{ up.snapshot_id }}", dest=str(tmp_path / "out"))])
    up = ok(run, "put")
    assert up["retries"] >= 2  # botocore may retry some of them first; the rest are ours
    assert_same_content(aws, up["snapshot_id"], img)
    ok(run, "get")
    assert_restored(img, str(tmp_path / "out"))


def test_access_denied_fails_fast_then_rerun_resumes(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 10 * BS, random_blocks(range(10), seed=25))
    state_dir, progress = str(tmp_path / "state"), str(tmp_path / "progress.json")
    tasks = [put_task(aws, src=img, state_dir=state_dir, workers=2, progress_file=progress)]
    aws.inject_error("PutSnapshotBlock", status=403, code="AccessDeniedException",
                     message="User is not authorized to perform: ebs:PutSnapshotBlock", count=1)
    run = playbook(tasks)
    res = run.result("put")
    assert res["failed"]
    assert "not authorized to perform: ebs:PutSnapshotBlock" in res["msg"]
    assert "block {0}".format(res["block_index"]) in res["msg"]
    assert res["code"] == "AccessDeniedException" and res["snapshot_id"] in res["msg"]
    assert aws.counters()["ebs:PutSnapshotBlock"] <= 3  # no retry; at most the blocks already in flight
    assert json.loads(Path(progress).read_text())["state"] == "failed"
    assert "ebs:CompleteSnapshot" not in aws.counters()

    aws.reset_counters()
    again = ok(playbook(tasks), "put")
    assert again["resumed"] and again["snapshot_id"] == res["snapshot_id"]
    assert again["blocks_written"] == puts(aws) == 10 - again["blocks_confirmed_before"]
    assert_same_content(aws, again["snapshot_id"], img)
