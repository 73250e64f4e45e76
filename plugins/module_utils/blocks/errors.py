# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors of the block streaming core: each ``str(exc)`` is a complete, user-facing message."""
from __future__ import annotations


class BlockError(Exception):
    """A transfer that cannot go on. ``str(exc)`` is a complete, user-facing message."""

    def __init__(self, msg, block_index=None, code=None, snapshot_id=None, option=None):
        super().__init__(msg)
        self.msg = msg
        self.block_index = block_index
        self.code = code
        self.snapshot_id = snapshot_id
        self.option = option

    def details(self):
        """Extra keys for the failed module result."""
        out = {}
        for key in ("block_index", "code", "snapshot_id", "option"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class InputError(BlockError):
    """A bad option value; always raised before any AWS write."""


class TransferError(BlockError):
    """An AWS call failed for good (fail-fast class, or retries exhausted)."""


class Cancelled(BlockError):
    """A worker stopped because another one failed."""
