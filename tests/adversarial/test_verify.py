# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lasting attacks on ebs_snapshot_verify through ansible-playbook against the local endpoint.

Each attack tries to get a false "ok", lose or overwrite a local file, leave a temporary image
behind, or crash with a traceback: kills in the middle of the check followed by a rerun, look-alike
leftovers in the temporary directory, colliding paths, a full temporary file system, a snapshot
deleted while it is read, and errors that say nothing about the snapshot.
"""
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.functional.test_block_put import BS, MIB, ok, put_task, random_blocks, write_image
from tests.functional.test_block_races import small_fs  # noqa: F401  pylint: disable=unused-import
from tests.functional.test_block_resume import start_playbook
from tests.functional.test_block_safety import failed, sha, tags_of
from tests.functional.test_snapshot_verify import ext4_image, verify_task, verify_tags
from tests.localaws.blockdata import block, write_snapshot

SEED = int(os.environ.get("BLOCKWISE_ADVERSARIAL_SEED", "20261128"))


def _wait_for(predicate, proc=None, timeout=120, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        assert proc is None or proc.poll() is None, "the run ended before {0}".format(what)
        time.sleep(0.05)
    raise AssertionError("timed out waiting for {0}".format(what))


def _leftovers(directory):
    return sorted(name for name in os.listdir(str(directory)) if "blockwise-verify" in name)


def _module_pid(name):
    """The pid in ``.blockwise-verify-<snapshot>-<pid>.img`` (or its partial file)."""
    return int(name.split(".img")[0].rsplit("-", 1)[1])


@pytest.mark.parametrize("moment", ["reading", "checking"])
def test_sigkill_then_rerun_leaves_no_temporary_image(aws, playbook, tmp_path, moment):
    """Kill the module while it writes the image (partial file) or while the check runs (image); the next run with
    the same tmp_dir removes what was left, and still verifies."""
    snap = ok(playbook([put_task(aws, src=ext4_image(tmp_path / "fs.img"), state_dir=str(tmp_path / "state"))]),
              "put")["snapshot_id"]
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    pidfile = tmp_path / "check.pid"
    if moment == "reading":
        aws.set_faults(latency=0.5, actions=["GetSnapshotBlock"])
        check, want = "e2fsck -fn {image}", ".blockwise-part"
    else:
        check, want = "echo $$ > %s; exec sleep 120 # {image}" % pidfile, ".img"
    proc = start_playbook(aws, [verify_task(aws, snapshot_id=snap, fs_check=check, fs_check_shell=True,
                                            tmp_dir=str(tmp_dir), workers=1)], tmp_path / "killed")
    try:
        names = _wait_for(lambda: [n for n in _leftovers(tmp_dir) if n.endswith(want)]
                          and (moment == "reading" or pidfile.exists()), proc, what="the temporary image")
        names = _leftovers(tmp_dir)
        os.kill(_module_pid(names[0]), signal.SIGKILL)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    aws.clear_faults()
    assert _leftovers(tmp_dir), "the kill left nothing to clean up: the attack proved nothing"
    assert verify_tags(aws, snap) == {}

    res = ok(playbook([verify_task(aws, snapshot_id=snap, fs_check="e2fsck -fn {image}", tmp_dir=str(tmp_dir))]),
             "verify")
    assert res["result"] == "ok" and res["fs_check"]["passed"] is True
    assert os.listdir(str(tmp_dir)) == []


def test_look_alike_leftovers_of_live_runs_and_links_are_left_alone(aws, playbook, tmp_path):
    snap = ok(playbook([put_task(aws, src=ext4_image(tmp_path / "fs.img"), state_dir=str(tmp_path / "state"))]),
              "put")["snapshot_id"]
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    live = tmp_dir / ".blockwise-verify-{0}-{1}.img".format(snap, os.getpid())  # a run that is still going
    live.write_bytes(b"in use")
    link = tmp_dir / ".blockwise-verify-snap-0aaaa-999999999.img"  # a dead pid, but a symlink to a user file
    link.symlink_to(precious)
    other = tmp_dir / "notes.blockwise-verify.txt"
    other.write_text("not ours")
    ok(playbook([verify_task(aws, snapshot_id=snap, fs_check="e2fsck -fn {image}", tmp_dir=str(tmp_dir))]), "verify")
    assert live.read_bytes() == b"in use" and os.path.islink(str(link)) and precious.read_text() == "keep me"
    assert other.read_text() == "not ours"
    assert sorted(os.listdir(str(tmp_dir))) == sorted([live.name, link.name, other.name])


def _spell(rnd, root, target):
    name = os.path.basename(str(target))
    kind = rnd.choice(["plain", "dotdot", "symlink", "hardlink"])
    if kind == "plain":
        return str(target)
    if kind == "dotdot":
        return str(root / "sub" / ".." / name)
    link = root / "links" / "{0}-{1}".format(kind, rnd.randrange(10 ** 9))
    if kind == "symlink":
        link.symlink_to(target)
    else:
        os.link(str(target), str(link))
    return str(link)


def test_random_spellings_of_one_file_are_refused_and_never_written(aws, playbook, tmp_path):
    rnd = random.Random(SEED)
    root = tmp_path / "files"
    for sub in ("sub", "links"):
        (root / sub).mkdir(parents=True)
    image = Path(write_image(root / "disk.raw", 2 * BS, random_blocks([0, 1], seed=SEED)))
    snap = write_snapshot(aws.client("ebs"), {0: block(1)})
    before = sha(str(image))
    pairs = [("compare_to", "progress_file"), ("manifest", "progress_file")]
    tasks, expected = [], []
    for n in range(8):
        first, second = pairs[n % 2]
        args = {first: _spell(rnd, root, image), second: _spell(rnd, root, image)}
        tasks.append(dict(verify_task(aws, name="c%d" % n, snapshot_id=snap, **args), ignore_errors=True))
        expected.append((first, second))
    aws.reset_counters()
    run = playbook(tasks)
    for n, names in enumerate(expected):
        res = failed(run, "c%d" % n)
        assert all(name in res["msg"] for name in names), res["msg"]
    assert sha(str(image)) == before and aws.counters() == {}


def test_full_tmp_dir_fails_naming_it_and_records_nothing(aws, playbook, tmp_path, small_fs):
    snap = write_snapshot(aws.client("ebs"), {i: block(i + 1) for i in range(6)})
    fs = small_fs(2 * BS // 1024)
    res = failed(playbook([verify_task(aws, snapshot_id=snap, fs_check="e2fsck -fn {image}", tmp_dir=str(fs))]),
                 "verify")
    assert "tmp_dir" in res["msg"] and "No space left" in res["msg"] and str(fs) in res["msg"]
    assert verify_tags(aws, snap) == {} and os.listdir(str(fs)) == []
    assert aws.mutating_calls() == {"ebs:StartSnapshot": 1, "ebs:PutSnapshotBlock": 6, "ebs:CompleteSnapshot": 1}


def test_snapshot_deleted_while_it_is_read_is_never_reported(aws, playbook, tmp_path):
    ebs, ec2 = aws.client("ebs"), aws.client("ec2")
    snap = write_snapshot(ebs, {i: block(i + 1) for i in range(30)})
    aws.set_faults(latency=0.1, actions=["GetSnapshotBlock"])
    aws.reset_counters()

    def delete_when_reading():
        _wait_for(lambda: aws.counters().get("ebs:GetSnapshotBlock", 0) >= 3, what="the first reads")
        ec2.delete_snapshot(SnapshotId=snap)

    deleter = threading.Thread(target=delete_when_reading)
    deleter.start()
    run = playbook([verify_task(aws, snapshot_id=snap, workers=2)])
    deleter.join()
    res = failed(run, "verify")
    assert snap in res["msg"] and res.get("result") != "ok"
    assert "ec2:CreateTags" not in aws.counters()


def test_access_denied_is_not_a_verdict_on_the_snapshot(aws, playbook):
    snap = write_snapshot(aws.client("ebs"), {0: block(1), 1: block(2)})
    aws.inject_error("GetSnapshotBlock", status=403, code="AccessDeniedException",
                     message="User is not authorized to perform kms:Decrypt", count=None)
    res = failed(playbook([verify_task(aws, snapshot_id=snap)]), "verify")
    assert "AccessDeniedException" in res["msg"] and "kms:Decrypt" in res["msg"]
    assert res.get("result") is None and verify_tags(aws, snap) == {}
    assert "ec2:CreateTags" not in aws.counters()


def test_empty_snapshot_with_a_content_tag_is_not_ok(aws, playbook):
    """An EC2 snapshot the endpoint holds no blocks for, tagged as if it held an upload: nothing read, but no 'ok'."""
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": "blockwise:content", "Value": "sha256:" + "ab" * 32}]}])["SnapshotId"]
    res = failed(playbook([verify_task(aws, snapshot_id=snap)]), "verify")
    assert res["result"] == "mismatch" and res["blocks_read"] == 0
    assert tags_of(aws, snap)["blockwise:verified"] == "mismatch"


def test_a_sample_never_certifies_the_content_tag(aws, playbook, tmp_path):
    image = write_image(tmp_path / "disk.raw", 8 * MIB, random_blocks(range(0, 16), seed=SEED))
    snap = ok(playbook([put_task(aws, src=image, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    aws.client("ec2").create_tags(Resources=[snap], Tags=[{"Key": "blockwise:content", "Value": "sha256:" + "0" * 64}])
    res = ok(playbook([verify_task(aws, snapshot_id=snap, sample=3)]), "verify")
    assert res["mode"] == "sample" and res["reference"]["content_tag_checked"] is False
    assert res["result"] == "ok" and tags_of(aws, snap)["blockwise:verify-mode"] == "sample"


def test_a_damaged_first_or_last_block_is_never_missed_by_a_sample(aws, playbook):
    """Block 0 and the last data block are in every sample: damage there is always found, whatever the seed."""
    ebs = aws.client("ebs")
    snaps = [write_snapshot(ebs, {i: block(i % 200 + 1) for i in range(0, 300, 2)}) for _n in range(2)]
    aws.inject_block_fault(snaps[0], [0], mode="corrupt")
    aws.inject_block_fault(snaps[1], [298], mode="bad-checksum")
    run = playbook([dict(verify_task(aws, name=sid, snapshot_id=sid, sample=3), ignore_errors=True) for sid in snaps])
    assert failed(run, snaps[0])["unreadable_blocks"] == [0]
    assert failed(run, snaps[1])["unreadable_blocks"] == [298]
    assert [verify_tags(aws, sid)["blockwise:verified"] for sid in snaps] == ["unreadable", "unreadable"]
