#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_verify
short_description: Prove that an EBS snapshot can be restored, without creating a volume
version_added: 0.1.0
description:
  - Reads a completed EBS snapshot through the EBS direct APIs (C(ListSnapshotBlocks), C(GetSnapshotBlock)), checks the
    SHA256 checksum of every block read, and compares the content with the strongest reference available.
  - "References, strongest first: a local file or block device (O(compare_to)) or a block manifest (O(manifest)),
    compared block by block (the blocks that differ are named); the C(blockwise:content) tag that
    M(blockwise.ebs.ebs_block_put) sets, a digest of the whole content (checked in a full verification; which blocks
    differ is then not known). The C(blockwise:content) tag is also checked when O(compare_to) or O(manifest) is given.
    With no reference the verification still proves that every block can be read and matches its checksum."
  - "A block that holds data on one side only (the snapshot or the reference) is a difference; a block that holds no
    data reads as zeros, so it equals a zero block."
  - "O(sample) verifies a deterministic sample instead of every block: the same snapshot always gets the same blocks
    (the sample is seeded by the snapshot id), and it always holds block 0 and the last data block. RV(mode) says
    which mode ran; a sample that covers every block is a full verification."
  - "A block that cannot be read (an error after retries, or data that does not match its checksum three times) does not
    stop the verification: up to O(max_bad_blocks) such blocks are recorded and reported, then reading stops. Errors
    that say nothing about the snapshot stop the task at once and record nothing: access denied (including KMS),
    throttling after retries, connection errors, and a snapshot deleted during the run."
  - "O(fs_check) restores the snapshot into a sparse temporary image (in O(tmp_dir)) during the same pass and runs a
    read-only file system check on it, for example C(e2fsck -fn {image}) or C(xfs_repair -n {image}); its exit code and
    the last lines of its output are returned. The image is removed when the task ends, also when it fails."
  - "The outcome is recorded on the snapshot as tags: C(blockwise:verified) (V(ok), V(mismatch) or V(unreadable)),
    C(blockwise:verified-at) (ISO 8601, UTC) and C(blockwise:verify-mode) (V(full) or V(sample)), unless
    O(record=false). This C(ec2:CreateTags) call is the module's only write."
  - "C(changed) is true exactly when the tags are (or, in check mode, would be) written: with O(record=true) every
    verification writes them, because C(blockwise:verified-at) moves, so C(changed) is always true; with
    O(record=false) it is always false. RV(previous) holds the tags the snapshot carried before."
  - "A mismatch or an unreadable block fails the task (unless O(fail_on_mismatch=false)), naming the first bad block
    indexes; the tags are written first, and the failed result carries every return value."
  - "A snapshot that is pending, failed, in the archive tier, or owned by another account is refused before any block is
    read."
  - "In check mode the blocks are read and compared (reads change nothing); no tag is written and no local file is
    written, so O(fs_check) is skipped."
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  snapshot_id:
    description:
      - The snapshot to verify. It must be completed, in the standard tier, and owned by this account.
    type: str
    required: true
  sample:
    description:
      - Verify a sample instead of every block. A number of blocks (V(1000)) or a percentage of the blocks that hold
        data (V(1%), V(0.5%)).
      - Block 0 and the last data block are always in the sample.
      - Without it (the default) every block is read.
      - Cannot be combined with O(fs_check).
    type: raw
  compare_to:
    description:
      - A local raw image file or block device that holds what the snapshot should hold. It is hashed block by block
        (holes of sparse files are not read) and compared with the snapshot.
      - A block device is compared up to the size of the snapshot's volume; a file in full, so data beyond the volume
        is a difference.
    type: path
  manifest:
    description:
      - A block manifest (written by M(blockwise.ebs.ebs_block_put) or M(blockwise.ebs.ebs_block_get)) of what the
        snapshot should hold. Only read.
      - It may describe another snapshot with the same content (for example the source of a copy); RV(reference)
        names the snapshot it describes.
    type: path
  fs_check:
    description:
      - A read-only file system check to run on the restored snapshot, as a command template in which V({image}) is
        the path of the temporary image, for example V(e2fsck -fn {image}) or V(xfs_repair -n {image}).
      - The template is split into words as a shell would (quotes are honoured), but no shell runs it unless
        O(fs_check_shell=true). Its program must exist, or the task fails before anything is read.
      - A non-zero exit code makes the result V(mismatch). A check that does not end within O(fs_check_timeout) is
        stopped, and the task fails without recording anything.
      - Needs every block, so it cannot be combined with O(sample). Skipped in check mode (it writes a local file) and
        when blocks could not be read.
    type: str
  fs_check_timeout:
    description:
      - Seconds the O(fs_check) command may run. It is then stopped, with everything it started.
    type: int
    default: 3600
  fs_check_shell:
    description:
      - Run O(fs_check) through C(/bin/sh -c) (the image path is quoted for the shell), for command lines with pipes
        or redirections.
    type: bool
    default: false
  tmp_dir:
    description:
      - Directory for the temporary image of O(fs_check). It needs free space for the data the snapshot holds (the
        image is sparse).
      - Defaults to the module's own temporary directory, which Ansible removes after the task.
      - The image is named C(.blockwise-verify-<snapshot id>-<pid>.img) (C(.<that name>.blockwise-part) while it is
        written). It is removed when the task ends; the images that a killed run left are removed by the next run
        that uses the same O(tmp_dir) (those of runs still going are left alone).
    type: path
  record:
    description:
      - Record the outcome on the snapshot as the tags C(blockwise:verified), C(blockwise:verified-at) and
        C(blockwise:verify-mode).
    type: bool
    default: true
  fail_on_mismatch:
    description:
      - Fail the task when the result is V(mismatch) or V(unreadable). With V(false) the task succeeds and RV(result)
        says what was found.
    type: bool
    default: true
  max_bad_blocks:
    description:
      - How many bad block indexes are reported (the lowest ones), and how many unreadable blocks end the reading.
      - Blocks that differ from the reference are all counted (RV(mismatch_count)).
      - Between 1 and 100000.
    type: int
    default: 100
  workers:
    description:
      - How many blocks are read at the same time (worker threads, each with its own HTTP connection).
      - Memory use is about O(workers) x 512 KiB, whatever the size of the snapshot.
      - "The default of V(64) is the one of M(blockwise.ebs.ebs_block_get): at 100 ms per request, the latency AWS's EBS
        direct API performance guidance reasons with, throughput grows almost linearly up to 64 workers."
      - Lower it when several transfers share an account and region, to stay clear of the EBS direct API request
        quotas (throttled requests are retried, but cost time).
      - Must be between 1 and 128.
    type: int
    default: 64
  progress_file:
    description:
      - Path of a small JSON file that is replaced atomically (about twice a second) while blocks are read, for
        callers that poll a task started with C(async).
      - "Keys: C(operation) (V(verify)), C(state) (V(listing), V(hashing) (O(compare_to)), V(downloading),
        V(checking) (O(fs_check)), V(done) or V(failed)), C(snapshot_id), C(blocks_done), C(blocks_total),
        C(bytes_done), C(bytes_total), C(percent), C(mib_s), C(eta_seconds), C(elapsed_seconds), C(updated_at) (Unix
        time), C(pid), and C(message) when the task failed."
      - The directory must exist. The file is left in place when the task ends. If O(progress_file) is a symlink, its
        target is replaced.
      - An existing file is only replaced if it is empty or a progress file of this collection; any other file fails
        the task before anything is read. Nothing is written in check mode, nor for a task that fails on its options.
    type: path
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots), C(ebs:ListSnapshotBlocks), C(ebs:GetSnapshotBlock), C(ec2:CreateTags)
    (unless O(record=false)) and, for encrypted snapshots, C(kms:Decrypt) on the snapshot's key."
  - "The EBS direct APIs cannot read archived snapshots: restore one with C(RestoreSnapshotTier) first."
  - "RV(restore_estimate_seconds) is the time to read every data block of the snapshot at the rate measured by this run
    (with O(workers) parallel reads): the measured recovery time of that snapshot, before any local write cost. A full
    verification measures it; a sample extrapolates it (see RV(restore_estimate_seconds))."
  - "Every local path (O(compare_to), O(manifest), O(progress_file), the temporary image and its partial file) is
    compared with the others before any I/O, by the file it resolves to; two that name the same file fail the task."
  - "Retries with jittered exponential backoff: throttling (including C(RequestThrottledException)), HTTP 5xx,
    connection errors and C(Failed to read block data); a block whose data does not match its checksum is read again,
    three times at most."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode (the diff shows the verification tags before and after).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Verify the newest snapshot of a volume, every block, and record the outcome
  blockwise.ebs.ebs_snapshot_verify:
    snapshot_id: snap-0123456789abcdef0
  register: verified

- name: Verify an uploaded image against the image itself
  blockwise.ebs.ebs_snapshot_verify:
    snapshot_id: "{{ upload.snapshot_id }}"
    compare_to: /srv/images/golden.raw

- name: A 1% sample of a large volume, without failing the play
  blockwise.ebs.ebs_snapshot_verify:
    snapshot_id: snap-0123456789abcdef0
    sample: 1%
    fail_on_mismatch: false
  register: sampled

- name: Restore into a temporary image and check the ext4 file system on it
  blockwise.ebs.ebs_snapshot_verify:
    snapshot_id: snap-0123456789abcdef0
    fs_check: e2fsck -fn {image}
    tmp_dir: /var/tmp
    fs_check_timeout: 1800
"""

RETURN = r"""
snapshot_id:
  description: The snapshot verified.
  returned: always
  type: str
  sample: snap-0123456789abcdef0
result:
  description: V(ok), V(mismatch) (a block or the content differs from the reference, or O(fs_check) failed) or
    V(unreadable) (a block could not be read; takes precedence over V(mismatch)).
  returned: always
  type: str
  sample: ok
mode:
  description: V(full) (every block) or V(sample).
  returned: always
  type: str
  sample: full
msg:
  description: One sentence saying what was verified against what, and what was found.
  returned: always
  type: str
  sample: "snap-0123456789abcdef0 (full verification, reference: blockwise:content tag): ok"
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
data_blocks:
  description: Blocks the snapshot holds data in (C(ListSnapshotBlocks)).
  returned: always
  type: int
  sample: 1210
blocks_checked:
  description: Block indexes checked (in a full verification every block that holds data in the snapshot or the
    reference; in a sample, the sample).
  returned: always
  type: int
  sample: 1210
blocks_read:
  description: Blocks read with a verified checksum.
  returned: always
  type: int
  sample: 1210
bytes_read:
  description: Bytes read with a verified checksum.
  returned: always
  type: int
  sample: 634388480
read_seconds:
  description: Seconds spent reading blocks.
  returned: always
  type: float
  sample: 5.2
throughput_mib_s:
  description: MiB per second read.
  returned: always
  type: float
  sample: 116.3
restore_estimate_seconds:
  description:
    - Seconds to read every data block of the snapshot at the measured rate, with O(workers) reads in flight (the
      measured recovery time of the snapshot). Null when no block could be read to measure it.
    - "In a full verification it is the time the reads took. From a sample it is extrapolated; a sample smaller than
      O(workers) blocks cannot keep every worker busy, so its reads count as rounds of O(workers) parallel reads at the
      latency the sample measured (when the service's throughput rather than its latency bounds a restore, this is
      low: verify fully for the exact figure)."
  returned: always
  type: float
  sample: 5.2
bad_blocks:
  description: The lowest bad block indexes (unreadable or different), at most O(max_bad_blocks).
  returned: always
  type: list
  elements: int
  sample: [3, 7]
unreadable_blocks:
  description: The lowest indexes of the blocks that could not be read.
  returned: always
  type: list
  elements: int
  sample: [7]
unreadable_count:
  description: How many blocks could not be read.
  returned: always
  type: int
  sample: 1
unreadable_errors:
  description: Why each block in RV(unreadable_blocks) could not be read (block index as a string -> message).
  returned: always
  type: dict
  sample: {"7": "GetSnapshotBlock returned block 7 of snap-0123456789abcdef0 with a bad checksum 3 times"}
mismatched_blocks:
  description: The lowest indexes of the blocks that differ from the reference (O(compare_to) or O(manifest)).
  returned: always
  type: list
  elements: int
  sample: [3]
mismatch_count:
  description: How many blocks differ from the reference.
  returned: always
  type: int
  sample: 1
stopped_early:
  description: True when reading stopped because O(max_bad_blocks) blocks could not be read.
  returned: always
  type: bool
  sample: false
reference:
  description: What the snapshot was compared with.
  returned: always
  type: dict
  contains:
    kind:
      description: V(compare_to), V(manifest), V(content_tag) (the C(blockwise:content) tag alone) or V(none).
      type: str
    path:
      description: The O(compare_to) or O(manifest) path.
      type: str
    per_block:
      description: Whether blocks were compared one by one (so that differing blocks are named).
      type: bool
    content_tag:
      description: The snapshot's C(blockwise:content) tag, or null.
      type: str
    content_tag_checked:
      description: Whether the content digest was compared with that tag (a full verification in which every block
        was read).
      type: bool
    manifest_snapshot_id:
      description: The snapshot the O(manifest) describes.
      type: str
  sample: {"kind": "content_tag", "path": null, "per_block": false, "content_tag": "sha256:5b1f...", "content_tag_checked": true}
content_digest:
  description: The content digest of the snapshot (same scheme as the C(blockwise:content) tag), in a full
    verification in which every block was read; else null.
  returned: always
  type: str
  sample: sha256:5b1f0c7e0d7e4c9f1a1e2b0c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60
sample:
  description: The sample, when O(sample) was given.
  returned: always
  type: dict
  contains:
    requested:
      description: O(sample) as given.
      type: str
    blocks:
      description: Block indexes in the sample.
      type: int
    population:
      description: Blocks the sample was drawn from.
      type: int
  sample: {"requested": "1%", "blocks": 1311, "population": 131072}
fs_check:
  description: The file system check, when O(fs_check) was given.
  returned: always
  type: dict
  contains:
    command:
      description: The command run (the template with the image path).
      type: list
      elements: str
    exit_code:
      description: Its exit code.
      type: int
    passed:
      description: True when it exited with 0; null when it was skipped.
      type: bool
    output_tail:
      description: The last 20 non-empty lines of its output (stdout and stderr).
      type: list
      elements: str
    skipped:
      description: Why it did not run (check mode, blocks that could not be read), or null.
      type: str
  sample: {"command": ["e2fsck", "-fn", "/tmp/.blockwise-verify-snap-0123-4242.img"], "exit_code": 0, "passed": true,
           "output_tail": ["/tmp/.blockwise-verify-snap-0123-4242.img: 11/65536 files (0.0% non-contiguous)"],
           "skipped": null}
encrypted:
  description: Whether the snapshot is encrypted.
  returned: always
  type: bool
  sample: false
tags:
  description: The verification tags the snapshot carries after the task (in check mode, would carry).
  returned: always
  type: dict
  sample: {"blockwise:verified": "ok", "blockwise:verified-at": "2026-11-28T12:00:00Z", "blockwise:verify-mode": "full"}
previous:
  description: The verification tags the snapshot carried before the task.
  returned: always
  type: dict
  sample: {}
recorded:
  description: Whether the tags were written by this task (false in check mode and with O(record=false)).
  returned: always
  type: bool
  sample: true
elapsed_seconds:
  description: Wall time of the task.
  returned: always
  type: float
  sample: 6.1
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import blocks
from ansible_collections.blockwise.ebs.plugins.module_utils import verify as core
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.verify_job import DEFAULT_FS_CHECK_TIMEOUT
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.verify_job import VerifyJob


def main():
    argument_spec = dict(
        snapshot_id=dict(type="str", required=True),
        sample=dict(type="raw"),
        compare_to=dict(type="path"),
        manifest=dict(type="path"),
        fs_check=dict(type="str"),
        fs_check_timeout=dict(type="int", default=DEFAULT_FS_CHECK_TIMEOUT),
        fs_check_shell=dict(type="bool", default=False),
        tmp_dir=dict(type="path"),
        record=dict(type="bool", default=True),
        fail_on_mismatch=dict(type="bool", default=True),
        max_bad_blocks=dict(type="int", default=core.DEFAULT_MAX_BAD_BLOCKS),
        workers=dict(type="int", default=blocks.DEFAULT_WORKERS),
        progress_file=dict(type="path"),
    )
    module = aws.build_module(argument_spec, mutually_exclusive=[("compare_to", "manifest"), ("sample", "fs_check")])
    params = dict(module.params)
    if params.get("fs_check") and not params.get("tmp_dir") and not module.check_mode:
        params["tmp_dir"] = module.tmpdir
    try:
        job = VerifyJob(aws.client(module, "ebs", workers=params["workers"]), aws.client(module, "ec2"), params,
                        check_mode=module.check_mode, want_diff=module._diff)
        result, warnings = job.run()
    except blocks.BlockError as exc:
        failed = dict(getattr(exc, "result", None) or {})  # what was found before the failure, if anything
        failed.update(exc.details())
        failed["msg"] = str(exc)
        module.fail_json(**failed)
    for warning in warnings:
        module.warn(warning)
    if result["result"] != core.OK and params["fail_on_mismatch"]:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
