# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compact per-block digests: the in-memory :class:`DigestMap`, the on-disk :class:`Manifest` and the
upload :class:`Journal`.

Only the standard library (and the collection's stdlib-only ``fileio``) is used here, so the formats
can be read by any tool.

Manifest file (all integers little-endian)::

    header   96 bytes   magic b"BWEBSMF1", u16 version (1), u16 flags (0), u32 block size,
                        u32 volume size (GiB), u32 run count R, u32 block count N,
                        32s snapshot id (ASCII, NUL padded), 32s content digest, 4 bytes reserved
    runs     R x 8      u32 first block index, u32 number of consecutive blocks
    digests  N x 32     SHA256 of each listed block, in index order
    trailer  32 bytes   SHA256 of everything above

So a manifest costs 32 bytes per block that holds data, plus 8 bytes per run of consecutive blocks:
64 KiB per GiB of data, a few bytes for a GiB of holes.

Journal file (append-only)::

    header   104 bytes  magic b"BWEBSJ1\\n", 64s client token, 32s snapshot id
    records  8 bytes    u32 block index, first 4 bytes of the block's SHA256

A record is appended after PutSnapshotBlock succeeded for that block; a torn trailing record (power
loss) is ignored. A final ``COMPLETE`` record (index 0xFFFFFFFF) notes that CompleteSnapshot was called.
"""
from __future__ import annotations

import array
import bisect
import hashlib
import os
import struct
import threading

from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import atomic_write
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import write_all

BLOCK_SIZE = 524288
DIGEST_SIZE = 32
ZERO_BLOCK = bytes(BLOCK_SIZE)
ZERO_BLOCK_DIGEST = hashlib.sha256(ZERO_BLOCK).digest()
CONTENT_PREFIX = "sha256:"


class ManifestError(Exception):
    """A manifest or journal file that cannot be used (wrong format, damaged, unreadable)."""


def _index_array(values=()):
    arr = array.array("I")
    if arr.itemsize != 4:  # pragma: no cover - every supported platform has a 4-byte unsigned int
        arr = array.array("L")
    arr.extend(values)
    return arr


class DigestMap:
    """Block index -> 32-byte digest for the blocks that hold data, in index order.

    Stored as an unsigned-int array of indexes and one bytearray of digests (36 bytes per block in
    memory), not as a dict: a 64 GiB image costs at most 4.5 MiB, a sparse one almost nothing.
    Build it in ascending order with :meth:`append`, or preallocate slots with :meth:`for_indexes`
    and fill them (from several threads) with :meth:`set_slot`.
    """

    __slots__ = ("_indexes", "_digests")

    def __init__(self, indexes=None, digests=None):
        self._indexes = indexes if indexes is not None else _index_array()
        self._digests = digests if digests is not None else bytearray()
        if len(self._digests) != DIGEST_SIZE * len(self._indexes):
            raise ValueError("digests do not match indexes")

    @classmethod
    def for_indexes(cls, indexes):
        """A map with the given ascending indexes and all-zero placeholder digests."""
        arr = _index_array(indexes)
        return cls(arr, bytearray(DIGEST_SIZE * len(arr)))

    @classmethod
    def from_items(cls, items):
        """From ``(index, digest)`` pairs in any order (later pairs win for the same index)."""
        merged = {}
        for index, digest in items:
            merged[int(index)] = bytes(digest)
        result = cls()
        for index in sorted(merged):
            result.append(index, merged[index])
        return result

    def append(self, index, digest):
        if len(digest) != DIGEST_SIZE:
            raise ValueError("a digest is 32 bytes")
        if self._indexes and index <= self._indexes[-1]:
            raise ValueError("indexes must be appended in ascending order")
        self._indexes.append(index)
        self._digests += digest

    def set_slot(self, slot, digest):
        start = slot * DIGEST_SIZE
        self._digests[start:start + DIGEST_SIZE] = digest

    def __len__(self):
        return len(self._indexes)

    def __eq__(self, other):
        return isinstance(other, DigestMap) and self._indexes == other._indexes and self._digests == other._digests

    def __repr__(self):
        return "DigestMap({0} blocks)".format(len(self))

    def slot(self, index):
        """Position of ``index`` in the map, or -1."""
        pos = bisect.bisect_left(self._indexes, index)
        if pos < len(self._indexes) and self._indexes[pos] == index:
            return pos
        return -1

    def __contains__(self, index):
        return self.slot(index) >= 0

    def get(self, index, default=None):
        pos = self.slot(index)
        if pos < 0:
            return default
        return bytes(self._digests[pos * DIGEST_SIZE:(pos + 1) * DIGEST_SIZE])

    def digest_at(self, slot):
        return bytes(self._digests[slot * DIGEST_SIZE:(slot + 1) * DIGEST_SIZE])

    def indexes(self):
        return self._indexes

    def items(self):
        view = memoryview(self._digests)
        for pos, index in enumerate(self._indexes):
            yield index, bytes(view[pos * DIGEST_SIZE:(pos + 1) * DIGEST_SIZE])

    def nonzero_items(self):
        """``(index, digest)`` of the blocks whose content is not all zeros."""
        for index, digest in self.items():
            if digest != ZERO_BLOCK_DIGEST:
                yield index, digest

    def content_digest(self):
        """See :func:`content_digest`."""
        return content_digest(self.nonzero_items())

    def runs(self):
        """``(first, count)`` for each run of consecutive indexes."""
        runs = []
        first = prev = None
        for index in self._indexes:
            if prev is not None and index == prev + 1:
                prev = index
                continue
            if first is not None:
                runs.append((first, prev - first + 1))
            first = prev = index
        if first is not None:
            runs.append((first, prev - first + 1))
        return runs

    @property
    def raw_digests(self):
        return self._digests


def content_digest(nonzero_items):
    """Identity of a volume's content: ``sha256:<hex>`` over (index, digest) of its non-zero blocks.

    Zero blocks and holes do not count, so a sparse image, the same image with its holes filled with
    zeros and the snapshot made from either all have the same content digest.
    """
    h = hashlib.sha256(b"blockwise.ebs content v1\0")
    h.update(struct.pack("<I", BLOCK_SIZE))
    pack = struct.Struct("<Q").pack
    for index, digest in nonzero_items:
        h.update(pack(index))
        h.update(digest)
    return CONTENT_PREFIX + h.hexdigest()


def _pad_id(value, size=32):
    raw = (value or "").encode("ascii")
    if len(raw) > size:
        raise ManifestError("identifier too long for the format: {0!r}".format(value))
    return raw.ljust(size, b"\0")


def _unpad_id(raw):
    return raw.rstrip(b"\0").decode("ascii")


class Manifest:
    """The digests of a snapshot's blocks, plus the snapshot id and volume size they describe."""

    MAGIC = b"BWEBSMF1"
    VERSION = 1
    HEADER = struct.Struct("<8sHHIIII32s32s4x")
    RUN = struct.Struct("<II")

    def __init__(self, snapshot_id, volume_size, blocks, content=None):
        self.snapshot_id = snapshot_id or ""
        self.volume_size = int(volume_size)
        self.blocks = blocks
        self._content = content

    @property
    def content_digest(self):
        if self._content is None:
            self._content = self.blocks.content_digest()
        return self._content

    def __repr__(self):
        return "Manifest({0}, {1} GiB, {2} blocks)".format(self.snapshot_id, self.volume_size, len(self.blocks))

    def to_bytes(self):
        runs = self.blocks.runs()
        content = bytes.fromhex(self.content_digest[len(CONTENT_PREFIX):])
        parts = [self.HEADER.pack(self.MAGIC, self.VERSION, 0, BLOCK_SIZE, self.volume_size, len(runs),
                                  len(self.blocks), _pad_id(self.snapshot_id), content)]
        parts.extend(self.RUN.pack(first, count) for first, count in runs)
        parts.append(bytes(self.blocks.raw_digests))
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()

    @classmethod
    def from_bytes(cls, data, source="manifest"):
        if len(data) < cls.HEADER.size + DIGEST_SIZE or data[:8] != cls.MAGIC:
            raise ManifestError("{0} is not a blockwise.ebs manifest".format(source))
        body, trailer = data[:-DIGEST_SIZE], data[-DIGEST_SIZE:]
        if hashlib.sha256(body).digest() != trailer:
            raise ManifestError("{0} is damaged (checksum mismatch)".format(source))
        (_magic, version, _flags, block_size, volume_size, nruns, nblocks, snap,
         content) = cls.HEADER.unpack_from(body, 0)
        if version != cls.VERSION or block_size != BLOCK_SIZE:
            raise ManifestError("{0} has an unsupported version or block size".format(source))
        offset = cls.HEADER.size
        if len(body) != offset + nruns * cls.RUN.size + nblocks * DIGEST_SIZE:
            raise ManifestError("{0} is damaged (wrong length)".format(source))
        indexes = _index_array()
        for first, count in cls.RUN.iter_unpack(body[offset:offset + nruns * cls.RUN.size]):
            indexes.extend(range(first, first + count))
        if len(indexes) != nblocks:
            raise ManifestError("{0} is damaged (run table)".format(source))
        offset += nruns * cls.RUN.size
        blocks = DigestMap(indexes, bytearray(body[offset:]))
        return cls(_unpad_id(snap), volume_size, blocks, CONTENT_PREFIX + content.hex())

    def write(self, path):
        atomic_write(path, self.to_bytes())

    @classmethod
    def read(cls, path):
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ManifestError("cannot read manifest {0}: {1}".format(path, exc.strerror or exc))
        return cls.from_bytes(data, source="manifest {0}".format(path))


class Journal:
    """Append-only record of the blocks confirmed written to one pending snapshot."""

    MAGIC = b"BWEBSJ1\n"
    HEADER = struct.Struct("<8s64s32s")
    RECORD = struct.Struct("<I4s")
    COMPLETE = 0xFFFFFFFF

    def __init__(self, path, token, snapshot_id, fd):
        self.path = path
        self.token = token
        self.snapshot_id = snapshot_id
        self._fd = fd
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path, token, snapshot_id):
        """A new, empty journal (replacing any earlier one at ``path``)."""
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        atomic_write(path, cls.HEADER.pack(cls.MAGIC, _pad_id(token, 64), _pad_id(snapshot_id)), mode=0o600)
        return cls.open_existing(path, token, snapshot_id)

    @classmethod
    def open_existing(cls, path, token, snapshot_id):
        """Reopen a journal to append to it (a torn trailing record is cut off first)."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        size = os.fstat(fd).st_size
        extra = (size - cls.HEADER.size) % cls.RECORD.size if size > cls.HEADER.size else 0
        if extra:
            os.ftruncate(fd, size - extra)
        return cls(path, token, snapshot_id, fd)

    @classmethod
    def load(cls, path):
        """``JournalState`` of the journal at ``path``, or None when there is none (or it is unusable)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        if len(data) < cls.HEADER.size or data[:8] != cls.MAGIC:
            return None
        _magic, token, snap = cls.HEADER.unpack_from(data, 0)
        confirmed = {}
        completed = False
        body = data[cls.HEADER.size:]
        usable = len(body) - len(body) % cls.RECORD.size
        for index, prefix in cls.RECORD.iter_unpack(body[:usable]):
            if index == cls.COMPLETE:
                completed = True
            else:
                confirmed[index] = prefix
        return JournalState(path, _unpad_id(token), _unpad_id(snap), confirmed, completed)

    def append(self, index, digest):
        record = self.RECORD.pack(index, digest[:4])
        with self._lock:
            if self._fd is not None:
                write_all(self._fd, record)

    def mark_complete(self):
        with self._lock:
            if self._fd is not None:
                write_all(self._fd, self.RECORD.pack(self.COMPLETE, b"\0\0\0\0"))
                os.fsync(self._fd)

    def close(self):
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def remove(self):
        self.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class JournalState:
    """What a journal file says: the token and snapshot it belongs to and the confirmed blocks."""

    def __init__(self, path, token, snapshot_id, confirmed, completed):
        self.path = path
        self.token = token
        self.snapshot_id = snapshot_id
        self.confirmed = confirmed
        self.completed = completed

    def confirmed_blocks(self, expected_digest):
        """Sorted indexes whose record matches ``expected_digest(index)`` (None: not expected)."""
        good = []
        for index, prefix in self.confirmed.items():
            digest = expected_digest(index)
            if digest is not None and digest[:4] == prefix:
                good.append(index)
        good.sort()
        return good
