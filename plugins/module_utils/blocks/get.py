# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The get job: snapshot -> local file or block device."""
from __future__ import annotations

import os
import stat
import tempfile
import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockDownloader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import rate
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Job
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import check_output_paths


def _dest_digests(path, volume_bytes, workers, progress=None):
    """:class:`DigestMap` of a local file or device, limited to the first ``volume_bytes`` (None if missing)."""
    with BlockSource(path, option="dest") as dest:
        indexes = list(dest.data_block_indexes(limit=volume_bytes))
        if progress is not None:
            progress.phase("hashing", blocks_total=len(indexes), bytes_total=len(indexes) * BLOCK_SIZE)
        return hash_blocks(dest, indexes, hash_workers(workers), progress), dest.size, dest.is_device


class GetJob(Job):
    """ebs_block_get: snapshot -> local file or block device. See the module docs."""

    operation = "get"

    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        check_output_paths(p)
        dest = p["dest"]
        if os.path.isdir(dest):
            raise InputError("dest: {0} is a directory; give a file or block device path".format(dest), option="dest")
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise InputError("dest: directory {0} does not exist".format(directory), option="dest")
        if os.path.exists(dest):
            st = os.stat(dest)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise InputError("dest: {0} is not a regular file or block device".format(dest), option="dest")
        elif p.get("base_snapshot_id"):
            raise InputError("dest: {0} does not exist, but base_snapshot_id={1} says it holds that snapshot".format(
                dest, p["base_snapshot_id"]), option="dest")

    def _list(self):
        p = self.p
        sid = p["snapshot_id"]
        try:
            if p.get("base_snapshot_id"):
                return PagedBlocks(self.ebs, self.retry, first_snapshot_id=p["base_snapshot_id"], second_snapshot_id=sid)
            return PagedBlocks(self.ebs, self.retry, snapshot_id=sid)
        except TransferError as exc:
            option = "snapshot_id"
            if p.get("base_snapshot_id"):
                option = "base_snapshot_id"
            raise InputError("{0}: cannot list the blocks of {1}: {2}".format(option, sid, exc.msg),
                             option=option, code=exc.code, snapshot_id=sid)

    def _run(self):
        p = self.p
        self._validate()
        sid = p["snapshot_id"]
        dest = p["dest"]
        base = p.get("base_snapshot_id")
        exists = os.path.exists(dest)
        is_device = exists and stat.S_ISBLK(os.stat(dest).st_mode)

        manifest = None
        if p.get("manifest") and os.path.exists(p["manifest"]):
            try:
                manifest = Manifest.read(p["manifest"])
            except ManifestError as exc:
                self.warnings.append("{0}; ignoring it".format(exc))

        result = {
            "changed": False, "snapshot_id": sid, "dest": dest, "volume_size": None,
            "blocks_total": 0, "blocks_fetched": 0, "blocks_written": 0, "blocks_zeroed": 0,
            "bytes_fetched": 0, "elapsed_seconds": 0.0, "throughput_mib_s": 0.0, "content_digest": None,
            "manifest": p.get("manifest"), "method": None,
        }
        before = dest_size = hashed_for = None
        # Idempotence: the manifest says which snapshot dest holds; dest's own digests confirm it.
        # No AWS call is needed for that.
        if manifest is not None and manifest.snapshot_id == sid and exists:
            hashed_for = manifest.volume_size * GIB
            before, dest_size, _dev = _dest_digests(dest, hashed_for, self.workers, self.progress)
            if manifest.content_digest == before.content_digest() and (
                    dest_size == hashed_for or (is_device and dest_size >= hashed_for)):
                result.update(method="unchanged", content_digest=manifest.content_digest,
                              volume_size=manifest.volume_size,
                              blocks_total=manifest.volume_size * BLOCKS_PER_GIB, elapsed_seconds=elapsed(self.started))
                self.progress.finish("done")
                return result, self.warnings

        listing = self._list()
        volume_size = listing.volume_size
        volume_bytes = volume_size * GIB
        blocks_total = volume_size * BLOCKS_PER_GIB
        result.update(volume_size=volume_size, blocks_total=blocks_total)
        if exists:
            if hashed_for != volume_bytes:
                before, dest_size, _dev = _dest_digests(dest, volume_bytes, self.workers, self.progress)
            if dest_size < volume_bytes and (is_device or base):
                raise InputError("dest: {0} holds {1} bytes, less than the {2} GiB volume of {3}".format(
                    dest, dest_size, volume_size, sid), option="dest")
        before_content = before.content_digest() if before is not None else None

        if base:
            mode = "incremental"
        elif is_device:
            mode = "in_place"
        else:
            mode = "replace" if exists else "new"
        result["method"] = mode

        if self.check_mode:
            items = list(listing)
            result.update(changed=True, blocks_fetched=sum(1 for it in items if it[-1] is not None),
                          plan={"blocks_listed": len(items), "method": mode})
            result["bytes_fetched"] = result["blocks_fetched"] * BLOCK_SIZE
            if self.want_diff:
                result["diff"] = {"before": {"dest": dest, "content": before_content},
                                  "after": {"dest": dest, "content": "(content of {0})".format(sid)}}
            result["elapsed_seconds"] = elapsed(self.started)
            self.progress.finish("done")
            return result, self.warnings

        if mode in ("new", "replace"):
            after, counts = self._download_to_new(listing, dest, volume_bytes, before)
        else:
            after, counts = self._download_in_place(listing, dest, blocks_total, before, base is not None)
        after_content = after.content_digest()
        changed = after_content != before_content or (mode in ("new", "replace") and counts["renamed"])
        seconds = counts.pop("_seconds")
        counts.pop("renamed")
        result.update(counts)
        result.update(changed=bool(changed), content_digest=after_content)
        result["bytes_fetched"] = result["blocks_fetched"] * BLOCK_SIZE
        result["elapsed_seconds"] = elapsed(self.started)
        result["throughput_mib_s"] = rate(result["bytes_fetched"], seconds)
        if p.get("manifest"):
            try:
                Manifest(sid, volume_size, after).write(p["manifest"])
            except OSError as exc:
                raise BlockError("manifest: cannot write {0}: {1}".format(p["manifest"], exc.strerror or exc),
                                 option="manifest", snapshot_id=sid)
        if self.want_diff and changed:
            result["diff"] = {"before": {"dest": dest, "content": before_content},
                              "after": {"dest": dest, "content": after_content}}
        self.progress.finish("done")
        return result, self.warnings

    def _download_to_new(self, listing, dest, volume_bytes, before):
        """Write every non-zero block into a temporary file next to ``dest``; rename it when complete."""
        directory = os.path.dirname(os.path.abspath(dest))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=directory)
        fetched = []
        lock = threading.Lock()
        started = time.monotonic()
        downloader = BlockDownloader(self.ebs, self.p["snapshot_id"], self.workers, retry=self.retry,
                                     progress=self.progress)

        def handle(index, data, digest):
            if data is not None and digest != ZERO_BLOCK_DIGEST:
                os.pwrite(fd, data, index * BLOCK_SIZE)
                with lock:
                    fetched.append((index, digest))

        try:
            os.ftruncate(fd, volume_bytes)
            self.progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=self.p["snapshot_id"])
            downloader.run(listing, handle)
            after = DigestMap.from_items(fetched)
            renamed = False
            if before is None or after.content_digest() != before.content_digest() or \
                    os.path.getsize(dest) != volume_bytes:
                os.fsync(fd)
                if before is not None:
                    os.chmod(tmp, stat.S_IMODE(os.stat(dest).st_mode))
                else:
                    umask = os.umask(0)
                    os.umask(umask)
                    os.chmod(tmp, 0o666 & ~umask)
                os.close(fd)
                fd = None
                os.replace(tmp, dest)
                renamed = True
        finally:
            if fd is not None:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
        counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": len(fetched) if renamed else 0,
                  "blocks_zeroed": 0, "renamed": renamed, "_seconds": time.monotonic() - started}
        return after, counts

    def _download_in_place(self, listing, dest, blocks_total, before, incremental):
        """Write changed blocks into an existing file or device; blocks absent from the snapshot -> zeros."""
        before = before or DigestMap()
        started = time.monotonic()
        fd = os.open(dest, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        results = []
        lock = threading.Lock()
        counters = {"written": 0, "zeroed": 0}
        downloader = BlockDownloader(self.ebs, self.p["snapshot_id"], self.workers, retry=self.retry,
                                     progress=self.progress)

        def current(index):
            return before.get(index) or ZERO_BLOCK_DIGEST

        def handle(index, data, digest):
            with lock:
                results.append((index, digest))
            if current(index) == digest:
                return
            os.pwrite(fd, data if data is not None else ZERO_BLOCK, index * BLOCK_SIZE)
            with lock:
                counters["zeroed" if data is None else "written"] += 1

        if incremental:
            items = ((index, second) for index, _first, second in listing)
        else:
            items = self._with_absent(listing, blocks_total, before)
        try:
            self.progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=self.p["snapshot_id"])
            downloader.run(items, handle)
            os.fsync(fd)
        finally:
            os.close(fd)
        # The content after = before, with the handled blocks replaced.
        merged = dict(before.items())
        for index, digest in results:
            merged[index] = digest
        after = DigestMap.from_items((i, d) for i, d in merged.items() if d != ZERO_BLOCK_DIGEST)
        counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": counters["written"],
                  "blocks_zeroed": counters["zeroed"], "renamed": False, "_seconds": time.monotonic() - started}
        return after, counts

    @staticmethod
    def _with_absent(listing, blocks_total, before):
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
