#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_block_get
short_description: Download an EBS snapshot into a local file or block device through the EBS direct APIs
version_added: 0.1.0
description:
  - Reads a completed EBS snapshot with C(ListSnapshotBlocks)/C(ListChangedBlocks) and C(GetSnapshotBlock), verifies the
    SHA256 checksum of every block, and writes each block at its offset (block index x 524288) in O(dest).
  - "A new file (or an existing regular file, without O(base_snapshot_id)) is written to a partial file next to
    O(dest), named C(.<name>.blockwise-part), and renamed over O(dest) only when every block was written and synced;
    blocks the snapshot does not hold (and zero blocks) are left as holes, so the file is sparse. The file is the size
    of the volume. If the restore fails (for example the file system is full), the partial file is removed and an
    existing O(dest) is left as it was. A partial file that a killed run left behind is removed by the next run."
  - "If O(dest) is a symlink, the restore writes through it: the link's target is replaced (the partial file is
    made next to the target) and the link stays a link."
  - "A block device, or a file that already holds O(base_snapshot_id), is written in place: only blocks that differ are
    written, and blocks the snapshot does not hold are zeroed. A failure part way leaves O(dest) partly updated;
    O(manifest) then no longer matches it, so no later run trusts it."
  - "With O(base_snapshot_id), only the blocks that changed between that snapshot and O(snapshot_id)
    (C(ListChangedBlocks)) are downloaded, including blocks that became absent, which are zeroed. With O(manifest),
    the manifest must exist, name O(base_snapshot_id), and match the data O(dest) holds now; otherwise the task fails
    before writing (restoring changes onto the wrong base would corrupt O(dest) and certify it). Without O(manifest),
    O(base_snapshot_id) is your statement that O(dest) holds it."
  - "Idempotent: with O(manifest), a second run finds that O(dest) already holds the snapshot (the manifest names it
    and the local data matches its digests) and reports C(changed=false) without downloading any block; the snapshot
    is still listed once, so a snapshot that was deleted is reported as such, never as restored. Without a manifest
    the blocks are downloaded and compared, and C(changed) is true only if O(dest) changed."
  - "A manifest is only written from digests that were checked: blocks downloaded with their checksums, and blocks
    that the previous (verified) manifest already described."
  - In check mode the snapshot's blocks are listed (and O(dest) hashed) and the plan is returned; nothing is written.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  snapshot_id:
    description:
      - The completed snapshot to download.
    type: str
    required: true
  dest:
    description:
      - Local file or block device to write. The directory of a file must exist.
      - A block device must be at least as large as the snapshot's volume.
      - A symlink is followed (its target is written).
    type: path
    required: true
  base_snapshot_id:
    description:
      - O(dest) already holds this snapshot's content (an earlier snapshot of the same lineage); apply only the blocks
        that changed between it and O(snapshot_id), in place.
      - An empty string is refused, not taken as omitted (it would turn an incremental restore into a full one).
    type: str
  manifest:
    description:
      - Path of a block manifest describing what O(dest) holds (snapshot id and one SHA256 per block).
      - Read to skip the download when O(dest) already holds O(snapshot_id) (and the snapshot, listed in this run,
        holds every block the manifest has); written after a successful run.
      - Required to exist, and checked against O(dest), when given with O(base_snapshot_id).
      - An existing file is only replaced if it is empty or a manifest; any other file fails the task before anything
        is read. If it is a symlink, its target is replaced.
    type: path
  state_dir:
    description:
      - Directory on the managed node for the lock file that serialises restores into one O(dest) (a second restore
        into the same O(dest) waits for the first, then finds O(dest) up to date). The lock file is removed when the
        restore ends. Nothing is written there in check mode.
    type: path
    default: ~/.ansible/blockwise_ebs
notes:
  - "IAM permissions: C(ebs:ListSnapshotBlocks), C(ebs:ListChangedBlocks) (with O(base_snapshot_id)),
    C(ebs:GetSnapshotBlock), and the KMS permissions for encrypted snapshots."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode (the diff shows the content digest of O(dest) before and after).
extends_documentation_fragment:
  - blockwise.ebs.block_streaming
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Restore a snapshot into a sparse raw image
  blockwise.ebs.ebs_block_get:
    snapshot_id: snap-0123456789abcdef0
    dest: /var/lib/images/restore.raw
    manifest: /var/lib/images/restore.manifest

- name: Bring that image forward to a newer snapshot of the same volume (changed blocks only)
  blockwise.ebs.ebs_block_get:
    snapshot_id: snap-0fedcba9876543210
    base_snapshot_id: snap-0123456789abcdef0
    dest: /var/lib/images/restore.raw
    manifest: /var/lib/images/restore.manifest

- name: Write a snapshot onto a block device
  blockwise.ebs.ebs_block_get:
    snapshot_id: snap-0123456789abcdef0
    dest: /dev/vg0/restore
    workers: 32
"""

RETURN = r"""
snapshot_id:
  description: The snapshot that was downloaded.
  returned: always
  type: str
  sample: snap-0123456789abcdef0
dest:
  description: The destination path.
  returned: always
  type: str
  sample: /var/lib/images/restore.raw
method:
  description: How O(dest) was written. V(new) (new file), V(replace) (existing file replaced through a temporary
    file), V(in_place) (block device), V(incremental) (O(base_snapshot_id)), V(unchanged) (nothing to do).
  returned: always
  type: str
  sample: new
volume_size:
  description: The snapshot's volume size in GiB.
  returned: always
  type: int
  sample: 8
blocks_total:
  description: Blocks in the volume.
  returned: always
  type: int
  sample: 16384
blocks_fetched:
  description: Blocks downloaded (in check mode, blocks that would be downloaded).
  returned: always
  type: int
  sample: 1210
blocks_written:
  description: Blocks written to O(dest) (zero blocks of a new file are left as holes).
  returned: always
  type: int
  sample: 1200
blocks_zeroed:
  description: Blocks of O(dest) overwritten with zeros because the snapshot does not hold them (in place only).
  returned: always
  type: int
  sample: 3
bytes_fetched:
  description: Bytes downloaded.
  returned: always
  type: int
  sample: 634388480
elapsed_seconds:
  description: Wall time of the task.
  returned: always
  type: float
  sample: 12.5
throughput_mib_s:
  description: MiB per second of the download phase.
  returned: always
  type: float
  sample: 120.4
content_digest:
  description: Digest of the content of O(dest) after the run (same scheme as the C(blockwise:content) tag of
    M(blockwise.ebs.ebs_block_put)). Null in check mode unless nothing would change.
  returned: always
  type: str
  sample: sha256:5b1f0c7e0d7e4c9f1a1e2b0c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60
manifest:
  description: The manifest path, or null.
  returned: always
  type: str
  sample: /var/lib/images/restore.manifest
plan:
  description: What a real run would do.
  returned: in check mode
  type: dict
  contains:
    blocks_listed:
      description: Blocks listed for the transfer.
      type: int
    method:
      description: See RV(method).
      type: str
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import blocks


def main():
    argument_spec = dict(
        snapshot_id=dict(type="str", required=True),
        dest=dict(type="path", required=True),
        base_snapshot_id=dict(type="str"),
        manifest=dict(type="path"),
        workers=dict(type="int", default=blocks.DEFAULT_WORKERS),
        progress_file=dict(type="path"),
        state_dir=dict(type="path", default=blocks.DEFAULT_STATE_DIR),
    )
    module = aws.build_module(argument_spec)
    params = module.params
    if params.get("base_snapshot_id") and params["base_snapshot_id"] == params["snapshot_id"]:
        module.fail_json(msg="base_snapshot_id must differ from snapshot_id ({0})".format(params["snapshot_id"]))
    try:
        ebs = aws.client(module, "ebs", workers=params["workers"])
        job = blocks.GetJob(ebs, params, check_mode=module.check_mode, want_diff=module._diff)
        result, warnings = job.run()
    except blocks.BlockError as exc:
        module.fail_json(msg=str(exc), **exc.details())
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
