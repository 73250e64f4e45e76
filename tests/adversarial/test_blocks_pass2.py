# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Second adversarial pass on ebs_block_put / ebs_block_get / ebs_changed_blocks_info.

Every test attacks the modules through ``ansible-playbook`` against the local endpoint and checks the
outcome independently of the collection's code (boto3 reads, file bytes). Fourteen of these attacks found
a way to lose data, lie, leave a mess or crash when they were written (an errored CompleteSnapshot taken
for success, a replayed token returning a snapshot under the old default key, a tampered manifest trusted,
abandoned snapshots not reported or reported twice, journals left by wait=false, outputs on read-only
file systems refused too late, tag lengths StartSnapshot refuses, encryption by default refused too late,
empty options taken as omitted, a restore taking a user's file, diffs missing); they are kept as lasting
regression tests.
"""
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from tests.functional.test_block_put import (BS, assert_restored, assert_same_content, get_task, ok, put_task,
                                             random_blocks, write_image)
from tests.functional.test_block_resume import start_playbook
from tests.functional.test_block_safety import failed, sha, snapshot, tags_of

SEED = 20261207


def all_snapshots(aws):
    return aws.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]


def by_state(aws, state):
    return sorted(s["SnapshotId"] for s in all_snapshots(aws) if s["State"] == state)


def run_saved(aws, tmp_path, name, task):
    """Start ``task`` in a background playbook that saves its result -> (process, result file)."""
    out = tmp_path / (name + ".json")
    task = dict(task, register="res", ignore_errors=True)
    tasks = [task, {"name": "save", "copy": {"content": "{{ res | to_json }}", "dest": str(out)}}]
    return start_playbook(aws, tasks, tmp_path / ("bg-" + name)), out


def wait_for(predicate, timeout=60, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def progress_state(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------ put: CompleteSnapshot answers "error"

def test_put_wait_false_with_a_snapshot_that_errors_on_completion_is_not_a_success(aws, playbook, tmp_path):
    """CompleteSnapshot's answer carries Status (pending | completed | error, EBS direct API reference). A pending
    snapshot that saw no write for its Timeout is in error; completing it answers "error". With wait=false the
    module must not report that snapshot as a successful upload, nor write a manifest naming it."""
    img = write_image(tmp_path / "disk.raw", 4 * BS, random_blocks(range(4), seed=SEED))
    progress, manifest = str(tmp_path / "p.json"), tmp_path / "m"
    task = put_task(aws, src=img, state_dir=str(tmp_path / "state"), progress_file=progress, wait=False,
                    manifest=str(manifest), workers=2)
    aws.set_faults(latency=3.0, actions=["CompleteSnapshot"])
    proc, out = run_saved(aws, tmp_path, "put", task)
    wait_for(lambda: progress_state(progress).get("state") == "completing", what="completing")
    time.sleep(0.5)
    aws.advance_clock(2 * 3600)  # past the default 60-minute Timeout while CompleteSnapshot is in flight
    proc.wait(timeout=120)
    aws.clear_faults()
    res = json.loads(out.read_text())
    sid = res.get("snapshot_id")
    assert sid and snapshot(aws, sid)["State"] == "error"
    assert res.get("failed"), res
    assert not manifest.exists()


def _pending_upload(aws, playbook, img, state_dir, **args):
    """An upload whose CompleteSnapshot fails: its snapshot is left pending -> that snapshot id."""
    aws.inject_error("CompleteSnapshot", status=400, code="ValidationException", message="injected", count=1)
    res = failed(playbook([put_task(aws, src=img, state_dir=state_dir, **args)]), "put")
    aws.clear_faults()
    assert "left pending" in res["msg"], res["msg"]
    return res["snapshot_id"]


def test_errored_snapshot_of_a_killed_run_is_reported_once(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 1))
    state_dir = str(tmp_path / "state")
    first = _pending_upload(aws, playbook, img, state_dir)
    aws.advance_clock(2 * 3600)  # the pending snapshot times out: error
    assert snapshot(aws, first)["State"] == "error"
    res = ok(playbook([put_task(aws, src=img, state_dir=state_dir)]), "put")
    assert res["snapshot_id"] != first and res["state"] == "completed"
    assert res["abandoned_snapshot_ids"] == [first]


def test_pending_snapshot_of_other_arguments_and_a_lost_journal_is_reported(aws, playbook, tmp_path):
    """The docs: a pending snapshot of the same content left by an earlier run that cannot be resumed
    (different arguments, lost journal) is never leaked silently (abandoned_snapshot_ids)."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 2))
    first = _pending_upload(aws, playbook, img, str(tmp_path / "state1"), description="first try")
    res = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state2"), description="second try")]), "put")
    assert res["snapshot_id"] != first
    assert by_state(aws, "pending") == [first]
    assert first in res["abandoned_snapshot_ids"]


# ------------------------------------------------------------------ put: identity vs the StartSnapshot token

def test_put_after_the_default_kms_key_changed_is_not_the_old_snapshot(aws, playbook, tmp_path):
    """encrypted=true without kms_key_arn follows the account's default KMS key; the docs make the key part of
    what "the same upload" means, as AWS would apply it now."""
    img = write_image(tmp_path / "disk.raw", 2 * BS, random_blocks(range(2), seed=SEED + 3))
    state_dir = str(tmp_path / "state")
    ec2 = aws.client("ec2")
    first = ok(playbook([put_task(aws, src=img, state_dir=state_dir, encrypted=True)]), "put")
    old_key = snapshot(aws, first["snapshot_id"])["KmsKeyId"]
    new_key = aws.client("kms").create_key(Description="new default")["KeyMetadata"]["Arn"]
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=new_key)
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == new_key != old_key
    second = ok(playbook([put_task(aws, src=img, state_dir=state_dir, encrypted=True)]), "put")
    assert snapshot(aws, second["snapshot_id"])["KmsKeyId"] == new_key, (second["changed"], second["snapshot_id"])


# ------------------------------------------------------------------ output paths that cannot be written

def _read_only_dir(small_fs):
    import subprocess  # pylint: disable=import-outside-toplevel
    point = small_fs(1024, name="ro")
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    return point


def test_put_manifest_on_a_read_only_file_system_is_refused_before_any_aws_write(
        aws, playbook, tmp_path, small_fs):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 4))
    ro = _read_only_dir(small_fs)
    aws.reset_counters()
    res = failed(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"), manifest=str(ro / "m"))]), "put")
    assert res["msg"].startswith("manifest"), res["msg"]
    assert aws.mutating_calls() == {}, res["msg"]
    assert all_snapshots(aws) == []


def test_get_manifest_on_a_read_only_file_system_is_refused_before_dest_is_replaced(
        aws, playbook, tmp_path, small_fs):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 5))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    dest = tmp_path / "dest.raw"
    dest.write_bytes(b"the user's previous image")
    ro = _read_only_dir(small_fs)
    aws.reset_counters()
    res = failed(playbook([get_task(aws, snapshot_id=snap, dest=str(dest), manifest=str(ro / "m"),
                                    state_dir=str(tmp_path / "state"))]), "get")
    assert res["msg"].startswith("manifest"), res["msg"]
    assert dest.stat().st_size == len(b"the user's previous image")
    assert dest.read_bytes() == b"the user's previous image"
    assert aws.counters().get("ebs:GetSnapshotBlock", 0) == 0


# ------------------------------------------------------------------ concurrency

def test_two_uploads_of_one_content_from_two_paths_at_once(aws, tmp_path):
    nblocks = 16
    blocks = random_blocks(range(nblocks), seed=SEED + 6)
    srcs = [write_image(tmp_path / name, nblocks * BS, blocks) for name in ("a.raw", "b.raw")]
    state_dir = str(tmp_path / "state")
    aws.set_faults(latency=0.05, actions=["PutSnapshotBlock"])
    runs = [run_saved(aws, tmp_path, "put%d" % n,
                      put_task(aws, src=src, state_dir=state_dir, workers=2, manifest=str(tmp_path / ("m%d" % n))))
            for n, src in enumerate(srcs)]
    for proc, _out in runs:
        proc.wait(timeout=300)
    aws.clear_faults()
    results = [json.loads(out.read_text()) for _proc, out in runs]
    assert all(not r.get("failed") for r in results), [r.get("msg") for r in results]
    sids = set(r["snapshot_id"] for r in results)
    assert len(sids) == 1 and by_state(aws, "completed") == sorted(sids)
    assert all(r["state"] == "completed" for r in results)
    assert_same_content(aws, sids.pop(), srcs[0])
    assert os.listdir(state_dir) == []


# ------------------------------------------------------------------ odd paths, one playbook

def test_odd_paths_fail_naming_the_option_before_any_aws_write(aws, playbook, tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    img = write_image(root / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 7))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    (root / "loop1").symlink_to(root / "loop2")
    (root / "loop2").symlink_to(root / "loop1")
    (root / "dangling").symlink_to(root / "nowhere" / "x")
    (root / "dirlink").symlink_to(root)
    os.mkfifo(str(root / "fifo"))
    (root / "afile").write_bytes(b"not a directory")
    state = str(tmp_path / "state")
    cases = [
        ("put", "src", dict(src=str(root / "loop1"), state_dir=state)),
        ("put", "src", dict(src=str(root / "fifo"), state_dir=state)),
        ("put", "src", dict(src="/dev/null", state_dir=state)),
        ("put", "manifest", dict(src=img, state_dir=state, manifest=str(root / "loop1"))),
        ("put", "manifest", dict(src=img, state_dir=state, manifest=str(root / "dirlink"))),
        ("put", "manifest", dict(src=img, state_dir=state, manifest=str(root / "fifo"))),
        ("put", "manifest", dict(src=img, state_dir=state, manifest=str(root / "dangling"))),
        ("put", "progress_file", dict(src=img, state_dir=state, progress_file="/dev/null")),
        ("put", "state_dir", dict(src=img, state_dir=str(root / "afile"))),
        ("put", "state_dir", dict(src=img, state_dir=img)),
        ("get", "dest", dict(snapshot_id=snap, dest="/dev/null", state_dir=state)),
        ("get", "dest", dict(snapshot_id=snap, dest=str(root / "dirlink"), state_dir=state)),
        ("get", "dest", dict(snapshot_id=snap, dest=str(root / "dangling"), state_dir=state)),
        ("get", "manifest", dict(snapshot_id=snap, dest=str(root / "r.raw"), manifest=str(root / "fifo"),
                                 state_dir=state)),
        ("get", "state_dir", dict(snapshot_id=snap, dest=str(root / "r.raw"), state_dir=str(root / "afile"))),
    ]
    tasks = []
    for n, (module, _option, args) in enumerate(cases):
        make = put_task if module == "put" else get_task
        tasks.append(dict(make(aws, name="t%d" % n, **args), ignore_errors=True))
    aws.reset_counters()
    run = playbook(tasks)
    problems = []
    for n, (module, option, args) in enumerate(cases):
        res = run.result("t%d" % n)
        if not res.get("failed") or "Traceback" in json.dumps(res) or not res.get("msg", "").startswith(option):
            problems.append((module, option, args, res.get("msg"), res.get("changed")))
    assert problems == []
    assert aws.mutating_calls() == {}
    assert sorted(os.listdir(str(root))) == ["afile", "dangling", "dirlink", "disk.raw", "fifo", "loop1", "loop2"]
    assert not os.path.lexists(str(root / "r.raw"))


# ------------------------------------------------------------------ empty strings are not "omitted"

def test_empty_string_options_are_refused_not_ignored(aws, playbook, tmp_path):
    """``parent_snapshot_id: "{{ last | default('') }}"``: an empty value must fail naming the option, not turn an
    incremental upload, an incremental restore or a comparison into a different operation."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 8))
    state = str(tmp_path / "state")
    snap = ok(playbook([put_task(aws, src=img, state_dir=state)]), "put")["snapshot_id"]
    cases = [
        ("parent_snapshot_id", put_task(aws, name="t0", src=img, state_dir=state, parent_snapshot_id="")),
        ("kms_key_arn", put_task(aws, name="t1", src=img, state_dir=state, encrypted=True, kms_key_arn="")),
        ("base_snapshot_id", get_task(aws, name="t2", snapshot_id=snap, base_snapshot_id="",
                                      dest=str(tmp_path / "r.raw"), state_dir=state)),
        ("first_snapshot_id", {"name": "t3", "blockwise.ebs.ebs_changed_blocks_info": {
            "endpoint_url": aws.endpoint_url, "region": "us-east-1", "first_snapshot_id": "",
            "second_snapshot_id": snap}}),
    ]
    run = playbook([dict(task, ignore_errors=True) for _option, task in cases], check=True)
    accepted = []
    for n, (option, _task) in enumerate(cases):
        res = run.result("t%d" % n)
        if not (res.get("failed") and option in res.get("msg", "")):
            accepted.append((option, res.get("msg") or "accepted"))
    assert accepted == []


# ------------------------------------------------------------------ get: what a restore does to an existing dest

def test_restore_over_an_existing_file_keeps_its_owner(aws, playbook, tmp_path):
    """Restoring as root into a user's image file: the file is replaced by rename; its owner must not become root
    (the user could no longer write their own image). The mode is kept; so must the owner and group be."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 9))
    snap = ok(playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"))]), "put")["snapshot_id"]
    dest = tmp_path / "user.raw"
    dest.write_bytes(b"old")
    os.chown(str(dest), 4321, 4322)
    os.chmod(str(dest), 0o640)
    ok(playbook([get_task(aws, snapshot_id=snap, dest=str(dest), state_dir=str(tmp_path / "state"))]), "get")
    st = dest.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (4321, 4322)


def test_manifest_naming_the_snapshot_with_other_digests_is_not_proof(aws, playbook, tmp_path):
    """A manifest that names snapshot B but carries A's digests (edited, or copied between restores) while dest
    holds A: the module lists B anyway; B's block list does not even hold the blocks the manifest claims."""
    from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest  # pylint: disable=C0415
    a = write_image(tmp_path / "a.raw", 4 * BS, random_blocks([0, 1], seed=SEED + 10))
    b = write_image(tmp_path / "b.raw", 4 * BS, random_blocks([2, 3], seed=SEED + 11))
    state = str(tmp_path / "state")
    sa = ok(playbook([put_task(aws, src=a, state_dir=state)]), "put")["snapshot_id"]
    sb = ok(playbook([put_task(aws, src=b, state_dir=state)]), "put")["snapshot_id"]
    dest, manifest = tmp_path / "r.raw", tmp_path / "r.m"
    ok(playbook([get_task(aws, snapshot_id=sa, dest=str(dest), manifest=str(manifest), state_dir=state)]), "get")
    held = Manifest.read(str(manifest))
    Manifest(sb, held.volume_size, held.blocks).write(str(manifest))  # the tampering
    res = ok(playbook([get_task(aws, snapshot_id=sb, dest=str(dest), manifest=str(manifest), state_dir=state)]), "get")
    assert res["method"] != "unchanged"
    assert_restored(b, str(dest))


# ------------------------------------------------------------------ check mode and diff

def test_check_mode_with_every_option_writes_nothing(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 12))
    img2 = write_image(tmp_path / "disk2.raw", 3 * BS, random_blocks(range(3), seed=SEED + 13))
    state = str(tmp_path / "state")
    parent = ok(playbook([put_task(aws, src=img, state_dir=state, manifest=str(tmp_path / "pm"), lineage="l",
                                   tags={"Name": "x"})]), "put")
    key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(os.listdir(str(tmp_path)))
    fresh = str(out / "state")
    tasks = [
        put_task(aws, name="incremental", src=img2, volume_size=2, parent_snapshot_id=parent["snapshot_id"],
                 manifest=str(tmp_path / "pm"), description="d", tags={"Name": "y", "n": None}, lineage="l",
                 timeout=30, workers=3, wait=False, wait_timeout=5, progress_file=str(out / "p.json"),
                 state_dir=fresh),
        put_task(aws, name="encrypted", src=img2, encrypted=True, kms_key_arn=key, manifest=str(out / "m"),
                 progress_file=str(out / "p2.json"), state_dir=fresh),
        put_task(aws, name="retag", src=img, lineage="l", tags={"Name": "z"}, manifest=str(out / "m3"),
                 state_dir=fresh),
        get_task(aws, name="get", snapshot_id=parent["snapshot_id"], dest=str(out / "r.raw"),
                 manifest=str(out / "rm"), workers=5, progress_file=str(out / "p3.json"), state_dir=fresh),
    ]
    aws.reset_counters()
    run = playbook(tasks, check=True, diff=True)
    for name in ("incremental", "encrypted", "retag", "get"):
        assert ok(run, name)["changed"] is True, name
    assert aws.mutating_calls() == {}
    assert os.listdir(str(out)) == []
    assert sorted(f for f in os.listdir(str(tmp_path)) if f != "run2") == before
    assert tags_of(aws, parent["snapshot_id"])["Name"] == "x"
    assert ok(run, "retag")["diff"]["after"]["tags"]["Name"] == "z"


def test_restore_that_truncates_dest_shows_it_in_the_diff(aws, playbook, tmp_path):
    """dest holds the snapshot plus data past the volume's end: the restore cuts that data off (changed=true); the
    diff must not show identical before and after."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 14))
    state = str(tmp_path / "state")
    snap = ok(playbook([put_task(aws, src=img, state_dir=state)]), "put")["snapshot_id"]
    dest, manifest = tmp_path / "r.raw", tmp_path / "r.m"
    task = get_task(aws, snapshot_id=snap, dest=str(dest), manifest=str(manifest), state_dir=state)
    ok(playbook([task]), "get")
    with open(str(dest), "ab") as handle:
        handle.write(b"user data appended past the volume" * 100)
    res = ok(playbook([task], diff=True), "get")
    assert res["changed"] is True
    assert res["diff"]["before"] != res["diff"]["after"], res["diff"]


def test_put_that_only_writes_the_manifest_shows_a_diff(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 15))
    state = str(tmp_path / "state")
    first = ok(playbook([put_task(aws, src=img, state_dir=state)]), "put")
    res = ok(playbook([put_task(aws, src=img, state_dir=state, manifest=str(tmp_path / "m"))], diff=True), "put")
    assert res["changed"] is True and res["snapshot_id"] == first["snapshot_id"]
    assert (tmp_path / "m").exists()
    assert res.get("diff"), "changed=true without a diff"


# ------------------------------------------------------------------ tags and lineage edge cases

def test_odd_tags_and_lineage_round_trip_and_second_run_is_unchanged(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 16))
    state = str(tmp_path / "state")
    lineage = "ł" * 255
    tags = {"Name": None, 42: 7, "ünïcødé ✓": "välue ✓", "empty": "", "k" * 127: "v" * 255}
    task = put_task(aws, src=img, state_dir=state, tags=tags, lineage=lineage)
    first = ok(playbook([task]), "put")
    got = tags_of(aws, first["snapshot_id"])
    assert got["Name"] == "" and got["42"] == "7" and got["ünïcødé ✓"] == "välue ✓"
    assert got["k" * 127] == "v" * 255
    assert got["blockwise:lineage"] == lineage
    again = ok(playbook([task]), "put")
    assert again["changed"] is False and again["snapshot_id"] == first["snapshot_id"]
    for bad in ("ł" * 257, ""):
        res = failed(playbook([put_task(aws, src=img, state_dir=state, lineage=bad)]), "put")
        assert res["msg"].startswith("lineage"), res["msg"]


@pytest.mark.parametrize("args", [{"lineage": "l" * 256}, {"tags": {"k" * 128: "v"}}, {"tags": {"k": "v" * 256}}],
                         ids=["lineage-256", "key-128", "value-256"])
def test_documented_tag_and_lineage_lengths_upload_or_are_refused_before_hashing(aws, playbook, tmp_path, args):
    """The module accepts lineage and tag values of 256 and keys of 128 characters (EC2's limits); StartSnapshot's
    tags allow 127 and 255 (EBS direct API reference, Tag:
    https://docs.aws.amazon.com/ebs/latest/APIReference/API_Tag.html). Such input must either upload or be refused
    up front naming the option, not fail at StartSnapshot after the whole image was hashed."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 17))
    run = playbook([put_task(aws, src=img, state_dir=str(tmp_path / "state"), **args)])
    res = run.result("put")
    option = sorted(args)[0]
    assert not res.get("failed") or res["msg"].startswith(option), res["msg"]


# ------------------------------------------------------------------ kills in the last phases

@pytest.mark.parametrize("phase,action", [("completing", "CompleteSnapshot"), ("waiting", "DescribeSnapshots")])
def test_upload_killed_while_completing_or_waiting_is_finished_by_a_rerun(aws, playbook, tmp_path, phase, action):
    img = write_image(tmp_path / "disk.raw", 4 * BS, random_blocks(range(4), seed=SEED + 18))
    state, progress, manifest = str(tmp_path / "state"), str(tmp_path / "p.json"), str(tmp_path / "m")
    task = put_task(aws, src=img, state_dir=state, progress_file=progress, manifest=manifest, lineage="disk")
    aws.set_faults(latency=2.0, actions=[action])
    proc, _out = run_saved(aws, tmp_path, "killed", task)
    try:
        doc = wait_for(lambda: progress_state(progress).get("state") == phase and progress_state(progress),
                       what=phase)
        os.kill(doc["pid"], signal.SIGKILL)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    aws.clear_faults()
    time.sleep(2.5)  # the request in flight is still answered by the endpoint
    res = ok(playbook([task]), "put")
    assert res["state"] == "completed" and res["snapshot_id"] == doc["snapshot_id"]
    assert_same_content(aws, res["snapshot_id"], img)
    assert by_state(aws, "pending") == [] and by_state(aws, "completed") == [res["snapshot_id"]]
    assert os.listdir(state) == []
    assert progress_state(progress)["state"] == "done"
    again = ok(playbook([task]), "put")
    assert again["changed"] is False


# ------------------------------------------------------------------ an upload and a restore of one file at once

def test_upload_and_restore_of_one_file_at_once_never_mix_content(aws, playbook, tmp_path):
    nblocks = 16
    other = write_image(tmp_path / "other.raw", nblocks * BS, random_blocks(range(nblocks), seed=SEED + 19))
    state = str(tmp_path / "state")
    other_snap = ok(playbook([put_task(aws, src=other, state_dir=state)]), "put")["snapshot_id"]
    blocks = random_blocks(range(nblocks), seed=SEED + 20)
    img = write_image(tmp_path / "disk.raw", nblocks * BS, blocks)
    original = write_image(tmp_path / "original.raw", nblocks * BS, blocks)
    progress = str(tmp_path / "p.json")
    aws.set_faults(latency=0.1, actions=["PutSnapshotBlock"])
    proc, out = run_saved(aws, tmp_path, "put", put_task(aws, src=img, state_dir=state, progress_file=progress,
                                                         workers=2))
    wait_for(lambda: progress_state(progress).get("blocks_done", 0) >= 2, what="upload progress")
    got = ok(playbook([get_task(aws, snapshot_id=other_snap, dest=img, state_dir=state)]), "get")
    proc.wait(timeout=300)
    aws.clear_faults()
    assert got["changed"] is True
    assert_restored(other, img)
    res = json.loads(out.read_text())
    if not res.get("failed"):
        # the upload read the file it opened: its snapshot is the original image, whole
        assert_same_content(aws, res["snapshot_id"], original)
    else:
        assert "src" in res["msg"], res["msg"]
        assert by_state(aws, "completed") == [other_snap]


# ------------------------------------------------------------------ relative paths

def test_relative_paths_resolve_against_the_playbook_directory_and_still_collide(aws, tmp_path):
    from tests.functional.harness import run_playbook  # pylint: disable=import-outside-toplevel
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    img = write_image(work / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 21))
    before = sha(img)
    tasks = [
        dict(put_task(aws, name="collide", src="disk.raw", manifest="sub/../disk.raw", state_dir="state"),
             ignore_errors=True),
        dict(get_task(aws, name="collide-get", snapshot_id="snap-00000000000000000", dest="r.raw",
                      progress_file="../work/./r.raw", state_dir="state"), ignore_errors=True),
        put_task(aws, name="put", src="disk.raw", manifest="disk.m", state_dir="state", register="up"),
        get_task(aws, name="get", snapshot_id="{{ up.snapshot_id }}", dest="sub/r.raw", manifest="sub/r.m",
                 state_dir="state"),
    ]
    run = run_playbook(aws.endpoint_url, tasks, work)
    assert "same file" in failed(run, "collide")["msg"]
    assert "same file" in failed(run, "collide-get")["msg"]
    ok(run, "put")
    ok(run, "get")
    assert sha(img) == before
    assert_restored(img, str(work / "sub" / "r.raw"))
    assert sorted(os.listdir(str(work))) == ["disk.m", "disk.raw", "playbook.yml", "state", "sub"]
    assert sorted(os.listdir(str(work / "sub"))) == ["r.m", "r.raw"]


# ------------------------------------------------------------------ wait=false

def test_wait_false_upload_leaves_no_journal_once_its_snapshot_is_completed(aws, playbook, tmp_path):
    """Nightly uploads of a new file each night (the module's own example) with wait=false: the docs say a journal
    is removed when the snapshot is completed, yet every such upload leaves one that no later run of another src
    removes."""
    state = str(tmp_path / "state")
    results = []
    for night in range(2):
        img = write_image(tmp_path / ("web-%d.raw" % night), 3 * BS, random_blocks(range(3), seed=SEED + 22 + night))
        results.append(ok(playbook([put_task(aws, src=img, state_dir=state, wait=False)]), "put"))
    for res in results:
        assert snapshot(aws, res["snapshot_id"])["State"] == "completed"
    assert os.listdir(state) == []


def test_wait_false_then_rerun_is_unchanged_and_cleans_up(aws, playbook, tmp_path):
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 24))
    state = str(tmp_path / "state")
    first = ok(playbook([put_task(aws, src=img, state_dir=state, wait=False, manifest=str(tmp_path / "m"))]), "put")
    again = ok(playbook([put_task(aws, src=img, state_dir=state, manifest=str(tmp_path / "m"))]), "put")
    assert again["changed"] is False and again["snapshot_id"] == first["snapshot_id"]
    assert again["state"] == "completed"
    assert os.listdir(state) == []
    assert by_state(aws, "completed") == [first["snapshot_id"]] and by_state(aws, "pending") == []


# ------------------------------------------------------------------ encryption by default turned on later

@pytest.mark.parametrize("case", ["unencrypted-parent", "encrypted-false"])
def test_upload_that_encryption_by_default_forbids_is_refused_naming_the_option(aws, playbook, tmp_path, case):
    """With EBS encryption by default on, StartSnapshot refuses an unencrypted parent and Encrypted=false
    (https://docs.aws.amazon.com/ebs/latest/userguide/ebsapis-using-encryption.html). Turning the default on is
    what ebs_default_encryption does; the next nightly incremental upload must say which option is the problem
    (before reading the image and before StartSnapshot), not relay StartSnapshot's refusal."""
    img = write_image(tmp_path / "disk.raw", 3 * BS, random_blocks(range(3), seed=SEED + 25))
    state = str(tmp_path / "state")
    parent = ok(playbook([put_task(aws, src=img, state_dir=state)]), "put")["snapshot_id"]
    aws.client("ec2").enable_ebs_encryption_by_default()
    img2 = write_image(tmp_path / "disk2.raw", 3 * BS, random_blocks(range(3), seed=SEED + 26))
    args = {"parent_snapshot_id": parent} if case == "unencrypted-parent" else {"encrypted": False}
    aws.reset_counters()
    res = failed(playbook([put_task(aws, src=img2, state_dir=state, **args)]), "put")
    assert aws.counters().get("ebs:StartSnapshot", 0) == 0, res["msg"]
    assert res["msg"].startswith(sorted(args)[0]), res["msg"]


# ------------------------------------------------------------------ ebs_changed_blocks_info

def test_changed_blocks_info_on_unrelated_deleted_and_pending_snapshots(aws, playbook, tmp_path):
    state = str(tmp_path / "state")
    a = write_image(tmp_path / "a.raw", 3 * BS, random_blocks(range(3), seed=SEED + 27))
    b = write_image(tmp_path / "b.raw", 3 * BS, random_blocks(range(3), seed=SEED + 28))
    c = write_image(tmp_path / "c.raw", 3 * BS, random_blocks(range(3), seed=SEED + 29))
    sa = ok(playbook([put_task(aws, src=a, state_dir=state)]), "put")["snapshot_id"]
    sb = ok(playbook([put_task(aws, src=b, state_dir=state)]), "put")["snapshot_id"]
    child = ok(playbook([put_task(aws, src=b, state_dir=state, parent_snapshot_id=sa)]), "put")["snapshot_id"]
    gone = ok(playbook([put_task(aws, src=c, state_dir=state)]), "put")["snapshot_id"]
    aws.client("ec2").delete_snapshot(SnapshotId=gone)
    pending = _pending_upload(aws, playbook, c, state, description="pending")

    def info(name, **args):
        return {"name": name, "ignore_errors": True, "blockwise.ebs.ebs_changed_blocks_info": dict(
            {"endpoint_url": aws.endpoint_url, "region": "us-east-1", "return_block_indexes": True}, **args)}

    run = playbook([info("unrelated", first_snapshot_id=sa, second_snapshot_id=sb),
                    info("deleted", first_snapshot_id=sa, second_snapshot_id=gone),
                    info("pending", second_snapshot_id=pending),
                    info("child", first_snapshot_id=sa, second_snapshot_id=child)], check=True)
    for name, option in (("unrelated", "snapshot_id"), ("deleted", "second_snapshot_id"),
                         ("pending", "second_snapshot_id")):
        res = failed(run, name)
        assert option in res["msg"], (name, res["msg"])
    res = ok(run, "child")
    assert res["changed"] is False and res["block_indexes"] == [0, 1, 2] and res["blocks_only_in_first"] == 0
