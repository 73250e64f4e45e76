# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning of block transfers: constants, sizes, the put plan, checksums, tokens. No I/O."""
from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError


GIB = 1024 ** 3
BLOCKS_PER_GIB = GIB // BLOCK_SIZE
MAX_VOLUME_GIB = 65536
MIN_WORKERS = 1
MAX_WORKERS = 128
# Chosen with bench/bench_blocks.py: see docs/performance.md and the ``workers`` option.
DEFAULT_WORKERS = 64
# The EBS direct APIs return at most 10000 blocks per page.
PAGE_SIZE = 10000
CONTENT_TAG = "blockwise:content"
PARENT_TAG = "blockwise:parent"
# Which disk a snapshot without a real source volume belongs to: retention groups by it.
LINEAGE_TAG = "blockwise:lineage"
RESERVED_TAGS = (CONTENT_TAG, PARENT_TAG, LINEAGE_TAG)
DEFAULT_STATE_DIR = "~/.ansible/blockwise_ebs"
NOT_FOUND_GRACE_SECONDS = 120.0


def validate_workers(workers, option="workers"):
    try:
        value = int(workers)
    except (TypeError, ValueError):
        raise InputError("{0} must be an integer between {1} and {2}, got {3!r}".format(
            option, MIN_WORKERS, MAX_WORKERS, workers), option=option)
    if not MIN_WORKERS <= value <= MAX_WORKERS:
        raise InputError("{0} must be between {1} and {2}, got {3}".format(option, MIN_WORKERS, MAX_WORKERS, value),
                         option=option)
    return value


def refuse_empty(params, options):
    """An option given as an empty string is refused, never taken as omitted: ``"{{ last | default('') }}"``
    must not turn an incremental upload, an incremental restore or a comparison into another operation."""
    for option in options:
        value = params.get(option)
        if value is not None and not str(value).strip():
            raise InputError("{0} is an empty string; give a value or omit the option (an empty value is not "
                             "taken as omitted)".format(option), option=option)


def plan_volume_size(image_bytes, volume_size=None, parent_volume_size=None):
    """The volume size (GiB) for an image of ``image_bytes``: given, or the smallest that fits.

    Raises :class:`InputError` for a size smaller than the image (or the parent), or above 64 TiB.
    """
    needed = max(1, -(-int(image_bytes) // GIB))
    if volume_size is None:
        size = max(needed, int(parent_volume_size or 0))
    else:
        size = int(volume_size)
        if size < 1 or size > MAX_VOLUME_GIB:
            raise InputError("volume_size must be between 1 and {0} GiB, got {1}".format(MAX_VOLUME_GIB, size),
                             option="volume_size")
        if size < needed:
            raise InputError("volume_size={0} GiB is smaller than src ({1} bytes needs at least {2} GiB)".format(
                size, image_bytes, needed), option="volume_size")
        if parent_volume_size and size < int(parent_volume_size):
            raise InputError("volume_size={0} GiB is smaller than the parent snapshot's volume ({1} GiB)".format(
                size, parent_volume_size), option="volume_size")
    if size > MAX_VOLUME_GIB:
        raise InputError("src needs {0} GiB, above the EBS limit of {1} GiB".format(size, MAX_VOLUME_GIB),
                         option="volume_size")
    return size


class ParentBlocks:
    """What is known of the parent snapshot's blocks.

    ``digests``: a :class:`DigestMap` from the parent's manifest (exact: unchanged blocks can be
    skipped). ``indexes``: only which blocks hold data (from ListSnapshotBlocks): every non-zero
    block is written, and zero blocks where the parent has data are written as zeros.
    """

    def __init__(self, snapshot_id, digests=None, indexes=None):
        if (digests is None) == (indexes is None):
            raise ValueError("give digests or indexes")
        self.snapshot_id = snapshot_id
        self.digests = digests
        self.indexes = sorted(indexes) if indexes is not None else None
        self._index_set = set(self.indexes) if indexes is not None else None

    @property
    def from_manifest(self):
        return self.digests is not None

    def data_indexes(self):
        return self.digests.indexes() if self.digests is not None else self.indexes

    def has_data(self, index):
        if self.digests is not None:
            return index in self.digests
        return index in self._index_set

    def digest(self, index):
        return self.digests.get(index) if self.digests is not None else None


class PutPlan:
    """The outcome of :func:`plan_put`: which blocks to write, how many are unchanged or omitted zeros."""

    def __init__(self, blocks_total, write, unchanged, encrypted, parent_from_manifest):
        self.blocks_total = blocks_total
        self.write = write
        self.unchanged = unchanged
        self.encrypted = encrypted
        self.parent_from_manifest = parent_from_manifest

    @property
    def blocks_written(self):
        return len(self.write)

    @property
    def blocks_unchanged(self):
        return len(self.unchanged)

    @property
    def blocks_skipped_zero(self):
        return self.blocks_total - len(self.write) - len(self.unchanged)

    @property
    def bytes_to_write(self):
        return len(self.write) * BLOCK_SIZE

    def digest(self):
        """Identity of the write set (part of the ClientToken)."""
        h = hashlib.sha256()
        h.update(self.write.tobytes() if hasattr(self.write, "tobytes") else repr(list(self.write)).encode())
        return h.hexdigest()

    def to_dict(self):
        return {
            "blocks_total": self.blocks_total,
            "blocks_to_write": self.blocks_written,
            "blocks_skipped_zero": self.blocks_skipped_zero,
            "blocks_unchanged": self.blocks_unchanged,
            "bytes_to_write": self.bytes_to_write,
            "encrypted": self.encrypted,
            "parent_from_manifest": self.parent_from_manifest,
        }


def _union_sorted(a, b):
    """Ascending union of two ascending sequences, as a generator."""
    previous = None
    for value in heapq.merge(a, b):
        if value != previous:
            yield value
            previous = value


def _index_array(values=()):
    return DigestMap.for_indexes(values).indexes()


def plan_put(image, blocks_total, parent=None, encrypted=False):
    """Decide, per block, write / unchanged / omitted zero block.

    ``image``: :class:`DigestMap` of the image's data blocks (zero-content blocks carry
    ``ZERO_BLOCK_DIGEST``; holes are absent). ``parent``: :class:`ParentBlocks` or None.

    A zero block is omitted only where that is provably safe: the snapshot is not encrypted and the
    parent has no data at that index (so the block reads as zeros either way). A block that is zero
    now but holds data in the parent is written (as zeros), unless the parent's manifest shows the
    parent's block is zero too. A non-zero block is unchanged only when the parent's manifest has
    the same digest.
    """
    if encrypted:
        candidates = range(blocks_total)
    elif parent is None:
        candidates = image.indexes()
    else:
        candidates = _union_sorted(image.indexes(), parent.data_indexes())
    write = _index_array()
    unchanged = _index_array()
    for index in candidates:
        digest = image.get(index)
        zero = digest is None or digest == ZERO_BLOCK_DIGEST
        if parent is not None and parent.has_data(index):
            pdigest = parent.digest(index)
            if pdigest is not None and pdigest == (ZERO_BLOCK_DIGEST if zero else digest):
                unchanged.append(index)
            else:
                write.append(index)
        elif not zero or encrypted:
            write.append(index)
    for index in write[-1:] + unchanged[-1:]:
        if index >= blocks_total:
            raise InputError("the image or its parent has block {0}, beyond the volume ({1} blocks)".format(
                index, blocks_total), option="volume_size")
    return PutPlan(blocks_total, write, unchanged, bool(encrypted), parent is not None and parent.from_manifest)


def block_digest(image, index):
    """The digest of block ``index`` of the image (holes are zero blocks)."""
    digest = image.get(index)
    return ZERO_BLOCK_DIGEST if digest is None else digest


def snapshot_blocks_after_put(image, plan):
    """:class:`DigestMap` of the new snapshot: every block it holds (written or inherited)."""
    result = DigestMap()
    for index in _union_sorted(plan.write, plan.unchanged):
        result.append(index, block_digest(image, index))
    return result


def linear_checksum(digests):
    """The LINEAR aggregate: base64 SHA256 over the concatenated 32-byte digests, in index order."""
    h = hashlib.sha256()
    for digest in digests:
        h.update(digest)
    return base64.b64encode(h.digest()).decode("ascii")


def b64(digest):
    return base64.b64encode(digest).decode("ascii")


def client_token(**fields):
    """Deterministic StartSnapshot ClientToken from the inputs that define the snapshot."""
    blob = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return "bwebs-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:58]


def journal_path(state_dir, src):
    """The journal of uploads of ``src`` (by its real path) under ``state_dir``."""
    key = hashlib.sha256(os.path.realpath(os.path.expanduser(src)).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(os.path.expanduser(state_dir), "put-{0}.journal".format(key))


def lock_path(state_dir, src):
    """The lock that serialises uploads of ``src`` on this host."""
    return journal_path(state_dir, src)[:-len(".journal")] + ".lock"


def restore_lock_path(state_dir, dest):
    """The lock that serialises restores into ``dest`` (by its real path) on this host."""
    key = hashlib.sha256(os.path.realpath(os.path.expanduser(dest)).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(os.path.expanduser(state_dir), "get-{0}.lock".format(key))


def tag_list(tags):
    return [{"Key": str(k), "Value": str(v)} for k, v in sorted((tags or {}).items())]


def tag_dict(tag_items):
    return dict((t.get("Key"), t.get("Value")) for t in (tag_items or []))
