# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_block_put / ebs_block_get through ansible-playbook against the local endpoint.

Snapshot content is checked independently of the collection's code: blocks are read back with a
plain boto3 client and compared with the image bytes.
"""
import hashlib
import os
import random

import pytest

BS = 524288
MIB = 1024 * 1024
GIB = 1024 ** 3


# ------------------------------------------------------------------------------------ helpers

def write_image(path, size, blocks=None, pieces=None):
    """A sparse image of ``size`` bytes: ``blocks`` = {index: bytes (<= one block)}, ``pieces`` = {offset: bytes}."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for index, data in sorted((blocks or {}).items()):
            handle.seek(index * BS)
            handle.write(data)
        for offset, data in sorted((pieces or {}).items()):
            handle.seek(offset)
            handle.write(data)
    return str(path)


def random_blocks(indexes, seed):
    rnd = random.Random(seed)
    return {i: rnd.randbytes(BS) for i in indexes}


def image_blocks(path):
    """{index: 512 KiB block} for every non-zero block of the image (tail zero-padded)."""
    out = {}
    with open(path, "rb") as handle:
        index = 0
        while True:
            data = handle.read(BS)
            if not data:
                break
            if data.count(0) != len(data):
                out[index] = data + bytes(BS - len(data))
            index += 1
    return out


def snapshot_blocks(aws, snapshot_id):
    """{index: block} of every non-zero block the snapshot holds, read with plain boto3 calls."""
    ebs = aws.client("ebs")
    out = {}
    kwargs = {"SnapshotId": snapshot_id, "MaxResults": 1000}
    while True:
        page = ebs.list_snapshot_blocks(**kwargs)
        for item in page["Blocks"]:
            data = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=item["BlockIndex"],
                                          BlockToken=item["BlockToken"])["BlockData"].read()
            if data.count(0) != len(data):
                out[item["BlockIndex"]] = data
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def assert_same_content(aws, snapshot_id, image_path):
    got = snapshot_blocks(aws, snapshot_id)
    want = image_blocks(image_path)
    assert sorted(got) == sorted(want)
    for index in want:
        assert hashlib.sha256(got[index]).digest() == hashlib.sha256(want[index]).digest(), index


def assert_restored(image_path, dest_path):
    """dest holds the image bytes, then zeros up to the volume size."""
    size = os.path.getsize(image_path)
    assert os.path.getsize(dest_path) % GIB == 0 and os.path.getsize(dest_path) >= size
    with open(image_path, "rb") as a, open(dest_path, "rb") as b:
        while True:
            x = a.read(4 * MIB)
            if not x:
                break
            assert b.read(len(x)) == x
        while True:
            y = b.read(64 * MIB)
            if not y:
                break
            assert y.count(0) == len(y)


def conn(aws):
    return {"endpoint_url": aws.endpoint_url, "region": "us-east-1"}


def put_task(aws, name="put", register=None, **args):
    task = {"name": name, "blockwise.ebs.ebs_block_put": dict(conn(aws), **args)}
    if register:
        task["register"] = register
    return task


def get_task(aws, name="get", **args):
    return {"name": name, "blockwise.ebs.ebs_block_get": dict(conn(aws), **args)}


def ok(run, name):
    res = run.result(name)
    assert not res.get("failed"), (res.get("msg"), run)
    return res


def puts(aws):
    return aws.counters().get("ebs:PutSnapshotBlock", 0)


def gets(aws):
    return aws.counters().get("ebs:GetSnapshotBlock", 0)


def completed_snapshots(aws, content=None):
    ec2 = aws.client("ec2")
    filters = [{"Name": "tag:blockwise:content", "Values": [content]}] if content else []
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return str(path)


# ------------------------------------------------------------------------------------ round trip

def test_round_trip_put_get_and_idempotent_rerun(aws, playbook, tmp_path, state_dir):
    size = 5 * MIB + 12345  # not a multiple of 512 KiB
    data = random_blocks([0, 3, 4, 9], seed=1)
    pieces = {6 * BS + 77: b"scattered", size - 5: b"tail!", 8 * BS: bytes(BS)}
    img = write_image(tmp_path / "disk.raw", size, data, pieces=pieces)
    dest = str(tmp_path / "restore.raw")
    tasks = [
        put_task(aws, src=img, manifest=str(tmp_path / "put.manifest"), state_dir=state_dir, workers=4,
                 description="round trip", tags={"Name": "rt"}, register="up"),
        get_task(aws, snapshot_id="{{ up.snapshot_id }}", dest=dest, manifest=str(tmp_path / "get.manifest"), workers=4),
    ]
    first = playbook(tasks, diff=True)
    up = ok(first, "put")
    got = ok(first, "get")
    nonzero = image_blocks(img)
    assert up["changed"] and got["changed"]
    assert up["state"] == "completed" and up["volume_size"] == 1 and up["blocks_total"] == 2048
    assert up["blocks_written"] == len(nonzero) == puts(aws)  # zero block 8 and holes are omitted
    assert up["blocks_skipped_zero"] == 2048 - len(nonzero)
    assert up["bytes_written"] == len(nonzero) * BS
    assert up["checksum"] and up["resumed"] is False and up["abandoned_snapshot_ids"] == []
    assert up["diff"]["before"] == {} and up["diff"]["after"]["snapshot_id"] == up["snapshot_id"]
    assert_same_content(aws, up["snapshot_id"], img)
    assert got["method"] == "new" and got["content_digest"] == up["content_digest"]
    assert_restored(img, dest)
    # the restored file is sparse: holes where the snapshot has no data
    assert os.stat(dest).st_blocks * 512 < 16 * MIB
    snap = completed_snapshots(aws, up["content_digest"])
    assert [s["SnapshotId"] for s in snap] == [up["snapshot_id"]]
    assert {t["Key"]: t["Value"] for t in snap[0]["Tags"]}["Name"] == "rt"

    aws.reset_counters()
    second = playbook(tasks, diff=True)
    up2, got2 = ok(second, "put"), ok(second, "get")
    assert up2["changed"] is False and got2["changed"] is False
    assert up2["snapshot_id"] == up["snapshot_id"] and got2["method"] == "unchanged"
    assert puts(aws) == 0 and gets(aws) == 0
    assert aws.mutating_calls() == {}
    assert aws.counters().get("ec2:DescribeSnapshots") == 1  # one tag-filtered lookup, no scan


def test_get_replace_without_manifest_is_idempotent(aws, playbook, tmp_path, state_dir):
    img = write_image(tmp_path / "disk.raw", 2 * MIB, random_blocks([1, 2], seed=2))
    dest = write_image(tmp_path / "old.raw", 3 * MIB, random_blocks([0, 5], seed=3))
    run = playbook([
        put_task(aws, src=img, state_dir=state_dir, register="up"),
        get_task(aws, snapshot_id="{{ up.snapshot_id }}", dest=dest),
        get_task(aws, name="again", snapshot_id="{{ up.snapshot_id }}", dest=dest),
    ])
    first, again = ok(run, "get"), ok(run, "again")
    assert first["changed"] and first["method"] == "replace"
    assert again["changed"] is False and again["blocks_fetched"] == 2
    assert_restored(img, dest)


# ------------------------------------------------------------------------------------ incremental

def _incremental_images(tmp_path):
    base = random_blocks(range(8), seed=10)
    parent = write_image(tmp_path / "v1.raw", 4 * MIB, base)
    child_blocks = dict(base)
    child_blocks.update(random_blocks([2, 6], seed=11))  # changed
    child_blocks[3] = bytes(BS)                           # zeroed since the parent (written zeros)
    del child_blocks[5]                                   # zeroed since the parent (now a hole)
    child_blocks[12] = random_blocks([12], seed=12)[12]   # new data
    child = write_image(tmp_path / "v2.raw", 7 * MIB, child_blocks)
    return parent, child, 5  # changed blocks: 2, 6, 3, 5, 12


@pytest.mark.parametrize("with_manifest", [True, False], ids=["manifest", "block-list"])
def test_incremental_put(aws, playbook, tmp_path, state_dir, with_manifest):
    parent_img, child_img, changed = _incremental_images(tmp_path)
    manifest = str(tmp_path / "vol.manifest")
    first = playbook([put_task(aws, src=parent_img, state_dir=state_dir, register="p",
                               **({"manifest": manifest} if with_manifest else {}))])
    parent = ok(first, "put")
    aws.reset_counters()
    args = {"manifest": manifest} if with_manifest else {}
    run = playbook([put_task(aws, src=child_img, parent_snapshot_id=parent["snapshot_id"], state_dir=state_dir, **args)])
    child = ok(run, "put")
    assert child["changed"] and child["snapshot_id"] != parent["snapshot_id"]
    if with_manifest:
        assert child["blocks_written"] == changed == puts(aws)
        assert child["blocks_unchanged"] == 4  # 0, 1, 4, 7
        assert "ebs:ListSnapshotBlocks" not in aws.counters()
    else:
        # every non-zero block of the child, plus the two blocks zeroed since the parent
        assert child["blocks_written"] == len(image_blocks(child_img)) + 2 == puts(aws)
        assert aws.counters()["ebs:ListSnapshotBlocks"] >= 1
    assert_same_content(aws, child["snapshot_id"], child_img)
    # and a restore of the child gives the child image back
    dest = str(tmp_path / "restore.raw")
    got = ok(playbook([get_task(aws, snapshot_id=child["snapshot_id"], dest=dest)]), "get")
    assert got["changed"]
    assert_restored(child_img, dest)


def test_get_with_base_snapshot(aws, playbook, tmp_path, state_dir):
    parent_img, child_img, _changed = _incremental_images(tmp_path)
    manifest = str(tmp_path / "vol.manifest")
    p = ok(playbook([put_task(aws, src=parent_img, state_dir=state_dir, manifest=manifest)]), "put")
    c = ok(playbook([put_task(aws, src=child_img, state_dir=state_dir, manifest=manifest,
                              parent_snapshot_id=p["snapshot_id"])]), "put")
    dest = str(tmp_path / "restore.raw")
    ok(playbook([get_task(aws, snapshot_id=p["snapshot_id"], dest=dest)]), "get")
    assert_restored(parent_img, dest)
    aws.reset_counters()
    run = playbook([get_task(aws, snapshot_id=c["snapshot_id"], base_snapshot_id=p["snapshot_id"], dest=dest)],
                   diff=True)
    inc = ok(run, "get")
    assert inc["changed"] and inc["method"] == "incremental"
    # only the blocks written in the child are downloaded: 2, 6, 12 and the zero blocks 3, 5
    assert inc["blocks_fetched"] == gets(aws) == 5
    assert inc["blocks_written"] == 5 and inc["blocks_zeroed"] == 0
    assert "ebs:ListSnapshotBlocks" not in aws.counters() and aws.counters()["ebs:ListChangedBlocks"] >= 1
    assert_restored(child_img, dest)
    assert inc["diff"]["before"]["content"] == p["content_digest"]
    assert inc["diff"]["after"]["content"] == c["content_digest"]
    # and back: block 12 is absent from the parent, so it is zeroed in place
    back = ok(playbook([get_task(aws, snapshot_id=p["snapshot_id"], base_snapshot_id=c["snapshot_id"], dest=dest)]),
              "get")
    assert back["changed"] and back["blocks_zeroed"] == 1
    assert_restored(parent_img, dest)


# ------------------------------------------------------------------------------------ check mode

def test_check_mode_makes_no_writes(aws, playbook, tmp_path, state_dir):
    img = write_image(tmp_path / "disk.raw", 3 * MIB, random_blocks([0, 2], seed=4))
    real = ok(playbook([put_task(aws, src=img, state_dir=state_dir)]), "put")
    img2 = write_image(tmp_path / "disk2.raw", 3 * MIB, random_blocks([0, 1, 2], seed=5))
    manifest = str(tmp_path / "m")
    dest = str(tmp_path / "restore.raw")
    aws.reset_counters()
    run = playbook([
        put_task(aws, src=img2, state_dir=state_dir, manifest=manifest),
        put_task(aws, name="incremental", src=img2, state_dir=state_dir, parent_snapshot_id=real["snapshot_id"]),
        put_task(aws, name="existing", src=img, state_dir=state_dir),
        get_task(aws, snapshot_id=real["snapshot_id"], dest=dest, manifest=manifest),
        {"name": "info", "blockwise.ebs.ebs_changed_blocks_info": dict(conn(aws), second_snapshot_id=real["snapshot_id"])},
    ], check=True, diff=True)
    plan = ok(run, "put")
    assert plan["changed"] and plan["snapshot_id"] is None
    assert plan["plan"]["blocks_to_write"] == 3 and plan["blocks_written"] == 3
    assert plan["plan"]["bytes_to_write"] == 3 * BS
    assert plan["diff"]["after"]["content"] == plan["content_digest"]
    inc = ok(run, "incremental")
    assert inc["plan"]["blocks_to_write"] == 3 and inc["plan"]["parent_from_manifest"] is False
    assert ok(run, "existing")["changed"] is False
    got = ok(run, "get")
    assert got["changed"] and got["blocks_fetched"] == 2
    assert ok(run, "info")["changed_blocks"] == 2
    assert aws.mutating_calls() == {}
    assert not os.path.exists(dest) and not os.path.exists(manifest)
    assert os.listdir(state_dir) == []
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith(".part")]


# ------------------------------------------------------------------------------------ bad input

def test_bad_input_fails_clearly_without_writes(aws, playbook, tmp_path, state_dir):
    img = write_image(tmp_path / "disk.raw", GIB + BS, random_blocks([0], seed=6))
    small = write_image(tmp_path / "small.raw", MIB, random_blocks([0], seed=7))
    unreadable = str(tmp_path / "unreadable.raw")
    if os.geteuid() == 0:
        os.mknod(unreadable, 0o600 | 0o060000, os.makedev(250, 0))  # a device node with no driver: open fails
    else:
        write_image(unreadable, MIB)
        os.chmod(unreadable, 0)
    ebs = aws.client("ebs")
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    unencrypted = ok(playbook([put_task(aws, src=small, state_dir=state_dir)]), "put")["snapshot_id"]
    aws.reset_counters()

    cases = {
        "missing src": (dict(src=str(tmp_path / "nope.raw")), ["src", "nope.raw", "does not exist"]),
        "directory src": (dict(src=str(tmp_path)), ["src", "is a directory"]),
        "unreadable src": (dict(src=unreadable), ["src", "unreadable.raw", "not readable"]),
        "too small volume": (dict(src=img, volume_size=1), ["volume_size=1", "smaller than src"]),
        "huge volume": (dict(src=small, volume_size=70000), ["volume_size", "70000"]),
        "unknown parent": (dict(src=small, parent_snapshot_id="snap-0123456789abcdef0"),
                           ["parent_snapshot_id", "snap-0123456789abcdef0", "not found"]),
        "pending parent": (dict(src=small, parent_snapshot_id=pending), ["parent_snapshot_id", pending, "pending"]),
        "parent encryption mismatch": (dict(src=small, parent_snapshot_id=unencrypted, encrypted=True),
                                       ["encrypted=true", unencrypted, "not encrypted"]),
        "zero workers": (dict(src=small, workers=0), ["workers", "between 1 and 128", "got 0"]),
        "too many workers": (dict(src=small, workers=1000), ["workers", "1000"]),
        "non-integer workers": (dict(src=small, workers="many"), ["workers"]),
        "reserved tag": (dict(src=small, tags={"blockwise:content": "x"}), ["tags", "blockwise:content"]),
        "kms without encrypted": (dict(src=small, kms_key_arn="arn:aws:kms:us-east-1:123456789012:key/x"),
                                  ["encrypted", "kms_key_arn"]),
        "bad timeout": (dict(src=small, timeout=5), ["timeout", "5"]),
    }
    tasks = []
    for name, (args, _words) in cases.items():
        task = put_task(aws, name=name, state_dir=state_dir, **args)
        task["ignore_errors"] = True
        tasks.append(task)
    for name, args, in (("get missing snapshot", dict(snapshot_id="snap-0123456789abcdef0", dest=str(tmp_path / "o"))),
                        ("get into directory", dict(snapshot_id=unencrypted, dest=str(tmp_path))),
                        ("get bad workers", dict(snapshot_id=unencrypted, dest=str(tmp_path / "o"), workers=-1))):
        task = get_task(aws, name=name, **args)
        task["ignore_errors"] = True
        tasks.append(task)
    run = playbook(tasks)
    for name, (_args, words) in cases.items():
        res = run.result(name)
        assert res.get("failed"), (name, res)
        for word in words:
            assert word in res["msg"], (name, word, res["msg"])
    assert "snap-0123456789abcdef0" in run.result("get missing snapshot")["msg"]
    assert "is a directory" in run.result("get into directory")["msg"]
    assert "workers" in run.result("get bad workers")["msg"]
    assert aws.mutating_calls() == {}
    assert not os.path.exists(str(tmp_path / "o"))


# ------------------------------------------------------------------------------------ changed blocks info

def test_changed_blocks_info(aws, playbook, tmp_path, state_dir):
    parent_img, child_img, changed = _incremental_images(tmp_path)
    p = ok(playbook([put_task(aws, src=parent_img, state_dir=state_dir)]), "put")
    c = ok(playbook([put_task(aws, src=child_img, state_dir=state_dir, parent_snapshot_id=p["snapshot_id"])]), "put")
    mod = "blockwise.ebs.ebs_changed_blocks_info"
    run = playbook([
        {"name": "delta", mod: dict(conn(aws), first_snapshot_id=p["snapshot_id"], second_snapshot_id=c["snapshot_id"],
                                    return_block_indexes=True)},
        {"name": "all", mod: dict(conn(aws), second_snapshot_id=c["snapshot_id"])},
        {"name": "unrelated", mod: dict(conn(aws), first_snapshot_id="snap-0123456789abcdef0",
                                        second_snapshot_id=c["snapshot_id"]), "ignore_errors": True},
    ], check=True)
    delta = ok(run, "delta")
    # without a manifest every non-zero child block was written, so all of them differ from the parent
    assert delta["changed"] is False
    assert delta["changed_blocks"] == len(delta["block_indexes"]) == c["blocks_written"]
    assert {2, 3, 5, 6, 12} <= set(delta["block_indexes"])
    assert delta["changed_bytes"] == delta["changed_blocks"] * BS and delta["volume_size"] == 1
    everything = ok(run, "all")
    assert everything["changed_blocks"] >= len(image_blocks(child_img)) and "block_indexes" not in everything
    assert run.result("unrelated")["failed"]
    assert changed == 5


# ------------------------------------------------------------------------------------ encryption

def test_encrypted_by_default_writes_every_block(aws, playbook, tmp_path, state_dir):
    """An encrypted snapshot never omits zero blocks, also when encryption comes from the account default."""
    aws.client("ec2").enable_ebs_encryption_by_default()
    img = write_image(tmp_path / "disk.raw", 2 * MIB + 3, random_blocks([1], seed=30))
    img2 = write_image(tmp_path / "disk2.raw", 2 * MIB + 3, random_blocks([1, 2], seed=30))
    manifest = str(tmp_path / "m")
    run = playbook([put_task(aws, src=img, state_dir=state_dir, manifest=manifest, workers=8, register="p")])
    parent = ok(run, "put")
    assert parent["blocks_written"] == 2048 == puts(aws) and parent["blocks_skipped_zero"] == 0
    assert aws.client("ec2").describe_snapshots(SnapshotIds=[parent["snapshot_id"]])["Snapshots"][0]["Encrypted"]
    assert_same_content(aws, parent["snapshot_id"], img)
    aws.reset_counters()
    run = playbook([
        put_task(aws, name="child", src=img2, state_dir=state_dir, manifest=manifest,
                 parent_snapshot_id=parent["snapshot_id"]),
        dict(put_task(aws, name="mismatch", src=img2, state_dir=state_dir, encrypted=False,
                      parent_snapshot_id=parent["snapshot_id"]), ignore_errors=True),
    ])
    child = ok(run, "child")
    assert child["blocks_written"] == 1 == puts(aws) and child["blocks_unchanged"] == 2047  # only block 2 changed
    assert_same_content(aws, child["snapshot_id"], img2)
    mismatch = run.result("mismatch")
    assert mismatch["failed"] and "encrypted=false" in mismatch["msg"] and "is encrypted" in mismatch["msg"]
