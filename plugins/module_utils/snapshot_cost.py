# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure cost arithmetic of a chain of snapshots of one volume, from the blocks that changed between neighbours.

What the numbers are: counts of 512 KiB blocks that EBS lists as changed (ListChangedBlocks between consecutive
snapshots; ListSnapshotBlocks for the oldest). EBS tracks writes, not content, so a block rewritten with the same
bytes counts as changed: these are upper bounds of the incremental sizes AWS bills, not the bill. They do not know
about snapshots outside the chain (an older snapshot of the same volume that is not listed still holds blocks the
oldest one would otherwise own), compression, or the price of the region.
"""
from __future__ import annotations

BLOCK_SIZE = 524288
GIB = 1 << 30
# AWS list prices (us-east-1) per GiB-month: snapshot standard tier and archive tier.
STANDARD_PRICE = 0.05
ARCHIVE_PRICE = 0.0125
ARCHIVE_MINIMUM_DAYS = 90


def gib(blocks):
    """GiB of ``blocks`` 512 KiB blocks, rounded to 6 decimals."""
    return round(blocks * BLOCK_SIZE / GIB, 6)


def chain_cost(snapshot_ids, changes, standard_price=STANDARD_PRICE, archive_price=ARCHIVE_PRICE):
    """Per snapshot and for the chain: what each adds, what deleting it would free, what it costs a month.

    ``snapshot_ids``: the chain, oldest first. ``changes[i]``: ``(changed, removed)`` sets of block indexes
    between snapshot ``i - 1`` and ``i`` (for ``i == 0``: every block of the oldest snapshot, nothing removed);
    ``removed`` are the changed blocks that hold data only in the predecessor.

    - ``added_blocks``: blocks with data written in this snapshot since its predecessor (what it stores);
    - ``freed_if_deleted_blocks``: of those, the blocks the next snapshot no longer refers to (it changed or
      removed them); for the newest snapshot, all it added. Deleting it frees at most that much.
    - ``full_blocks``: every block with data in the snapshot: the size it would have in the archive tier, where
      a snapshot is stored in full.
    """
    rows, present = [], set()
    for index, snapshot_id in enumerate(snapshot_ids):
        changed, removed = changes[index]
        added = set(changed) - set(removed)
        present = (present | added) - set(removed)
        if index + 1 < len(snapshot_ids):
            freed = added & set(changes[index + 1][0])
        else:
            freed = added
        rows.append({
            "snapshot_id": snapshot_id,
            "changed_blocks": len(changed),
            "added_blocks": len(added), "added_gib": gib(len(added)),
            "freed_if_deleted_blocks": len(freed), "freed_if_deleted_gib": gib(len(freed)),
            "full_blocks": len(present), "full_gib": gib(len(present)),
            "standard_monthly_cost": round(gib(len(added)) * standard_price, 6),
            "archive_monthly_cost": round(gib(len(present)) * archive_price, 6),
        })
    stored = sum(row["added_blocks"] for row in rows)
    total = {
        "snapshots": len(rows), "stored_blocks": stored, "stored_gib": gib(stored),
        "standard_monthly_cost": round(gib(stored) * standard_price, 6),
        "standard_price_per_gib_month": standard_price, "archive_price_per_gib_month": archive_price,
        "archive_minimum_days": ARCHIVE_MINIMUM_DAYS,
    }
    return rows, total


def order_chain(snapshots):
    """Completed snapshots oldest first (ties by id), and the ids of those left out because they are not completed."""
    done = sorted((s for s in snapshots if s.get("State") == "completed"), key=lambda s: (s["StartTime"], s["SnapshotId"]))
    return [s["SnapshotId"] for s in done], sorted(s["SnapshotId"] for s in snapshots if s.get("State") != "completed")


def policy_chains(snapshots, policy_names, policy_tag="blockwise:policy", lineage_tag="blockwise:lineage"):
    """``{policy: {disk: [snapshot ids oldest first]}}`` of the completed snapshots each policy made.

    A disk is the ``blockwise:lineage`` tag when there is one (uploads and copies), else the volume id.
    """
    chains = {name: {} for name in policy_names}
    for snap in snapshots:
        tags = snap.get("tags") or {}
        name = tags.get(policy_tag)
        if name not in chains or snap.get("State") != "completed":
            continue
        disk = "lineage:" + tags[lineage_tag] if tags.get(lineage_tag) else snap.get("VolumeId")
        chains[name].setdefault(disk, []).append(snap)
    return {name: {disk: order_chain(items)[0] for disk, items in disks.items()} for name, disks in chains.items()}


def policy_total(region, policy, totals, errors):
    """One row of the audit's cost per policy from the ``total`` of each of its chains and the chains that failed."""
    stored = sum(total["stored_blocks"] for total in totals)
    row = {"region": region, "policy": policy, "chains": len(totals), "snapshots": sum(t["snapshots"] for t in totals),
           "stored_gib": gib(stored),
           "standard_monthly_cost": round(sum(t["standard_monthly_cost"] for t in totals), 6)}
    if errors:
        row["errors"] = errors
    return row
