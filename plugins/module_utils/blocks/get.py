# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The get job: snapshot -> local file or block device.

Every answer is checked before it is given: the snapshot is listed (so it exists now) before dest
is reported to hold it; an incremental restore runs only onto a dest that its manifest proves holds
``base_snapshot_id``; and a manifest is only ever written from digests that were verified against
the snapshot (downloaded blocks) or against the previous manifest (unchanged blocks).
"""
from __future__ import annotations

import os
import stat

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import FileLock
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_STATE_DIR
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import refuse_empty
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import restore_lock_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_distinct
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_writable_dir
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import part_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockDownloader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.restore import download_in_place
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.restore import download_to_new
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import rate
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Job
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import check_output_paths
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import job_paths


def dest_digests(path, volume_bytes, workers, progress=None):
    """``(DigestMap, size)`` of a local file or device, limited to the first ``volume_bytes``."""
    with BlockSource(path, option="dest") as dest:
        indexes = list(dest.data_block_indexes(limit=volume_bytes))
        if progress is not None:
            progress.phase("hashing", blocks_total=len(indexes), bytes_total=len(indexes) * BLOCK_SIZE)
        return hash_blocks(dest, indexes, hash_workers(workers), progress), dest.size


class GetJob(Job):
    """ebs_block_get: snapshot -> local file or block device. See the module docs."""

    operation = "get"

    # -- inputs -------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        refuse_empty(p, ("snapshot_id", "base_snapshot_id", "dest", "manifest", "progress_file", "state_dir"))
        dest = p["dest"]
        self.real_dest = os.path.realpath(os.path.expanduser(dest))
        if os.path.isdir(self.real_dest):
            raise InputError("dest: {0} is a directory; give a file or block device path".format(dest), option="dest")
        directory = os.path.dirname(self.real_dest)
        if not os.path.isdir(directory):
            raise InputError("dest: directory {0} does not exist".format(directory), option="dest")
        self._dest_state()
        if not self.is_device:
            check_writable_dir("dest", dest)  # the restore is renamed into place there
        if not self.exists and p.get("base_snapshot_id"):
            raise InputError("dest: {0} does not exist, but base_snapshot_id={1} says it holds that snapshot".format(
                dest, p["base_snapshot_id"]), option="dest")
        self.lock = restore_lock_path(p.get("state_dir") or DEFAULT_STATE_DIR, dest)
        inputs = [("dest", dest), ("the lock under state_dir", self.lock)]
        if not self.is_device:
            inputs.append(("the partial file of dest", part_path(dest)))
        check_distinct(job_paths(p, inputs))
        check_output_paths(p)
        if p.get("base_snapshot_id") and p.get("manifest") and not os.path.exists(p["manifest"]):
            raise InputError("manifest: {0} does not exist, so nothing proves that dest holds base_snapshot_id={1}; "
                             "restore without base_snapshot_id once (that writes the manifest), or omit manifest"
                             .format(p["manifest"], p["base_snapshot_id"]), option="manifest")
        self.paths_checked()

    def _dest_state(self):
        """Whether dest exists and is a block device, read now (again once the lock is held)."""
        self.exists = os.path.exists(self.real_dest)
        self.is_device = False
        if self.exists:
            mode = os.stat(self.real_dest).st_mode
            self.is_device = stat.S_ISBLK(mode)
            if not (stat.S_ISREG(mode) or self.is_device):
                raise InputError("dest: {0} is not a regular file or block device".format(self.p["dest"]),
                                 option="dest")

    def _read_manifest(self):
        path = self.p.get("manifest")
        if not path or not os.path.exists(path):
            return None
        try:
            return Manifest.read(path)
        except ManifestError as exc:
            if self.p.get("base_snapshot_id"):
                raise InputError("manifest: {0}; it cannot prove that dest holds base_snapshot_id={1}".format(
                    exc, self.p["base_snapshot_id"]), option="manifest") from None
            self.warnings.append("{0}; it will be replaced".format(exc))
            return None

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
                             option=option, code=exc.code, snapshot_id=sid) from None

    # -- decisions ----------------------------------------------------------------------------
    def _holds_already(self, manifest, before, dest_size, volume_size, listing):
        """True when the manifest names the snapshot, has its volume size, dest's data matches it, and the
        snapshot (as listed now) holds every block the manifest has: a manifest edited or copied from another
        restore names the snapshot but not its blocks."""
        if manifest is None or before is None or manifest.snapshot_id != self.p["snapshot_id"]:
            return False
        volume_bytes = volume_size * GIB
        size_ok = dest_size == volume_bytes or (self.is_device and dest_size >= volume_bytes)
        if not (manifest.volume_size == volume_size and size_ok and manifest.content_digest == before.content_digest()):
            return False
        if self.p.get("base_snapshot_id"):
            return True  # the listing holds the changes since the base only; the manifest was proved for the base
        listed = set(item[0] for item in listing)
        missing = [index for index in manifest.blocks.indexes() if index not in listed]
        if missing:
            self.warnings.append("manifest {0} names {1} but holds {2} block(s) the snapshot does not have (first: "
                                 "{3}); it is not trusted and dest is restored".format(
                                     self.p.get("manifest"), self.p["snapshot_id"], len(missing), missing[0]))
            return False
        return True

    def _check_base(self, manifest, before):
        """With a manifest, an incremental restore needs proof that dest holds ``base_snapshot_id`` now."""
        base, path = self.p["base_snapshot_id"], self.p.get("manifest")
        if manifest is None:
            return
        if manifest.snapshot_id != base:
            raise InputError("base_snapshot_id={0} does not match manifest {1}, which says dest holds {2}: applying "
                             "the changes since {0} onto {2} would corrupt dest; give base_snapshot_id={2}, or restore "
                             "without base_snapshot_id".format(base, path, manifest.snapshot_id or "no snapshot"),
                             option="base_snapshot_id")
        if before is None or before.content_digest() != manifest.content_digest:
            raise InputError("dest: {0} no longer holds {1}: its data differs from manifest {2} (it changed after the "
                             "restore); restore without base_snapshot_id".format(self.p["dest"], base, path),
                             option="dest")

    def _mode(self):
        if self.p.get("base_snapshot_id"):
            return "incremental"
        if self.is_device:
            return "in_place"
        return "replace" if self.exists else "new"

    # -- run ----------------------------------------------------------------------------------
    def _run(self):
        """Restores into one dest are serialised on this host: two at once would share its partial file."""
        self._validate()
        if self.check_mode:
            return self._run_unlocked()
        lock = FileLock(self.lock)
        try:
            lock.acquire(on_wait=lambda: self.progress.phase("waiting for another restore into dest"))
        except OSError as exc:
            raise BlockError("state_dir: cannot lock {0}: {1}".format(lock.path, describe_os_error(exc)),
                             option="state_dir") from None
        try:
            return self._run_unlocked()
        finally:
            lock.release()

    def _run_unlocked(self):
        p = self.p
        self._dest_state()
        manifest = self._read_manifest()
        listing = self._list()  # the snapshot (and the base) exist now: no answer is given without that
        volume_size = listing.volume_size
        result = self._base_result(volume_size)
        before = dest_size = None
        if self.exists:
            limit = max(volume_size, manifest.volume_size if manifest else 0) * GIB
            before, dest_size = dest_digests(self.real_dest, limit, self.workers, self.progress)
        self.dest_size = dest_size
        if self._holds_already(manifest, before, dest_size, volume_size, listing):
            result.update(method="unchanged", content_digest=manifest.content_digest,
                          elapsed_seconds=elapsed(self.started))
            self.progress.finish("done")
            return result, self.warnings
        if p.get("base_snapshot_id"):
            self._check_base(manifest, before)
        if self.exists and dest_size < volume_size * GIB and (self.is_device or p.get("base_snapshot_id")):
            raise InputError("dest: {0} holds {1} bytes, less than the {2} GiB volume of {3}".format(
                p["dest"], dest_size, volume_size, p["snapshot_id"]), option="dest")
        result["method"] = self._mode()
        if self.check_mode:
            return self._check_result(result, listing, before)
        return self._restore(result, listing, before)

    def _base_result(self, volume_size):
        p = self.p
        return {
            "changed": False, "snapshot_id": p["snapshot_id"], "dest": p["dest"], "volume_size": volume_size,
            "blocks_total": volume_size * BLOCKS_PER_GIB, "blocks_fetched": 0, "blocks_written": 0,
            "blocks_zeroed": 0, "bytes_fetched": 0, "elapsed_seconds": 0.0, "throughput_mib_s": 0.0,
            "content_digest": None, "manifest": p.get("manifest"), "method": None,
        }

    def _diff(self, before, after_content, before_size, after_size):
        """Content digest and size of dest before and after (a restore that only cuts off data past the
        volume's end changes the size, not the digest of the volume's bytes)."""
        before_content = before.content_digest() if before is not None else None
        return {"before": {"dest": self.p["dest"], "content": before_content, "size": before_size},
                "after": {"dest": self.p["dest"], "content": after_content, "size": after_size}}

    def _size_after(self, result):
        """dest's size after the restore: the volume's for a new or replaced file, unchanged in place."""
        if result["method"] in ("new", "replace"):
            return result["volume_size"] * GIB
        return self.dest_size

    def _check_result(self, result, listing, before):
        items = list(listing)
        fetched = sum(1 for it in items if it[-1] is not None)
        result.update(changed=True, blocks_fetched=fetched, bytes_fetched=fetched * BLOCK_SIZE,
                      plan={"blocks_listed": len(items), "method": result["method"]},
                      elapsed_seconds=elapsed(self.started))
        if self.want_diff:
            result["diff"] = self._diff(before, "(content of {0})".format(self.p["snapshot_id"]), self.dest_size,
                                        self._size_after(result))
        self.progress.finish("done")
        return result, self.warnings

    def _restore(self, result, listing, before):
        p = self.p
        downloader = BlockDownloader(self.ebs, p["snapshot_id"], self.workers, retry=self.retry, progress=self.progress)
        if result["method"] in ("new", "replace"):
            after, counts = download_to_new(downloader, listing, self.real_dest, result["volume_size"] * GIB, before,
                                            self.progress)
        else:
            after, counts = download_in_place(downloader, listing, p["dest"], result["blocks_total"], before,
                                              bool(p.get("base_snapshot_id")), self.progress)
        after_content = after.content_digest()
        before_content = before.content_digest() if before is not None else None
        renamed, seconds = counts.pop("renamed"), counts.pop("_seconds")
        changed = after_content != before_content or renamed
        result.update(counts)
        result.update(changed=bool(changed), content_digest=after_content,
                      bytes_fetched=result["blocks_fetched"] * BLOCK_SIZE, elapsed_seconds=elapsed(self.started))
        result["throughput_mib_s"] = rate(result["bytes_fetched"], seconds)
        self._write_manifest(Manifest(p["snapshot_id"], result["volume_size"], after))
        if self.want_diff and changed:
            result["diff"] = self._diff(before, after_content, self.dest_size, self._size_after(result))
        self.progress.finish("done")
        return result, self.warnings

    def _write_manifest(self, manifest):
        path = self.p.get("manifest")
        if not path:
            return
        try:
            manifest.write(path)
        except OSError as exc:
            raise BlockError("manifest: cannot write {0}: {1}; dest holds {2} but the manifest does not say so".format(
                path, describe_os_error(exc), self.p["snapshot_id"]), option="manifest",
                snapshot_id=self.p["snapshot_id"]) from None
