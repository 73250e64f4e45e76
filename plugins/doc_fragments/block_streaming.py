# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Options shared by the modules that move blocks through the EBS direct APIs.
    DOCUMENTATION = r"""
options:
  workers:
    description:
      - How many blocks are transferred at the same time (worker threads, each with its own HTTP connection).
      - Memory use is about O(workers) x 512 KiB, whatever the size of the image or snapshot.
      - "The default of V(64) comes from the collection's benchmark (C(bench/bench_blocks.py), see the performance
        report): at 100 ms per request, the latency AWS's EBS direct API performance guidance reasons with, throughput
        grows almost linearly up to 64 workers (over 25 times a sequential loop) and gains only a few percent more at
        128. 64 workers at 100 ms make about 640 requests per second."
      - Lower it when several uploads or downloads share an account and region, to stay clear of the EBS direct API
        request quotas (throttled requests are retried, but cost time).
      - Must be between 1 and 128.
    type: int
    default: 64
  progress_file:
    description:
      - Path of a small JSON file that is replaced atomically (about twice a second) while blocks move, for callers that
        poll a task started with C(async).
      - "Keys: C(operation), C(state) (V(hashing), V(listing), V(uploading), V(downloading), V(completing), V(waiting),
        V(done) or V(failed)), C(snapshot_id), C(blocks_done), C(blocks_total), C(bytes_done), C(bytes_total),
        C(percent), C(mib_s), C(eta_seconds), C(elapsed_seconds), C(updated_at) (Unix time), C(pid), and C(message)
        when the task failed."
      - The directory must exist. The file is left in place when the task ends. If O(progress_file) is a symlink,
        its target is replaced.
      - An existing file is only replaced if it is empty or a progress file of this collection; any other file
        fails the task before anything is read or written. Nothing is written in check mode, nor for a task that
        fails on its options.
    type: path
notes:
  - "Every local path the module reads or writes (C(src) or C(dest), O(manifest), O(progress_file), the journal and
    lock under O(state_dir), and the temporary files next to them) is compared with the others before any I/O, by
    the file it resolves to (symlinks, C(..) and relative paths resolved, hard links by device and inode): two
    options naming the same file fail the task, naming both."
  - "Every local write is checked: a write that does not complete (C(ENOSPC), C(EDQUOT), C(EIO), C(EROFS)) fails the
    task with a message naming the option, the path and how many bytes were written, and the progress file ends in
    V(failed)."
  - Blocks are 512 KiB (524288 bytes), the EBS direct API block size; a snapshot of N GiB has N x 2048 blocks.
  - "Retries with jittered exponential backoff: throttling (including C(RequestThrottledException)), HTTP 5xx, connection
    errors, C(Failed to read block data), and C(ResourceNotFoundException) in the first two minutes after
    C(StartSnapshot). Access denied and validation errors fail at once; the message names the block index and carries
    the AWS error message. On failure no new block is started and all workers are joined before the task returns."
"""
