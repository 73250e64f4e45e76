# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A raw image file or block device read block by block; holes are found with SEEK_DATA/SEEK_HOLE."""
from __future__ import annotations

import errno
import os
import stat

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError


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

    def fingerprint(self):
        """What must not change while the source is uploaded: size and, for a file, modification time."""
        st = os.fstat(self.fd)
        size = os.lseek(self.fd, 0, os.SEEK_END) if self.is_device else st.st_size
        return (size, None if self.is_device else st.st_mtime_ns)

    def change_since(self, fingerprint, data_indexes):
        """Why the source is not what was hashed (size, modification time, data map), or None.

        Checked after the last block was put and before the snapshot is completed: a source that
        grew, shrank, was written to, or had a hole filled must not become a completed snapshot.
        """
        size, mtime = self.fingerprint()
        if size != fingerprint[0]:
            return "its size changed from {0} to {1} bytes".format(fingerprint[0], size)
        if mtime != fingerprint[1]:
            return "it was modified (its modification time changed)"
        now = list(self.data_block_indexes())
        if now != list(data_indexes):
            return "its data map changed ({0} blocks hold data now, {1} did when it was hashed)".format(
                len(now), len(data_indexes))
        return None

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
