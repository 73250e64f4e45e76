# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Journals that outlived their upload: an upload with ``wait=false`` ends while AWS still completes its
snapshot, so its journal (marked complete) stays until a run confirms the snapshot is done. Any later
upload that uses the same ``state_dir`` removes such journals, whichever ``src`` they belong to.
"""
from __future__ import annotations

import os

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import FileLock

FILTER_VALUES_PER_CALL = 200


def finished_journals(state_dir, skip):
    """``{journal path: snapshot id}`` of the journals under ``state_dir`` marked complete (but ``skip``)."""
    try:
        names = os.listdir(state_dir)
    except OSError:
        return {}
    found = {}
    for name in names:
        path = os.path.join(state_dir, name)
        if not (name.startswith("put-") and name.endswith(".journal")) or path == skip:
            continue
        state = Journal.load(path)
        if state is not None and state.completed and state.snapshot_id:
            found[path] = state.snapshot_id
    return found


def snapshot_states(ec2, retry, snapshot_ids):
    """``{snapshot id: state}`` of the snapshots that exist now (a filter, so a missing id is no error)."""
    states = {}
    for start in range(0, len(snapshot_ids), FILTER_VALUES_PER_CALL):
        chunk = snapshot_ids[start:start + FILTER_VALUES_PER_CALL]
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", OwnerIds=["self"],
                          Filters=[{"Name": "snapshot-id", "Values": chunk}])
        states.update((s["SnapshotId"], s.get("State")) for s in resp.get("Snapshots") or [])
    return states


def sweep_finished_journals(state_dir, skip, ec2, retry):
    """Remove the journals whose snapshot is no longer pending (completed, failed or gone) -> removed paths.

    A journal whose upload of the same ``src`` runs now (its lock is held) is left to that run.
    """
    found = finished_journals(state_dir, skip)
    if not found:
        return []
    states = snapshot_states(ec2, retry, sorted(set(found.values())))
    removed = []
    for path, snapshot_id in sorted(found.items()):
        if states.get(snapshot_id) == "pending":
            continue
        lock = FileLock(path[:-len(".journal")] + ".lock")
        if lock.acquire(blocking=False) is None:
            continue
        try:
            state = Journal.load(path)
            if state is not None and state.completed and state.snapshot_id == snapshot_id:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass
        finally:
            lock.release()
    return removed
