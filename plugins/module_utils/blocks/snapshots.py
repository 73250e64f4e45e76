# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 snapshot helpers shared by the put and get jobs, and small result helpers."""
from __future__ import annotations

import time

from ansible_collections.blockwise.ebs.plugins.module_utils.progress import MIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError


def ec2_snapshot(ec2, retry, snapshot_id, option):
    """DescribeSnapshots for one id -> snapshot dict, or InputError when it does not exist."""
    try:
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", SnapshotIds=[snapshot_id])
    except TransferError as exc:
        if exc.code and (exc.code.startswith("InvalidSnapshot") or exc.code in ("InvalidParameterValue",)):
            raise InputError("{0}: snapshot {1} was not found ({2})".format(option, snapshot_id, exc.msg),
                             option=option, code=exc.code)
        raise
    snaps = resp.get("Snapshots") or []
    if not snaps:
        raise InputError("{0}: snapshot {1} was not found".format(option, snapshot_id), option=option)
    return snaps[0]


def find_snapshot(ec2, retry, snapshot_id):
    """The snapshot as EC2 describes it now, or None when it does not exist (any more)."""
    try:
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", snapshot_id=snapshot_id,
                          SnapshotIds=[snapshot_id])
    except TransferError as exc:
        if exc.code and exc.code.startswith("InvalidSnapshot"):
            return None
        raise
    snaps = resp.get("Snapshots") or []
    return snaps[0] if snaps else None


def wait_for_snapshot(ec2, retry, snapshot_id, timeout, progress=None, sleep=time.sleep, clock=time.monotonic):
    """Poll DescribeSnapshots until ``completed`` -> snapshot dict; raise on ``error`` or timeout."""
    deadline = clock() + timeout
    delay = 0.5
    while True:
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", snapshot_id=snapshot_id,
                          SnapshotIds=[snapshot_id])
        snaps = resp.get("Snapshots") or []
        snap = snaps[0] if snaps else {}
        state = snap.get("State")
        if state == "completed":
            return snap
        if state == "error":
            raise TransferError("snapshot {0} is in state error: {1}".format(
                snapshot_id, snap.get("StateMessage") or "no message"), snapshot_id=snapshot_id, code="SnapshotError")
        if clock() >= deadline:
            raise TransferError("snapshot {0} is still {1} after wait_timeout={2} seconds".format(
                snapshot_id, state or "not visible", timeout), snapshot_id=snapshot_id, code="WaitTimeout")
        sleep(delay)
        delay = min(delay * 2, 15.0)


def is_encrypted_response(resp):
    return bool(resp.get("KmsKeyArn")) or resp.get("SseType") in ("sse-ebs", "sse-kms")


def snapshot_summary(snapshot_id, volume_size, content, parent, encrypted, state=None):
    out = {"snapshot_id": snapshot_id, "volume_size": volume_size, "content": content,
           "parent_snapshot_id": parent, "encrypted": encrypted}
    if state:
        out["state"] = state
    return out


def elapsed(started):
    return round(time.monotonic() - started, 3)


def rate(nbytes, seconds):
    return round(nbytes / MIB / seconds, 2) if seconds > 0 else 0.0
