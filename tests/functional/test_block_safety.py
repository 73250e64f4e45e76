# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data safety of ebs_block_put / ebs_block_get through ansible-playbook (issue 10, block items).

Each test names the review item it pins. They run the modules exactly as users do and check the
files and snapshots independently of the collection's code.
"""
import hashlib
import os

import pytest

from tests.functional.test_block_put import (BS, MIB, assert_restored, assert_same_content, get_task, ok, put_task,
                                             random_blocks, write_image)

BLOCKWISE_TAGS = ("blockwise:content", "blockwise:parent", "blockwise:lineage")


def sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def failed(run, name):
    res = run.result(name)
    assert res.get("failed"), (name, res)
    assert "Traceback" not in (res.get("msg") or "") and "module_stderr" not in res, res
    return res


def snapshot(aws, snapshot_id):
    return aws.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def tags_of(aws, snapshot_id):
    return {t["Key"]: t["Value"] for t in snapshot(aws, snapshot_id).get("Tags", [])}


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return str(path)


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "disk.raw", 3 * MIB, random_blocks([0, 2, 4], seed=11))


# ------------------------------------------------------------------ 1. colliding paths never overwrite user files

def _collision_cases(tmp_path, image):
    """(module, args, both options named) for option pairs that are the same file in some spelling."""
    d = tmp_path
    link = d / "link.raw"
    link.symlink_to(image)
    hard = d / "hard.raw"
    os.link(image, hard)
    rel_dir = d / "sub"
    rel_dir.mkdir()
    dotdot = str(rel_dir / ".." / os.path.basename(image))
    dest = str(d / "dest.raw")
    with open(dest, "wb") as handle:
        handle.write(b"user data that must survive" * 100)
    return [
        ("put", dict(src=image, manifest=image), ("src", "manifest")),
        ("put", dict(src=image, manifest=str(link)), ("src", "manifest")),
        ("put", dict(src=image, manifest=str(hard)), ("src", "manifest")),
        ("put", dict(src=image, manifest=dotdot), ("src", "manifest")),
        ("put", dict(src=image, progress_file=image), ("src", "progress_file")),
        ("put", dict(src=image, manifest=str(d / "m"), progress_file=str(d / "m")), ("manifest", "progress_file")),
        ("get", dict(dest=dest, manifest=dest), ("dest", "manifest")),
        ("get", dict(dest=dest, progress_file=dest), ("dest", "progress_file")),
        ("get", dict(dest=str(link), manifest=image), ("dest", "manifest")),
        ("get", dict(dest=dest, manifest=str(d / ".dest.raw.blockwise-part")), ("manifest",)),
    ]


def test_item1_colliding_paths_are_refused_before_any_io(aws, playbook, tmp_path, state_dir, image):
    snap = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")["snapshot_id"]
    cases = _collision_cases(tmp_path, image)
    before = {p: sha(p) for p in (image, str(tmp_path / "dest.raw"))}
    tasks = []
    for n, (kind, args, _names) in enumerate(cases):
        if kind == "put":
            tasks.append(put_task(aws, name="c%d" % n, state_dir=state_dir, **args))
        else:
            tasks.append(get_task(aws, name="c%d" % n, snapshot_id=snap, **args))
        tasks[-1]["ignore_errors"] = True
    aws.reset_counters()
    run = playbook(tasks)
    for n, (_kind, _args, names) in enumerate(cases):
        res = failed(run, "c%d" % n)
        for option in names:
            assert option in res["msg"], (n, res["msg"])
    assert {p: sha(p) for p in before} == before
    assert aws.mutating_calls() == {}
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith((".tmp", ".part", "-part"))]


def test_item1_unrelated_existing_file_is_never_overwritten(aws, playbook, tmp_path, state_dir, image):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    progress = tmp_path / "progress.json"
    progress.write_text('{"not": "ours"}')
    run = playbook([
        dict(put_task(aws, name="manifest", src=image, state_dir=state_dir, manifest=str(notes)), ignore_errors=True),
        dict(put_task(aws, name="progress", src=image, state_dir=state_dir, progress_file=str(progress)),
             ignore_errors=True),
    ])
    assert "not a blockwise.ebs manifest" in failed(run, "manifest")["msg"]
    assert "not a blockwise.ebs progress" in failed(run, "progress")["msg"]
    assert notes.read_text() == "precious" and progress.read_text() == '{"not": "ours"}'
    assert aws.mutating_calls() == {}


def test_item1_manifest_only_replaces_a_manifest(aws, playbook, tmp_path, state_dir, image):
    manifest = str(tmp_path / "m")
    first = ok(playbook([put_task(aws, src=image, state_dir=state_dir, manifest=manifest,
                                  progress_file=str(tmp_path / "p.json"))]), "put")
    img2 = write_image(tmp_path / "disk2.raw", 3 * MIB, random_blocks([1], seed=12))
    second = ok(playbook([put_task(aws, src=img2, state_dir=state_dir, manifest=manifest,
                                   progress_file=str(tmp_path / "p.json"))]), "put")
    assert first["snapshot_id"] != second["snapshot_id"]
    with open(manifest, "rb") as handle:
        assert second["snapshot_id"].encode() in handle.read()


# ------------------------------------------------------------------ 3. a deleted snapshot is never reported as done

def test_item3_put_after_the_snapshot_was_deleted_uploads_again(aws, playbook, tmp_path, state_dir, image):
    task = put_task(aws, src=image, state_dir=state_dir)
    first = ok(playbook([task]), "put")
    aws.client("ec2").delete_snapshot(SnapshotId=first["snapshot_id"])
    second = ok(playbook([task]), "put")
    assert second["changed"] is True and second["state"] == "completed"
    assert second["snapshot_id"] != first["snapshot_id"]
    assert snapshot(aws, second["snapshot_id"])["State"] == "completed"
    assert_same_content(aws, second["snapshot_id"], image)


def test_item3_get_with_manifest_confirms_the_snapshot_still_exists(aws, playbook, tmp_path, state_dir, image):
    snap = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")["snapshot_id"]
    task = get_task(aws, snapshot_id=snap, dest=str(tmp_path / "r.raw"), manifest=str(tmp_path / "r.m"))
    ok(playbook([task]), "get")
    aws.client("ec2").delete_snapshot(SnapshotId=snap)
    res = failed(playbook([task]), "get")
    assert snap in res["msg"] and "snapshot_id" in res["msg"]


# ------------------------------------------------------------------ 4. encryption by default, new tags and description

def test_item4_upload_after_encryption_by_default_makes_an_encrypted_snapshot(aws, playbook, tmp_path, state_dir, image):
    first = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")
    assert snapshot(aws, first["snapshot_id"])["Encrypted"] is False
    aws.client("ec2").enable_ebs_encryption_by_default()
    second = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")
    assert second["changed"] is True and second["snapshot_id"] != first["snapshot_id"]
    assert snapshot(aws, second["snapshot_id"])["Encrypted"] is True
    again = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")
    assert again["changed"] is False and again["snapshot_id"] == second["snapshot_id"]


def test_item4_new_tags_on_an_identical_upload_are_applied(aws, playbook, tmp_path, state_dir, image):
    first = ok(playbook([put_task(aws, src=image, state_dir=state_dir, tags={"Name": "a"})]), "put")
    second = ok(playbook([put_task(aws, src=image, state_dir=state_dir, tags={"Name": "b", "team": "x"})],
                         diff=True), "put")
    assert second["snapshot_id"] == first["snapshot_id"] and second["changed"] is True
    tags = tags_of(aws, first["snapshot_id"])
    assert tags["Name"] == "b" and tags["team"] == "x" and tags["blockwise:content"] == first["content_digest"]
    assert second["diff"]["before"]["tags"]["Name"] == "a" and second["diff"]["after"]["tags"]["Name"] == "b"
    third = ok(playbook([put_task(aws, src=image, state_dir=state_dir, tags={"Name": "b", "team": "x"})]), "put")
    assert third["changed"] is False


def test_item4_new_description_makes_a_new_snapshot(aws, playbook, tmp_path, state_dir, image):
    first = ok(playbook([put_task(aws, src=image, state_dir=state_dir, description="one")]), "put")
    second = ok(playbook([put_task(aws, src=image, state_dir=state_dir, description="two")]), "put")
    assert second["changed"] is True and second["snapshot_id"] != first["snapshot_id"]
    assert snapshot(aws, second["snapshot_id"])["Description"] == "two"


# ------------------------------------------------------------------ 8, 9. symlinked dest, leftovers of a killed restore

def test_item8_restore_through_a_symlink_writes_the_target(aws, playbook, tmp_path, state_dir, image):
    snap = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")["snapshot_id"]
    target = tmp_path / "target.raw"
    target.write_bytes(b"old")
    link = tmp_path / "link.raw"
    link.symlink_to(target)
    ok(playbook([get_task(aws, snapshot_id=snap, dest=str(link))]), "get")
    assert link.is_symlink() and os.readlink(str(link)) == str(target)
    assert_restored(image, str(target))


def test_item9_a_killed_restore_leaves_a_part_file_the_next_run_removes(aws, playbook, tmp_path, state_dir, image):
    snap = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")["snapshot_id"]
    dest = tmp_path / "r.raw"
    stale = tmp_path / ".r.raw.blockwise-part"
    stale.write_bytes(b"x" * 4096)  # what a SIGKILLed run leaves
    ok(playbook([get_task(aws, snapshot_id=snap, dest=str(dest))]), "get")
    assert not stale.exists()
    assert sorted(f for f in os.listdir(str(tmp_path)) if not f.startswith("run")) == ["disk.raw", "r.raw", "state"]


# ------------------------------------------------------------------ 12. bad input refused before the image is hashed

@pytest.mark.parametrize("tags, words", [
    ({"aws:owner": "x"}, ["tags", "aws:"]),
    ({"k": "v" * 300}, ["tags", "255"]),
    ({"k%d" % i: "v" for i in range(50)}, ["tags", "50"]),
    ({"blockwise:lineage": "x"}, ["tags", "blockwise:lineage", "lineage"]),
])
def test_item12_tags_checked_before_hashing(aws, playbook, tmp_path, state_dir, image, tags, words):
    progress = str(tmp_path / "p.json")
    res = failed(playbook([put_task(aws, src=image, state_dir=state_dir, tags=tags, progress_file=progress)]), "put")
    for word in words:
        assert word in res["msg"]
    assert aws.counters() == {}
    assert not os.path.exists(progress)


def test_item12_empty_source_is_refused(aws, playbook, tmp_path, state_dir):
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    res = failed(playbook([put_task(aws, src=str(empty), state_dir=state_dir)]), "put")
    assert "src" in res["msg"] and "empty" in res["msg"]
    assert aws.mutating_calls() == {}


def test_item12_check_mode_writes_no_progress_file(aws, playbook, tmp_path, state_dir, image):
    snap = ok(playbook([put_task(aws, src=image, state_dir=state_dir)]), "put")["snapshot_id"]
    run = playbook([
        put_task(aws, src=image, state_dir=state_dir, progress_file=str(tmp_path / "p1.json")),
        get_task(aws, snapshot_id=snap, dest=str(tmp_path / "r.raw"), progress_file=str(tmp_path / "p2.json")),
    ], check=True)
    ok(run, "put"), ok(run, "get")
    assert sorted(f for f in os.listdir(str(tmp_path)) if not f.startswith("run")) == ["disk.raw", "state"]


# ------------------------------------------------------------------ 14. incremental restore onto the wrong base

def _chain(aws, playbook, tmp_path, state_dir):
    """Snapshots A <- B <- C of one disk (each a child of the previous one)."""
    images = [write_image(tmp_path / ("v%d.raw" % n), 4 * MIB, random_blocks(blocks, seed=20 + n))
              for n, blocks in enumerate(([0, 1, 2], [0, 1, 2, 5], [0, 3, 5, 6]))]
    ids = []
    parent = None
    for img in images:
        args = dict(src=img, state_dir=state_dir)
        if parent:
            args["parent_snapshot_id"] = parent
        parent = ok(playbook([put_task(aws, **args)]), "put")["snapshot_id"]
        ids.append(parent)
    return images, ids


def test_item14_incremental_restore_refuses_a_manifest_of_another_snapshot(aws, playbook, tmp_path, state_dir):
    images, (a, b, c) = _chain(aws, playbook, tmp_path, state_dir)
    dest, manifest = str(tmp_path / "r.raw"), str(tmp_path / "r.manifest")
    ok(playbook([get_task(aws, snapshot_id=a, dest=dest, manifest=manifest)]), "get")
    with open(manifest, "rb") as handle:
        manifest_before = handle.read()
    dest_before = sha(dest)
    res = failed(playbook([get_task(aws, snapshot_id=c, base_snapshot_id=b, dest=dest, manifest=manifest)]), "get")
    assert "base_snapshot_id" in res["msg"] and "manifest" in res["msg"] and a in res["msg"]
    assert sha(dest) == dest_before
    with open(manifest, "rb") as handle:
        assert handle.read() == manifest_before
    # the right base works, and a later run is a verified no-op
    ok(playbook([get_task(aws, snapshot_id=b, base_snapshot_id=a, dest=dest, manifest=manifest)]), "get")
    assert_restored(images[1], dest)
    ok(playbook([get_task(aws, snapshot_id=c, base_snapshot_id=b, dest=dest, manifest=manifest)]), "get")
    assert_restored(images[2], dest)


def test_item14_incremental_restore_refuses_a_dest_changed_since_its_manifest(aws, playbook, tmp_path, state_dir):
    _images, (a, b, _c) = _chain(aws, playbook, tmp_path, state_dir)
    dest, manifest = str(tmp_path / "r.raw"), str(tmp_path / "r.manifest")
    ok(playbook([get_task(aws, snapshot_id=a, dest=dest, manifest=manifest)]), "get")
    with open(dest, "r+b") as handle:
        handle.seek(7 * BS)
        handle.write(b"local change")
    res = failed(playbook([get_task(aws, snapshot_id=b, base_snapshot_id=a, dest=dest, manifest=manifest)]), "get")
    assert "dest" in res["msg"] and a in res["msg"]


# ------------------------------------------------------------------ 21. lineage

def test_item21_lineage_from_option_parent_or_own_id(aws, playbook, tmp_path, state_dir, image):
    named = ok(playbook([put_task(aws, src=image, state_dir=state_dir, lineage="web-root")]), "put")
    assert tags_of(aws, named["snapshot_id"])["blockwise:lineage"] == "web-root"
    img2 = write_image(tmp_path / "d2.raw", 3 * MIB, random_blocks([0, 1], seed=13))
    child = ok(playbook([put_task(aws, src=img2, state_dir=state_dir, parent_snapshot_id=named["snapshot_id"])]), "put")
    assert tags_of(aws, child["snapshot_id"])["blockwise:lineage"] == "web-root"
    img3 = write_image(tmp_path / "d3.raw", 3 * MIB, random_blocks([3], seed=14))
    alone = ok(playbook([put_task(aws, src=img3, state_dir=state_dir)]), "put")
    assert tags_of(aws, alone["snapshot_id"])["blockwise:lineage"] == alone["snapshot_id"]


def test_item21_same_content_in_another_lineage_is_its_own_snapshot(aws, playbook, tmp_path, state_dir, image):
    one = ok(playbook([put_task(aws, src=image, state_dir=state_dir, lineage="disk-a")]), "put")
    two = ok(playbook([put_task(aws, src=image, state_dir=state_dir, lineage="disk-b")]), "put")
    assert one["snapshot_id"] != two["snapshot_id"]
    assert tags_of(aws, two["snapshot_id"])["blockwise:lineage"] == "disk-b"
