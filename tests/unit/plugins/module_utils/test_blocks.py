# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the pure parts of the block streaming core (no network)."""
import base64
import hashlib
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import (
    BLOCK_SIZE, ZERO_BLOCK_DIGEST, DigestMap, Journal, Manifest, ManifestError, content_digest)

BS = BLOCK_SIZE


def sha(data):
    return hashlib.sha256(data).digest()


def block(fill):
    return bytes([fill]) * BS


# ------------------------------------------------------------------------------------ BlockSource

def make_sparse(path, pieces, size):
    """A sparse file of ``size`` bytes with ``pieces`` = {offset: bytes} written, holes elsewhere."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in pieces.items():
            handle.seek(offset)
            handle.write(data)
    return str(path)


def test_sparse_extents_skip_holes(tmp_path):
    path = make_sparse(tmp_path / "img", {0: b"a" * 4096, 10 * BS + 100: b"b" * 10, 30 * BS: b"c" * BS}, 64 * BS)
    with blocks.BlockSource(path) as src:
        extents = list(src.data_extents())
        assert src.size == 64 * BS
        # Holes are reported as gaps between extents; nothing is read to find them.
        covered = sum(end - start for start, end in extents)
        assert covered < 4 * BS
        assert list(src.data_block_indexes()) == [0, 10, 30]


def test_sparse_file_without_data(tmp_path):
    path = make_sparse(tmp_path / "img", {}, 8 * BS)
    with blocks.BlockSource(path) as src:
        assert list(src.data_extents()) == []
        assert list(src.data_block_indexes()) == []


def test_extent_spanning_blocks_and_limit(tmp_path):
    path = make_sparse(tmp_path / "img", {BS - 10: b"x" * (2 * BS + 20)}, 8 * BS)
    with blocks.BlockSource(path) as src:
        assert list(src.data_block_indexes()) == [0, 1, 2, 3]
        assert list(src.data_block_indexes(limit=2 * BS)) == [0, 1]


def test_tail_block_is_zero_padded(tmp_path):
    data = os.urandom(BS + 1000)
    path = tmp_path / "img"
    path.write_bytes(data)
    with blocks.BlockSource(str(path)) as src:
        assert src.block_count == 2
        assert src.read_block(0) == data[:BS]
        tail = src.read_block(1)
        assert len(tail) == BS
        assert tail == data[BS:] + bytes(BS - 1000)
        buf = bytearray(b"\xff" * BS)
        src.read_into(1, buf)
        assert bytes(buf) == tail
        assert src.read_block(5) == bytes(BS)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_source_bad_paths(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(str(path))
    with pytest.raises(blocks.InputError) as err:
        blocks.BlockSource(str(path))
    assert str(path) in str(err.value)
    assert err.value.option == "src"


def test_source_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "img"
    path.write_bytes(b"x")

    def denied(*_a, **_kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(blocks.os, "open", denied)
    with pytest.raises(blocks.InputError, match="is not readable: Permission denied"):
        blocks.BlockSource(str(path))


def test_hash_blocks_matches_hashlib(tmp_path):
    pieces = {0: os.urandom(BS), 3 * BS: os.urandom(BS // 2), 7 * BS: bytes(BS)}
    path = make_sparse(tmp_path / "img", pieces, 7 * BS + 100)
    with blocks.BlockSource(path) as src:
        idx = list(src.data_block_indexes())
        digests = blocks.hash_blocks(src, idx, 3)
    assert list(digests.indexes()) == [0, 3, 7]
    assert digests.get(0) == sha(pieces[0])
    assert digests.get(3) == sha(pieces[3 * BS] + bytes(BS // 2))
    assert digests.get(7) == ZERO_BLOCK_DIGEST  # written zeros: data extent, zero content


# ------------------------------------------------------------------------------------ DigestMap / manifest

def test_digest_map_lookup_and_order():
    dm = DigestMap()
    dm.append(2, sha(b"a"))
    dm.append(5, sha(b"b"))
    with pytest.raises(ValueError):
        dm.append(4, sha(b"c"))
    assert 2 in dm and 3 not in dm
    assert dm.get(5) == sha(b"b") and dm.get(6) is None
    assert list(dm.items()) == [(2, sha(b"a")), (5, sha(b"b"))]
    assert DigestMap.from_items([(5, sha(b"b")), (2, sha(b"a"))]) == dm


def test_content_digest_ignores_zero_blocks():
    a = DigestMap.from_items([(1, sha(b"x")), (4, ZERO_BLOCK_DIGEST)])
    b = DigestMap.from_items([(1, sha(b"x"))])
    c = DigestMap.from_items([(2, sha(b"x"))])
    assert a.content_digest() == b.content_digest() != c.content_digest()
    assert a.content_digest().startswith("sha256:")


def test_manifest_round_trip(tmp_path):
    items = [(i, sha(str(i).encode())) for i in (0, 1, 2, 3, 100, 101, 4095)]
    man = Manifest("snap-0123456789abcdef0", 2, DigestMap.from_items(items))
    path = str(tmp_path / "m")
    man.write(path)
    raw = open(path, "rb").read()
    # header + 3 runs + 32 bytes per block + trailer
    assert len(raw) == 96 + 3 * 8 + 7 * 32 + 32
    back = Manifest.read(path)
    assert back.snapshot_id == "snap-0123456789abcdef0"
    assert back.volume_size == 2
    assert back.blocks == man.blocks
    assert back.content_digest == man.content_digest


def test_manifest_damage_detected(tmp_path):
    man = Manifest("snap-1", 1, DigestMap.from_items([(3, sha(b"a"))]))
    raw = bytearray(man.to_bytes())
    raw[100] ^= 1
    with pytest.raises(ManifestError, match="damaged"):
        Manifest.from_bytes(bytes(raw))
    with pytest.raises(ManifestError, match="not a blockwise.ebs manifest"):
        Manifest.from_bytes(b"hello world" * 20)
    with pytest.raises(ManifestError, match="cannot read"):
        Manifest.read(str(tmp_path / "missing"))


def test_manifest_diff_drives_incremental_plan():
    parent = DigestMap.from_items([(0, sha(b"a")), (1, sha(b"b")), (2, sha(b"c"))])
    image = DigestMap.from_items([(0, sha(b"a")), (1, sha(b"B")), (3, sha(b"d"))])
    plan = blocks.plan_put(image, 2048, blocks.ParentBlocks("snap-p", digests=parent))
    assert list(plan.write) == [1, 2, 3]  # changed, zeroed since the parent, new
    assert list(plan.unchanged) == [0]
    assert plan.blocks_skipped_zero == 2048 - 4


# ------------------------------------------------------------------------------------ planning

def test_plan_new_unencrypted_skips_zero_blocks():
    image = DigestMap.from_items([(0, sha(b"a")), (5, ZERO_BLOCK_DIGEST), (9, sha(b"b"))])
    plan = blocks.plan_put(image, 2048)
    assert list(plan.write) == [0, 9]
    assert plan.blocks_unchanged == 0
    assert plan.blocks_skipped_zero == 2046
    assert plan.bytes_to_write == 2 * BS


def test_plan_encrypted_writes_every_block():
    image = DigestMap.from_items([(0, sha(b"a"))])
    plan = blocks.plan_put(image, 2048, encrypted=True)
    assert plan.blocks_written == 2048
    assert plan.blocks_skipped_zero == 0


def test_plan_parent_without_manifest_writes_zeroed_blocks():
    image = DigestMap.from_items([(0, sha(b"a")), (2, ZERO_BLOCK_DIGEST)])
    parent = blocks.ParentBlocks("snap-p", indexes=[0, 1, 2, 7])
    plan = blocks.plan_put(image, 2048, parent)
    # 0: data -> written (no digest to compare); 1, 2, 7: parent data, zero now -> written as zeros
    assert list(plan.write) == [0, 1, 2, 7]
    assert plan.blocks_unchanged == 0
    assert plan.blocks_skipped_zero == 2044


def test_plan_parent_manifest_zero_block_unchanged():
    parent = DigestMap.from_items([(4, ZERO_BLOCK_DIGEST), (6, sha(b"z"))])
    image = DigestMap.from_items([(6, sha(b"z"))])
    plan = blocks.plan_put(image, 2048, blocks.ParentBlocks("snap-p", digests=parent), encrypted=True)
    assert list(plan.unchanged) == [4, 6]
    assert plan.blocks_written == 2046  # encrypted: every other block, zeros included


def test_plan_rejects_blocks_beyond_volume():
    image = DigestMap.from_items([(2048, sha(b"a"))])
    with pytest.raises(blocks.InputError):
        blocks.plan_put(image, 2048)


@settings(max_examples=200, deadline=None)
@given(
    nblocks=st.integers(min_value=1, max_value=40),
    image=st.dictionaries(st.integers(0, 39), st.integers(0, 3)),
    parent=st.one_of(st.none(), st.dictionaries(st.integers(0, 39), st.integers(0, 3))),
    with_manifest=st.booleans(),
    encrypted=st.booleans(),
)
def test_plan_child_reads_as_image(nblocks, image, parent, with_manifest, encrypted):
    """Whatever the parent, the child (parent overlaid with the written blocks) reads as the image."""
    image = {i: c for i, c in image.items() if i < nblocks}
    digest_of = {0: ZERO_BLOCK_DIGEST, 1: sha(b"1"), 2: sha(b"2"), 3: sha(b"3")}
    img = DigestMap.from_items((i, digest_of[c]) for i, c in image.items())
    pblocks = None
    if parent is not None:
        parent = {i: c for i, c in parent.items() if i < nblocks}
        if with_manifest:
            pblocks = blocks.ParentBlocks("snap-p", digests=DigestMap.from_items((i, digest_of[c]) for i, c in parent.items()))
        else:
            pblocks = blocks.ParentBlocks("snap-p", indexes=list(parent))
    plan = blocks.plan_put(img, nblocks, pblocks, encrypted)
    written = set(plan.write)
    assert not written & set(plan.unchanged)
    for i in range(nblocks):
        want = image.get(i, 0)
        if i in written:
            got = want
        elif parent is not None and i in parent:
            got = parent[i]
        else:
            got = 0
            # an omitted zero block: only when unencrypted and the parent has nothing there
            assert not encrypted
        assert got == want, i
    if parent is None or not with_manifest:
        assert plan.blocks_unchanged == 0
    assert plan.blocks_written + plan.blocks_unchanged + plan.blocks_skipped_zero == nblocks


def test_snapshot_blocks_after_put():
    parent = DigestMap.from_items([(0, sha(b"a")), (1, sha(b"b"))])
    image = DigestMap.from_items([(0, sha(b"a")), (3, sha(b"d"))])
    plan = blocks.plan_put(image, 2048, blocks.ParentBlocks("p", digests=parent))
    after = blocks.snapshot_blocks_after_put(image, plan)
    assert list(after.items()) == [(0, sha(b"a")), (1, ZERO_BLOCK_DIGEST), (3, sha(b"d"))]
    assert after.content_digest() == image.content_digest()


def test_linear_checksum_independent():
    datas = [os.urandom(64) for _i in range(5)]
    digests = [sha(d) for d in datas]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert blocks.linear_checksum(digests) == expected
    assert blocks.linear_checksum(iter(digests)) == expected


def test_client_token_deterministic():
    a = blocks.client_token(content="sha256:1", volume_size=1, parent=None, tags=[("a", "b")])
    b = blocks.client_token(tags=[("a", "b")], parent=None, volume_size=1, content="sha256:1")
    c = blocks.client_token(content="sha256:1", volume_size=2, parent=None, tags=[("a", "b")])
    assert a == b != c
    assert len(a) <= 64 and " " not in a


def test_plan_digest_changes_with_write_set():
    image = DigestMap.from_items([(0, sha(b"a")), (1, sha(b"b"))])
    p1 = blocks.plan_put(image, 2048)
    p2 = blocks.plan_put(image, 2048, encrypted=True)
    assert p1.digest() == blocks.plan_put(image, 2048).digest() != p2.digest()


@pytest.mark.parametrize("image_bytes,given,parent,expected", [
    (1, None, None, 1),
    (0, None, None, 1),
    (blocks.GIB, None, None, 1),
    (blocks.GIB + 1, None, None, 2),
    (10, None, 4, 4),
    (10, 3, None, 3),
])
def test_plan_volume_size(image_bytes, given, parent, expected):
    assert blocks.plan_volume_size(image_bytes, given, parent) == expected


@pytest.mark.parametrize("image_bytes,given,parent,match", [
    (blocks.GIB + 1, 1, None, "volume_size=1 GiB is smaller than src"),
    (10, 0, None, "between 1 and 65536"),
    (10, 70000, None, "between 1 and 65536"),
    (10, 2, 4, "smaller than the parent"),
])
def test_plan_volume_size_errors(image_bytes, given, parent, match):
    with pytest.raises(blocks.InputError, match=match) as err:
        blocks.plan_volume_size(image_bytes, given, parent)
    assert err.value.option == "volume_size"


@pytest.mark.parametrize("value", [0, -1, 129, "x", None])
def test_validate_workers(value):
    with pytest.raises(blocks.InputError, match="workers"):
        blocks.validate_workers(value)
    assert blocks.validate_workers(1) == 1 and blocks.validate_workers("64") == 64


# ------------------------------------------------------------------------------------ journal / resume

def test_journal_resume_set(tmp_path):
    path = str(tmp_path / "state" / "put.journal")
    d = {i: sha(str(i).encode()) for i in range(10)}
    j = Journal.create(path, "bwebs-token", "snap-1")
    for i in (3, 1, 7):
        j.append(i, d[i])
    j.append(8, sha(b"other content"))  # a record that does not match the current image
    j.close()
    with open(path, "ab") as handle:
        handle.write(b"\x01\x02\x03")  # torn record (power loss)
    state = Journal.load(path)
    assert state.token == "bwebs-token" and state.snapshot_id == "snap-1"
    assert not state.completed
    assert state.confirmed_blocks(d.get) == [1, 3, 7]
    # only blocks still in the write set count
    assert state.confirmed_blocks(lambda i: d[i] if i != 3 else None) == [1, 7]
    j = Journal.open_existing(path, "bwebs-token", "snap-1")
    j.mark_complete()
    j.close()
    state = Journal.load(path)  # the torn tail was cut before appending
    assert state.completed and sorted(state.confirmed) == [1, 3, 7, 8]
    j = Journal.create(path, "bwebs-token", "snap-1")
    j.mark_complete()
    j.remove()
    assert Journal.load(path) is None


def test_journal_complete_flag(tmp_path):
    path = str(tmp_path / "j")
    j = Journal.create(path, "t", "snap-2")
    j.append(0, sha(b"a"))
    j.mark_complete()
    j.close()
    state = Journal.load(path)
    assert state.completed and list(state.confirmed) == [0]


def test_journal_path_per_source(tmp_path):
    a = blocks.journal_path(str(tmp_path), "/images/a.raw")
    b = blocks.journal_path(str(tmp_path), "/images/b.raw")
    assert a != b and a == blocks.journal_path(str(tmp_path), "/images/a.raw")
    assert os.path.dirname(a) == str(tmp_path)


# ------------------------------------------------------------------------------------ errors

def client_error(code, message="msg", status=400):
    import botocore.exceptions
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutSnapshotBlock")


@pytest.mark.parametrize("exc,started,expected", [
    (client_error("ThrottlingException", status=400), None, blocks.RETRY),
    (client_error("RequestThrottledException", status=400), None, blocks.RETRY),
    (client_error("InternalServerException", status=500), None, blocks.RETRY),
    (client_error("SomethingOdd", status=503), None, blocks.RETRY),
    (client_error("ValidationException", "Failed to read block data"), None, blocks.RETRY),
    (client_error("ResourceNotFoundException", status=404), 0.0, blocks.RETRY_NOT_FOUND),
    (client_error("ResourceNotFoundException", status=404), -500.0, blocks.FAIL),
    (client_error("ResourceNotFoundException", status=404), None, blocks.FAIL),
    (client_error("AccessDeniedException", status=403), None, blocks.FAIL),
    (client_error("ValidationException", "Checksum mismatch"), None, blocks.FAIL),
    (ValueError("boom"), None, blocks.FAIL),
])
def test_classify_error(exc, started, expected):
    assert blocks.classify_error(exc, started, now=0.0) == expected


def test_retrier_retries_then_succeeds():
    calls = []

    def fn(**kw):
        calls.append(kw)
        if len(calls) < 3:
            raise client_error("ThrottlingException")
        return "ok"

    slept = []
    r = blocks.Retrier(sleep=slept.append, rng=lambda: 1.0)
    assert r.call(fn, "PutSnapshotBlock", x=1) == "ok"
    assert len(calls) == 3 and r.retries == 2
    assert slept == [0.4, 0.8]  # full jitter upper bound: base * 2**attempt


def test_retrier_fails_fast_with_block_index():
    r = blocks.Retrier(sleep=lambda s: None)

    def fn(**kw):
        raise client_error("AccessDeniedException", "not authorized to ebs:PutSnapshotBlock", 403)

    with pytest.raises(blocks.TransferError) as err:
        r.call(fn, "PutSnapshotBlock", block_index=42, snapshot_id="snap-1")
    msg = str(err.value)
    assert "block 42" in msg and "snap-1" in msg and "not authorized" in msg
    assert err.value.code == "AccessDeniedException" and err.value.block_index == 42
    assert r.retries == 0


def test_retrier_gives_up():
    r = blocks.Retrier(attempts=4, sleep=lambda s: None)
    n = []

    def fn(**kw):
        n.append(1)
        raise client_error("ThrottlingException")

    with pytest.raises(blocks.TransferError, match="gave up after 4 attempts"):
        r.call(fn, "X")
    assert len(n) == 4


# ------------------------------------------------------------------------------------ pipeline with a fake client

class FakeEBS:
    """Records PutSnapshotBlock calls; fails per a script."""

    def __init__(self, fail=None, delay=0.0):
        import threading
        self.puts = {}
        self.fail = fail or {}
        self.delay = delay
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    def put_snapshot_block(self, **kw):
        import time
        with self.lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.delay:
                time.sleep(self.delay)
            action = self.fail.get(kw["BlockIndex"])
            if action:
                exc = action.pop(0) if isinstance(action, list) else action
                if isinstance(action, list) and not action:
                    self.fail.pop(kw["BlockIndex"])
                if exc is not None:
                    raise exc
            assert base64.b64decode(kw["Checksum"]) == sha(kw["BlockData"])
            with self.lock:
                self.puts[kw["BlockIndex"]] = kw["BlockData"]
            return {}
        finally:
            with self.lock:
                self.inflight -= 1


def image_file(tmp_path, nblocks):
    data = b"".join(os.urandom(BS) for _i in range(nblocks))
    path = tmp_path / "img"
    path.write_bytes(data)
    return str(path), data


def test_uploader_puts_blocks_and_journals(tmp_path):
    path, data = image_file(tmp_path, 12)
    ebs = FakeEBS(fail={5: [client_error("ThrottlingException"), None]}, delay=0.01)
    with blocks.BlockSource(path) as src:
        image = blocks.hash_blocks(src, list(range(12)), 2)
        journal = Journal.create(str(tmp_path / "j"), "t", "snap-1")
        up = blocks.BlockUploader(ebs, "snap-1", src, image, workers=4,
                                  retry=blocks.Retrier(sleep=lambda s: None), journal=journal)
        assert up.run(list(range(12))) == 12
        journal.close()
    assert sorted(ebs.puts) == list(range(12))
    assert all(ebs.puts[i] == data[i * BS:(i + 1) * BS] for i in range(12))
    assert ebs.max_inflight <= 4  # bounded: one block per worker
    state = Journal.load(str(tmp_path / "j"))
    assert sorted(state.confirmed) == list(range(12))


def test_uploader_stops_on_access_denied(tmp_path):
    path, _data = image_file(tmp_path, 40)
    ebs = FakeEBS(fail={3: client_error("AccessDeniedException", "denied", 403)}, delay=0.005)
    with blocks.BlockSource(path) as src:
        image = blocks.hash_blocks(src, list(range(40)), 2)
        up = blocks.BlockUploader(ebs, "snap-1", src, image, workers=2, retry=blocks.Retrier(sleep=lambda s: None))
        with pytest.raises(blocks.TransferError) as err:
            up.run(list(range(40)))
    assert err.value.block_index == 3 and "denied" in str(err.value)
    assert len(ebs.puts) < 10  # the pipeline stopped; queued blocks were not sent
    assert ebs.inflight == 0  # workers joined


def test_uploader_zero_blocks_not_read(tmp_path):
    path = make_sparse(tmp_path / "img", {BS: b"q" * BS}, 4 * BS)
    ebs = FakeEBS()
    with blocks.BlockSource(path) as src:
        image = blocks.hash_blocks(src, list(src.data_block_indexes()), 2)
        blocks.BlockUploader(ebs, "snap-1", src, image, workers=2).run([0, 1, 3])
    assert ebs.puts[0] == bytes(BS) and ebs.puts[3] == bytes(BS) and ebs.puts[1] == b"q" * BS


def test_uploader_detects_changed_source(tmp_path):
    path, _data = image_file(tmp_path, 2)
    with blocks.BlockSource(path) as src:
        image = blocks.hash_blocks(src, [0, 1], 1)
    with open(path, "r+b") as handle:
        handle.write(b"changed")

    class Rejecting(FakeEBS):
        def put_snapshot_block(self, **kw):
            raise client_error("ValidationException", "The checksum does not match the data")

    with blocks.BlockSource(path) as src:
        with pytest.raises(blocks.TransferError, match="changed since it was hashed"):
            blocks.BlockUploader(Rejecting(), "snap-1", src, image, workers=1).run([0])


def test_run_pool_bounded_and_cancels():
    import threading
    import time
    seen = []
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def fn(i):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.002)
        with lock:
            state["now"] -= 1
            seen.append(i)
        if i == 20:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        blocks.run_pool(range(1000), fn, 3)
    assert state["max"] <= 3
    assert len(seen) < 100


def test_progress_file(tmp_path):
    from ansible_collections.blockwise.ebs.plugins.module_utils.progress import Progress, read_progress
    path = str(tmp_path / "p.json")
    clock = [0.0]
    prog = Progress(path, operation="put", interval=1.0, clock=lambda: clock[0])
    prog.phase("uploading", blocks_total=10, bytes_total=10 * BS, snapshot_id="snap-1")
    clock[0] = 2.0
    for _i in range(4):
        prog.advance(1, BS)
    doc = read_progress(path)
    assert doc["state"] == "uploading" and doc["snapshot_id"] == "snap-1"
    assert doc["blocks_done"] == 1  # throttled: written once per interval
    prog.finish("done")
    doc = read_progress(path)
    assert doc["blocks_done"] == 4 and doc["blocks_total"] == 10 and doc["percent"] == 40
    assert doc["mib_s"] == 1.0 and doc["eta_seconds"] == 3.0 and doc["state"] == "done"
    assert not [p for p in os.listdir(str(tmp_path)) if p.endswith(".tmp")]


def test_content_digest_function_matches_struct():
    items = [(1, sha(b"a"))]
    h = hashlib.sha256(b"blockwise.ebs content v1\0")
    h.update(struct.pack("<I", BS))
    h.update(struct.pack("<Q", 1) + sha(b"a"))
    assert content_digest(items) == "sha256:" + h.hexdigest()


def test_paged_blocks_follow_tokens_and_survive_expiry():
    class Lister:
        def __init__(self):
            self.calls = []

        def list_snapshot_blocks(self, **kw):
            self.calls.append(kw)
            if kw.get("NextToken") == "t2":
                raise client_error("ValidationException", "The pagination token has expired")
            start = kw.get("StartingBlockIndex", 0)
            if kw.get("NextToken") == "t1":
                start = 100
            blocks_ = [{"BlockIndex": i, "BlockToken": "b%d" % i} for i in range(start, min(start + 100, 250))]
            page = {"Blocks": blocks_, "VolumeSize": 1, "BlockSize": BS}
            if start + 100 < 250:
                page["NextToken"] = "t1" if start == 0 else "t2"
            return page

    lister = Lister()
    paged = blocks.PagedBlocks(lister, blocks.Retrier(sleep=lambda s: None), snapshot_id="snap-1", page_size=100)
    assert paged.volume_size == 1
    items = list(paged)
    assert [i for i, _t in items] == list(range(250))
    assert lister.calls[-1]["StartingBlockIndex"] == 200 and "NextToken" not in lister.calls[-1]
