# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two ways the get job writes ``dest``, each with every write checked.

* :func:`download_to_new`: every non-zero block into the partial file next to ``dest``
  (``.<dest>.blockwise-part``), renamed over ``dest`` only when complete and synced. On any failure
  the partial file is removed and ``dest`` is untouched. A partial file a killed run left behind is
  removed first (its fixed name makes it findable).
* :func:`download_in_place`: changed blocks into an existing file or block device; blocks absent
  from the snapshot are zeroed.

Both return ``(after, counts)``: the :class:`DigestMap` of what ``dest`` now holds, built only from
blocks whose checksums were verified (or from ``before`` for blocks the listing says did not change),
and the counters for the result.
"""
from __future__ import annotations

import os
import stat
import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import part_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import LocalFile

_OPEN_FLAGS = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def remove_stale_part(dest, option="dest"):
    """Remove the partial file a killed run of a restore into ``dest`` left; refuse anything else there."""
    part = part_path(dest)
    try:
        st = os.lstat(part)
    except FileNotFoundError:
        return part
    if not stat.S_ISREG(st.st_mode):
        raise BlockError("{0}: {1} is in the way of the partial file of this restore and is not a regular file; "
                         "remove it".format(option, part), option=option)
    os.unlink(part)
    return part


def _new_mode(real_dest, exists):
    if exists:
        return stat.S_IMODE(os.stat(real_dest).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _keep_owner(out, real_dest):
    """The replacement keeps the owner and group of the file it replaces (a restore run as root into a
    user's image must leave it the user's)."""
    st = os.stat(real_dest)
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        out.call("syncing", os.fchown, st.st_uid, st.st_gid)


def _open_part(part, option):
    try:
        return os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o600)
    except OSError as exc:
        raise BlockError("{0}: cannot create {1}: {2}".format(option, part, describe_os_error(exc)),
                         option=option) from None


def download_to_new(downloader, listing, real_dest, volume_bytes, before, progress, option="dest"):
    """Write the snapshot into the partial file, then rename it over ``real_dest`` if the content differs.

    ``option`` is the option that errors name (the file the user gave, or the directory of a
    temporary image).
    """
    exists = os.path.exists(real_dest)
    part = remove_stale_part(real_dest, option)
    out = LocalFile(_open_part(part, option), real_dest, option)
    fetched = []
    lock = threading.Lock()
    started = time.monotonic()

    def handle(index, data, digest):
        if data is not None and digest != ZERO_BLOCK_DIGEST:
            out.pwrite(data, index * BLOCK_SIZE)
            with lock:
                fetched.append((index, digest))

    renamed = False
    try:
        out.call("sizing", os.ftruncate, volume_bytes)
        progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=downloader.snapshot_id)
        downloader.run(listing, handle)
        after = DigestMap.from_items(fetched)
        if before is None or after.content_digest() != before.content_digest() or \
                os.path.getsize(real_dest) != volume_bytes:
            if exists:
                _keep_owner(out, real_dest)
            out.call("syncing", os.fchmod, _new_mode(real_dest, exists))
            out.call("syncing", os.fsync)
            _close(out)
            _rename(part, real_dest, out)
            renamed = True
    finally:
        _close(out)
        if os.path.lexists(part):
            os.unlink(part)
    counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": len(fetched) if renamed else 0,
              "blocks_zeroed": 0, "renamed": renamed, "_seconds": time.monotonic() - started}
    return after, counts


def _close(out):
    if out.fd is not None:
        fd, out.fd = out.fd, None
        try:
            os.close(fd)
        except OSError as exc:
            raise out.error("closing", exc) from None


def _rename(part, real_dest, out):
    try:
        os.replace(part, real_dest)
    except OSError as exc:
        raise out.error("renaming the partial file over", exc) from None


def download_in_place(downloader, listing, dest, blocks_total, before, incremental, progress):
    """Write the blocks that differ into ``dest`` (a file or device) in place; zero blocks the snapshot lacks."""
    before = before or DigestMap()
    started = time.monotonic()
    try:
        fd = os.open(dest, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BlockError("dest: cannot open {0} for writing: {1}".format(dest, describe_os_error(exc)),
                         option="dest") from None
    out = LocalFile(fd, dest, "dest")
    results = []
    lock = threading.Lock()
    counters = {"written": 0, "zeroed": 0}

    def handle(index, data, digest):
        with lock:
            results.append((index, digest))
        if (before.get(index) or ZERO_BLOCK_DIGEST) == digest:
            return
        out.pwrite(data if data is not None else ZERO_BLOCK, index * BLOCK_SIZE)
        with lock:
            counters["zeroed" if data is None else "written"] += 1

    if incremental:
        items = ((index, second) for index, _first, second in listing)
    else:
        items = with_absent(listing, blocks_total, before)
    try:
        progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=downloader.snapshot_id)
        downloader.run(items, handle)
        out.call("syncing", os.fsync)
    finally:
        _close(out)
    merged = dict(before.items())
    merged.update(results)
    after = DigestMap.from_items((i, d) for i, d in merged.items() if d != ZERO_BLOCK_DIGEST)
    counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": counters["written"],
              "blocks_zeroed": counters["zeroed"], "renamed": False, "_seconds": time.monotonic() - started}
    return after, counts


def with_absent(listing, blocks_total, before):
    """Listed ``(index, token)`` plus ``(index, None)`` where dest has data the snapshot lacks."""
    listed = iter(listing)
    nxt = next(listed, None)
    for index in before.indexes():
        while nxt is not None and nxt[0] < index:
            yield nxt
            nxt = next(listed, None)
        if nxt is not None and nxt[0] == index:
            continue
        if index < blocks_total and before.get(index) != ZERO_BLOCK_DIGEST:
            yield index, None
    while nxt is not None:
        yield nxt
        nxt = next(listed, None)
