# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded worker pools: hashing, uploading and downloading blocks, and paging block lists."""
from __future__ import annotations

import hashlib
import os
import threading

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import DigestMap
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import Cancelled
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PAGE_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import b64


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

    ``on_block_error(index, exc)`` (optional) is called on the worker thread when a block cannot be
    read for good (a :class:`TransferError`: an error after retries, or a bad checksum every time).
    When it returns True the block is taken as recorded and the other blocks go on (``handle`` is not
    called for it); otherwise, and without it, the error stops the run as usual.
    """

    CHECKSUM_RETRIES = 3

    def __init__(self, ebs, snapshot_id, workers, retry=None, progress=None, stop=None, on_block_error=None):
        self.ebs = ebs
        self.snapshot_id = snapshot_id
        self.workers = workers
        self.retry = retry or Retrier()
        self.progress = progress
        self.stop = stop if stop is not None else threading.Event()
        self.on_block_error = on_block_error
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
                try:
                    data, digest = self.fetch(index, token)
                except TransferError as exc:
                    if self.on_block_error is None or not self.on_block_error(index, exc):
                        raise
                else:
                    handle(index, data, digest)
            if self.progress is not None:
                self.progress.advance(1, BLOCK_SIZE)

        run_pool(items, work, self.workers, self.stop)

    def _counted(self, items):
        for item in items:
            self.progress.expect(1, BLOCK_SIZE)
            yield item
