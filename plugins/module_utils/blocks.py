# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block streaming core: local images and block devices <-> EBS snapshots through the EBS direct APIs.

Layers, from pure to effectful:

* :class:`BlockSource` reads a file or block device block by block; holes of sparse files are found
  with ``SEEK_DATA``/``SEEK_HOLE`` and never read.
* Pure planning: :func:`plan_put` (what to write, what is an omitted zero block, what is unchanged
  from the parent), :func:`snapshot_blocks_after_put`, :func:`linear_checksum`, :func:`client_token`,
  :func:`plan_volume_size`, :func:`validate_workers`. Data in, data out, no I/O.
* Pipelines: :func:`hash_blocks`, :class:`BlockUploader`, :class:`BlockDownloader` and
  :class:`PagedBlocks` take a boto3 ``ebs`` client as a parameter, run a bounded pool of worker
  threads (one block per worker in flight) and retry per :class:`Retrier`.
* Jobs: :class:`PutJob`, :class:`GetJob` and :func:`changed_blocks_info` wire the above together for
  the modules. They return result dictionaries and raise :class:`BlockError`; they never exit.

Nothing here calls ``exit_json``/``fail_json``; nothing needs Ansible except the error helpers of
``aws.py``.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import heapq
import json
import os
import random
import stat
import tempfile
import threading
import time

try:
    import botocore.exceptions
except ImportError:  # pragma: no cover - handled by AnsibleAWSModule
    pass

from ansible_collections.blockwise.ebs.plugins.module_utils.aws import error_code
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import error_message
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import is_access_denied
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import is_retryable
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ManifestError
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import content_digest
from ansible_collections.blockwise.ebs.plugins.module_utils.progress import MIB
from ansible_collections.blockwise.ebs.plugins.module_utils.progress import Progress

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
RESERVED_TAGS = (CONTENT_TAG, PARENT_TAG)
DEFAULT_STATE_DIR = "~/.ansible/blockwise_ebs"
NOT_FOUND_GRACE_SECONDS = 120.0


# --------------------------------------------------------------------------------------------- errors

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


# --------------------------------------------------------------------------------------------- source

class BlockSource:
    """A raw image file or block device read in 512 KiB blocks (the last one zero-padded)."""

    def __init__(self, path, option="src"):
        self.path = path
        self.option = option
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InputError("{0}: {1} does not exist".format(option, path), option=option)
        except OSError as exc:
            raise InputError("{0}: cannot access {1}: {2}".format(option, path, exc.strerror), option=option)
        if stat.S_ISDIR(st.st_mode):
            raise InputError("{0}: {1} is a directory, not an image file or block device".format(option, path),
                             option=option)
        self.is_device = stat.S_ISBLK(st.st_mode)
        if not (self.is_device or stat.S_ISREG(st.st_mode)):
            raise InputError("{0}: {1} is not a regular file or block device".format(option, path), option=option)
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise InputError("{0}: {1} is not readable: {2}".format(option, path, exc.strerror), option=option)
        if self.is_device:
            self.size = os.lseek(self.fd, 0, os.SEEK_END)
        else:
            self.size = os.fstat(self.fd).st_size

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def block_count(self):
        """Blocks covered by the source (the last one may be partial)."""
        return (self.size + BLOCK_SIZE - 1) // BLOCK_SIZE

    def data_extents(self, limit=None):
        """``(start, end)`` byte ranges that may hold data; holes are skipped without reading.

        Without ``SEEK_DATA`` support (block devices, some file systems) the whole source is one extent.
        """
        size = self.size if limit is None else min(self.size, limit)
        if size <= 0:
            return
        if self.is_device or not hasattr(os, "SEEK_DATA"):
            yield (0, size)
            return
        offset = 0
        while offset < size:
            try:
                start = os.lseek(self.fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    return
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                    yield (offset, size)
                    return
                raise
            if start >= size:
                return
            try:
                end = os.lseek(self.fd, start, os.SEEK_HOLE)
            except OSError:
                end = size
            end = min(end, size)
            if end <= start:  # pragma: no cover - defensive against odd file systems
                end = size
            yield (start, end)
            offset = end

    def data_block_indexes(self, limit=None):
        """Ascending indexes of the blocks that overlap a data extent."""
        last = -1
        for start, end in self.data_extents(limit):
            first = max(start // BLOCK_SIZE, last + 1)
            stop = (end - 1) // BLOCK_SIZE
            if first <= stop:
                yield from range(first, stop + 1)
                last = stop

    def read_into(self, index, buf):
        """Fill ``buf`` (a 512 KiB bytearray) with block ``index``, zero-padded past the end."""
        offset = index * BLOCK_SIZE
        got = 0
        view = memoryview(buf)
        while got < BLOCK_SIZE:
            n = os.preadv(self.fd, [view[got:]], offset + got)
            if n <= 0:
                break
            got += n
        if got < BLOCK_SIZE:
            view[got:] = ZERO_BLOCK[:BLOCK_SIZE - got]
        return buf

    def read_block(self, index):
        """Block ``index`` as bytes, zero-padded past the end."""
        offset = index * BLOCK_SIZE
        data = os.pread(self.fd, BLOCK_SIZE, offset)
        if len(data) < BLOCK_SIZE:
            rest = [data]
            got = len(data)
            while got < BLOCK_SIZE and data:
                data = os.pread(self.fd, BLOCK_SIZE - got, offset + got)
                rest.append(data)
                got += len(data)
            data = b"".join(rest)
            if len(data) < BLOCK_SIZE:
                data += ZERO_BLOCK[:BLOCK_SIZE - len(data)]
        return data


# --------------------------------------------------------------------------------------------- pool

def run_pool(items, fn, workers, stop=None):
    """Call ``fn(item)`` for every item on ``workers`` threads; the first exception stops the rest.

    ``items`` is consumed lazily under a lock (it may page through an API), so at most ``workers``
    items are in flight. On failure no new item is taken, workers finish or abandon (see
    :class:`Retrier`) their current item, all threads are joined, and the first error is raised.
    """
    stop = stop if stop is not None else threading.Event()
    iterator = iter(items)
    lock = threading.Lock()
    errors = []

    def worker():
        while not stop.is_set():
            with lock:
                if stop.is_set():
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                except BaseException as exc:  # pylint: disable=broad-except
                    errors.append(exc)
                    stop.set()
                    return
            try:
                fn(item)
            except BaseException as exc:  # pylint: disable=broad-except
                errors.append(exc)
                stop.set()
                return

    count = max(1, int(workers))
    threads = [threading.Thread(target=worker, name="blockwise-{0}".format(i), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join()
        raise
    if errors:
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors)[0]


def hash_blocks(source, indexes, workers, progress=None, stop=None):
    """SHA256 of each listed block, computed on ``workers`` threads -> :class:`DigestMap`."""
    digests = DigestMap.for_indexes(indexes)
    local = threading.local()
    sha256 = hashlib.sha256

    def work(item):
        slot, index = item
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(BLOCK_SIZE)
        source.read_into(index, buf)
        digests.set_slot(slot, sha256(buf).digest())
        if progress is not None:
            progress.advance(1, BLOCK_SIZE)

    try:
        run_pool(enumerate(digests.indexes()), work, workers, stop)
    except OSError as exc:
        raise BlockError("{0}: reading {1} failed: {2}".format(source.option, source.path, exc.strerror or exc),
                         option=source.option)
    return digests


def hash_workers(workers):
    """Threads for hashing: hashing is CPU-bound, so about one per core (at least 2 for I/O overlap)."""
    return max(1, min(int(workers), max(2, os.cpu_count() or 1)))


# --------------------------------------------------------------------------------------------- planning

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
    key = hashlib.sha256(os.path.realpath(src).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(os.path.expanduser(state_dir), "put-{0}.journal".format(key))


def tag_list(tags):
    return [{"Key": str(k), "Value": str(v)} for k, v in sorted((tags or {}).items())]


def tag_dict(tag_items):
    return dict((t.get("Key"), t.get("Value")) for t in (tag_items or []))


# --------------------------------------------------------------------------------------------- retries

RETRY = "retry"
RETRY_NOT_FOUND = "retry-not-found"
FAIL = "fail"


def classify_error(exc, started_at=None, now=None, grace=NOT_FOUND_GRACE_SECONDS):
    """``retry`` (throttling, 5xx, connection trouble, "Failed to read block data"),
    ``retry-not-found`` (ResourceNotFound shortly after StartSnapshot) or ``fail``."""
    if not isinstance(exc, getattr(botocore.exceptions, "BotoCoreError", ())) and \
            not isinstance(exc, getattr(botocore.exceptions, "ClientError", ())):
        return FAIL
    if is_access_denied(exc):
        return FAIL
    if is_retryable(exc):
        return RETRY
    message = error_message(exc)
    if "failed to read block data" in message.lower():
        return RETRY
    if error_code(exc) in ("ResourceNotFoundException", "ResourceNotFound") and started_at is not None:
        now = time.monotonic() if now is None else now
        if now - started_at < grace:
            return RETRY_NOT_FOUND
    return FAIL


class Retrier:
    """Retry one AWS call with full-jitter exponential backoff, per the error classes above.

    Backoff waits on ``stop``: when another worker has failed, a waiting call gives up at once.
    """

    def __init__(self, attempts=10, base_delay=0.2, max_delay=10.0, not_found_grace=NOT_FOUND_GRACE_SECONDS,
                 sleep=None, rng=None, clock=time.monotonic):
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.not_found_grace = not_found_grace
        self._sleep = sleep
        self._rng = rng or random.random
        self._clock = clock
        self.retries = 0
        self._lock = threading.Lock()

    def _wait(self, delay, stop):
        if self._sleep is not None:
            self._sleep(delay)
            return False
        if stop is not None:
            return stop.wait(delay)
        time.sleep(delay)
        return False

    def call(self, fn, what, block_index=None, snapshot_id=None, started_at=None, stop=None, **kwargs):
        attempt = 0
        while True:
            try:
                return fn(**kwargs)
            except Exception as exc:  # pylint: disable=broad-except
                kind = classify_error(exc, started_at, self._clock(), self.not_found_grace)
                if kind == RETRY:
                    attempt += 1
                    if attempt >= self.attempts:
                        raise self._error(exc, what, block_index, snapshot_id,
                                          " (gave up after {0} attempts)".format(attempt))
                    delay = self._rng() * min(self.max_delay, self.base_delay * (2 ** attempt))
                elif kind == RETRY_NOT_FOUND:
                    delay = min(5.0, 0.5 + self._rng() * 2.0)
                else:
                    raise self._error(exc, what, block_index, snapshot_id, "")
                with self._lock:
                    self.retries += 1
                if self._wait(delay, stop):
                    raise Cancelled("cancelled", block_index=block_index, snapshot_id=snapshot_id)

    @staticmethod
    def _error(exc, what, block_index, snapshot_id, suffix):
        where = ""
        if block_index is not None:
            where += " for block {0}".format(block_index)
        if snapshot_id:
            where += " of {0}".format(snapshot_id)
        if isinstance(exc, BlockError):
            return exc
        return TransferError("{0} failed{1}: {2}{3}".format(what, where, error_message(exc), suffix),
                             block_index=block_index, code=error_code(exc) or None, snapshot_id=snapshot_id)


# --------------------------------------------------------------------------------------------- EBS pipelines

class PagedBlocks:
    """Lazy pages of ListSnapshotBlocks / ListChangedBlocks; the first page is read at once.

    Iterating yields ``(index, token)`` for ListSnapshotBlocks and ``(index, first_token,
    second_token)`` for ListChangedBlocks. ``volume_size`` is known after construction.
    """

    def __init__(self, ebs, retry, snapshot_id=None, first_snapshot_id=None, second_snapshot_id=None,
                 page_size=PAGE_SIZE, stop=None):
        self._retry = retry
        self._stop = stop
        if second_snapshot_id is not None:
            self._fn = ebs.list_changed_blocks
            self._what = "ListChangedBlocks"
            self._params = {"SecondSnapshotId": second_snapshot_id, "MaxResults": page_size}
            if first_snapshot_id:
                self._params["FirstSnapshotId"] = first_snapshot_id
            self._key = "ChangedBlocks"
            self.snapshot_id = second_snapshot_id
        else:
            self._fn = ebs.list_snapshot_blocks
            self._what = "ListSnapshotBlocks"
            self._params = {"SnapshotId": snapshot_id, "MaxResults": page_size}
            self._key = "Blocks"
            self.snapshot_id = snapshot_id
        self.pages = 0
        self._first = self._page(None)
        self.volume_size = int(self._first.get("VolumeSize") or 0)
        self.block_size = int(self._first.get("BlockSize") or BLOCK_SIZE)
        if self.block_size != BLOCK_SIZE:
            raise TransferError("{0} reports a block size of {1}; only {2} is supported".format(
                self.snapshot_id, self.block_size, BLOCK_SIZE))

    def _page(self, token, after=None):
        params = dict(self._params)
        if token:
            params["NextToken"] = token
        self.pages += 1
        try:
            return self._retry.call(self._fn, self._what, snapshot_id=self.snapshot_id, stop=self._stop, **params)
        except TransferError as exc:
            # A NextToken is valid for 60 minutes; a slow transfer of a big page may outlive it.
            # Go on from the last block seen instead.
            if not token or exc.code != "ValidationException" or after is None:
                raise
            params.pop("NextToken")
            params["StartingBlockIndex"] = after + 1
            self.pages += 1
            return self._retry.call(self._fn, self._what, snapshot_id=self.snapshot_id, stop=self._stop, **params)

    def __iter__(self):
        page = self._first
        last = None
        while True:
            for item in page.get(self._key) or []:
                last = item["BlockIndex"]
                if self._key == "Blocks":
                    yield last, item.get("BlockToken")
                else:
                    yield last, item.get("FirstBlockToken"), item.get("SecondBlockToken")
            token = page.get("NextToken")
            if not token:
                return
            page = self._page(token, last)


class BlockUploader:
    """PutSnapshotBlock for a list of blocks on a bounded pool of worker threads.

    Each worker reads its block (zero blocks come from a shared buffer, never read), sends it with
    the digest computed while planning, records it in the journal and advances the progress. At
    most ``workers`` blocks are in memory at a time.
    """

    def __init__(self, ebs, snapshot_id, source, image, workers, retry=None, journal=None, progress=None,
                 started_at=None, stop=None):
        self.ebs = ebs
        self.snapshot_id = snapshot_id
        self.source = source
        self.image = image
        self.workers = workers
        self.retry = retry or Retrier()
        self.journal = journal
        self.progress = progress
        self.started_at = started_at
        self.stop = stop if stop is not None else threading.Event()
        self.blocks_put = 0
        self._lock = threading.Lock()

    def _put(self, index):
        digest = self.image.get(index)
        if digest is None or digest == ZERO_BLOCK_DIGEST:
            data, digest = ZERO_BLOCK, ZERO_BLOCK_DIGEST
        else:
            try:
                data = self.source.read_block(index)
            except OSError as exc:
                raise BlockError("{0}: reading block {1} of {2} failed: {3}".format(
                    self.source.option, index, self.source.path, exc.strerror or exc), block_index=index)
        progress = self.progress.percent if self.progress is not None else 0
        try:
            self.retry.call(self.ebs.put_snapshot_block, "PutSnapshotBlock", block_index=index,
                            snapshot_id=self.snapshot_id, started_at=self.started_at, stop=self.stop,
                            SnapshotId=self.snapshot_id, BlockIndex=index, BlockData=data, DataLength=BLOCK_SIZE,
                            Checksum=b64(digest), ChecksumAlgorithm="SHA256", Progress=progress)
        except TransferError as exc:
            if hashlib.sha256(data).digest() != digest:
                raise TransferError("{0}: block {1} changed since it was hashed; {2} must not change during the "
                                    "upload ({3})".format(self.source.option, index, self.source.path, exc.msg),
                                    block_index=index, snapshot_id=self.snapshot_id, code=exc.code)
            raise
        if self.journal is not None:
            self.journal.append(index, digest)
        with self._lock:
            self.blocks_put += 1
        if self.progress is not None:
            self.progress.advance(1, BLOCK_SIZE)

    def run(self, indexes):
        run_pool(indexes, self._put, self.workers, self.stop)
        return self.blocks_put


class BlockDownloader:
    """GetSnapshotBlock with checksum verification on a bounded pool of worker threads.

    ``handle(index, data, digest)`` is called on the worker thread for each block (``data`` None for a
    block without a token: absent in the snapshot, i.e. zeros).
    """

    CHECKSUM_RETRIES = 3

    def __init__(self, ebs, snapshot_id, workers, retry=None, progress=None, stop=None):
        self.ebs = ebs
        self.snapshot_id = snapshot_id
        self.workers = workers
        self.retry = retry or Retrier()
        self.progress = progress
        self.stop = stop if stop is not None else threading.Event()
        self.blocks_fetched = 0
        self._lock = threading.Lock()

    def fetch(self, index, token):
        for attempt in range(self.CHECKSUM_RETRIES):
            response = self.retry.call(self.ebs.get_snapshot_block, "GetSnapshotBlock", block_index=index,
                                       snapshot_id=self.snapshot_id, stop=self.stop,
                                       SnapshotId=self.snapshot_id, BlockIndex=index, BlockToken=token)
            body = response["BlockData"]
            try:
                data = body.read()
            except Exception as exc:  # pylint: disable=broad-except
                if attempt + 1 < self.CHECKSUM_RETRIES:
                    continue
                raise TransferError("GetSnapshotBlock failed for block {0} of {1}: reading the data failed: {2}".format(
                    index, self.snapshot_id, exc), block_index=index, snapshot_id=self.snapshot_id)
            finally:
                close = getattr(body, "close", None)
                if close:
                    close()
            digest = hashlib.sha256(data).digest()
            expected = response.get("Checksum")
            if len(data) == BLOCK_SIZE and (not expected or b64(digest) == expected):
                with self._lock:
                    self.blocks_fetched += 1
                return data, digest
        raise TransferError("GetSnapshotBlock returned block {0} of {1} with a bad checksum {2} times".format(
            index, self.snapshot_id, self.CHECKSUM_RETRIES), block_index=index, snapshot_id=self.snapshot_id,
            code="ChecksumMismatch")

    def run(self, items, handle):
        if self.progress is not None:
            items = self._counted(items)

        def work(item):
            index, token = item
            if token is None:
                handle(index, None, ZERO_BLOCK_DIGEST)
            else:
                data, digest = self.fetch(index, token)
                handle(index, data, digest)
            if self.progress is not None:
                self.progress.advance(1, BLOCK_SIZE)

        run_pool(items, work, self.workers, self.stop)

    def _counted(self, items):
        for item in items:
            self.progress.expect(1, BLOCK_SIZE)
            yield item


# --------------------------------------------------------------------------------------------- EC2 helpers

def _ec2_snapshot(ec2, retry, snapshot_id, option):
    """DescribeSnapshots for one id -> snapshot dict, or InputError when it does not exist."""
    try:
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", SnapshotIds=[snapshot_id])
    except TransferError as exc:
        if exc.code and (exc.code.startswith("InvalidSnapshot") or exc.code in ("InvalidParameterValue",)):
            raise InputError("{0}: snapshot {1} was not found ({2})".format(option, snapshot_id, exc.msg),
                             option=option, code=exc.code)
        raise
    snaps = resp.get("Snapshots") or []
    if not snaps:
        raise InputError("{0}: snapshot {1} was not found".format(option, snapshot_id), option=option)
    return snaps[0]


def wait_for_snapshot(ec2, retry, snapshot_id, timeout, progress=None, sleep=time.sleep, clock=time.monotonic):
    """Poll DescribeSnapshots until ``completed`` -> snapshot dict; raise on ``error`` or timeout."""
    deadline = clock() + timeout
    delay = 0.5
    while True:
        resp = retry.call(ec2.describe_snapshots, "DescribeSnapshots", snapshot_id=snapshot_id,
                          SnapshotIds=[snapshot_id])
        snaps = resp.get("Snapshots") or []
        snap = snaps[0] if snaps else {}
        state = snap.get("State")
        if state == "completed":
            return snap
        if state == "error":
            raise TransferError("snapshot {0} is in state error: {1}".format(
                snapshot_id, snap.get("StateMessage") or "no message"), snapshot_id=snapshot_id, code="SnapshotError")
        if clock() >= deadline:
            raise TransferError("snapshot {0} is still {1} after wait_timeout={2} seconds".format(
                snapshot_id, state or "not visible", timeout), snapshot_id=snapshot_id, code="WaitTimeout")
        sleep(delay)
        delay = min(delay * 2, 15.0)


def _is_encrypted_response(resp):
    return bool(resp.get("KmsKeyArn")) or resp.get("SseType") in ("sse-ebs", "sse-kms")


def _snapshot_summary(snapshot_id, volume_size, content, parent, encrypted, state=None):
    out = {"snapshot_id": snapshot_id, "volume_size": volume_size, "content": content,
           "parent_snapshot_id": parent, "encrypted": encrypted}
    if state:
        out["state"] = state
    return out


def _elapsed(started):
    return round(time.monotonic() - started, 3)


def _rate(nbytes, seconds):
    return round(nbytes / MIB / seconds, 2) if seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------- put job

class _Background:
    """Run ``fn`` on a thread; ``result()`` joins it and returns its value or raises its exception.

    When ``fn`` fails, ``stop`` is set so that work running meanwhile can give up early.
    """

    def __init__(self, fn, stop):
        self._value = None
        self._error = None
        self._stop = stop

        def target():
            try:
                self._value = fn()
            except BaseException as exc:  # pylint: disable=broad-except
                self._error = exc
                stop.set()

        self._thread = threading.Thread(target=target, name="blockwise-connect", daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def check_output_paths(params, options=("manifest", "progress_file")):
    """Fail before any AWS call when a file the job writes at the end could not be written then."""
    for option in options:
        path = params.get(option)
        if not path:
            continue
        if os.path.isdir(path):
            raise InputError("{0}: {1} is a directory; give a file path".format(option, path), option=option)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise InputError("{0}: cannot write {1}: {2} is not an existing directory".format(option, path, directory), option=option)
        if os.path.exists(path) and not os.path.isfile(path):
            raise InputError("{0}: {1} is not a regular file".format(option, path), option=option)


class _Job:
    """What put and get jobs share: options, mode, retry policy, warnings, clock, progress file.

    ``run()`` returns ``(result, warnings)``; a failure marks the progress file failed and raises.
    """

    operation = None

    def __init__(self, ebs, params, check_mode=False, want_diff=False, retry=None):
        self.ebs = ebs
        self.p = params
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.retry = retry or Retrier()
        self.warnings = []
        self.started = time.monotonic()
        self.progress = Progress(params.get("progress_file"), operation=self.operation)

    def run(self):
        try:
            return self._run()
        except BlockError as exc:
            self.progress.finish("failed", str(exc))
            raise

    def _run(self):
        raise NotImplementedError


class PutJob(_Job):
    """ebs_block_put: image -> new EBS snapshot (idempotent, resumable). See the module docs.

    ``params`` holds the module options by name. ``ebs`` and ``ec2`` are clients, or functions
    that make them (called on a thread while the image is hashed).
    """

    operation = "put"

    def __init__(self, ebs, ec2, params, check_mode=False, want_diff=False, retry=None):
        super().__init__(ebs, params, check_mode=check_mode, want_diff=want_diff, retry=retry)
        self.ec2 = ec2

    # -- inputs -------------------------------------------------------------------------------
    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        check_output_paths(p)
        if p.get("volume_size") is not None and not 1 <= int(p["volume_size"]) <= MAX_VOLUME_GIB:
            raise InputError("volume_size must be between 1 and {0} GiB, got {1}".format(
                MAX_VOLUME_GIB, p["volume_size"]), option="volume_size")
        timeout = p.get("timeout")
        if timeout is not None and not 10 <= int(timeout) <= 4320:
            raise InputError("timeout must be between 10 and 4320 minutes, got {0}".format(timeout), option="timeout")
        if p.get("description") is not None and len(p["description"]) > 255:
            raise InputError("description is {0} characters long; at most 255 are allowed".format(
                len(p["description"])), option="description")
        for key in (p.get("tags") or {}):
            if key in RESERVED_TAGS:
                raise InputError("tags: {0} is set by this module and cannot be given".format(key), option="tags")
        if p.get("kms_key_arn") and p.get("encrypted") is False:
            raise InputError("kms_key_arn={0} needs encrypted=true".format(p["kms_key_arn"]), option="kms_key_arn")
        if p.get("wait_timeout") is not None and int(p["wait_timeout"]) < 1:
            raise InputError("wait_timeout must be at least 1 second, got {0}".format(p["wait_timeout"]),
                             option="wait_timeout")

    def _connect_and_check_parent(self):
        if callable(self.ebs):
            self.ebs = self.ebs()
        if callable(self.ec2):
            self.ec2 = self.ec2()
        return self._parent()

    def _parent(self):
        pid = self.p.get("parent_snapshot_id")
        if not pid:
            return None
        snap = _ec2_snapshot(self.ec2, self.retry, pid, "parent_snapshot_id")
        state = snap.get("State")
        if state != "completed":
            raise InputError("parent_snapshot_id: snapshot {0} is {1}; a parent must be completed".format(pid, state),
                             option="parent_snapshot_id")
        enc = self.p.get("encrypted")
        if enc is not None and bool(enc) != bool(snap.get("Encrypted")):
            raise InputError(
                "encrypted={0} does not match parent_snapshot_id {1}, which is {2}: an incremental snapshot always "
                "has its parent's encryption".format(str(bool(enc)).lower(), pid,
                                                     "encrypted" if snap.get("Encrypted") else "not encrypted"),
                option="encrypted")
        kms = self.p.get("kms_key_arn")
        if kms and kms != snap.get("KmsKeyId"):
            raise InputError("kms_key_arn={0} does not match parent_snapshot_id {1} (KMS key {2})".format(
                kms, pid, snap.get("KmsKeyId") or "none"), option="kms_key_arn")
        return snap

    def _load_manifest(self, path):
        if not path or not os.path.exists(path):
            return None
        try:
            return Manifest.read(path)
        except ManifestError as exc:
            self.warnings.append("{0}; ignoring it".format(exc))
            return None

    # -- lookups ------------------------------------------------------------------------------
    def _find_by_content(self, content):
        """One DescribeSnapshots call with a tag filter -> snapshots carrying this content digest."""
        resp = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", OwnerIds=["self"],
                               Filters=[{"Name": "tag:" + CONTENT_TAG, "Values": [content]}])
        return resp.get("Snapshots") or []

    def _matches(self, snap, volume_size):
        p = self.p
        tags = tag_dict(snap.get("Tags"))
        if int(snap.get("VolumeSize") or 0) != volume_size:
            return False
        if (tags.get(PARENT_TAG) or None) != (p.get("parent_snapshot_id") or None):
            return False
        if p.get("encrypted") is not None and bool(p["encrypted"]) != bool(snap.get("Encrypted")):
            return False
        if p.get("kms_key_arn") and p["kms_key_arn"] != snap.get("KmsKeyId"):
            return False
        return True

    # -- run ----------------------------------------------------------------------------------
    def _run(self):
        p = self.p
        self._validate()
        with BlockSource(p["src"], option="src") as source:
            if p.get("volume_size") is not None:
                plan_volume_size(source.size, p["volume_size"])  # fail on a too-small size before any call
            # The clients are made and the parent is checked while the image is hashed: both are
            # start-up costs of a few hundred milliseconds. A bad parent stops the hashing at once.
            stop = threading.Event()
            remote = _Background(self._connect_and_check_parent, stop)
            data_indexes = list(source.data_block_indexes())
            self.progress.phase("hashing", blocks_total=len(data_indexes), bytes_total=len(data_indexes) * BLOCK_SIZE)
            try:
                image = hash_blocks(source, data_indexes, hash_workers(self.workers), self.progress, stop)
            finally:
                parent = remote.result()
            volume_size = plan_volume_size(source.size, p.get("volume_size"),
                                           parent.get("VolumeSize") if parent else None)
            blocks_total = volume_size * BLOCKS_PER_GIB
            content = image.content_digest()
            manifest_path = p.get("manifest")
            manifest = self._load_manifest(manifest_path)

            found = self._find_by_content(content)
            done = [s for s in found if s.get("State") == "completed" and self._matches(s, volume_size)]
            if done:
                return self._unchanged(done[0], image, volume_size, blocks_total, content, manifest)

            parent_id = p.get("parent_snapshot_id")
            parent_blocks = None
            if parent is not None:
                if manifest is not None and manifest.snapshot_id == parent_id:
                    parent_blocks = ParentBlocks(parent_id, digests=manifest.blocks)
                else:
                    if manifest is not None:
                        self.warnings.append("manifest {0} describes {1}, not parent {2}: comparing with the parent's "
                                             "block list instead".format(manifest_path, manifest.snapshot_id or "no snapshot",
                                                                         parent_id))
                    self.progress.phase("listing")
                    listed = PagedBlocks(self.ebs, self.retry, snapshot_id=parent_id)
                    parent_blocks = ParentBlocks(parent_id, indexes=[i for i, _t in listed])
            encrypted = bool(p.get("encrypted")) or bool(parent and parent.get("Encrypted"))
            plan = plan_put(image, blocks_total, parent_blocks, encrypted)

            if self.check_mode:
                return self._check_result(plan, volume_size, content, parent_id, encrypted, found)
            return self._upload(source, image, plan, volume_size, content, parent_id, parent_blocks, found)

    def _base_result(self, volume_size, blocks_total, content):
        return {
            "changed": False,
            "snapshot_id": None,
            "volume_size": volume_size,
            "blocks_total": blocks_total,
            "blocks_written": 0,
            "blocks_skipped_zero": 0,
            "blocks_unchanged": 0,
            "bytes_written": 0,
            "elapsed_seconds": 0.0,
            "throughput_mib_s": 0.0,
            "checksum": None,
            "resumed": False,
            "manifest": self.p.get("manifest"),
            "content_digest": content,
            "abandoned_snapshot_ids": [],
            "state": None,
        }

    def _write_manifest(self, snapshot_id, volume_size, blocks):
        """Write the manifest if asked and different -> True when the file changed."""
        path = self.p.get("manifest")
        if not path:
            return False
        new = Manifest(snapshot_id, volume_size, blocks)
        data = new.to_bytes()
        try:
            with open(path, "rb") as handle:
                if handle.read() == data:
                    return False
        except OSError:
            pass
        if self.check_mode:
            return True
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            new.write(path)
        except OSError as exc:
            raise BlockError("manifest: cannot write {0}: {1}".format(path, exc.strerror or exc),
                             option="manifest", snapshot_id=snapshot_id)
        return True

    def _unchanged(self, snap, image, volume_size, blocks_total, content, manifest):
        sid = snap["SnapshotId"]
        result = self._base_result(volume_size, blocks_total, content)
        # The snapshot holds the image; its manifest lists the image's blocks (zeros as holes).
        blocks = DigestMap()
        for index, digest in image.nonzero_items():
            blocks.append(index, digest)
        if manifest is not None and manifest.snapshot_id == sid and manifest.content_digest == content:
            changed = False
        else:
            changed = self._write_manifest(sid, volume_size, blocks)
        result.update(changed=changed, snapshot_id=sid, state=snap.get("State"),
                      blocks_unchanged=blocks_total, elapsed_seconds=_elapsed(self.started))
        self._clean_journal(sid)
        self.progress.phase("done", snapshot_id=sid)
        self.progress.finish("done")
        return result, self.warnings

    def _clean_journal(self, snapshot_id):
        if self.check_mode:
            return
        state_dir = self.p.get("state_dir") or DEFAULT_STATE_DIR
        path = journal_path(state_dir, self.p["src"])
        prior = Journal.load(path)
        if prior is not None and prior.snapshot_id == snapshot_id:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _check_result(self, plan, volume_size, content, parent_id, encrypted, found):
        result = self._base_result(volume_size, plan.blocks_total, content)
        result.update(
            changed=True,
            blocks_written=plan.blocks_written,
            blocks_skipped_zero=plan.blocks_skipped_zero,
            blocks_unchanged=plan.blocks_unchanged,
            bytes_written=plan.bytes_to_write,
            elapsed_seconds=_elapsed(self.started),
            plan=plan.to_dict(),
        )
        pending = [s["SnapshotId"] for s in found if s.get("State") == "pending"]
        if pending:
            result["pending_snapshot_ids"] = pending
        if self.want_diff:
            result["diff"] = {"before": {}, "after": _snapshot_summary("(new snapshot)", volume_size, content,
                                                                       parent_id, encrypted)}
        self.progress.finish("done")
        return result, self.warnings

    def _start(self, params, token, found_pending):
        """StartSnapshot with the deterministic token; an errored snapshot is reported and replaced."""
        abandoned = []
        for _attempt in range(3):
            started_at = time.monotonic()
            resp = self.retry.call(self.ebs.start_snapshot, "StartSnapshot", ClientToken=token, **params)
            if resp.get("Status") != "error":
                return resp, token, started_at, abandoned
            abandoned.append(resp["SnapshotId"])
            self.warnings.append("snapshot {0} from an earlier run with the same arguments is in state error; "
                                 "starting a new one".format(resp["SnapshotId"]))
            token = client_token(previous=token, errored=resp["SnapshotId"])
        raise TransferError("StartSnapshot keeps returning snapshots in state error (last {0})".format(
            abandoned[-1]), snapshot_id=abandoned[-1])

    def _upload(self, source, image, plan, volume_size, content, parent_id, parent_blocks, found):
        p = self.p
        tags = dict(p.get("tags") or {})
        tags[CONTENT_TAG] = content
        if parent_id:
            tags[PARENT_TAG] = parent_id
        params = {"VolumeSize": volume_size, "Tags": tag_list(tags)}
        if parent_id:
            params["ParentSnapshotId"] = parent_id
        else:
            if p.get("encrypted") is not None:
                params["Encrypted"] = bool(p["encrypted"])
            if p.get("kms_key_arn"):
                params["KmsKeyArn"] = p["kms_key_arn"]
        if p.get("description"):
            params["Description"] = p["description"]
        if p.get("timeout"):
            params["Timeout"] = int(p["timeout"])
        token = client_token(content=content, volume_size=volume_size, parent=parent_id,
                             encrypted=p.get("encrypted"), kms_key_arn=p.get("kms_key_arn"),
                             description=p.get("description"), tags=sorted(tags.items()), timeout=p.get("timeout"),
                             plan=plan.digest())

        state_dir = p.get("state_dir") or DEFAULT_STATE_DIR
        jpath = journal_path(state_dir, p["src"])
        prior = Journal.load(jpath)
        pending_ids = set(s["SnapshotId"] for s in found if s.get("State") == "pending")

        resp, token, started_at, abandoned = self._start(params, token, pending_ids)
        sid = resp["SnapshotId"]
        if resp.get("Status") == "completed":  # finished by an earlier run after our lookup
            snap = {"SnapshotId": sid, "State": "completed"}
            return self._unchanged(snap, image, volume_size, plan.blocks_total, content, None)

        # An encrypted-by-default account encrypts the snapshot: zero blocks must then be written.
        if _is_encrypted_response(resp) and not plan.encrypted:
            plan = plan_put(image, plan.blocks_total, parent_blocks, True)

        resumed = sid in pending_ids
        confirmed = []
        already_completing = False
        if prior is not None and prior.token == token and prior.snapshot_id == sid:
            resumed = True
            write_set = set(plan.write)
            confirmed = prior.confirmed_blocks(
                lambda i: block_digest(image, i) if i in write_set else None)
            already_completing = prior.completed
        elif prior is not None and prior.snapshot_id and prior.snapshot_id != sid:
            abandoned.extend(self._still_open(prior.snapshot_id))
        errored_ids = set(s["SnapshotId"] for s in found if s.get("State") == "error")
        abandoned.extend(sorted((pending_ids | errored_ids) - {sid} - set(abandoned)))
        for old in abandoned:
            self.warnings.append(
                "snapshot {0} was left pending or failed by an earlier run with different arguments (or without its "
                "journal) and was not resumed; it is reported in abandoned_snapshot_ids and can be deleted".format(old))

        journal = None
        try:
            if resumed and prior is not None and prior.snapshot_id == sid and prior.token == token:
                journal = Journal.open_existing(jpath, token, sid)
            else:
                journal = Journal.create(jpath, token, sid)
        except OSError as exc:
            self.warnings.append("state_dir: cannot keep a journal at {0} ({1}); an interrupted upload will put "
                                 "every block again".format(jpath, exc.strerror or exc))
            journal = None

        done_set = set(confirmed)
        todo = [i for i in plan.write if i not in done_set]
        upload_started = time.monotonic()
        stop = threading.Event()
        try:
            if not already_completing:
                self.progress.phase("uploading", blocks_total=len(plan.write), bytes_total=plan.bytes_to_write,
                                    blocks_done=len(confirmed), bytes_done=len(confirmed) * BLOCK_SIZE, snapshot_id=sid)
                uploader = BlockUploader(self.ebs, sid, source, image, self.workers, retry=self.retry,
                                         journal=journal, progress=self.progress, started_at=started_at, stop=stop)
                uploader.run(todo)
            upload_seconds = time.monotonic() - upload_started
            checksum = linear_checksum(block_digest(image, i) for i in plan.write)
            if not already_completing:
                self.progress.phase("completing")
                params = {"SnapshotId": sid, "ChangedBlocksCount": len(plan.write)}
                if plan.write:
                    params.update(Checksum=checksum, ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
                self.retry.call(self.ebs.complete_snapshot, "CompleteSnapshot", snapshot_id=sid,
                                started_at=started_at, **params)
                if journal is not None:
                    journal.mark_complete()
            state = "pending"
            if p.get("wait", True):
                self.progress.phase("waiting")
                snap = wait_for_snapshot(self.ec2, self.retry, sid, int(p.get("wait_timeout") or 900))
                state = snap.get("State")
        except BlockError as exc:
            if exc.snapshot_id is None:
                exc.snapshot_id = sid
            if not isinstance(exc, TransferError) or exc.code not in ("SnapshotError",):
                exc.msg = exc.msg + " (snapshot {0} is left pending: rerun with the same arguments to resume)".format(sid)
                exc.args = (exc.msg,)
            raise
        finally:
            if journal is not None:
                journal.close()

        self._write_manifest(sid, volume_size, snapshot_blocks_after_put(image, plan))
        if state == "completed" and journal is not None:
            journal.remove()
        written = len(todo) if not already_completing else 0
        result = self._base_result(volume_size, plan.blocks_total, content)
        result.update(
            # A rerun that only waits for a snapshot an earlier run completed changes nothing itself.
            changed=not already_completing,
            snapshot_id=sid,
            state=state,
            blocks_written=written,
            blocks_skipped_zero=plan.blocks_skipped_zero,
            blocks_unchanged=plan.blocks_unchanged,
            bytes_written=written * BLOCK_SIZE,
            elapsed_seconds=_elapsed(self.started),
            throughput_mib_s=_rate(written * BLOCK_SIZE, upload_seconds),
            checksum=checksum,
            resumed=resumed,
            abandoned_snapshot_ids=abandoned,
            changed_blocks_count=len(plan.write),
            retries=self.retry.retries,
        )
        if resumed:
            result["blocks_confirmed_before"] = len(confirmed)
        if self.want_diff:
            result["diff"] = {"before": {}, "after": _snapshot_summary(
                sid, volume_size, content, parent_id, plan.encrypted or _is_encrypted_response(resp), state)}
        self.progress.finish("done")
        return result, self.warnings

    def _still_open(self, snapshot_id):
        """[snapshot_id] if that snapshot is still pending or failed (so it must be reported), else []."""
        try:
            resp = self.retry.call(self.ec2.describe_snapshots, "DescribeSnapshots", SnapshotIds=[snapshot_id])
        except TransferError:
            return []
        snaps = resp.get("Snapshots") or []
        if snaps and snaps[0].get("State") in ("pending", "error"):
            return [snapshot_id]
        return []


# --------------------------------------------------------------------------------------------- get job

def _dest_digests(path, volume_bytes, workers, progress=None):
    """:class:`DigestMap` of a local file or device, limited to the first ``volume_bytes`` (None if missing)."""
    with BlockSource(path, option="dest") as dest:
        indexes = list(dest.data_block_indexes(limit=volume_bytes))
        if progress is not None:
            progress.phase("hashing", blocks_total=len(indexes), bytes_total=len(indexes) * BLOCK_SIZE)
        return hash_blocks(dest, indexes, hash_workers(workers), progress), dest.size, dest.is_device


class GetJob(_Job):
    """ebs_block_get: snapshot -> local file or block device. See the module docs."""

    operation = "get"

    def _validate(self):
        p = self.p
        self.workers = validate_workers(DEFAULT_WORKERS if p.get("workers") is None else p["workers"])
        check_output_paths(p)
        dest = p["dest"]
        if os.path.isdir(dest):
            raise InputError("dest: {0} is a directory; give a file or block device path".format(dest), option="dest")
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise InputError("dest: directory {0} does not exist".format(directory), option="dest")
        if os.path.exists(dest):
            st = os.stat(dest)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                raise InputError("dest: {0} is not a regular file or block device".format(dest), option="dest")
        elif p.get("base_snapshot_id"):
            raise InputError("dest: {0} does not exist, but base_snapshot_id={1} says it holds that snapshot".format(
                dest, p["base_snapshot_id"]), option="dest")

    def _list(self):
        p = self.p
        sid = p["snapshot_id"]
        try:
            if p.get("base_snapshot_id"):
                return PagedBlocks(self.ebs, self.retry, first_snapshot_id=p["base_snapshot_id"], second_snapshot_id=sid)
            return PagedBlocks(self.ebs, self.retry, snapshot_id=sid)
        except TransferError as exc:
            option = "snapshot_id"
            if p.get("base_snapshot_id"):
                option = "base_snapshot_id"
            raise InputError("{0}: cannot list the blocks of {1}: {2}".format(option, sid, exc.msg),
                             option=option, code=exc.code, snapshot_id=sid)

    def _run(self):
        p = self.p
        self._validate()
        sid = p["snapshot_id"]
        dest = p["dest"]
        base = p.get("base_snapshot_id")
        exists = os.path.exists(dest)
        is_device = exists and stat.S_ISBLK(os.stat(dest).st_mode)

        manifest = None
        if p.get("manifest") and os.path.exists(p["manifest"]):
            try:
                manifest = Manifest.read(p["manifest"])
            except ManifestError as exc:
                self.warnings.append("{0}; ignoring it".format(exc))

        result = {
            "changed": False, "snapshot_id": sid, "dest": dest, "volume_size": None,
            "blocks_total": 0, "blocks_fetched": 0, "blocks_written": 0, "blocks_zeroed": 0,
            "bytes_fetched": 0, "elapsed_seconds": 0.0, "throughput_mib_s": 0.0, "content_digest": None,
            "manifest": p.get("manifest"), "method": None,
        }
        before = dest_size = hashed_for = None
        # Idempotence: the manifest says which snapshot dest holds; dest's own digests confirm it.
        # No AWS call is needed for that.
        if manifest is not None and manifest.snapshot_id == sid and exists:
            hashed_for = manifest.volume_size * GIB
            before, dest_size, _dev = _dest_digests(dest, hashed_for, self.workers, self.progress)
            if manifest.content_digest == before.content_digest() and (
                    dest_size == hashed_for or (is_device and dest_size >= hashed_for)):
                result.update(method="unchanged", content_digest=manifest.content_digest,
                              volume_size=manifest.volume_size,
                              blocks_total=manifest.volume_size * BLOCKS_PER_GIB, elapsed_seconds=_elapsed(self.started))
                self.progress.finish("done")
                return result, self.warnings

        listing = self._list()
        volume_size = listing.volume_size
        volume_bytes = volume_size * GIB
        blocks_total = volume_size * BLOCKS_PER_GIB
        result.update(volume_size=volume_size, blocks_total=blocks_total)
        if exists:
            if hashed_for != volume_bytes:
                before, dest_size, _dev = _dest_digests(dest, volume_bytes, self.workers, self.progress)
            if dest_size < volume_bytes and (is_device or base):
                raise InputError("dest: {0} holds {1} bytes, less than the {2} GiB volume of {3}".format(
                    dest, dest_size, volume_size, sid), option="dest")
        before_content = before.content_digest() if before is not None else None

        if base:
            mode = "incremental"
        elif is_device:
            mode = "in_place"
        else:
            mode = "replace" if exists else "new"
        result["method"] = mode

        if self.check_mode:
            items = list(listing)
            result.update(changed=True, blocks_fetched=sum(1 for it in items if it[-1] is not None),
                          plan={"blocks_listed": len(items), "method": mode})
            result["bytes_fetched"] = result["blocks_fetched"] * BLOCK_SIZE
            if self.want_diff:
                result["diff"] = {"before": {"dest": dest, "content": before_content},
                                  "after": {"dest": dest, "content": "(content of {0})".format(sid)}}
            result["elapsed_seconds"] = _elapsed(self.started)
            self.progress.finish("done")
            return result, self.warnings

        if mode in ("new", "replace"):
            after, counts = self._download_to_new(listing, dest, volume_bytes, before)
        else:
            after, counts = self._download_in_place(listing, dest, blocks_total, before, base is not None)
        after_content = after.content_digest()
        changed = after_content != before_content or (mode in ("new", "replace") and counts["renamed"])
        seconds = counts.pop("_seconds")
        counts.pop("renamed")
        result.update(counts)
        result.update(changed=bool(changed), content_digest=after_content)
        result["bytes_fetched"] = result["blocks_fetched"] * BLOCK_SIZE
        result["elapsed_seconds"] = _elapsed(self.started)
        result["throughput_mib_s"] = _rate(result["bytes_fetched"], seconds)
        if p.get("manifest"):
            try:
                Manifest(sid, volume_size, after).write(p["manifest"])
            except OSError as exc:
                raise BlockError("manifest: cannot write {0}: {1}".format(p["manifest"], exc.strerror or exc),
                                 option="manifest", snapshot_id=sid)
        if self.want_diff and changed:
            result["diff"] = {"before": {"dest": dest, "content": before_content},
                              "after": {"dest": dest, "content": after_content}}
        self.progress.finish("done")
        return result, self.warnings

    def _download_to_new(self, listing, dest, volume_bytes, before):
        """Write every non-zero block into a temporary file next to ``dest``; rename it when complete."""
        directory = os.path.dirname(os.path.abspath(dest))
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=directory)
        fetched = []
        lock = threading.Lock()
        started = time.monotonic()
        downloader = BlockDownloader(self.ebs, self.p["snapshot_id"], self.workers, retry=self.retry,
                                     progress=self.progress)

        def handle(index, data, digest):
            if data is not None and digest != ZERO_BLOCK_DIGEST:
                os.pwrite(fd, data, index * BLOCK_SIZE)
                with lock:
                    fetched.append((index, digest))

        try:
            os.ftruncate(fd, volume_bytes)
            self.progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=self.p["snapshot_id"])
            downloader.run(listing, handle)
            after = DigestMap.from_items(fetched)
            renamed = False
            if before is None or after.content_digest() != before.content_digest() or \
                    os.path.getsize(dest) != volume_bytes:
                os.fsync(fd)
                if before is not None:
                    os.chmod(tmp, stat.S_IMODE(os.stat(dest).st_mode))
                else:
                    umask = os.umask(0)
                    os.umask(umask)
                    os.chmod(tmp, 0o666 & ~umask)
                os.close(fd)
                fd = None
                os.replace(tmp, dest)
                renamed = True
        finally:
            if fd is not None:
                os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
        counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": len(fetched) if renamed else 0,
                  "blocks_zeroed": 0, "renamed": renamed, "_seconds": time.monotonic() - started}
        return after, counts

    def _download_in_place(self, listing, dest, blocks_total, before, incremental):
        """Write changed blocks into an existing file or device; blocks absent from the snapshot -> zeros."""
        before = before or DigestMap()
        started = time.monotonic()
        fd = os.open(dest, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        results = []
        lock = threading.Lock()
        counters = {"written": 0, "zeroed": 0}
        downloader = BlockDownloader(self.ebs, self.p["snapshot_id"], self.workers, retry=self.retry,
                                     progress=self.progress)

        def current(index):
            return before.get(index) or ZERO_BLOCK_DIGEST

        def handle(index, data, digest):
            with lock:
                results.append((index, digest))
            if current(index) == digest:
                return
            os.pwrite(fd, data if data is not None else ZERO_BLOCK, index * BLOCK_SIZE)
            with lock:
                counters["zeroed" if data is None else "written"] += 1

        if incremental:
            items = ((index, second) for index, _first, second in listing)
        else:
            items = self._with_absent(listing, blocks_total, before)
        try:
            self.progress.phase("downloading", blocks_total=0, bytes_total=0, snapshot_id=self.p["snapshot_id"])
            downloader.run(items, handle)
            os.fsync(fd)
        finally:
            os.close(fd)
        # The content after = before, with the handled blocks replaced.
        merged = dict(before.items())
        for index, digest in results:
            merged[index] = digest
        after = DigestMap.from_items((i, d) for i, d in merged.items() if d != ZERO_BLOCK_DIGEST)
        counts = {"blocks_fetched": downloader.blocks_fetched, "blocks_written": counters["written"],
                  "blocks_zeroed": counters["zeroed"], "renamed": False, "_seconds": time.monotonic() - started}
        return after, counts

    @staticmethod
    def _with_absent(listing, blocks_total, before):
        """Listed ``(index, token)`` plus ``(index, None)`` where dest has data the snapshot lacks."""
        listed = iter(listing)
        nxt = next(listed, None)
        for index in before.indexes():
            while nxt is not None and nxt[0] < index:
                yield nxt
                nxt = next(listed, None)
            if nxt is not None and nxt[0] == index:
                continue
            if index < blocks_total and before.get(index) != ZERO_BLOCK_DIGEST:
                yield index, None
        while nxt is not None:
            yield nxt
            nxt = next(listed, None)


# --------------------------------------------------------------------------------------------- changed blocks

def changed_blocks_info(ebs, second_snapshot_id, first_snapshot_id=None, return_block_indexes=False, retry=None,
                        page_size=PAGE_SIZE):
    """Blocks that differ between two snapshots (or that hold data in one), fully paginated."""
    retry = retry or Retrier()
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
        named = [name for name, value in (("first_snapshot_id", first_snapshot_id), ("second_snapshot_id", second_snapshot_id))
                 if value in (exc.msg or "")]
        option = named[0] if len(named) == 1 else "first_snapshot_id"
        label = named[0] if len(named) == 1 else "first_snapshot_id or second_snapshot_id"
        raise InputError("{0}: cannot list the blocks that changed from {1} to {2}: {3}".format(
            label, first_snapshot_id, second_snapshot_id, exc.msg), option=option, code=exc.code)
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


__all__ = [
    "BLOCK_SIZE", "BLOCKS_PER_GIB", "GIB", "MAX_VOLUME_GIB", "DEFAULT_WORKERS", "CONTENT_TAG", "PARENT_TAG",
    "BlockError", "InputError", "TransferError", "Cancelled", "BlockSource", "run_pool", "hash_blocks",
    "validate_workers", "plan_volume_size", "ParentBlocks", "PutPlan", "plan_put", "snapshot_blocks_after_put",
    "linear_checksum", "client_token", "journal_path", "classify_error", "Retrier", "PagedBlocks",
    "BlockUploader", "BlockDownloader", "wait_for_snapshot", "PutJob", "GetJob", "changed_blocks_info",
    "content_digest", "DigestMap", "Manifest", "ZERO_BLOCK_DIGEST",
]
