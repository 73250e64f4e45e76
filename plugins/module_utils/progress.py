# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a block transfer, kept in memory and (optionally) in a small JSON file.

The file is replaced atomically (temporary file + rename, through ``fileio.atomic_write``), so a poller
never reads a torn document. A progress without a path (check mode) writes nothing.
Its keys: ``state`` (``hashing``, ``listing``, ``uploading``, ``downloading``, ``completing``,
``waiting``, ``done``, ``failed``), ``operation``, ``snapshot_id``, ``blocks_done``, ``blocks_total``,
``bytes_done``, ``bytes_total``, ``percent``, ``mib_s``, ``eta_seconds``, ``elapsed_seconds``,
``updated_at`` (Unix time), ``pid``, and ``message`` when the transfer failed.
"""
from __future__ import annotations

import json
import os
import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import atomic_write

MIB = 1024 * 1024


class Progress:
    """Thread-safe counters with a throttled writer for the progress file."""

    def __init__(self, path=None, operation="", interval=0.5, clock=time.monotonic, wall=time.time):
        self.path = path
        self.operation = operation
        self.interval = interval
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._started = clock()
        self._phase_started = self._started
        self._last_write = None
        self.state = "starting"
        self.snapshot_id = None
        self.blocks_total = 0
        self.blocks_done = 0
        self.bytes_total = 0
        self.bytes_done = 0
        self._phase_bytes0 = 0
        self.message = None

    def phase(self, state, blocks_total=None, bytes_total=None, blocks_done=0, bytes_done=0, snapshot_id=None):
        """Start a new phase (its own counters and rate)."""
        with self._lock:
            self.state = state
            if snapshot_id:
                self.snapshot_id = snapshot_id
            if blocks_total is not None:
                self.blocks_total = blocks_total
                self.blocks_done = blocks_done
            if bytes_total is not None:
                self.bytes_total = bytes_total
                self.bytes_done = bytes_done
            self._phase_bytes0 = self.bytes_done
            self._phase_started = self._clock()
        self.write(force=True)

    def expect(self, blocks=1, nbytes=0):
        """Raise the totals (work discovered while listing)."""
        with self._lock:
            self.blocks_total += blocks
            self.bytes_total += nbytes

    def advance(self, blocks=1, nbytes=0):
        with self._lock:
            self.blocks_done += blocks
            self.bytes_done += nbytes
        self.write()

    @property
    def percent(self):
        if not self.blocks_total:
            return 0
        return max(0, min(100, int(100 * self.blocks_done / self.blocks_total)))

    def snapshot(self):
        with self._lock:
            now = self._clock()
            elapsed = now - self._started
            phase_elapsed = max(now - self._phase_started, 1e-9)
            moved = self.bytes_done - self._phase_bytes0
            rate = moved / phase_elapsed
            remaining = max(self.bytes_total - self.bytes_done, 0)
            eta = (remaining / rate) if rate > 0 else None
            doc = {
                "operation": self.operation,
                "state": self.state,
                "snapshot_id": self.snapshot_id,
                "blocks_done": self.blocks_done,
                "blocks_total": self.blocks_total,
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "percent": 0,
                "mib_s": round(rate / MIB, 2),
                "eta_seconds": round(eta, 1) if eta is not None else None,
                "elapsed_seconds": round(elapsed, 3),
                "updated_at": round(self._wall(), 3),
                "pid": os.getpid(),
            }
            if self.blocks_total:
                doc["percent"] = max(0, min(100, int(100 * self.blocks_done / self.blocks_total)))
            if self.message:
                doc["message"] = self.message
            return doc

    def write(self, force=False):
        """Replace the progress file if ``interval`` has passed (always with ``force``)."""
        if not self.path:
            return
        now = self._clock()
        if not force and self._last_write is not None and now - self._last_write < self.interval:
            return
        if not self._write_lock.acquire(blocking=force):
            return  # another thread is writing it right now
        try:
            self._last_write = now
            data = json.dumps(self.snapshot(), sort_keys=True).encode("utf-8")
            try:
                atomic_write(self.path, data, sync=False)
            except OSError:
                pass  # progress is advisory: never fail a transfer because of it
        finally:
            self._write_lock.release()

    def finish(self, state="done", message=None):
        with self._lock:
            self.state = state
            self.message = message
        self.write(force=True)


def read_progress(path):
    """The progress document at ``path`` (None if it is missing or unreadable)."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
