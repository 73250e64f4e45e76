# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One upload of the put job: start (or resume) the snapshot, put the blocks, check the source did
not change, complete, wait.

The StartSnapshot client token is derived from the inputs, so a rerun after an interruption gets the
same pending snapshot back. AWS answers a repeated token with the *original* result even when that
snapshot is gone, so every snapshot StartSnapshot returns is confirmed with DescribeSnapshots; a
token whose snapshot is gone (deleted) or failed is replaced by a new one derived from it.
"""
from __future__ import annotations

import time

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import LINEAGE_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import block_digest
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import client_token
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import journal_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import linear_checksum
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import snapshot_blocks_after_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_dict
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_list
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.identity import wanted_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockUploader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import elapsed
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import find_snapshot
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import is_encrypted_response
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import rate
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import snapshot_summary
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import wait_for_snapshot

MAX_TOKEN_ROUNDS = 5
# A snapshot StartSnapshot just created may take a moment to show in DescribeSnapshots.
CONFIRM_DELAYS = (0.5, 1.0, 2.0, 4.0)


class Upload:
    """The effectful half of the put job, for one image, plan and target snapshot."""

    def __init__(self, job, image, plan, volume_size, parent_blocks, lineage, found, expect, others=()):
        self.job = job
        self.expect = expect
        self.others = list(others)
        self.p = job.p
        self.image = image
        self.plan = plan
        self.volume_size = volume_size
        self.parent_blocks = parent_blocks
        self.lineage = lineage
        self.found = found
        self.pending_ids = set(s["SnapshotId"] for s in found if s.get("State") == "pending")
        self.abandoned = []
        self.blocks_put = 0
        self.jpath = journal_path(job.state_dir, self.p["src"])
        self.tags = wanted_tags(self.p.get("tags"), image.content, self.p.get("parent_snapshot_id"), lineage)

    # -- start --------------------------------------------------------------------------------
    def _params(self):
        p = self.p
        params = {"VolumeSize": self.volume_size, "Tags": tag_list(self.tags)}
        if p.get("parent_snapshot_id"):
            params["ParentSnapshotId"] = p["parent_snapshot_id"]
        else:
            if p.get("encrypted") is not None:
                params["Encrypted"] = bool(p["encrypted"])
            if p.get("kms_key_arn"):
                params["KmsKeyArn"] = p["kms_key_arn"]
        if p.get("description"):
            params["Description"] = p["description"]
        if p.get("timeout"):
            params["Timeout"] = int(p["timeout"])
        return params

    def _token(self):
        p = self.p
        return client_token(content=self.image.content, volume_size=self.volume_size, parent=p.get("parent_snapshot_id"),
                            encrypted=p.get("encrypted"), kms_key_arn=p.get("kms_key_arn"),
                            description=p.get("description"), tags=sorted(self.tags.items()), timeout=p.get("timeout"),
                            plan=self.plan.digest(),
                            # what StartSnapshot applies now: the account's default key may change between runs
                            effective_encryption=[self.expect.encrypted, self.expect.kms_key_id])

    def _confirm(self, snapshot_id):
        """The snapshot as DescribeSnapshots shows it now, or None when it does not exist (after a short wait)."""
        for delay in CONFIRM_DELAYS + (None,):
            snap = find_snapshot(self.job.ec2, self.job.retry, snapshot_id)
            if snap is not None or delay is None:
                return snap
            time.sleep(delay)
        return None

    def start(self):
        """StartSnapshot with the deterministic token -> ``(response, token, started_at, snapshot)``.

        A token whose snapshot is gone or failed is replaced (and a failed one is reported).
        """
        params = self._params()
        token = self._token()
        for _round in range(MAX_TOKEN_ROUNDS):
            started_at = time.monotonic()
            resp = self.job.retry.call(self.job.ebs.start_snapshot, "StartSnapshot", ClientToken=token, **params)
            sid = resp["SnapshotId"]
            snap = self._confirm(sid)
            if snap is not None and snap.get("State") == "completed" and not self.expect.matches(snap):
                self.job.warnings.append("snapshot {0}, made by an earlier run with the same token, is not this upload "
                                         "as AWS would make it now (encryption, size, parent, description or lineage "
                                         "differ); starting a new one".format(sid))
            elif snap is not None and snap.get("State") in ("pending", "completed"):
                return resp, token, started_at, snap
            elif snap is None:
                self.job.warnings.append("snapshot {0}, made by an earlier run with the same arguments, no longer "
                                         "exists; starting a new one".format(sid))
            else:
                self.abandoned.append(sid)
                self.job.warnings.append("snapshot {0} from an earlier run with the same arguments is in state {1}; "
                                         "starting a new one".format(sid, snap.get("State")))
            token = client_token(previous=token, replaced=sid)
        raise TransferError("StartSnapshot keeps returning snapshots that are gone or failed (last {0})".format(sid),
                            snapshot_id=sid)

    # -- journal ------------------------------------------------------------------------------
    def _journal(self, token, sid):
        """``(journal or None, confirmed block indexes, completed already)`` for this token and snapshot."""
        prior = Journal.load(self.jpath)
        confirmed, completing = [], False
        if prior is not None and prior.token == token and prior.snapshot_id == sid:
            write_set = set(self.plan.write)
            confirmed = prior.confirmed_blocks(lambda i: block_digest(self.image.digests, i) if i in write_set else None)
            completing = prior.completed
        elif prior is not None and prior.snapshot_id and prior.snapshot_id != sid:
            old = find_snapshot(self.job.ec2, self.job.retry, prior.snapshot_id)
            if old is not None and old.get("State") in ("pending", "error"):
                self.abandoned.append(prior.snapshot_id)
        try:
            if confirmed or completing:
                return Journal.open_existing(self.jpath, token, sid), confirmed, completing
            return Journal.create(self.jpath, token, sid), confirmed, completing
        except OSError as exc:
            self.job.warnings.append("state_dir: cannot keep a journal at {0} ({1}); an interrupted upload will put "
                                     "every block again".format(self.jpath, describe_os_error(exc)))
            return None, confirmed, completing

    def _report_abandoned(self, sid):
        """Every pending or failed snapshot of this content that this run does not resume is reported once:
        those of this upload's arguments, and those of other arguments (or of a lost journal)."""
        errored = set(s["SnapshotId"] for s in self.found if s.get("State") == "error")
        others = set(s["SnapshotId"] for s in self.others)
        for old in sorted((self.pending_ids | errored | others) - {sid}):
            self.abandoned.append(old)
        self.abandoned = sorted(set(self.abandoned) - {sid}, key=self.abandoned.index)
        for old in self.abandoned:
            self.job.warnings.append(
                "snapshot {0} was left pending or failed by an earlier run with different arguments (or without its "
                "journal) and was not resumed; it is reported in abandoned_snapshot_ids and can be deleted".format(old))

    # -- run ----------------------------------------------------------------------------------
    def run(self):
        resp, token, started_at, snap = self.start()
        sid = resp["SnapshotId"]
        if snap.get("State") == "completed":  # finished by an earlier or concurrent run
            return self.job._unchanged(snap, self.image, self.volume_size, self.lineage, None)
        self._tag_lineage(sid, snap)
        if is_encrypted_response(resp) and not self.plan.encrypted:
            # An encrypted-by-default account encrypts the snapshot: zero blocks must then be written.
            self.plan = plan_put(self.image.digests, self.plan.blocks_total, self.parent_blocks, True)
        journal, confirmed, completing = self._journal(token, sid)
        self._report_abandoned(sid)
        resumed = sid in self.pending_ids or bool(confirmed) or completing
        try:
            written, seconds, state, completed_elsewhere = self._transfer(
                sid, journal, confirmed, completing, started_at)
        finally:
            if journal is not None:
                journal.close()
        self.job.write_manifest(sid, self.volume_size, snapshot_blocks_after_put(self.image.digests, self.plan))
        if state == "completed" and journal is not None:
            journal.remove()
        return self._result(sid, resp, written, seconds, state, resumed, confirmed, completing or completed_elsewhere)

    def _tag_lineage(self, sid, snap):
        """A standalone upload's lineage is its own id, known only now."""
        if self.lineage is None and tag_dict(snap.get("Tags")).get(LINEAGE_TAG) != sid:
            self.job.retry.call(self.job.ec2.create_tags, "CreateTags", snapshot_id=sid, Resources=[sid],
                                Tags=[{"Key": LINEAGE_TAG, "Value": sid}])
        self.tags.setdefault(LINEAGE_TAG, sid)

    def _transfer(self, sid, journal, confirmed, completing, started_at):
        """Put, check the source, complete, wait -> ``(blocks written, seconds, state, completed elsewhere)``."""
        done = set(confirmed)
        todo = [i for i in self.plan.write if i not in done]
        upload_started = time.monotonic()
        try:
            if not completing:
                self._put(sid, journal, todo, confirmed, started_at)
                self._check_source(sid)
            seconds = time.monotonic() - upload_started
            elsewhere = False
            if not completing:
                elsewhere = self._complete(sid, journal, started_at)
            if self.p.get("wait", True):
                self.job.progress.phase("waiting")
                state = wait_for_snapshot(self.job.ec2, self.job.retry, sid, int(self.p.get("wait_timeout") or 900)
                                          ).get("State")
            else:
                state = self._state_now(sid)
        except BlockError as exc:
            raise self._explain(exc, sid)
        return self.blocks_put, seconds, state, elsewhere

    def _put(self, sid, journal, todo, confirmed, started_at):
        job = self.job
        job.progress.phase("uploading", blocks_total=len(self.plan.write), bytes_total=self.plan.bytes_to_write,
                           blocks_done=len(confirmed), bytes_done=len(confirmed) * BLOCK_SIZE, snapshot_id=sid)
        uploader = BlockUploader(job.ebs, sid, self.image.source, self.image.digests, job.workers, retry=job.retry,
                                 journal=journal, progress=job.progress, started_at=started_at)
        try:
            uploader.run(todo)
        except TransferError:
            if self._completed_elsewhere(sid):
                return
            raise
        finally:
            self.blocks_put = uploader.blocks_put

    def _check_source(self, sid):
        """The source must still be what was hashed, or the snapshot would miss its new data."""
        why = self.image.source.change_since(self.image.fingerprint, self.image.data_indexes)
        if why:
            raise BlockError("src: {0} changed during the upload ({1}); snapshot {2} was not completed, so no snapshot "
                             "claims content the source no longer has. Upload again from a source that does not "
                             "change (a filesystem snapshot or a stopped disk)".format(self.image.source.path, why, sid),
                             option="src", snapshot_id=sid, code="SourceChanged")

    def _complete(self, sid, journal, started_at):
        """CompleteSnapshot with the LINEAR checksum -> True when a concurrent run had completed it already."""
        self.job.progress.phase("completing")
        params = {"SnapshotId": sid, "ChangedBlocksCount": len(self.plan.write)}
        if self.plan.write:
            params.update(Checksum=self.checksum(), ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
        try:
            resp = self.job.retry.call(self.job.ebs.complete_snapshot, "CompleteSnapshot", snapshot_id=sid,
                                       started_at=started_at, **params)
        except TransferError:
            if self._completed_elsewhere(sid):
                return True
            raise
        if (resp or {}).get("Status") == "error":
            raise BlockError("CompleteSnapshot answered that snapshot {0} failed (status error): it was pending "
                             "longer than its timeout, or its blocks do not match the checksum; upload again"
                             .format(sid), snapshot_id=sid, code="SnapshotError")
        if journal is not None:
            journal.mark_complete()
        return False

    def _state_now(self, sid):
        """Without waiting, the snapshot's state as DescribeSnapshots shows it now: never a success for a
        snapshot that failed or is gone."""
        snap = find_snapshot(self.job.ec2, self.job.retry, sid)
        if snap is None or snap.get("State") == "error":
            raise BlockError("snapshot {0} {1} after CompleteSnapshot".format(
                sid, "no longer exists" if snap is None else "failed (state error: {0})".format(
                    snap.get("StateMessage") or "no reason given")), snapshot_id=sid, code="SnapshotError")
        return snap.get("State")

    def _completed_elsewhere(self, sid):
        """True when another run with the same token (so the same content) completed the snapshot."""
        snap = find_snapshot(self.job.ec2, self.job.retry, sid)
        return snap is not None and snap.get("State") in ("completed",) and \
            tag_dict(snap.get("Tags")).get("blockwise:content") == self.image.content

    def checksum(self):
        return linear_checksum(block_digest(self.image.digests, i) for i in self.plan.write)

    def _explain(self, exc, sid):
        """Say what became of the snapshot; never claim it is resumable when it is not."""
        if exc.snapshot_id is None:
            exc.snapshot_id = sid
        if exc.code in ("SnapshotError", "SourceChanged"):
            return exc
        try:
            snap = find_snapshot(self.job.ec2, self.job.retry, sid)
        except BlockError:
            snap = {"State": "pending"}
        if snap is not None and snap.get("State") == "pending":
            exc.msg += " (snapshot {0} is left pending: rerun with the same arguments to resume)".format(sid)
        elif snap is not None:
            exc.msg += " (snapshot {0} is {1})".format(sid, snap.get("State"))
        exc.args = (exc.msg,)
        return exc

    def _result(self, sid, resp, written, seconds, state, resumed, confirmed, completed_before):
        job = self.job
        result = job.base_result(self.volume_size, self.plan.blocks_total, self.image.content)
        result.update(
            # A rerun that only waits for a snapshot an earlier (or concurrent) run completed changes nothing itself.
            changed=not completed_before, snapshot_id=sid, state=state, blocks_written=written,
            blocks_skipped_zero=self.plan.blocks_skipped_zero, blocks_unchanged=self.plan.blocks_unchanged,
            bytes_written=written * BLOCK_SIZE, elapsed_seconds=elapsed(job.started),
            throughput_mib_s=rate(written * BLOCK_SIZE, seconds), checksum=self.checksum(), resumed=resumed,
            abandoned_snapshot_ids=self.abandoned, changed_blocks_count=len(self.plan.write), retries=job.retry.retries)
        if resumed:
            result["blocks_confirmed_before"] = len(confirmed)
        if job.want_diff:
            result["diff"] = {"before": {}, "after": snapshot_summary(
                sid, self.volume_size, self.image.content, self.p.get("parent_snapshot_id"),
                self.plan.encrypted or is_encrypted_response(resp), state)}
        job.progress.finish("done")
        return result, job.warnings
