# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lasting attacks on ebs_block_put / ebs_block_get through ansible-playbook against the local endpoint.

Each attack tries to lose data, get a false success, leave a mess, or crash with a traceback:
random spellings of colliding paths, kills at random points followed by a rerun, concurrent runs into
one destination, and a full file system under every file the modules write.
"""
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.functional.test_block_put import (BS, assert_restored, assert_same_content, get_task, ok, put_task,
                                             random_blocks, write_image)
from tests.functional.test_block_resume import start_playbook
from tests.functional.test_block_safety import failed, sha

SEED = int(os.environ.get("BLOCKWISE_ADVERSARIAL_SEED", "20261128"))


def _spell(rnd, root, target):
    """A random way of naming ``target`` (a file directly under ``root``)."""
    name = os.path.basename(target)
    kind = rnd.choice(["plain", "dotdot", "symlink", "hardlink", "dirlink", "dots"])
    if kind == "plain":
        return str(target)
    if kind == "dotdot":
        return str(root / "sub" / ".." / name)
    if kind == "dots":
        return str(root) + "/./" + name
    link = root / "links" / "{0}-{1}".format(kind, rnd.randrange(10 ** 9))
    if kind == "symlink":
        link.symlink_to(target)
    elif kind == "hardlink":
        os.link(str(target), str(link))
    else:
        link.symlink_to(root)
        return str(link / name)
    return str(link)


def test_random_spellings_of_one_file_never_overwrite_it(aws, playbook, tmp_path):
    rnd = random.Random(SEED)
    root = tmp_path / "files"
    for sub in ("sub", "links"):
        (root / sub).mkdir(parents=True)
    image = Path(write_image(root / "disk.raw", 3 * BS, random_blocks([0, 2], seed=SEED)))
    dest = root / "dest.raw"
    dest.write_bytes(b"user data" * 999)
    snap = ok(playbook([put_task(aws, src=str(image), state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    before = {p: sha(str(p)) for p in (image, dest)}
    tasks, expected = [], []
    for n in range(16):
        if rnd.random() < 0.5:
            first, second = rnd.sample(["src", "manifest", "progress_file"], 2)
            args = {"src": str(image)}
            args.update(((first, _spell(rnd, root, image)), (second, _spell(rnd, root, image))))
            task = put_task(aws, name="t%d" % n, state_dir=str(tmp_path / "state"), **args)
        else:
            other = rnd.choice(["manifest", "progress_file"])
            args = {"dest": _spell(rnd, root, dest), other: _spell(rnd, root, dest)}
            task = get_task(aws, name="t%d" % n, snapshot_id=snap, state_dir=str(tmp_path / "state"), **args)
        task["ignore_errors"] = True
        tasks.append(task)
        expected.append(args)
    aws.reset_counters()
    run = playbook(tasks)
    for n, args in enumerate(expected):
        res = failed(run, "t%d" % n)
        assert "same file" in res["msg"], (args, res["msg"])
    assert {p: sha(str(p)) for p in before} == before
    assert aws.mutating_calls() == {}


def _kill_after(proc, progress, delay):
    """SIGKILL the module (pid from the progress file, else the whole playbook) ``delay`` seconds in."""
    time.sleep(delay)
    try:
        pid = json.loads(Path(progress).read_text()).get("pid")
    except (OSError, ValueError):
        pid = None
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0, 3.5])
def test_upload_killed_at_a_random_point_is_finished_by_a_rerun(aws, playbook, tmp_path, delay):
    nblocks = 20
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=SEED + 1))
    state_dir, progress = str(tmp_path / "state"), str(tmp_path / "p.json")
    task = put_task(aws, src=img, state_dir=state_dir, progress_file=progress, workers=2,
                    manifest=str(tmp_path / "m"), lineage="disk")
    aws.set_faults(latency=0.05, actions=["PutSnapshotBlock", "CompleteSnapshot", "DescribeSnapshots"])
    _kill_after(start_playbook(aws, [task], tmp_path / "killed"), progress, delay)
    aws.clear_faults()
    res = ok(playbook([task]), "put")
    assert res["state"] == "completed"
    assert_same_content(aws, res["snapshot_id"], img)
    snaps = aws.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert [s["SnapshotId"] for s in snaps if s["State"] == "completed"] == [res["snapshot_id"]]
    leaked = [s["SnapshotId"] for s in snaps if s["State"] != "completed"]
    assert sorted(leaked) == sorted(res["abandoned_snapshot_ids"])  # nothing pending without a word
    assert os.listdir(state_dir) == []
    assert sorted(f for f in os.listdir(str(tmp_path)) if f not in ("killed", "run1")) == ["disk.raw", "m", "p.json",
                                                                                           "state"]
    again = ok(playbook([task]), "put")
    assert again["changed"] is False and again["snapshot_id"] == res["snapshot_id"]


@pytest.mark.parametrize("delay", [0.3, 1.5, 3.0])
def test_restore_killed_at_a_random_point_is_finished_by_a_rerun(aws, playbook, tmp_path, delay):
    nblocks = 24
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=SEED + 2))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "r.raw"
    dest.write_bytes(b"previous content")
    progress = str(tmp_path / "p.json")
    task = get_task(aws, snapshot_id=snap, dest=str(dest), manifest=str(out / "r.m"), progress_file=progress,
                    workers=2, state_dir=str(tmp_path / "state"))
    aws.set_faults(latency=0.1, actions=["GetSnapshotBlock"])
    _kill_after(start_playbook(aws, [task], tmp_path / "killed"), progress, delay)
    aws.clear_faults()
    if dest.stat().st_size != len(b"previous content"):
        assert_restored(img, str(dest))  # the kill came after the rename: dest is complete, never partial
    else:
        assert dest.read_bytes() == b"previous content"
    res = ok(playbook([task]), "get")
    assert res["content_digest"]
    assert_restored(img, str(dest))
    assert sorted(os.listdir(str(out))) == ["r.m", "r.raw"]
    assert os.listdir(str(tmp_path / "state")) == []


def test_two_restores_into_one_dest_at_once(aws, playbook, tmp_path):
    nblocks = 16
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=SEED + 3))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    out = tmp_path / "out"
    out.mkdir()
    aws.set_faults(latency=0.05, actions=["GetSnapshotBlock"])
    procs, saved = [], []
    for n in range(3):
        save = tmp_path / ("res%d.json" % n)
        saved.append(save)
        tasks = [dict(get_task(aws, snapshot_id=snap, dest=str(out / "r.raw"), manifest=str(out / "r.m"), workers=2,
                               state_dir=str(tmp_path / "state")), register="got", ignore_errors=True),
                 {"name": "save", "copy": {"content": "{{ got | to_json }}", "dest": str(save)}}]
        procs.append(start_playbook(aws, tasks, tmp_path / ("run%d" % n)))
    for proc in procs:
        proc.wait(timeout=300)
    aws.clear_faults()
    results = [json.loads(s.read_text()) for s in saved]
    assert all(not r.get("failed") for r in results), results
    assert sorted(r["method"] for r in results).count("unchanged") == 2
    assert_restored(img, str(out / "r.raw"))
    assert sorted(os.listdir(str(out))) == ["r.m", "r.raw"]


def test_full_file_system_under_every_written_file(aws, playbook, tmp_path, small_fs):
    img = write_image(tmp_path / "disk.raw", 4 * BS, random_blocks(range(4), seed=SEED + 4))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    full = small_fs(8)
    (full / "filler").write_bytes(os.urandom(8 * 1024))
    tasks = [
        dict(put_task(aws, name="manifest", src=img, state_dir=str(tmp_path / "state"), manifest=str(full / "m")),
             ignore_errors=True),
        dict(get_task(aws, name="dest", snapshot_id=snap, dest=str(full / "r.raw")), ignore_errors=True),
        dict(get_task(aws, name="get-manifest", snapshot_id=snap, dest=str(tmp_path / "r.raw"),
                      manifest=str(full / "r.m")), ignore_errors=True),
        put_task(aws, name="progress", src=img, state_dir=str(tmp_path / "state"), progress_file=str(full / "p.json")),
    ]
    run = playbook(tasks)
    for name, option in (("manifest", "manifest"), ("dest", "dest"), ("get-manifest", "manifest")):
        res = failed(run, name)
        assert res["msg"].startswith(option + ":") and "No space left" in res["msg"], res["msg"]
    ok(run, "progress")  # progress is advisory: a full disk under it does not fail the upload
    assert sorted(os.listdir(str(full))) == ["filler"]
