# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The put job: image -> new EBS snapshot (idempotent, resumable).

Every local path is checked against the others before anything is read; uploads of one source are
serialised on this host by a lock under ``state_dir``; "already uploaded" is only answered from a
DescribeSnapshots read made in this run, for a completed snapshot that is this upload (content,
size, parent, encryption as the account applies it now, description, lineage); missing tags are
applied to it. The upload itself is :class:`~.upload.Upload`.
"""
from __future__ import annotations

import os
import threading

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import FileLock
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import CONTENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_STATE_DIR
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import MAX_VOLUME_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import ParentBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import journal_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import lock_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_volume_size
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import refuse_empty
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_dict
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_list
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import Expectation
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import check_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import expected_encryption
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import lineage_of
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import tags_to_apply
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import wanted_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_distinct
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import ec2_snapshot
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import snapshot_summary
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Background
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Job
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import check_output_paths
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import job_paths
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.upload import Upload
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.journals import sweep_finished_journals


class Image:
    """What was read of the source: its digests, data map, fingerprint and derived identity."""

    def __init__(self, source, digests, data_indexes, fingerprint):
        self.source = source
        self.digests = digests
        self.data_indexes = data_indexes
        self.fingerprint = fingerprint
        self.content = digests.content_digest()


class PutJob(Job):
    """ebs_block_put: image -> new EBS snapshot (idempotent, resumable). See the module docs.

    ``params`` holds the module options by name. ``ebs`` and ``ec2`` are clients, or functions
    that make them (called on a thread while the image is hashed).
    """

    operation = "put"

    def __init__(self, ebs, ec2, params, check_mode=False, want_diff=False, retry=None):
        super().__init__(ebs, params, check_mode=check_mode, want_diff=want_diff, retry=retry)
        self.ec2 = ec2
        self.state_dir = params.get("state_dir") or DEFAULT_STATE_DIR

    # -- inputs -------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        refuse_empty(p, ("src", "parent_snapshot_id", "kms_key_arn", "lineage", "manifest", "progress_file",
                         "state_dir"))
        if p.get("volume_size") is not None and not 1 <= int(p["volume_size"]) <= MAX_VOLUME_GIB:
            raise InputError("volume_size must be between 1 and {0} GiB, got {1}".format(
                MAX_VOLUME_GIB, p["volume_size"]), option="volume_size")
        timeout = p.get("timeout")
        if timeout is not None and not 10 <= int(timeout) <= 4320:
            raise InputError("timeout must be between 10 and 4320 minutes, got {0}".format(timeout), option="timeout")
        if p.get("description") is not None and len(p["description"]) > 255:
            raise InputError("description is {0} characters long; at most 255 are allowed".format(
                len(p["description"])), option="description")
        check_tags(p.get("tags"), p.get("lineage"))
        if p.get("kms_key_arn") and p.get("encrypted") is False:
            raise InputError("kms_key_arn={0} needs encrypted=true".format(p["kms_key_arn"]), option="kms_key_arn")
        if p.get("wait_timeout") is not None and int(p["wait_timeout"]) < 1:
            raise InputError("wait_timeout must be at least 1 second, got {0}".format(p["wait_timeout"]),
                             option="wait_timeout")
        src = p["src"]
        check_distinct(job_paths(p, [("src", src), ("the journal under state_dir", journal_path(self.state_dir, src)),
                                     ("the lock under state_dir", lock_path(self.state_dir, src))]))
        check_output_paths(p)
        self.paths_checked()

    def _connect(self):
        """Make the clients, read the parent and (when it decides) the account's encryption by default."""
        if callable(self.ebs):
            self.ebs = self.ebs()
        if callable(self.ec2):
            self.ec2 = self.ec2()
        parent = self._parent()
        p = self.p
        # The account decides when no parent does and encrypted is omitted (or true, with its default key).
        decides = p.get("encrypted") is None or (p.get("encrypted") and not p.get("kms_key_arn"))
        unencrypted = p.get("encrypted") is False or (parent is not None and not parent.get("Encrypted"))
        default = self._account_encryption() if parent is None and decides else None
        if unencrypted:
            self._refuse_unencrypted(parent, default)
        return parent, default

    def _refuse_unencrypted(self, parent, default):
        """With EBS encryption by default on, StartSnapshot refuses an unencrypted snapshot (an unencrypted parent,
        Encrypted=false): say which option asks for one, before any write. Without the right to read the
        setting, StartSnapshot's own answer is left to say it."""
        try:
            enabled = (default or self._account_encryption())[0]
        except BlockError:
            return
        if not enabled:
            return
        if parent is not None and not parent.get("Encrypted"):
            raise InputError("parent_snapshot_id: {0} is not encrypted and EBS encryption by default is on in this "
                             "region, so AWS refuses an incremental snapshot of it; upload a full (encrypted) snapshot "
                             "instead (omit parent_snapshot_id)".format(parent["SnapshotId"]),
                             option="parent_snapshot_id")
        raise InputError("encrypted=false cannot be honoured: EBS encryption by default is on in this region, so every "
                         "new snapshot is encrypted; omit encrypted or set it to true", option="encrypted")

    def _account_encryption(self):
        try:
            enabled = self.retry.call(self.ec2.get_ebs_encryption_by_default, "GetEbsEncryptionByDefault")
            key = None
            if enabled.get("EbsEncryptionByDefault") or self.p.get("encrypted"):
                key = self.retry.call(self.ec2.get_ebs_default_kms_key_id, "GetEbsDefaultKmsKeyId").get("KmsKeyId")
        except TransferError as exc:
            raise BlockError("{0}; the module reads the account's EBS encryption by default to know whether an "
                             "existing snapshot is this upload: grant ec2:GetEbsEncryptionByDefault and "
                             "ec2:GetEbsDefaultKmsKeyId, or set encrypted explicitly".format(exc.msg), code=exc.code)
        return bool(enabled.get("EbsEncryptionByDefault")), key

    def _parent(self):
        pid = self.p.get("parent_snapshot_id")
        if not pid:
            return None
        snap = ec2_snapshot(self.ec2, self.retry, pid, "parent_snapshot_id")
        if snap.get("State") != "completed":
            raise InputError("parent_snapshot_id: snapshot {0} is {1}; a parent must be completed".format(
                pid, snap.get("State")), option="parent_snapshot_id")
        enc = self.p.get("encrypted")
        if enc is not None and bool(enc) != bool(snap.get("Encrypted")):
            raise InputError(
                "encrypted={0} does not match parent_snapshot_id {1}, which is {2}: an incremental snapshot always "
                "has its parent's encryption".format(str(bool(enc)).lower(), pid,
                                                     "encrypted" if snap.get("Encrypted") else "not encrypted"),
                option="encrypted")
        kms = self.p.get("kms_key_arn")
        if kms and kms != snap.get("KmsKeyId"):
            raise InputError("kms_key_arn={0} does not match parent_snapshot_id {1} (KMS key {2})".format(
                kms, pid, snap.get("KmsKeyId") or "none"), option="kms_key_arn")
        return snap

    def _load_manifest(self):
        path = self.p.get("manifest")
        if not path or not os.path.exists(path):
            return None
        try:
            return Manifest.read(path)
        except ManifestError as exc:
            self.warnings.append("{0}; it will be replaced".format(exc))
            return None

    # -- run ----------------------------------------------------------------------------------
    def _run(self):
        self._validate()
        if self.check_mode:
            return self._run_unlocked()
        lock = FileLock(lock_path(self.state_dir, self.p["src"]))
        try:
            lock.acquire(on_wait=lambda: self.progress.phase("waiting for another upload of src"))
        except OSError as exc:
            raise BlockError("state_dir: cannot lock {0}: {1}".format(lock.path, describe_os_error(exc)),
                             option="state_dir") from None
        try:
            outcome = self._run_unlocked()
            self._sweep()
            return outcome
        finally:
            lock.release()

    def _sweep(self):
        """Remove journals that uploads with wait=false left for snapshots AWS has finished since."""
        if callable(self.ec2):
            return
        try:
            sweep_finished_journals(os.path.expanduser(self.state_dir), journal_path(self.state_dir, self.p["src"]),
                                    self.ec2, self.retry)
        except BlockError as exc:
            self.warnings.append("state_dir: journals of finished uploads were not cleaned up: {0}".format(exc))

    def _read_image(self, source):
        """Hash the source while the clients are made and the parent is read -> (Image, parent, default)."""
        if source.size == 0:
            raise InputError("src: {0} is empty (0 bytes); there is nothing to upload".format(source.path),
                             option="src")
        if self.p.get("volume_size") is not None:
            plan_volume_size(source.size, self.p["volume_size"])  # fail on a too-small size before any call
        stop = threading.Event()
        remote = Background(self._connect, stop)
        fingerprint = source.fingerprint()
        data_indexes = list(source.data_block_indexes())
        self.progress.phase("hashing", blocks_total=len(data_indexes), bytes_total=len(data_indexes) * BLOCK_SIZE)
        try:
            digests = hash_blocks(source, data_indexes, hash_workers(self.workers), self.progress, stop)
        finally:
            parent, default = remote.result()
        return Image(source, digests, data_indexes, fingerprint), parent, default

    def _run_unlocked(self):
        p = self.p
        with BlockSource(p["src"], option="src") as source:
            image, parent, default = self._read_image(source)
            volume_size = plan_volume_size(source.size, p.get("volume_size"),
                                           parent.get("VolumeSize") if parent else None)
            encrypted, kms_key_id = expected_encryption(p, parent, default)
            lineage = lineage_of(p, parent)
            expect = Expectation(volume_size, p.get("parent_snapshot_id"), encrypted, kms_key_id,
                                 p.get("description"), lineage)
            same_content = self._find_by_content(image.content)
            found = [s for s in same_content if expect.matches(s)]
            done = [s for s in found if s.get("State") == "completed"]
            manifest = self._load_manifest()
            if done:
                return self._unchanged(done[0], image, volume_size, lineage, manifest)
            parent_blocks = self._parent_blocks(parent, manifest)
            plan = plan_put(image.digests, volume_size * BLOCKS_PER_GIB, parent_blocks, encrypted)
            if self.check_mode:
                return self._check_result(plan, volume_size, image.content, encrypted, found)
            others = [s for s in same_content if s not in found and s.get("State") in ("pending", "error")]
            upload = Upload(self, image, plan, volume_size, parent_blocks, lineage, found, expect, others)
            return upload.run()

    def _parent_blocks(self, parent, manifest):
        pid = self.p.get("parent_snapshot_id")
        if parent is None:
            return None
        if manifest is not None and manifest.snapshot_id == pid:
            return ParentBlocks(pid, digests=manifest.blocks)
        if manifest is not None:
            self.warnings.append("manifest {0} describes {1}, not parent {2}: comparing with the parent's block list "
                                 "instead".format(self.p.get("manifest"), manifest.snapshot_id or "no snapshot", pid))
        self.progress.phase("listing")
        listed = PagedBlocks(self.ebs, self.retry, snapshot_id=pid)
        return ParentBlocks(pid, indexes=[i for i, _t in listed])

    # -- lookups ------------------------------------------------------------------------------
    def _find_by_content(self, content):
        """One DescribeSnapshots call with a tag filter -> snapshots carrying this content digest now."""
        resp = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", OwnerIds=["self"],
                               Filters=[{"Name": "tag:" + CONTENT_TAG, "Values": [content]}])
        return resp.get("Snapshots") or []

    # -- results ------------------------------------------------------------------------------
    def base_result(self, volume_size, blocks_total, content):
        return {
            "changed": False, "snapshot_id": None, "volume_size": volume_size, "blocks_total": blocks_total,
            "blocks_written": 0, "blocks_skipped_zero": 0, "blocks_unchanged": 0, "bytes_written": 0,
            "elapsed_seconds": 0.0, "throughput_mib_s": 0.0, "checksum": None, "resumed": False,
            "manifest": self.p.get("manifest"), "content_digest": content, "abandoned_snapshot_ids": [],
            "state": None,
        }

    def write_manifest(self, snapshot_id, volume_size, blocks):
        """Write the manifest if asked and different -> True when the file changed."""
        path = self.p.get("manifest")
        if not path:
            return False
        data = Manifest(snapshot_id, volume_size, blocks).to_bytes()
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    return False
        except OSError:
            pass
        if self.check_mode:
            return True
        try:
            Manifest(snapshot_id, volume_size, blocks).write(path)
        except OSError as exc:
            raise BlockError("manifest: cannot write {0}: {1}".format(path, describe_os_error(exc)),
                             option="manifest", snapshot_id=snapshot_id) from None
        return True

    def apply_tags(self, snap, lineage, content):
        """Tag an existing snapshot with what this upload wants -> (before, after) tag dicts."""
        before = tag_dict(snap.get("Tags"))
        wanted = wanted_tags(self.p.get("tags"), content, self.p.get("parent_snapshot_id"),
                             lineage or before.get("blockwise:lineage") or snap["SnapshotId"])
        missing = tags_to_apply(before, wanted)
        if missing and not self.check_mode:
            self.retry.call(self.ec2.create_tags, "CreateTags", snapshot_id=snap["SnapshotId"],
                            Resources=[snap["SnapshotId"]], Tags=tag_list(missing))
        return before, dict(before, **missing)

    def _unchanged(self, snap, image, volume_size, lineage, manifest):
        sid = snap["SnapshotId"]
        blocks_total = volume_size * BLOCKS_PER_GIB
        result = self.base_result(volume_size, blocks_total, image.content)
        blocks = DigestMap()
        for index, digest in image.digests.nonzero_items():
            blocks.append(index, digest)
        tags_before, tags_after = self.apply_tags(snap, lineage, image.content)
        wrote = False
        if manifest is None or manifest.snapshot_id != sid or manifest.content_digest != image.content:
            wrote = self.write_manifest(sid, volume_size, blocks)
        result.update(changed=bool(wrote or tags_before != tags_after), snapshot_id=sid, state=snap.get("State"),
                      blocks_unchanged=blocks_total, elapsed_seconds=elapsed(self.started))
        if self.want_diff and (wrote or tags_before != tags_after):
            path = self.p.get("manifest")
            result["diff"] = {
                "before": {"snapshot_id": sid, "tags": tags_before,
                           "manifest": {"path": path, "snapshot_id": manifest.snapshot_id} if manifest else None},
                "after": {"snapshot_id": sid, "tags": tags_after,
                          "manifest": {"path": path, "snapshot_id": sid} if path else None}}
        self.clean_journal(sid)
        self.progress.phase("done", snapshot_id=sid)
        self.progress.finish("done")
        return result, self.warnings

    def clean_journal(self, snapshot_id):
        """Remove the journal of ``src`` when it belongs to ``snapshot_id`` (which is done)."""
        if self.check_mode:
            return
        path = journal_path(self.state_dir, self.p["src"])
        prior = Journal.load(path)
        if prior is not None and prior.snapshot_id == snapshot_id:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _check_result(self, plan, volume_size, content, encrypted, found):
        result = self.base_result(volume_size, plan.blocks_total, content)
        result.update(changed=True, blocks_written=plan.blocks_written, blocks_skipped_zero=plan.blocks_skipped_zero,
                      blocks_unchanged=plan.blocks_unchanged, bytes_written=plan.bytes_to_write,
                      elapsed_seconds=elapsed(self.started), plan=plan.to_dict())
        pending = [s["SnapshotId"] for s in found if s.get("State") == "pending"]
        if pending:
            result["pending_snapshot_ids"] = pending
        if self.want_diff:
            result["diff"] = {"before": {}, "after": snapshot_summary(
                "(new snapshot)", volume_size, content, self.p.get("parent_snapshot_id"), encrypted)}
        self.progress.finish("done")
        return result, self.warnings
