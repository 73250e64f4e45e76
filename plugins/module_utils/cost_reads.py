# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The block listings ``snapshot_cost.chain_cost`` needs: ListSnapshotBlocks of the oldest snapshot of a chain and
ListChangedBlocks between consecutive ones, fully paginated, at most ``workers`` listings at a time."""
from __future__ import annotations

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.pipeline import PagedBlocks
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier


class ChainReadError(Exception):
    """A listing of the chain failed; the message names the snapshot(s)."""


def listing(ebs, first, second):
    """``(changed, removed)`` block index sets from ``first`` (None: the oldest of the chain) to ``second``."""
    retry = Retrier()
    if first is None:
        return {index for index, _token in PagedBlocks(ebs, retry, snapshot_id=second)}, set()
    changed, removed = set(), set()
    for index, _first_token, second_token in PagedBlocks(ebs, retry, first_snapshot_id=first, second_snapshot_id=second):
        changed.add(index)
        if second_token is None:
            removed.add(index)
    return changed, removed


def read_changes(ebs, chain, workers):
    """``changes`` for ``snapshot_cost.chain_cost(chain, changes)``; raises ``ChainReadError`` naming what failed."""
    pairs = [(chain[i - 1] if i else None, chain[i]) for i in range(len(chain))]
    changes = []
    for (first, second), result, error in fleet.run_bounded(lambda pair: listing(ebs, *pair), pairs, workers):
        if error is not None:
            text = (getattr(error, "msg", None) or str(error)) if isinstance(error, BlockError) else str(error)
            raise ChainReadError("cannot list the blocks of {0}{1}: {2}".format(second, " since " + first if first else "", text))
        changes.append(result)
    return changes
