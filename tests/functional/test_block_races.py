# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_block_put / ebs_block_get against full and read-only file systems, a source that changes during
the upload, and two identical uploads at once (issue 10, items 2, 6 and 11).

The file-system tests mount a small tmpfs (root only, as in CI); they are skipped with a reason when
the machine does not allow it.
"""
import json
import os
import subprocess

import pytest

from tests.functional.test_block_put import (BS, assert_same_content, completed_snapshots, get_task, ok,
                                             put_task, random_blocks, write_image)
from tests.functional.test_block_resume import start_playbook, wait_for_progress
from tests.functional.test_block_safety import failed


@pytest.fixture
def small_fs(tmp_path):
    """``mount(size_kib)`` -> a fresh tmpfs of that size; unmounted at the end of the test."""
    mounts = []

    def mount(size_kib, name="fs"):
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size={0}k".format(size_kib), "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("cannot mount a tmpfs here ({0}); CI runs as root and can".format(proc.stderr.strip()))
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount_ro(point):
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def _six_block_snapshot(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 6 * BS, random_blocks(range(6), seed=31))
    return img, ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]


@pytest.mark.parametrize("room_blocks", [5.5, 2])
def test_item2_restore_that_does_not_fit_fails_and_leaves_dest_untouched(aws, playbook, tmp_path, small_fs,
                                                                         room_blocks):
    _img, snap = _six_block_snapshot(aws, playbook, tmp_path)
    fs = small_fs(int(room_blocks * BS // 1024))
    dest = fs / "restore.raw"
    dest.write_bytes(b"")  # an existing (empty) dest: it must stay as it is
    progress = tmp_path / "progress.json"
    res = failed(playbook([get_task(aws, snapshot_id=snap, dest=str(dest), progress_file=str(progress))]), "get")
    assert "dest" in res["msg"] and str(dest) in res["msg"] and "No space left" in res["msg"]
    assert "written" in res["msg"]
    assert res.get("changed") is not True and not res.get("content_digest")
    assert dest.read_bytes() == b""
    assert sorted(os.listdir(str(fs))) == ["restore.raw"]  # the partial file is gone
    assert json.loads(progress.read_text())["state"] == "failed"


def test_item2_restore_onto_a_read_only_file_system_fails_naming_dest(aws, playbook, tmp_path, small_fs):
    _img, snap = _six_block_snapshot(aws, playbook, tmp_path)
    fs = small_fs(8 * 1024)
    _remount_ro(fs)
    res = failed(playbook([get_task(aws, snapshot_id=snap, dest=str(fs / "r.raw"))]), "get")
    assert "dest" in res["msg"] and "Read-only file system" in res["msg"]


def test_item2_manifest_on_a_full_file_system_fails_naming_manifest(aws, playbook, tmp_path, small_fs):
    _img, snap = _six_block_snapshot(aws, playbook, tmp_path)
    fs = small_fs(4)
    (fs / "filler").write_bytes(b"\0" * 4096)
    res = failed(playbook([get_task(aws, snapshot_id=snap, dest=str(tmp_path / "r.raw"),
                                    manifest=str(fs / "r.manifest"))]), "get")
    assert "manifest" in res["msg"] and "No space left" in res["msg"]
    assert sorted(os.listdir(str(fs))) == ["filler"]


# ------------------------------------------------------------------ 6. the source changes during the upload

def _upload_while(aws, tmp_path, change):
    """Start an upload slowed by latency, apply ``change(img)`` while it runs, return the result."""
    nblocks = 24
    img = write_image(tmp_path / "disk.raw", 32 * BS, random_blocks(range(nblocks), seed=41))
    progress = str(tmp_path / "progress.json")
    out = tmp_path / "out"
    tasks = [put_task(aws, src=img, state_dir=str(tmp_path / "state"), progress_file=progress, workers=2,
                      register="up"),
             {"name": "save", "copy": {"content": "{{ up | to_json }}", "dest": str(out)}}]
    for task in tasks:
        task["ignore_errors"] = True
    aws.set_faults(latency=0.1, actions=["PutSnapshotBlock"])
    proc = start_playbook(aws, tasks, tmp_path / "run")
    try:
        wait_for_progress(progress, proc, 2)
        change(img)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    aws.clear_faults()
    return img, json.loads(out.read_text())


@pytest.mark.parametrize("change", ["grow", "fill_hole", "rewrite_sent_block"])
def test_item6_a_source_that_changes_during_the_upload_fails(aws, tmp_path, change):
    def apply(img):
        with open(img, "r+b") as handle:
            if change == "grow":
                handle.seek(0, os.SEEK_END)
                handle.write(b"appended" * 1000)
            elif change == "fill_hole":
                handle.seek(28 * BS)
                handle.write(b"new data in a hole")
            else:
                handle.seek(0)
                handle.write(b"block 0 was already sent")

    _img, res = _upload_while(aws, tmp_path, apply)
    assert res.get("failed") and "src" in res["msg"] and "changed during the upload" in res["msg"], res
    states = [s["State"] for s in completed_snapshots(aws)]
    assert "completed" not in states, "a snapshot without the new data was completed"
    assert states == ["pending"]  # left for its timeout; the next run reports it as abandoned


# ------------------------------------------------------------------ 11. two identical uploads at once

def test_item11_two_identical_uploads_at_once_both_report_the_one_snapshot(aws, tmp_path):
    nblocks = 16
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=51))
    state_dir = str(tmp_path / "state")
    aws.set_faults(latency=0.05, actions=["PutSnapshotBlock"])
    procs, outs = [], []
    for n in range(2):
        out = tmp_path / ("out%d" % n)
        outs.append(out)
        tasks = [put_task(aws, src=img, state_dir=state_dir, workers=2, register="up",
                          progress_file=str(tmp_path / ("p%d.json" % n))),
                 {"name": "save", "copy": {"content": "{{ up | to_json }}", "dest": str(out)}}]
        tasks[0]["ignore_errors"] = True
        procs.append(start_playbook(aws, tasks, tmp_path / ("run%d" % n)))
    for proc in procs:
        proc.wait(timeout=300)
    aws.clear_faults()
    results = [json.loads(out.read_text()) for out in outs]
    for res in results:
        assert not res.get("failed"), res
        assert "pending" not in json.dumps(res.get("warnings", [])), res
        assert res["state"] == "completed"
    assert results[0]["snapshot_id"] == results[1]["snapshot_id"]
    snaps = completed_snapshots(aws, results[0]["content_digest"])
    assert [s["SnapshotId"] for s in snaps] == [results[0]["snapshot_id"]]
    assert_same_content(aws, results[0]["snapshot_id"], img)
    assert os.listdir(state_dir) in ([], [l for l in os.listdir(state_dir) if l.endswith(".lock")])
