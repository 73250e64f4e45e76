# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify job: read a snapshot through the EBS direct APIs, check it, and record the outcome.

1. Options and local paths are checked (no AWS call yet); then DescribeSnapshots: a snapshot that is
   pending, failed, archived or another account's is refused before any block is read.
2. ListSnapshotBlocks (every page): which blocks hold data. With a reference that names blocks
   (``manifest``, ``compare_to``) the blocks it holds count too: a block one side has and the other
   lacks is a difference.
3. Full mode reads every block; ``sample`` reads a sample seeded by the snapshot id (see
   ``verify.choose_sample``). GetSnapshotBlock checks each block's SHA256; a block that cannot be
   read is recorded (the run goes on, up to ``max_bad_blocks``), a fact about the caller or the
   service (access denied, throttling, the snapshot deleted meanwhile) stops the run.
4. The blocks read are compared with the reference; in full mode the content digest is compared
   with the ``blockwise:content`` tag too. ``fs_check`` restores the blocks into a sparse temporary
   image during the same pass and runs the command on it; the image is removed on every path.
5. The outcome is recorded as tags (not in check mode, not with ``record: false``).
"""
from __future__ import annotations

import array
import os
import threading
import time
from datetime import datetime, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import verify as core
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import tmp_path_for
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import fscheck
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import Cancelled
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Job
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import check_output_paths
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_distinct
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import part_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockDownloader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import CONTENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_dict
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_list
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.restore import download_to_new
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.verify_reads import Reads

DEFAULT_FS_CHECK_TIMEOUT = 3600


class VerifyError(BlockError):
    """The run failed after the snapshot was read: ``result`` holds what was found."""

    def __init__(self, msg, result, **kwargs):
        super().__init__(msg, **kwargs)
        self.result = result


def _indexes(values=()):
    arr = array.array("I")
    arr.extend(values)
    return arr


class Reference:
    """What the snapshot is compared with: ``kind`` is compare_to, manifest, content_tag or none."""

    def __init__(self, kind, label, path=None, source=None, manifest=None, content_tag=None):
        self.kind = kind
        self.label = label
        self.path = path
        self.source = source
        self.manifest = manifest
        self.content_tag = content_tag
        self.local = None  # DigestMap of the compare_to blocks hashed

    @property
    def per_block(self):
        return self.kind in ("compare_to", "manifest")

    def indexes(self, volume_bytes):
        """Ascending indexes of the blocks the reference holds data in."""
        if self.manifest is not None:
            return self.manifest.blocks.indexes()
        if self.source is not None:
            limit = volume_bytes if self.source.is_device else None
            return _indexes(self.source.data_block_indexes(limit))
        return _indexes()

    def digest(self, index):
        if self.manifest is not None:
            return self.manifest.blocks.get(index)
        return self.local.get(index) if self.local is not None else None

    def describe(self, tag_checked):
        out = {"kind": self.kind, "path": self.path, "per_block": self.per_block, "content_tag": self.content_tag,
               "content_tag_checked": bool(tag_checked)}
        if self.manifest is not None:
            out["manifest_snapshot_id"] = self.manifest.snapshot_id or None
        return out

    def close(self):
        if self.source is not None:
            self.source.close()


class VerifyJob(Job):
    """ebs_snapshot_verify. ``run()`` returns ``(result, warnings)``; see the module documentation."""

    operation = "verify"

    def __init__(self, ebs, ec2, params, check_mode=False, want_diff=False, retry=None, now=None):
        super().__init__(ebs, params, check_mode=check_mode, want_diff=want_diff, retry=retry)
        self.ec2 = ec2
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.reference = None
        self.image = None

    # -- inputs -------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        self.sid = p["snapshot_id"]
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        self.max_bad = _bounded("max_bad_blocks", p.get("max_bad_blocks"), core.DEFAULT_MAX_BAD_BLOCKS, 1,
                                core.MAX_BAD_BLOCKS_LIMIT)
        self.timeout = _bounded("fs_check_timeout", p.get("fs_check_timeout"), DEFAULT_FS_CHECK_TIMEOUT, 1, 7 * 86400)
        self.sample = core.parse_sample(p.get("sample"))
        if self.sample is not None and p.get("fs_check"):
            raise InputError("sample and fs_check cannot be combined: a file system check needs every block of the "
                             "snapshot (drop sample for a full verification)", option="sample")
        core.check_fs_template(p.get("fs_check"))
        if p.get("fs_check"):
            fscheck.check_program(core.fs_check_argv(p["fs_check"], "image", bool(p.get("fs_check_shell"))),
                                  bool(p.get("fs_check_shell")))
        if p.get("fs_check") and not self.check_mode:
            if not p.get("tmp_dir"):
                raise InputError("tmp_dir: a directory for the temporary image of fs_check is needed", option="tmp_dir")
            self.image = fscheck.image_path(p["tmp_dir"], self.sid)
            fscheck.check_tmp_dir(p["tmp_dir"], self.image)
        check_distinct(self._paths())
        check_output_paths(p, ("progress_file",))
        self.reference = self._open_reference()
        self.paths_checked()

    def _paths(self):
        p = self.p
        paths = [("compare_to", p.get("compare_to")), ("manifest", p.get("manifest")),
                 ("progress_file", p.get("progress_file"))]
        if p.get("progress_file"):
            paths.append(("the temporary file of progress_file", tmp_path_for(p["progress_file"])))
        if self.image:
            paths += [("the temporary image of fs_check", self.image),
                      ("the partial file of the temporary image", part_path(self.image))]
        return paths

    def _open_reference(self):
        p = self.p
        if p.get("compare_to"):
            source = BlockSource(p["compare_to"], option="compare_to")
            return Reference("compare_to", "compare_to {0}".format(p["compare_to"]), p["compare_to"], source=source)
        if p.get("manifest"):
            if not os.path.exists(p["manifest"]):
                raise InputError("manifest: {0} does not exist".format(p["manifest"]), option="manifest")
            try:
                manifest = Manifest.read(p["manifest"])
            except ManifestError as exc:
                raise InputError("manifest: {0}".format(exc), option="manifest") from None
            return Reference("manifest", "manifest {0}".format(p["manifest"]), p["manifest"], manifest=manifest)
        return None

    # -- AWS reads ----------------------------------------------------------------------------
    def _snapshot(self):
        """DescribeSnapshots -> the snapshot; refuse what cannot be verified before any block is read."""
        sid = self.sid
        try:
            own = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", snapshot_id=sid,
                                  SnapshotIds=[sid], OwnerIds=["self"]).get("Snapshots") or []
            found = own or self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", snapshot_id=sid,
                                           SnapshotIds=[sid]).get("Snapshots") or []
        except TransferError as exc:
            if exc.code and (exc.code.startswith("InvalidSnapshot") or exc.code == "InvalidParameterValue"):
                raise InputError("snapshot_id: snapshot {0} was not found ({1})".format(sid, exc.msg),
                                 option="snapshot_id", code=exc.code) from None
            raise
        if not found:
            raise InputError("snapshot_id: snapshot {0} was not found".format(sid), option="snapshot_id")
        snap = found[0]
        why = core.refusal(snap, owned=bool(own))
        if why:
            raise InputError(why, option="snapshot_id", snapshot_id=sid)
        return snap

    def _listing(self, stop=None):
        try:
            return PagedBlocks(self.ebs, self.retry, snapshot_id=self.sid, stop=stop)
        except TransferError as exc:
            raise InputError("snapshot_id: cannot list the blocks of {0}: {1}".format(self.sid, exc.msg),
                             option="snapshot_id", code=exc.code, snapshot_id=self.sid) from None

    # -- run ----------------------------------------------------------------------------------
    def _run(self):
        try:
            self._validate()
            snap = self._snapshot()
            return self._verify(snap)
        finally:
            if self.reference is not None:
                self.reference.close()

    def _verify(self, snap):
        self.progress.phase("listing", snapshot_id=self.sid)
        first = self._listing()
        volume_size = first.volume_size
        listed = _indexes(index for index, _token in first)
        tag = tag_dict(snap.get("Tags")).get(CONTENT_TAG)
        reference = self.reference or Reference("content_tag" if tag else "none",
                                                "blockwise:content tag" if tag else "none")
        reference.content_tag = tag
        plan = self._plan(listed, reference, volume_size * GIB)
        self._hash_reference(reference, plan)
        reads = Reads(listed, plan["to_read"], self.max_bad)
        fs_result = self._read(reads, plan, volume_size)
        mismatched = core.BadBlocks(self.max_bad)
        if reference.per_block:
            for index in core.compare(plan["chosen"], reads.digest, reference.digest, reads.unread):
                mismatched.add(index)
        content, tag_checked = self._content(reads, plan, tag)
        result = self._result(snap, volume_size, plan, reads, mismatched, reference, content, tag_checked, fs_result)
        return self._record(snap, result)

    def _plan(self, listed, reference, volume_bytes):
        """mode, the blocks checked (``chosen``) and the blocks read (``to_read``)."""
        ref_indexes = reference.indexes(volume_bytes) if reference.per_block else _indexes()
        domain = _indexes(core.sorted_union(listed, ref_indexes)) if len(ref_indexes) else listed
        plan = {"mode": core.FULL, "chosen": domain, "to_read": listed, "domain": len(domain),
                "ref_indexes": ref_indexes}
        if self.sample is not None:
            always = [0] + ([listed[-1]] if len(listed) else []) + ([domain[-1]] if len(domain) else [])
            chosen = core.choose_sample(self.sid, domain, self.sample, always)
            if chosen is not None:
                plan.update(mode=core.SAMPLE, chosen=_indexes(chosen),
                            to_read=_indexes(core.intersect_sorted(chosen, listed)))
        return plan

    def _hash_reference(self, reference, plan):
        """Hash the compare_to blocks the comparison needs (holes are zeros and are not read)."""
        if reference.source is None:
            return
        local = plan["ref_indexes"]
        if plan["mode"] == core.SAMPLE:
            local = _indexes(core.intersect_sorted(plan["chosen"], local))
        self.progress.phase("hashing", blocks_total=len(local), bytes_total=len(local) * BLOCK_SIZE)
        reference.local = hash_blocks(reference.source, local, hash_workers(self.workers), self.progress)

    def _read(self, reads, plan, volume_size):
        """GetSnapshotBlock for ``to_read`` (into the temporary image too, with fs_check) -> the fs_check result."""
        stop = threading.Event()
        downloader = BlockDownloader(self.ebs, self.sid, self.workers, retry=self.retry, progress=self.progress,
                                     stop=stop, on_block_error=reads.on_error(stop))
        self.progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=self.sid)
        try:
            items = reads.select(self._listing(stop), plan["mode"] == core.SAMPLE)
            started = time.monotonic()
            try:
                if self.image is None:
                    downloader.run(items, reads.handle)
                else:
                    fscheck.remove_leftovers(self.p["tmp_dir"], self.image)
                    download_to_new(_Tee(downloader, reads.handle), items, self.image, volume_size * GIB, None,
                                    self.progress, option="tmp_dir")
            except Cancelled:
                if not reads.stopped:
                    raise
            finally:
                reads.seconds = time.monotonic() - started
                reads.blocks_read = downloader.blocks_fetched
            return self._after_read(reads)
        finally:
            if self.image is not None:
                fscheck.remove_image(self.image)

    def _after_read(self, reads):
        """The fs_check result: None without fs_check; run on a complete image; else why it was skipped."""
        if not self.p.get("fs_check"):
            return None
        if self.check_mode:
            return {"skipped": "check mode writes no local file", "passed": None}
        if not reads.complete:
            return {"skipped": "{0} block(s) could not be read".format(reads.unreadable.count), "passed": None}
        return self._fs_check()

    def _fs_check(self):
        shell = bool(self.p.get("fs_check_shell"))
        argv = core.fs_check_argv(self.p["fs_check"], self.image, shell)
        self.progress.phase("checking")
        code, output = fscheck.run_check(argv, self.timeout)
        tail = core.output_tail(output)
        if code is None:
            raise BlockError("fs_check: {0} did not finish within fs_check_timeout={1} seconds and was stopped; nothing "
                             "was recorded. Last output: {2}".format(argv[0], self.timeout, " | ".join(tail[-5:])),
                             option="fs_check", snapshot_id=self.sid)
        return {"command": argv, "exit_code": code, "passed": code == 0, "output_tail": tail, "skipped": None}

    def _content(self, reads, plan, tag):
        """``(content digest or None, whether the blockwise:content tag was checked)``."""
        if plan["mode"] != core.FULL or not reads.complete:
            return None, False
        return reads.digests.content_digest(), bool(tag)

    # -- result -------------------------------------------------------------------------------
    def _result(self, snap, volume_size, plan, reads, mismatched, reference, content, tag_checked, fs_result):
        content_ok = None if not tag_checked else content == reference.content_tag
        result = core.outcome(reads.unreadable.count, mismatched.count, content_ok,
                              fs_result.get("passed") if fs_result else None)
        nbytes = reads.blocks_read * BLOCK_SIZE
        bad = core.sorted_union(reads.unreadable.indexes(), mismatched.indexes())[:self.max_bad]
        return {
            "changed": False, "snapshot_id": self.sid, "volume_size": volume_size, "result": result,
            "mode": plan["mode"], "msg": core.summary(self.sid, result, plan["mode"], reads.unreadable, mismatched,
                                                      reference.label, content_ok, fs_result),
            "blocks_total": volume_size * BLOCKS_PER_GIB, "data_blocks": len(reads.listed),
            "blocks_checked": len(plan["chosen"]), "blocks_read": reads.blocks_read, "bytes_read": nbytes,
            "read_seconds": round(reads.seconds, 3), "throughput_mib_s": core.throughput_mib_s(nbytes, reads.seconds),
            "restore_estimate_seconds": core.restore_estimate(len(reads.listed), reads.blocks_read, reads.seconds,
                                                              self.workers),
            "bad_blocks": bad, "unreadable_blocks": reads.unreadable.indexes(), "unreadable_count": reads.unreadable.count,
            "unreadable_errors": dict((str(k), v) for k, v in sorted(reads.unreadable.errors.items())),
            "mismatched_blocks": mismatched.indexes(), "mismatch_count": mismatched.count,
            "stopped_early": reads.stopped, "reference": reference.describe(tag_checked), "content_digest": content,
            "sample": None if self.sample is None else {"requested": self.sample.text, "blocks": len(plan["chosen"]),
                                                        "population": plan["domain"]},
            "fs_check": fs_result, "encrypted": bool(snap.get("Encrypted")), "elapsed_seconds": elapsed(self.started),
        }

    def _record(self, snap, result):
        """Tag the snapshot with the outcome (the only write), unless check mode or ``record: false``."""
        before = core.recorded_tags(tag_dict(snap.get("Tags")))
        after = core.verify_tags(result["result"], result["mode"], self.now())
        record = self.p.get("record", True)
        result.update(previous=before, tags=after if record else before, recorded=False, changed=bool(record))
        if record and not self.check_mode:
            try:
                self.retry.call(self.ec2.create_tags, "CreateTags", snapshot_id=self.sid, Resources=[self.sid],
                                Tags=tag_list(after))
            except TransferError as exc:
                result["changed"] = False
                raise VerifyError("the verification of {0} ended with result {1}, but recording it failed: {2}".format(
                    self.sid, result["result"], exc.msg), result, code=exc.code, snapshot_id=self.sid) from None
            result["recorded"] = True
        if self.want_diff and record:
            result["diff"] = {"before": {"snapshot_id": self.sid, "tags": before},
                              "after": {"snapshot_id": self.sid, "tags": after}}
        self.progress.finish("done")
        return result, self.warnings


class _Tee:
    """A downloader whose blocks also go to ``observe`` (the verification) before the restore's handler."""

    def __init__(self, downloader, observe):
        self._downloader = downloader
        self._observe = observe

    @property
    def snapshot_id(self):
        return self._downloader.snapshot_id

    @property
    def blocks_fetched(self):
        return self._downloader.blocks_fetched

    def run(self, items, handle):
        def both(index, data, digest):
            self._observe(index, data, digest)
            handle(index, data, digest)

        self._downloader.run(items, both)


def _bounded(option, value, default, low, high):
    value = default if value is None else value
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError("{0} must be an integer, got {1!r}".format(option, value), option=option) from None
    if not low <= number <= high:
        raise InputError("{0} must be between {1} and {2}, got {3}".format(option, low, high, number), option=option)
    return number
