# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blocks that differ between two snapshots (or that hold data in one), fully paginated."""
from __future__ import annotations


from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PAGE_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import refuse_empty
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks


def changed_blocks_info(ebs, second_snapshot_id, first_snapshot_id=None, return_block_indexes=False, retry=None,
                        page_size=PAGE_SIZE):
    """Blocks that differ between two snapshots (or that hold data in one), fully paginated."""
    retry = retry or Retrier()
    refuse_empty({"first_snapshot_id": first_snapshot_id, "second_snapshot_id": second_snapshot_id},
                 ("first_snapshot_id", "second_snapshot_id"))
    try:
        if first_snapshot_id:
            listing = PagedBlocks(ebs, retry, first_snapshot_id=first_snapshot_id, second_snapshot_id=second_snapshot_id,
                                  page_size=page_size)
        else:
            listing = PagedBlocks(ebs, retry, snapshot_id=second_snapshot_id, page_size=page_size)
    except TransferError as exc:
        if not first_snapshot_id:
            raise InputError("second_snapshot_id: cannot list the blocks of {0}: {1}".format(second_snapshot_id, exc.msg),
                             option="second_snapshot_id", code=exc.code)
        # Name the snapshot AWS complains about; when its message names neither, both are suspects.
        # Search AWS's own words: the retry wrapper's message always names the second snapshot.
        said = getattr(exc, "aws_message", None) or exc.msg or ""
        named = [name for name, value in (("first_snapshot_id", first_snapshot_id), ("second_snapshot_id", second_snapshot_id))
                 if value in said]
        label = named[0] if len(named) == 1 else "first_snapshot_id or second_snapshot_id"
        raise InputError("{0}: cannot list the blocks that changed from {1} to {2}: {3}".format(
            label, first_snapshot_id, second_snapshot_id, exc.msg), option=label, code=exc.code)
    indexes = []
    count = 0
    removed = 0
    for item in listing:
        count += 1
        if first_snapshot_id and item[2] is None:
            removed += 1
        if return_block_indexes:
            indexes.append(item[0])
    result = {
        "changed": False,
        "first_snapshot_id": first_snapshot_id,
        "second_snapshot_id": second_snapshot_id,
        "changed_blocks": count,
        "changed_bytes": count * BLOCK_SIZE,
        "blocks_only_in_first": removed,
        "volume_size": listing.volume_size,
        "block_size": listing.block_size,
        "pages": listing.pages,
    }
    if return_block_indexes:
        result["block_indexes"] = indexes
    return result
