# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block streaming core: local images and block devices <-> EBS snapshots through the EBS direct APIs.

One module per layer, from pure to effectful:

* ``errors``: :class:`BlockError` and its kinds; ``str(exc)`` is a complete, user-facing message.
* ``plan``: pure planning, data in and data out: :func:`plan_put` (what to write, what is an omitted
  zero block, what is unchanged from the parent), :func:`snapshot_blocks_after_put`,
  :func:`linear_checksum`, :func:`client_token`, :func:`plan_volume_size`, :func:`validate_workers`.
* ``source``: :class:`BlockSource` reads a file or block device block by block; holes of sparse files
  are found with ``SEEK_DATA``/``SEEK_HOLE`` and never read.
* ``retry``: :func:`classify_error` and :class:`Retrier`.
* ``pipeline``: :func:`run_pool`, :func:`hash_blocks`, :class:`BlockUploader`, :class:`BlockDownloader`
  and :class:`PagedBlocks` take a boto3 ``ebs`` client as a parameter, run a bounded pool of worker
  threads (one block per worker in flight) and retry per :class:`Retrier`.
* ``snapshots``: EC2 snapshot look-ups and waiting, shared by the jobs.
* ``job``, ``put``, ``get``, ``changed``: :class:`PutJob`, :class:`GetJob` and
  :func:`changed_blocks_info` wire the above together for the modules. They return result
  dictionaries and raise :class:`BlockError`; they never exit.

Nothing here calls ``exit_json``/``fail_json``; nothing needs Ansible except the error helpers of
``aws.py``. This package re-exports the names the modules, tests and benchmarks use.
"""
from __future__ import annotations

import os  # noqa: F401  (tests patch ``blocks.os``)

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import content_digest
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import Cancelled
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import BLOCKS_PER_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import CONTENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_STATE_DIR
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import DEFAULT_WORKERS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import MAX_VOLUME_GIB
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import LINEAGE_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PARENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import ParentBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PutPlan
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import client_token
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import journal_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import linear_checksum
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import plan_volume_size
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import snapshot_blocks_after_put
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import validate_workers
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.source import BlockSource
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import FAIL
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import RETRY
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import RETRY_NOT_FOUND
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import classify_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockDownloader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import BlockUploader
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import hash_blocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import run_pool
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.snapshots import wait_for_snapshot
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.put import PutJob
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.get import GetJob
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.changed import changed_blocks_info

__all__ = [
    "BLOCK_SIZE", "BLOCKS_PER_GIB", "GIB", "MAX_VOLUME_GIB", "DEFAULT_WORKERS", "DEFAULT_STATE_DIR", "CONTENT_TAG",
    "PARENT_TAG", "LINEAGE_TAG", "BlockError", "InputError", "TransferError", "Cancelled", "BlockSource", "run_pool", "hash_blocks",
    "validate_workers", "plan_volume_size", "ParentBlocks", "PutPlan", "plan_put", "snapshot_blocks_after_put",
    "linear_checksum", "client_token", "journal_path", "classify_error", "Retrier", "RETRY", "RETRY_NOT_FOUND", "FAIL",
    "PagedBlocks", "BlockUploader", "BlockDownloader", "wait_for_snapshot", "PutJob", "GetJob", "changed_blocks_info",
    "content_digest", "DigestMap", "Manifest", "ZERO_BLOCK_DIGEST",
]
