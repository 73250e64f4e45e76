# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_verify through ansible-playbook against the local endpoint.

Snapshots are made with ebs_block_put (so they carry a real ``blockwise:content`` tag) or with plain
boto3; what the module reports is checked against the endpoint's request counters and tags read back
with boto3, independently of the collection's code.
"""
import os
import shutil
import subprocess

import pytest

from tests.functional.test_block_put import BS, MIB, ok, put_task, random_blocks, write_image
from tests.functional.test_block_safety import failed, tags_of
from tests.localaws.blockdata import block, write_snapshot

VERIFY_TAGS = ("blockwise:verified", "blockwise:verified-at", "blockwise:verify-mode")


def verify_task(aws, name="verify", **args):
    return {"name": name, "blockwise.ebs.ebs_snapshot_verify": dict({"endpoint_url": aws.endpoint_url,
                                                                     "region": "us-east-1"}, **args)}


def gets(aws):
    return aws.counters().get("ebs:GetSnapshotBlock", 0)


def verify_tags(aws, snapshot_id):
    return {k: v for k, v in tags_of(aws, snapshot_id).items() if k in VERIFY_TAGS}


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return str(path)


def upload(aws, playbook, image, state_dir, **extra):
    return ok(playbook([put_task(aws, src=image, state_dir=state_dir, **extra)]), "put")


def drill_fields(res):
    """What a drill report uses is there, with sane values."""
    for key in ("result", "mode", "blocks_read", "bytes_read", "throughput_mib_s", "restore_estimate_seconds",
                "bad_blocks", "reference"):
        assert key in res, key
    assert res["bytes_read"] == res["blocks_read"] * BS


# ------------------------------------------------------------------ a good snapshot

def test_good_snapshot_verifies_against_its_content_tag_and_records_it(aws, playbook, tmp_path, state_dir):
    image = write_image(tmp_path / "disk.raw", 6 * MIB, random_blocks([0, 1, 5, 9, 11], seed=1))
    snap = upload(aws, playbook, image, state_dir)["snapshot_id"]
    aws.reset_counters()
    res = ok(playbook([verify_task(aws, snapshot_id=snap)], diff=True), "verify")
    drill_fields(res)
    assert res["result"] == "ok" and res["mode"] == "full" and res["changed"] is True and res["recorded"] is True
    assert res["data_blocks"] == 5 and res["blocks_read"] == 5 and res["bad_blocks"] == []
    assert res["reference"]["kind"] == "content_tag" and res["reference"]["content_tag_checked"] is True
    assert res["content_digest"] == tags_of(aws, snap)["blockwise:content"]
    assert res["restore_estimate_seconds"] is not None and res["restore_estimate_seconds"] >= 0
    counts = aws.counters()
    assert counts["ebs:GetSnapshotBlock"] == 5 and counts["ec2:CreateTags"] == 1
    assert aws.mutating_calls() == {"ec2:CreateTags": 1}
    tags = verify_tags(aws, snap)
    assert tags == res["tags"] and tags["blockwise:verified"] == "ok" and tags["blockwise:verify-mode"] == "full"
    assert tags["blockwise:verified-at"].endswith("Z") and res["diff"]["before"]["tags"] == {}
    assert res["diff"]["after"]["tags"] == tags


def test_snapshot_without_reference_is_proved_readable(aws, playbook):
    snap = write_snapshot(aws.client("ebs"), {0: block(1), 7: block(2)})
    res = ok(playbook([verify_task(aws, snapshot_id=snap)]), "verify")
    assert res["result"] == "ok" and res["reference"]["kind"] == "none" and res["blocks_read"] == 2


def test_changed_means_tags_written(aws, playbook):
    snap = write_snapshot(aws.client("ebs"), {0: block(1)})
    first = ok(playbook([verify_task(aws, snapshot_id=snap)]), "verify")
    aws.reset_counters()
    run = playbook([verify_task(aws, name="again", snapshot_id=snap),
                    verify_task(aws, name="unrecorded", snapshot_id=snap, record=False)], diff=True)
    again, unrecorded = ok(run, "again"), ok(run, "unrecorded")
    assert again["changed"] is True and again["previous"] == first["tags"]
    assert again["tags"]["blockwise:verified-at"] >= first["tags"]["blockwise:verified-at"]
    assert unrecorded["changed"] is False and unrecorded["recorded"] is False and "diff" not in unrecorded
    assert unrecorded["tags"] == again["tags"] == verify_tags(aws, snap)
    assert aws.counters()["ec2:CreateTags"] == 1 and aws.counters()["ebs:GetSnapshotBlock"] == 2


def test_check_mode_reads_but_writes_nothing(aws, playbook, tmp_path):
    snap = write_snapshot(aws.client("ebs"), {0: block(1), 3: block(4)})
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    aws.reset_counters()
    res = ok(playbook([verify_task(aws, snapshot_id=snap, fs_check="e2fsck -fn {image}", tmp_dir=str(tmp_dir),
                                   progress_file=str(tmp_path / "p.json"))], check=True, diff=True), "verify")
    assert res["changed"] is True and res["recorded"] is False and res["blocks_read"] == 2
    assert res["fs_check"]["skipped"] and res["fs_check"]["passed"] is None
    assert res["diff"]["after"]["tags"]["blockwise:verified"] == "ok"
    assert aws.mutating_calls() == {} and gets(aws) == 2
    assert verify_tags(aws, snap) == {}
    assert os.listdir(str(tmp_dir)) == [] and not (tmp_path / "p.json").exists()


# ------------------------------------------------------------------ mismatches

def test_content_that_differs_from_its_tag_is_a_mismatch(aws, playbook, tmp_path, state_dir):
    image = write_image(tmp_path / "disk.raw", 3 * MIB, random_blocks([0, 2], seed=2))
    snap = upload(aws, playbook, image, state_dir)["snapshot_id"]
    aws.client("ec2").create_tags(Resources=[snap], Tags=[{"Key": "blockwise:content", "Value": "sha256:" + "0" * 64}])
    run = playbook([dict(verify_task(aws, snapshot_id=snap), ignore_errors=True),
                    verify_task(aws, name="tolerant", snapshot_id=snap, fail_on_mismatch=False)])
    res = failed(run, "verify")
    assert res["result"] == "mismatch" and "blockwise:content" in res["msg"] and "not known" in res["msg"]
    assert res["bad_blocks"] == [] and res["content_digest"] != "sha256:" + "0" * 64
    tolerant = ok(run, "tolerant")
    assert tolerant["result"] == "mismatch" and tolerant["changed"] is True
    assert verify_tags(aws, snap)["blockwise:verified"] == "mismatch"


def test_manifest_mismatch_names_the_blocks(aws, playbook, tmp_path, state_dir):
    first = write_image(tmp_path / "a.raw", 6 * MIB, random_blocks([0, 2, 4, 8], seed=3))
    manifest = str(tmp_path / "a.manifest")
    a = upload(aws, playbook, first, state_dir, manifest=manifest)["snapshot_id"]
    changed = random_blocks([0, 2, 4, 8], seed=3)
    changed[4] = random_blocks([4], seed=99)[4]
    del changed[8]
    changed[10] = random_blocks([10], seed=98)[10]
    second = write_image(tmp_path / "b.raw", 6 * MIB, changed)
    b = upload(aws, playbook, second, state_dir)["snapshot_id"]
    run = playbook([verify_task(aws, name="same", snapshot_id=a, manifest=manifest),
                    dict(verify_task(aws, name="other", snapshot_id=b, manifest=manifest), ignore_errors=True)])
    same = ok(run, "same")
    assert same["result"] == "ok" and same["reference"]["kind"] == "manifest"
    assert same["reference"]["manifest_snapshot_id"] == a and same["blocks_checked"] == 4
    other = failed(run, "other")
    assert other["result"] == "mismatch" and other["mismatched_blocks"] == [4, 8, 10] and other["bad_blocks"] == [4, 8, 10]
    assert "4, 8, 10" in other["msg"] and manifest in other["msg"]
    assert other["reference"]["manifest_snapshot_id"] == a


def test_compare_to_names_the_block_that_differs(aws, playbook, tmp_path, state_dir):
    data = random_blocks([0, 1, 3, 6], seed=4)
    image = write_image(tmp_path / "disk.raw", 4 * MIB, data)
    snap = upload(aws, playbook, image, state_dir)["snapshot_id"]
    with open(image, "r+b") as handle:
        handle.seek(3 * BS + 100)
        handle.write(b"changed after the upload")
        handle.seek(7 * BS)  # data where the snapshot holds none
        handle.write(b"new data")
    zeros = write_image(tmp_path / "zeros.raw", 4 * MIB, {**data, 2: bytes(BS)})  # a written zero block = a hole
    run = playbook([dict(verify_task(aws, snapshot_id=snap, compare_to=image), ignore_errors=True),
                    verify_task(aws, name="zeros", snapshot_id=snap, compare_to=zeros, record=False)])
    res = failed(run, "verify")
    assert res["result"] == "mismatch" and res["mismatched_blocks"] == [3, 7] and res["reference"]["kind"] == "compare_to"
    assert ok(run, "zeros")["result"] == "ok"


# ------------------------------------------------------------------ samples

def test_sample_reads_a_seeded_subset_with_first_and_last_block(aws, playbook, tmp_path, state_dir):
    indexes = list(range(0, 400, 2))
    data = random_blocks(indexes, seed=5)
    image = write_image(tmp_path / "disk.raw", 200 * MIB, data)
    snap = upload(aws, playbook, image, state_dir, workers=16)["snapshot_id"]
    with open(image, "r+b") as handle:  # the last data block differs: every sample must see it
        handle.seek(398 * BS)
        handle.write(b"x" * 64)
    aws.reset_counters()
    run = playbook([dict(verify_task(aws, snapshot_id=snap, sample="5%", compare_to=image), ignore_errors=True),
                    dict(verify_task(aws, name="count", snapshot_id=snap, sample=12, compare_to=image, record=False),
                         ignore_errors=True)])
    res, count = failed(run, "verify"), failed(run, "count")
    assert res["mode"] == "sample" and res["blocks_checked"] == 10 and res["blocks_read"] == 10
    assert res["sample"] == {"requested": "5%", "blocks": 10, "population": 200}
    assert res["mismatched_blocks"] == [398] and res["content_digest"] is None
    assert res["reference"]["content_tag_checked"] is False
    assert count["blocks_read"] == 12 and count["mismatched_blocks"] == [398]
    assert gets(aws) == 22
    assert verify_tags(aws, snap)["blockwise:verify-mode"] == "sample"


def test_sample_is_the_same_every_run(aws, playbook, tmp_path, state_dir):
    """Two runs of a sample read the same blocks: block by block, the endpoint sees identical reads."""
    snap = write_snapshot(aws.client("ebs"), {i: block(i % 250 + 1) for i in range(0, 600, 3)})
    seen = []
    for _run in range(2):
        aws.reset_counters()
        res = ok(playbook([verify_task(aws, snapshot_id=snap, sample=20, record=False)]), "verify")
        seen.append((res["blocks_read"], gets(aws)))
    assert seen[0] == seen[1] == (20, 20)


# ------------------------------------------------------------------ refusals before any block is read

def test_pending_archived_foreign_and_missing_snapshots_are_refused(aws, playbook):
    ebs, ec2 = aws.client("ebs"), aws.client("ec2")
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    archived = write_snapshot(ebs, {0: block(1)})
    ec2.modify_snapshot_tier(SnapshotId=archived, StorageTier="archive")
    foreign = aws.add_foreign_snapshot(owner_id="210987654321")
    cases = {"pending": (pending, ["pending"]), "archived": (archived, ["archive"]),
             "foreign": (foreign, ["210987654321", "account"]), "missing": ("snap-0123456789abcdef0", ["not found"])}
    aws.reset_counters()
    run = playbook([dict(verify_task(aws, name=name, snapshot_id=sid), ignore_errors=True)
                    for name, (sid, _words) in cases.items()])
    for name, (sid, words) in cases.items():
        res = failed(run, name)
        assert "snapshot_id" in res["msg"] and sid in res["msg"], res["msg"]
        assert all(word in res["msg"] for word in words), res["msg"]
    counts = aws.counters()
    assert not [key for key in counts if key.startswith("ebs:")] and aws.mutating_calls() == {}


# ------------------------------------------------------------------ fs_check

def ext4_image(path, corrupt=False):
    """A 64 MiB ext4 file system made with mkfs.ext4 from a small directory tree; ``corrupt`` overwrites its
    primary superblock."""
    assert shutil.which("mkfs.ext4") and shutil.which("e2fsck"), "install e2fsprogs (mkfs.ext4, e2fsck)"
    tree = path.parent / (path.name + ".d")
    (tree / "sub").mkdir(parents=True)
    (tree / "hello.txt").write_text("hello")
    (tree / "sub" / "data.bin").write_bytes(os.urandom(300000))
    with open(path, "wb") as handle:
        handle.truncate(64 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(path)], check=True, capture_output=True)
    if corrupt:
        with open(path, "r+b") as handle:
            handle.seek(1024)
            handle.write(b"\xff" * 1024)
    return str(path)


def test_fs_check_passes_a_good_ext4_image_and_fails_a_corrupted_one(aws, playbook, tmp_path, state_dir):
    good = upload(aws, playbook, ext4_image(tmp_path / "good.img"), state_dir)["snapshot_id"]
    bad = upload(aws, playbook, ext4_image(tmp_path / "bad.img", corrupt=True), state_dir)["snapshot_id"]
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    run = playbook([verify_task(aws, name="good", snapshot_id=good, fs_check="e2fsck -fn {image}", tmp_dir=str(tmp_dir)),
                    dict(verify_task(aws, name="bad", snapshot_id=bad, fs_check="e2fsck -fn {image}",
                                     tmp_dir=str(tmp_dir)), ignore_errors=True)])
    res = ok(run, "good")
    assert res["result"] == "ok" and res["fs_check"]["passed"] is True and res["fs_check"]["exit_code"] == 0
    assert res["fs_check"]["command"][:2] == ["e2fsck", "-fn"] and res["fs_check"]["output_tail"]
    assert res["reference"]["content_tag_checked"] is True
    res = failed(run, "bad")
    assert res["result"] == "mismatch" and res["fs_check"]["passed"] is False and res["fs_check"]["exit_code"] == 4
    assert "fs_check failed" in res["msg"] and any("super" in line.lower() or "errors" in line.lower()
                                                   for line in res["fs_check"]["output_tail"])
    assert verify_tags(aws, bad)["blockwise:verified"] == "mismatch"
    assert os.listdir(str(tmp_dir)) == []


def test_fs_check_default_tmp_dir_shell_and_timeout(aws, playbook, tmp_path, state_dir):
    snap = upload(aws, playbook, ext4_image(tmp_path / "good.img"), state_dir)["snapshot_id"]
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    marker = tmp_path / "seen"
    run = playbook([
        verify_task(aws, name="default", snapshot_id=snap, fs_check="e2fsck -fn {image}", record=False),
        verify_task(aws, name="shell", snapshot_id=snap, fs_check_shell=True, record=False, tmp_dir=str(tmp_dir),
                    fs_check="ls -l {image} > %s && e2fsck -fn {image} 2>&1 | tail -n 1" % marker),
        dict(verify_task(aws, name="slow", snapshot_id=snap, fs_check_shell=True, fs_check_timeout=1,
                         tmp_dir=str(tmp_dir), fs_check="sleep 30 # {image}"), ignore_errors=True),
    ])
    assert ok(run, "default")["fs_check"]["passed"] is True
    shell = ok(run, "shell")
    assert shell["fs_check"]["command"][:2] == ["/bin/sh", "-c"] and len(shell["fs_check"]["output_tail"]) == 1
    assert ".blockwise-verify-%s-" % snap in marker.read_text()
    slow = failed(run, "slow")
    assert "fs_check_timeout=1" in slow["msg"] and "nothing was recorded" in slow["msg"]
    assert verify_tags(aws, snap) == {}
    assert os.listdir(str(tmp_dir)) == []


# ------------------------------------------------------------------ unreadable blocks (injected by the endpoint)

def test_unreadable_blocks_are_named_and_the_rest_is_still_read(aws, playbook, tmp_path):
    snap = write_snapshot(aws.client("ebs"), {i: block(i + 1) for i in range(12)})
    aws.inject_block_fault(snap, [3, 9], mode="corrupt")
    aws.inject_block_fault(snap, [7], mode="bad-checksum")
    aws.inject_block_fault(snap, [5], mode="error", status=400, code="ValidationException",
                           message="Injected: block 5 cannot be read")
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    aws.reset_counters()
    run = playbook([dict(verify_task(aws, snapshot_id=snap, fs_check="e2fsck -fn {image}", tmp_dir=str(tmp_dir)),
                         ignore_errors=True),
                    verify_task(aws, name="tolerant", snapshot_id=snap, fail_on_mismatch=False, record=False)])
    res = failed(run, "verify")
    assert res["result"] == "unreadable" and res["unreadable_blocks"] == [3, 5, 7, 9] and res["bad_blocks"] == [3, 5, 7, 9]
    assert res["unreadable_count"] == 4 and res["blocks_read"] == 8 and res["stopped_early"] is False
    assert "3, 5, 7, 9" in res["msg"] and "could not be read" in res["msg"]
    assert "bad checksum" in res["unreadable_errors"]["3"] and "Injected: block 5" in res["unreadable_errors"]["5"]
    assert res["fs_check"]["passed"] is None and "could not be read" in res["fs_check"]["skipped"]
    assert res["content_digest"] is None and os.listdir(str(tmp_dir)) == []
    assert verify_tags(aws, snap)["blockwise:verified"] == "unreadable"
    tolerant = ok(run, "tolerant")
    assert tolerant["result"] == "unreadable" and tolerant["unreadable_blocks"] == [3, 5, 7, 9]
    # per run: 8 good reads, 3 attempts for each block with a bad checksum, 1 for the refused one
    assert gets(aws) == 2 * (8 + 3 * 3 + 1)


def test_reading_stops_after_max_bad_blocks(aws, playbook):
    snap = write_snapshot(aws.client("ebs"), {i: block(i + 1) for i in range(40)})
    aws.inject_block_fault(snap, list(range(40)), mode="corrupt")
    aws.reset_counters()
    res = failed(playbook([verify_task(aws, snapshot_id=snap, max_bad_blocks=2, workers=1)]), "verify")
    assert res["result"] == "unreadable" and res["stopped_early"] is True
    assert res["unreadable_count"] == 2 and res["unreadable_blocks"] == [0, 1] and res["blocks_read"] == 0
    assert gets(aws) == 2 * 3
