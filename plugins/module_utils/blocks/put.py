# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The put job: image -> new EBS snapshot (idempotent, resumable)."""
from __future__ import annotations

import os
import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import CONTENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_STATE_DIR
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import MAX_VOLUME_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PARENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import ParentBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import RESERVED_TAGS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import block_digest
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import client_token
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import journal_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import linear_checksum
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_volume_size
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import snapshot_blocks_after_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_dict
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_list
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockUploader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import ec2_snapshot
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import is_encrypted_response
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import rate
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import snapshot_summary
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import wait_for_snapshot
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Background
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import Job
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.job import check_output_paths


class PutJob(Job):
    """ebs_block_put: image -> new EBS snapshot (idempotent, resumable). See the module docs.

    ``params`` holds the module options by name. ``ebs`` and ``ec2`` are clients, or functions
    that make them (called on a thread while the image is hashed).
    """

    operation = "put"

    def __init__(self, ebs, ec2, params, check_mode=False, want_diff=False, retry=None):
        super().__init__(ebs, params, check_mode=check_mode, want_diff=want_diff, retry=retry)
        self.ec2 = ec2

    # -- inputs -------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        check_output_paths(p)
        if p.get("volume_size") is not None and not 1 <= int(p["volume_size"]) <= MAX_VOLUME_GIB:
            raise InputError("volume_size must be between 1 and {0} GiB, got {1}".format(
                MAX_VOLUME_GIB, p["volume_size"]), option="volume_size")
        timeout = p.get("timeout")
        if timeout is not None and not 10 <= int(timeout) <= 4320:
            raise InputError("timeout must be between 10 and 4320 minutes, got {0}".format(timeout), option="timeout")
        if p.get("description") is not None and len(p["description"]) > 255:
            raise InputError("description is {0} characters long; at most 255 are allowed".format(
                len(p["description"])), option="description")
        for key in (p.get("tags") or {}):
            if key in RESERVED_TAGS:
                raise InputError("tags: {0} is set by this module and cannot be given".format(key), option="tags")
        if p.get("kms_key_arn") and p.get("encrypted") is False:
            raise InputError("kms_key_arn={0} needs encrypted=true".format(p["kms_key_arn"]), option="kms_key_arn")
        if p.get("wait_timeout") is not None and int(p["wait_timeout"]) < 1:
            raise InputError("wait_timeout must be at least 1 second, got {0}".format(p["wait_timeout"]),
                             option="wait_timeout")

    def _connect_and_check_parent(self):
        if callable(self.ebs):
            self.ebs = self.ebs()
        if callable(self.ec2):
            self.ec2 = self.ec2()
        return self._parent()

    def _parent(self):
        pid = self.p.get("parent_snapshot_id")
        if not pid:
            return None
        snap = ec2_snapshot(self.ec2, self.retry, pid, "parent_snapshot_id")
        state = snap.get("State")
        if state != "completed":
            raise InputError("parent_snapshot_id: snapshot {0} is {1}; a parent must be completed".format(pid, state),
                             option="parent_snapshot_id")
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

    def _load_manifest(self, path):
        if not path or not os.path.exists(path):
            return None
        try:
            return Manifest.read(path)
        except ManifestError as exc:
            self.warnings.append("{0}; ignoring it".format(exc))
            return None

    # -- lookups ------------------------------------------------------------------------------
    def _find_by_content(self, content):
        """One DescribeSnapshots call with a tag filter -> snapshots carrying this content digest."""
        resp = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", OwnerIds=["self"],
                               Filters=[{"Name": "tag:" + CONTENT_TAG, "Values": [content]}])
        return resp.get("Snapshots") or []

    def _matches(self, snap, volume_size):
        p = self.p
        tags = tag_dict(snap.get("Tags"))
        if int(snap.get("VolumeSize") or 0) != volume_size:
            return False
        if (tags.get(PARENT_TAG) or None) != (p.get("parent_snapshot_id") or None):
            return False
        if p.get("encrypted") is not None and bool(p["encrypted"]) != bool(snap.get("Encrypted")):
            return False
        if p.get("kms_key_arn") and p["kms_key_arn"] != snap.get("KmsKeyId"):
            return False
        return True

    # -- run ----------------------------------------------------------------------------------
    def _run(self):
        p = self.p
        self._validate()
        with BlockSource(p["src"], option="src") as source:
            if p.get("volume_size") is not None:
                plan_volume_size(source.size, p["volume_size"])  # fail on a too-small size before any call
            # The clients are made and the parent is checked while the image is hashed: both are
            # start-up costs of a few hundred milliseconds. A bad parent stops the hashing at once.
            stop = threading.Event()
            remote = Background(self._connect_and_check_parent, stop)
            data_indexes = list(source.data_block_indexes())
            self.progress.phase("hashing", blocks_total=len(data_indexes), bytes_total=len(data_indexes) * BLOCK_SIZE)
            try:
                image = hash_blocks(source, data_indexes, hash_workers(self.workers), self.progress, stop)
            finally:
                parent = remote.result()
            volume_size = plan_volume_size(source.size, p.get("volume_size"),
                                           parent.get("VolumeSize") if parent else None)
            blocks_total = volume_size * BLOCKS_PER_GIB
            content = image.content_digest()
            manifest_path = p.get("manifest")
            manifest = self._load_manifest(manifest_path)

            found = self._find_by_content(content)
            done = [s for s in found if s.get("State") == "completed" and self._matches(s, volume_size)]
            if done:
                return self._unchanged(done[0], image, volume_size, blocks_total, content, manifest)

            parent_id = p.get("parent_snapshot_id")
            parent_blocks = None
            if parent is not None:
                if manifest is not None and manifest.snapshot_id == parent_id:
                    parent_blocks = ParentBlocks(parent_id, digests=manifest.blocks)
                else:
                    if manifest is not None:
                        self.warnings.append("manifest {0} describes {1}, not parent {2}: comparing with the parent's "
                                             "block list instead".format(manifest_path, manifest.snapshot_id or "no snapshot",
                                                                         parent_id))
                    self.progress.phase("listing")
                    listed = PagedBlocks(self.ebs, self.retry, snapshot_id=parent_id)
                    parent_blocks = ParentBlocks(parent_id, indexes=[i for i, _t in listed])
            encrypted = bool(p.get("encrypted")) or bool(parent and parent.get("Encrypted"))
            plan = plan_put(image, blocks_total, parent_blocks, encrypted)

            if self.check_mode:
                return self._check_result(plan, volume_size, content, parent_id, encrypted, found)
            return self._upload(source, image, plan, volume_size, content, parent_id, parent_blocks, found)

    def _base_result(self, volume_size, blocks_total, content):
        return {
            "changed": False,
            "snapshot_id": None,
            "volume_size": volume_size,
            "blocks_total": blocks_total,
            "blocks_written": 0,
            "blocks_skipped_zero": 0,
            "blocks_unchanged": 0,
            "bytes_written": 0,
            "elapsed_seconds": 0.0,
            "throughput_mib_s": 0.0,
            "checksum": None,
            "resumed": False,
            "manifest": self.p.get("manifest"),
            "content_digest": content,
            "abandoned_snapshot_ids": [],
            "state": None,
        }

    def _write_manifest(self, snapshot_id, volume_size, blocks):
        """Write the manifest if asked and different -> True when the file changed."""
        path = self.p.get("manifest")
        if not path:
            return False
        new = Manifest(snapshot_id, volume_size, blocks)
        data = new.to_bytes()
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    return False
        except OSError:
            pass
        if self.check_mode:
            return True
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            new.write(path)
        except OSError as exc:
            raise BlockError("manifest: cannot write {0}: {1}".format(path, exc.strerror or exc),
                             option="manifest", snapshot_id=snapshot_id)
        return True

    def _unchanged(self, snap, image, volume_size, blocks_total, content, manifest):
        sid = snap["SnapshotId"]
        result = self._base_result(volume_size, blocks_total, content)
        # The snapshot holds the image; its manifest lists the image's blocks (zeros as holes).
        blocks = DigestMap()
        for index, digest in image.nonzero_items():
            blocks.append(index, digest)
        if manifest is not None and manifest.snapshot_id == sid and manifest.content_digest == content:
            changed = False
        else:
            changed = self._write_manifest(sid, volume_size, blocks)
        result.update(changed=changed, snapshot_id=sid, state=snap.get("State"),
                      blocks_unchanged=blocks_total, elapsed_seconds=elapsed(self.started))
        self._clean_journal(sid)
        self.progress.phase("done", snapshot_id=sid)
        self.progress.finish("done")
        return result, self.warnings

    def _clean_journal(self, snapshot_id):
        if self.check_mode:
            return
        state_dir = self.p.get("state_dir") or DEFAULT_STATE_DIR
        path = journal_path(state_dir, self.p["src"])
        prior = Journal.load(path)
        if prior is not None and prior.snapshot_id == snapshot_id:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _check_result(self, plan, volume_size, content, parent_id, encrypted, found):
        result = self._base_result(volume_size, plan.blocks_total, content)
        result.update(
            changed=True,
            blocks_written=plan.blocks_written,
            blocks_skipped_zero=plan.blocks_skipped_zero,
            blocks_unchanged=plan.blocks_unchanged,
            bytes_written=plan.bytes_to_write,
            elapsed_seconds=elapsed(self.started),
            plan=plan.to_dict(),
        )
        pending = [s["SnapshotId"] for s in found if s.get("State") == "pending"]
        if pending:
            result["pending_snapshot_ids"] = pending
        if self.want_diff:
            result["diff"] = {"before": {}, "after": snapshot_summary("(new snapshot)", volume_size, content,
                                                                       parent_id, encrypted)}
        self.progress.finish("done")
        return result, self.warnings

    def _start(self, params, token, found_pending):
        """StartSnapshot with the deterministic token; an errored snapshot is reported and replaced."""
        abandoned = []
        for _attempt in range(3):
            started_at = time.monotonic()
            resp = self.retry.call(self.ebs.start_snapshot, "StartSnapshot", ClientToken=token, **params)
            if resp.get("Status") != "error":
                return resp, token, started_at, abandoned
            abandoned.append(resp["SnapshotId"])
            self.warnings.append("snapshot {0} from an earlier run with the same arguments is in state error; "
                                 "starting a new one".format(resp["SnapshotId"]))
            token = client_token(previous=token, errored=resp["SnapshotId"])
        raise TransferError("StartSnapshot keeps returning snapshots in state error (last {0})".format(
            abandoned[-1]), snapshot_id=abandoned[-1])

    def _upload(self, source, image, plan, volume_size, content, parent_id, parent_blocks, found):
        p = self.p
        tags = dict(p.get("tags") or {})
        tags[CONTENT_TAG] = content
        if parent_id:
            tags[PARENT_TAG] = parent_id
        params = {"VolumeSize": volume_size, "Tags": tag_list(tags)}
        if parent_id:
            params["ParentSnapshotId"] = parent_id
        else:
            if p.get("encrypted") is not None:
                params["Encrypted"] = bool(p["encrypted"])
            if p.get("kms_key_arn"):
                params["KmsKeyArn"] = p["kms_key_arn"]
        if p.get("description"):
            params["Description"] = p["description"]
        if p.get("timeout"):
            params["Timeout"] = int(p["timeout"])
        token = client_token(content=content, volume_size=volume_size, parent=parent_id,
                             encrypted=p.get("encrypted"), kms_key_arn=p.get("kms_key_arn"),
                             description=p.get("description"), tags=sorted(tags.items()), timeout=p.get("timeout"),
                             plan=plan.digest())

        state_dir = p.get("state_dir") or DEFAULT_STATE_DIR
        jpath = journal_path(state_dir, p["src"])
        prior = Journal.load(jpath)
        pending_ids = set(s["SnapshotId"] for s in found if s.get("State") == "pending")

        resp, token, started_at, abandoned = self._start(params, token, pending_ids)
        sid = resp["SnapshotId"]
        if resp.get("Status") == "completed":  # finished by an earlier run after our lookup
            snap = {"SnapshotId": sid, "State": "completed"}
            return self._unchanged(snap, image, volume_size, plan.blocks_total, content, None)

        # An encrypted-by-default account encrypts the snapshot: zero blocks must then be written.
        if is_encrypted_response(resp) and not plan.encrypted:
            plan = plan_put(image, plan.blocks_total, parent_blocks, True)

        resumed = sid in pending_ids
        confirmed = []
        already_completing = False
        if prior is not None and prior.token == token and prior.snapshot_id == sid:
            resumed = True
            write_set = set(plan.write)
            confirmed = prior.confirmed_blocks(
                lambda i: block_digest(image, i) if i in write_set else None)
            already_completing = prior.completed
        elif prior is not None and prior.snapshot_id and prior.snapshot_id != sid:
            abandoned.extend(self._still_open(prior.snapshot_id))
        errored_ids = set(s["SnapshotId"] for s in found if s.get("State") == "error")
        abandoned.extend(sorted((pending_ids | errored_ids) - {sid} - set(abandoned)))
        for old in abandoned:
            self.warnings.append(
                "snapshot {0} was left pending or failed by an earlier run with different arguments (or without its "
                "journal) and was not resumed; it is reported in abandoned_snapshot_ids and can be deleted".format(old))

        journal = None
        try:
            if resumed and prior is not None and prior.snapshot_id == sid and prior.token == token:
                journal = Journal.open_existing(jpath, token, sid)
            else:
                journal = Journal.create(jpath, token, sid)
        except OSError as exc:
            self.warnings.append("state_dir: cannot keep a journal at {0} ({1}); an interrupted upload will put "
                                 "every block again".format(jpath, exc.strerror or exc))
            journal = None

        done_set = set(confirmed)
        todo = [i for i in plan.write if i not in done_set]
        upload_started = time.monotonic()
        stop = threading.Event()
        try:
            if not already_completing:
                self.progress.phase("uploading", blocks_total=len(plan.write), bytes_total=plan.bytes_to_write,
                                    blocks_done=len(confirmed), bytes_done=len(confirmed) * BLOCK_SIZE, snapshot_id=sid)
                uploader = BlockUploader(self.ebs, sid, source, image, self.workers, retry=self.retry,
                                         journal=journal, progress=self.progress, started_at=started_at, stop=stop)
                uploader.run(todo)
            upload_seconds = time.monotonic() - upload_started
            checksum = linear_checksum(block_digest(image, i) for i in plan.write)
            if not already_completing:
                self.progress.phase("completing")
                params = {"SnapshotId": sid, "ChangedBlocksCount": len(plan.write)}
                if plan.write:
                    params.update(Checksum=checksum, ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
                self.retry.call(self.ebs.complete_snapshot, "CompleteSnapshot", snapshot_id=sid,
                                started_at=started_at, **params)
                if journal is not None:
                    journal.mark_complete()
            state = "pending"
            if p.get("wait", True):
                self.progress.phase("waiting")
                snap = wait_for_snapshot(self.ec2, self.retry, sid, int(p.get("wait_timeout") or 900))
                state = snap.get("State")
        except BlockError as exc:
            if exc.snapshot_id is None:
                exc.snapshot_id = sid
            if not isinstance(exc, TransferError) or exc.code not in ("SnapshotError",):
                exc.msg = exc.msg + " (snapshot {0} is left pending: rerun with the same arguments to resume)".format(sid)
                exc.args = (exc.msg,)
            raise
        finally:
            if journal is not None:
                journal.close()

        self._write_manifest(sid, volume_size, snapshot_blocks_after_put(image, plan))
        if state == "completed" and journal is not None:
            journal.remove()
        written = len(todo) if not already_completing else 0
        result = self._base_result(volume_size, plan.blocks_total, content)
        result.update(
            # A rerun that only waits for a snapshot an earlier run completed changes nothing itself.
            changed=not already_completing,
            snapshot_id=sid,
            state=state,
            blocks_written=written,
            blocks_skipped_zero=plan.blocks_skipped_zero,
            blocks_unchanged=plan.blocks_unchanged,
            bytes_written=written * BLOCK_SIZE,
            elapsed_seconds=elapsed(self.started),
            throughput_mib_s=rate(written * BLOCK_SIZE, upload_seconds),
            checksum=checksum,
            resumed=resumed,
            abandoned_snapshot_ids=abandoned,
            changed_blocks_count=len(plan.write),
            retries=self.retry.retries,
        )
        if resumed:
            result["blocks_confirmed_before"] = len(confirmed)
        if self.want_diff:
            result["diff"] = {"before": {}, "after": snapshot_summary(
                sid, volume_size, content, parent_id, plan.encrypted or is_encrypted_response(resp), state)}
        self.progress.finish("done")
        return result, self.warnings

    def _still_open(self, snapshot_id):
        """[snapshot_id] if that snapshot is still pending or failed (so it must be reported), else []."""
        try:
            resp = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", SnapshotIds=[snapshot_id])
        except TransferError:
            return []
        snaps = resp.get("Snapshots") or []
        if snaps and snaps[0].get("State") in ("pending", "error"):
            return [snapshot_id]
        return []
