# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one verification read: the digest of every block read, which blocks could not be read.

The digests live in a :class:`DigestMap` preallocated for the blocks to read (36 bytes per block),
plus one byte per block saying whether it was read, so the worker threads only fill slots.
"""
from __future__ import annotations

from ansible_collections.blockwise.ebs.plugins.module_utils import verify as core
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap


class Reads:
    """The blocks to read (``to_read``, ascending) and what reading them found."""

    def __init__(self, listed, to_read, max_bad):
        self.listed = listed
        self.digests = DigestMap.for_indexes(to_read)
        self.read = bytearray(len(self.digests))
        self.unreadable = core.BadBlocks(max_bad)
        self.max_bad = max_bad
        self.stopped = False
        self.seconds = 0.0
        self.blocks_read = 0

    def handle(self, index, data, digest):
        """A block was read and its checksum verified (called on a worker thread)."""
        del data
        slot = self.digests.slot(index)
        if slot >= 0:
            self.digests.set_slot(slot, digest)
            self.read[slot] = 1

    def on_error(self, stop):
        """The downloader's ``on_block_error``: record an unreadable block, let a fatal error stop the run.

        Once ``max_bad`` blocks could not be read, ``stop`` is set: a snapshot with that many bad blocks
        is unreadable, and reading on would only take longer.
        """
        def record(index, exc):
            if core.block_error_kind(exc) != core.UNREADABLE:
                return False
            self.unreadable.add(index, exc.msg)
            if self.unreadable.count >= self.max_bad:
                self.stopped = True
                stop.set()
            return True

        return record

    def digest(self, index):
        """The digest read for ``index``; None for a block the snapshot does not hold (zeros) or did not read."""
        slot = self.digests.slot(index)
        if slot < 0 or not self.read[slot]:
            return None
        return self.digests.digest_at(slot)

    def unread(self, index):
        """True for a block the snapshot holds but that was not read (unreadable, or the run stopped)."""
        slot = self.digests.slot(index)
        return slot >= 0 and not self.read[slot]

    @property
    def complete(self):
        """Every block to read was read."""
        return not self.stopped and not self.unreadable.count and self.read.count(0) == 0

    def select(self, listing, sample):
        """The ``(index, token)`` of the listing that are to be read; a sample stops listing after its last block."""
        if not sample:
            yield from listing
            return
        wanted = iter(self.digests.indexes())
        nxt = next(wanted, None)
        for index, token in listing:
            while nxt is not None and nxt < index:
                nxt = next(wanted, None)
            if nxt is None:
                return
            if nxt == index:
                yield index, token
