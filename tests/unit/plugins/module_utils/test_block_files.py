# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local file safety of the block core: checked writes, atomic replacement, path identity, file kinds,
the upload lock, and what a restore leaves behind when a write fails (issue 10, items 1, 2, 9, 11)."""
from __future__ import annotations

import errno
import json
import os
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import fileio
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import paths
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import restore
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import LocalFile
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE, DigestMap, Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.progress import Progress


# ------------------------------------------------------------------ checked writes

def test_pwrite_all_loops_over_short_writes(tmp_path, monkeypatch):
    real = os.pwrite
    calls = []

    def short(fd, data, offset):
        calls.append(len(data))
        return real(fd, bytes(data)[:1000], offset)

    monkeypatch.setattr(fileio.os, "pwrite", short)
    fd = os.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    try:
        data = os.urandom(BLOCK_SIZE)
        assert fileio.pwrite_all(fd, data, BLOCK_SIZE) == BLOCK_SIZE
    finally:
        os.close(fd)
    monkeypatch.undo()
    with open(str(tmp_path / "f"), "rb") as handle:
        handle.seek(BLOCK_SIZE)
        assert handle.read() == data
    assert len(calls) == -(-BLOCK_SIZE // 1000)


def test_pwrite_all_raises_when_no_byte_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError) as info:
        fileio.pwrite_all(0, b"x" * 10, 0)
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT])
def test_local_file_names_option_path_and_bytes_written(tmp_path, monkeypatch, err):
    fd = os.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT)
    out = LocalFile(fd, "/data/disk.raw", "dest")
    out.pwrite(b"a" * 4096, 0)

    def failing_pwrite(*_args):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(fileio.os, "pwrite", failing_pwrite)
    with pytest.raises(BlockError) as info:
        out.pwrite(b"b" * 4096, 4096)
    os.close(fd)
    msg = str(info.value)
    assert msg.startswith("dest: writing /data/disk.raw failed after 4096 bytes were written")
    assert errno.errorcode[err] in msg and info.value.option == "dest"


def test_atomic_write_replaces_the_symlink_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "real.manifest"
    target.write_bytes(b"old")
    link = tmp_path / "link.manifest"
    link.symlink_to(target)
    fileio.atomic_write(str(link), b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert sorted(os.listdir(str(tmp_path))) == ["link.manifest", "real.manifest"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m"
    path.write_bytes(b"old")

    def fail(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "write_all", fail)
    with pytest.raises(OSError):
        fileio.atomic_write(str(path), b"new")
    assert path.read_bytes() == b"old" and os.listdir(str(tmp_path)) == ["m"]


def test_atomic_write_removes_temporaries_of_dead_writers_only(tmp_path):
    path = tmp_path / "m"
    dead = fileio.tmp_path_for(str(path), pid=2 ** 22 + 12345)  # above pid_max: never running
    alive = fileio.tmp_path_for(str(path), pid=1)
    for name in (dead, alive):
        with open(name, "wb") as handle:
            handle.write(b"partial")
    fileio.atomic_write(str(path), b"data")
    assert not os.path.exists(dead) and os.path.exists(alive)


def test_progress_without_a_path_writes_nothing(tmp_path):
    progress = Progress(None, operation="get")
    progress.phase("downloading")
    progress.finish("failed", "x")
    assert os.listdir(str(tmp_path)) == []


# ------------------------------------------------------------------ file identity

@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    image = tmp_path / "a" / "disk.raw"
    image.write_bytes(b"image")
    os.link(str(image), str(tmp_path / "b" / "hard.raw"))
    (tmp_path / "b" / "sym.raw").symlink_to(image)
    (tmp_path / "b" / "dirlink").symlink_to(tmp_path / "a")
    return tmp_path


def _spellings(root):
    """Different ways of naming a/disk.raw, and a path that is not it."""
    image = root / "a" / "disk.raw"
    return {
        "plain": str(image),
        "dotdot": str(root / "b" / ".." / "a" / "disk.raw"),
        "hard": str(root / "b" / "hard.raw"),
        "sym": str(root / "b" / "sym.raw"),
        "dirlink": str(root / "b" / "dirlink" / "disk.raw"),
        "dotslash": str(root / "a" / "." / "disk.raw"),
        "double": str(root) + "//a//disk.raw",
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sampled_from(["plain", "dotdot", "hard", "sym", "dirlink", "dotslash", "double", "relative"]),
       second=st.sampled_from(["plain", "dotdot", "hard", "sym", "dirlink", "dotslash", "double", "relative"]),
       options=st.permutations(["src", "manifest", "progress_file"]))
def test_every_spelling_of_one_file_is_refused_naming_both_options(tree, first, second, options):
    names = _spellings(tree)
    cwd = os.getcwd()
    os.chdir(str(tree / "b"))
    try:
        names["relative"] = os.path.join("..", "a", "disk.raw")
        with pytest.raises(InputError) as info:
            paths.check_distinct([(options[0], names[first]), (options[2], str(tree / "other")),
                                  (options[1], names[second])])
    finally:
        os.chdir(cwd)
    assert options[0] in str(info.value) and options[1] in str(info.value)


def test_distinct_files_pass_and_missing_ones_compare_by_real_path(tree):
    paths.check_distinct([("src", str(tree / "a" / "disk.raw")), ("manifest", str(tree / "a" / "new.manifest")),
                          ("progress_file", str(tree / "b" / "p.json")), ("unused", None)])
    with pytest.raises(InputError):
        paths.check_distinct([("manifest", str(tree / "a" / "x")), ("progress_file", str(tree / "b" / "dirlink" / "x"))])


def test_part_path_is_next_to_the_real_dest(tree):
    assert paths.part_path(str(tree / "b" / "sym.raw")) == str(tree / "a" / ".disk.raw.blockwise-part")


# ------------------------------------------------------------------ file kinds

def _progress_doc():
    return json.dumps({"operation": "get", "state": "done", "blocks_done": 1, "blocks_total": 1}).encode()


@pytest.mark.parametrize("content, kind, allowed", [
    (b"", "manifest", True),
    (Manifest("snap-0123", 1, DigestMap()).to_bytes(), "manifest", True),
    (Manifest("snap-0123", 1, DigestMap()).to_bytes(), "progress", False),
    (b"BWEBSMF1 but damaged", "manifest", True),
    (b"precious user data", "manifest", False),
    (_progress_doc(), "progress", True),
    (_progress_doc(), "manifest", False),
    (b'{"not": "ours"}', "progress", False),
    (b"\x00" * 100, "progress", False),
])
def test_own_kind_only(tmp_path, content, kind, allowed):
    path = tmp_path / "f"
    path.write_bytes(content)
    if allowed:
        paths.check_own_kind("opt", str(path), kind)
    else:
        with pytest.raises(InputError) as info:
            paths.check_own_kind("opt", str(path), kind)
        assert "refusing to overwrite" in str(info.value)
    assert path.read_bytes() == content


def test_own_kind_refuses_directories_and_devices(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        paths.check_own_kind("manifest", str(tmp_path), "manifest")
    with pytest.raises(InputError, match="not a regular file"):
        paths.check_own_kind("manifest", "/dev/null", "manifest")


# ------------------------------------------------------------------ the upload lock

def test_file_lock_serialises_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "state" / "put-x.lock")
    order = []
    first = fileio.FileLock(path).acquire()
    waited = threading.Event()

    def second():
        lock = fileio.FileLock(path).acquire(on_wait=waited.set)
        order.append("second")
        lock.release()

    thread = threading.Thread(target=second)
    thread.start()
    assert waited.wait(5)
    time.sleep(0.1)
    order.append("first")
    first.release()
    thread.join(5)
    assert order == ["first", "second"]
    assert os.listdir(str(tmp_path / "state")) == []


# ------------------------------------------------------------------ a failing restore leaves dest untouched

class _Downloader:
    """Feeds blocks to ``handle`` like BlockDownloader.run; no network."""

    snapshot_id = "snap-0123"
    blocks_fetched = 0

    def __init__(self, blocks):
        self.blocks = blocks

    def run(self, items, handle):
        for index, data in self.blocks:
            handle(index, data, __import__("hashlib").sha256(data).digest())


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_download_to_new_failure_removes_the_part_and_keeps_dest(tmp_path, monkeypatch, err):
    dest = tmp_path / "disk.raw"
    dest.write_bytes(b"the old content")
    stale = tmp_path / ".disk.raw.blockwise-part"
    stale.write_bytes(b"left by a killed run")
    real = os.pwrite
    state = {"n": 0}

    def pwrite(fd, data, offset):
        state["n"] += 1
        if state["n"] > 2:
            raise OSError(err, os.strerror(err))
        return real(fd, data, offset)

    monkeypatch.setattr(fileio.os, "pwrite", pwrite)
    blocks = [(i, os.urandom(BLOCK_SIZE)) for i in range(4)]
    with pytest.raises(BlockError) as info:
        restore.download_to_new(_Downloader(blocks), [], str(dest), 4 * BLOCK_SIZE, None, Progress(None))
    assert "dest" in str(info.value) and str(2 * BLOCK_SIZE) in str(info.value)
    assert dest.read_bytes() == b"the old content"
    assert sorted(os.listdir(str(tmp_path))) == ["disk.raw"]


def test_remove_stale_part_refuses_a_directory_in_the_way(tmp_path):
    (tmp_path / ".disk.raw.blockwise-part").mkdir()
    with pytest.raises(BlockError, match="in the way"):
        restore.remove_stale_part(str(tmp_path / "disk.raw"))
