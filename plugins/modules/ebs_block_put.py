#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_block_put
short_description: Upload a raw disk image or block device as a new EBS snapshot through the EBS direct APIs
version_added: 0.1.0
description:
  - Writes a local raw image file or block device into a new EBS snapshot with C(StartSnapshot), C(PutSnapshotBlock)
    and C(CompleteSnapshot), without an EC2 instance or volume.
  - "Reads the source twice: first to hash every block that holds data (holes of sparse files are found with
    C(SEEK_DATA)/C(SEEK_HOLE) and never read), then to send the blocks that must be written. Each block is sent with
    its SHA256 checksum, and the snapshot is completed with the C(LINEAR) aggregate checksum, so AWS verifies the
    content end to end."
  - "Zero blocks are omitted only where that is provably safe: a snapshot that is not encrypted, at an index where the
    parent (if any) holds no data. Everything else that differs from the parent is written, including blocks that are
    zero now but hold data in the parent."
  - "Incremental: with O(parent_snapshot_id) only blocks that differ from the parent are written. With the parent's
    O(manifest) the comparison is exact (unchanged blocks are skipped); without it, the parent's block list from
    C(ListSnapshotBlocks) is used and every non-zero block is written, which is still correct."
  - "Idempotent: the snapshot is tagged C(blockwise:content) with the digest of the image content (and
    C(blockwise:parent) for an incremental one). A completed snapshot of your account that is this upload is found
    with one C(DescribeSnapshots) call made in this run and returned; no block is put. It is this upload when content,
    volume size, parent, encryption and KMS key (as AWS would apply them now: an omitted O(encrypted) follows the
    account's encryption by default, read with C(GetEbsEncryptionByDefault)), O(description) (when given) and
    O(lineage) agree. Tags are not part of it: missing or changed O(tags) are added to that snapshot
    (C(changed=true)); tags are never removed. EC2 cannot change a snapshot's description, so a new O(description)
    makes a new snapshot."
  - "A snapshot is never reported as done unless C(DescribeSnapshots) shows it now: C(StartSnapshot) answers a
    repeated client token with the original result even after that snapshot was deleted, so a returned snapshot
    that no longer exists (or failed) is replaced by a new upload."
  - "O(src) must not change during the upload: after the last block is put, the size, the modification time (files)
    and the map of data and holes are read again, and a source that changed fails the task before
    C(CompleteSnapshot), so no completed snapshot lacks the new data. The pending snapshot is left to time out and is
    reported in RV(abandoned_snapshot_ids) by the next run."
  - "Uploads of the same O(src) on one host are serialised by a lock file under O(state_dir) (removed when the
    upload ends): a second upload started meanwhile waits, then finds the first one's snapshot. Two hosts that
    upload the same content with the same arguments get the same pending snapshot; whichever completes it first
    wins and the other reports that snapshot."
  - "Resumable: the C(StartSnapshot) client token is derived from the inputs (content digest, parent, volume size,
    encryption, description, tags, timeout), and the blocks confirmed written are recorded in a journal under
    O(state_dir). A rerun with the same arguments after an interruption (SIGKILL, lost network) continues the same
    pending snapshot and puts only blocks not yet confirmed."
  - "A pending (or failed) snapshot of the same content left by an earlier run that cannot be resumed (different
    arguments, lost journal) is never leaked silently: it is listed in RV(abandoned_snapshot_ids) with a warning."
  - In check mode the image is read and hashed and the plan is returned (blocks to write, omitted zero blocks,
    unchanged blocks, bytes); no AWS write is made.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  src:
    description:
      - The raw image file or block device to upload.
      - Must not change while the task runs (a changed block is detected by the checksum, a changed size, modification
        time or data map before the snapshot is completed; either fails the task).
      - An empty file (0 bytes) is refused. A file that holds only holes or zeros (a blank disk) is uploaded as an
        empty snapshot of its size.
    type: path
    required: true
  volume_size:
    description:
      - Size of the snapshot's volume in GiB.
      - Defaults to the size of O(src) rounded up to a whole GiB (at least 1), or the parent's size if that is larger.
      - Smaller than O(src) or the parent, or above 65536, is an error.
    type: int
  parent_snapshot_id:
    description:
      - Make an incremental snapshot on this completed snapshot. Blocks that are not written are inherited from it.
      - The new snapshot has the parent's encryption; O(encrypted) and O(kms_key_arn), when given, must match it.
      - An unencrypted parent in a region with EBS encryption by default on is refused naming this option (AWS
        refuses such an incremental snapshot).
      - An empty string is refused, not taken as omitted (it would turn an incremental upload into a full one).
    type: str
  manifest:
    description:
      - Path of a block manifest file (one SHA256 per block and the id of the snapshot it describes, in a compact binary
        format).
      - When it describes O(parent_snapshot_id), only the blocks that changed since the parent are put.
      - Written after a successful upload, describing the new snapshot (so the next incremental run can use it).
      - An existing file is only replaced if it is empty or a manifest; any other file fails the task before anything
        is read. A damaged manifest is replaced (with a warning). If it is a symlink, its target is replaced.
    type: path
  description:
    description:
      - Description of the snapshot (at most 255 characters).
      - When given, an existing snapshot with another description is not this upload (EC2 cannot change a snapshot's
        description), so a new snapshot is made.
    type: str
  tags:
    description:
      - Tags for the snapshot, set when it is created; added to (never removed from) the existing snapshot when the
        upload is already done.
      - The keys C(blockwise:content), C(blockwise:parent) and C(blockwise:lineage) are set by the module and cannot
        be given. Keys starting with C(aws:), keys over 127 and values over 255 characters (the limits of
        C(StartSnapshot)), and more than 47 tags (AWS allows 50, and the module sets up to 3) are refused before the
        image is read.
    type: dict
    aliases: [resource_tags]
  lineage:
    description:
      - Which disk this snapshot belongs to, written as the C(blockwise:lineage) tag. Retention
        (M(blockwise.ebs.ebs_snapshot_prune)) groups snapshots without a real source volume (every upload has the
        placeholder volume id C(vol-ffffffff)) by this tag, so give each disk you upload regularly its own lineage
        (for example its host and device name).
      - When omitted, an incremental snapshot inherits its parent's lineage, and any other upload is its own lineage
        (its snapshot id), so unrelated uploads are never pruned together.
      - An existing snapshot of another lineage is never reused, even with the same content.
      - 1 to 255 characters.
    type: str
  encrypted:
    description:
      - Encrypt the new snapshot.
      - When omitted, the snapshot is encrypted if the parent is, or if the account has EBS encryption by default on
        now (an earlier unencrypted upload of the same image is then not reused).
      - With O(parent_snapshot_id), a value that does not match the parent's encryption is an error.
      - V(false) in a region with EBS encryption by default on is refused before the image is read to the end (AWS
        encrypts every new snapshot there).
      - An encrypted snapshot has every block written, zero blocks included.
    type: bool
  kms_key_arn:
    description:
      - ARN of the KMS key that encrypts the snapshot. Needs O(encrypted=true). An empty string is refused.
    type: str
  timeout:
    description:
      - Minutes the new snapshot may stay pending before AWS moves it to C(error) (C(StartSnapshot) C(Timeout)),
        10 to 4320. AWS's default is 60.
    type: int
  wait:
    description:
      - Wait until the snapshot is C(completed); fail if it goes to C(error).
      - With V(false), the task still fails when C(CompleteSnapshot) answers C(error), or when the snapshot is
        failed or gone right after it; the journal under O(state_dir) stays until a later upload that uses the
        same O(state_dir) sees the snapshot completed.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait with O(wait=true).
    type: int
    default: 900
  state_dir:
    description:
      - Directory on the managed node for the upload journals (one small file per O(src), removed when the snapshot is
        completed). A journal records the blocks confirmed written to a pending snapshot so that a rerun resumes.
      - Also holds a lock file per O(src) while it is uploaded (removed at the end).
    type: path
    default: ~/.ansible/blockwise_ebs
notes:
  - "IAM permissions: C(ebs:StartSnapshot), C(ebs:PutSnapshotBlock), C(ebs:CompleteSnapshot), C(ebs:ListSnapshotBlocks)
    (incremental without manifest), C(ec2:DescribeSnapshots), C(ec2:CreateTags) (tags on StartSnapshot, the lineage
    of a standalone upload, tags added to an existing snapshot), C(ec2:GetEbsEncryptionByDefault) and
    C(ec2:GetEbsDefaultKmsKeyId) (when O(encrypted) is omitted, or true without O(kms_key_arn), and there is no
    parent), and the KMS permissions for encrypted snapshots."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - blockwise.ebs.block_streaming
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Upload a disk image as a new snapshot
  blockwise.ebs.ebs_block_put:
    src: /var/lib/images/web-2024-06.raw
    lineage: web-root-disk
    description: web image June 2024
    tags:
      Name: web-2024-06
    manifest: /var/lib/images/web.manifest
  register: upload

- name: Next month, upload only what changed since that snapshot
  blockwise.ebs.ebs_block_put:
    src: /var/lib/images/web-2024-07.raw
    parent_snapshot_id: "{{ upload.snapshot_id }}"
    manifest: /var/lib/images/web.manifest
    tags:
      Name: web-2024-07

- name: Long upload in the background, polled through the progress file
  blockwise.ebs.ebs_block_put:
    src: /dev/vg0/data
    encrypted: true
    progress_file: /run/data-upload.json
  async: 14400
  poll: 0
  register: job

- name: What would be uploaded (reads and hashes, writes nothing)
  blockwise.ebs.ebs_block_put:
    src: /var/lib/images/web-2024-07.raw
    parent_snapshot_id: snap-0123456789abcdef0
    manifest: /var/lib/images/web.manifest
  check_mode: true
  register: plan
"""

RETURN = r"""
snapshot_id:
  description: The new snapshot, or the existing one with the same content. Not returned in check mode (null).
  returned: always
  type: str
  sample: snap-0123456789abcdef0
state:
  description: The snapshot's state when the task ended (C(completed), or C(pending) with O(wait=false)).
  returned: always
  type: str
  sample: completed
volume_size:
  description: The snapshot's volume size in GiB.
  returned: always
  type: int
  sample: 8
blocks_total:
  description: Blocks in the volume (volume size x 2048).
  returned: always
  type: int
  sample: 16384
blocks_written:
  description: Blocks put by this run (in check mode, blocks that would be put). Blocks confirmed by an interrupted
    earlier run are not counted again.
  returned: always
  type: int
  sample: 1210
blocks_skipped_zero:
  description: Zero blocks (or holes) that were omitted because they read as zeros anyway.
  returned: always
  type: int
  sample: 15000
blocks_unchanged:
  description: Blocks equal to the parent's (from its manifest), inherited without being written. All blocks when the
    snapshot already existed.
  returned: always
  type: int
  sample: 174
bytes_written:
  description: Bytes put by this run (blocks_written x 524288).
  returned: always
  type: int
  sample: 634388480
elapsed_seconds:
  description: Wall time of the task, hashing included.
  returned: always
  type: float
  sample: 42.7
throughput_mib_s:
  description: MiB per second of the upload phase.
  returned: always
  type: float
  sample: 85.3
checksum:
  description: The LINEAR aggregate checksum sent with C(CompleteSnapshot) (base64 SHA256 over the block digests of all
    written blocks in index order). Null when no snapshot was written.
  returned: always
  type: str
  sample: 2d5YzR6bUxFa0FvR1l0d0hGcVZ2d3p6bHZ5b0lXbE0=
changed_blocks_count:
  description: The C(ChangedBlocksCount) sent with C(CompleteSnapshot) (blocks written to the snapshot over all runs).
  returned: when a snapshot was written
  type: int
  sample: 1210
resumed:
  description: Whether this run continued a pending snapshot of an interrupted earlier run.
  returned: always
  type: bool
  sample: false
blocks_confirmed_before:
  description: Blocks an interrupted earlier run had confirmed, which were not put again.
  returned: when resumed
  type: int
  sample: 800
manifest:
  description: The manifest path (written when the task succeeded), or null.
  returned: always
  type: str
  sample: /var/lib/images/web.manifest
content_digest:
  description: Digest of the image content (the value of the C(blockwise:content) tag).
  returned: always
  type: str
  sample: sha256:5b1f0c7e0d7e4c9f1a1e2b0c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60
abandoned_snapshot_ids:
  description: Pending or failed snapshots of earlier runs that this run could not resume (they are not deleted).
  returned: always
  type: list
  elements: str
  sample: []
pending_snapshot_ids:
  description: In check mode, pending snapshots with the same content (a real run would resume or report them).
  returned: in check mode, when there are any
  type: list
  elements: str
  sample: [snap-0123456789abcdef0]
retries:
  description: AWS calls that were retried (throttling, 5xx, ...).
  returned: when a snapshot was written
  type: int
  sample: 3
plan:
  description: The upload plan.
  returned: in check mode
  type: dict
  contains:
    blocks_total:
      description: Blocks in the volume.
      type: int
    blocks_to_write:
      description: Blocks that would be put.
      type: int
    blocks_skipped_zero:
      description: Zero blocks that would be omitted.
      type: int
    blocks_unchanged:
      description: Blocks equal to the parent's.
      type: int
    bytes_to_write:
      description: Bytes that would be put.
      type: int
    encrypted:
      description: Whether the plan assumes an encrypted snapshot.
      type: bool
    parent_from_manifest:
      description: Whether the parent was compared through its manifest.
      type: bool
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import blocks


def main():
    argument_spec = dict(
        src=dict(type="path", required=True),
        volume_size=dict(type="int"),
        parent_snapshot_id=dict(type="str"),
        manifest=dict(type="path"),
        description=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        lineage=dict(type="str"),
        encrypted=dict(type="bool"),
        kms_key_arn=dict(type="str", no_log=False),
        timeout=dict(type="int"),
        workers=dict(type="int", default=blocks.DEFAULT_WORKERS),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
        progress_file=dict(type="path"),
        state_dir=dict(type="path", default=blocks.DEFAULT_STATE_DIR),
    )
    module = aws.build_module(argument_spec, required_by=dict(kms_key_arn=["encrypted"]))
    params = module.params
    try:
        # The clients are made on a thread while the image is hashed.
        job = blocks.PutJob(lambda: aws.client(module, "ebs", workers=params["workers"]),
                            lambda: aws.client(module, "ec2"),
                            params, check_mode=module.check_mode, want_diff=module._diff)
        result, warnings = job.run()
    except blocks.BlockError as exc:
        module.fail_json(msg=str(exc), **exc.details())
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
