# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local files of a block transfer, checked against each other before any I/O.

Every path a job reads or writes (``src``, ``dest``, ``manifest``, ``progress_file``, the journal
under ``state_dir``, the partial restore file next to ``dest``) is resolved to a *file identity*:
its real path (symlinks, ``..`` and relative forms resolved) and, when it exists, its device and
inode (hard links), or the device number of a block device (two device nodes of one disk). Two
options with the same identity are refused, naming both, before anything is read or written.

A file the job writes must be missing, empty, or of the job's own kind (a manifest only replaces
a manifest, a progress file only a progress file): :func:`check_own_kind`. Pure checks plus
``os.stat``/``os.path.realpath``; nothing here writes.
"""
from __future__ import annotations

import json
import os
import stat

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Manifest
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError

PART_SUFFIX = ".blockwise-part"
PROGRESS_KEYS = ("operation", "state", "blocks_done", "blocks_total")


class FileIdentity:
    """What makes two paths the same file: real path, and (device, inode) or a block device's number."""

    def __init__(self, path):
        self.path = path
        self.real = os.path.realpath(os.path.expanduser(path))
        try:
            st = os.stat(self.real)
        except OSError:
            self.exists = False
            self.keys = frozenset([("path", self.real)])
            return
        self.exists = True
        keys = [("path", self.real), ("inode", st.st_dev, st.st_ino)]
        if stat.S_ISBLK(st.st_mode):
            keys.append(("blockdev", st.st_rdev))
        self.keys = frozenset(keys)

    def same_as(self, other):
        return bool(self.keys & other.keys)


def part_path(dest):
    """The partial file of a restore into ``dest``: next to the real ``dest``, named after it.

    A fixed name (not a random one) lets the next run find and remove what a killed run left.
    """
    real = os.path.realpath(os.path.expanduser(dest))
    directory, name = os.path.split(real)
    return os.path.join(directory, "." + name + PART_SUFFIX)


def check_distinct(paths):
    """Refuse two options that name the same file. ``paths``: ``[(option, path or None)]``.

    Raises :class:`InputError` naming both options and both paths.
    """
    seen = []
    for option, path in paths:
        if not path:
            continue
        ident = FileIdentity(path)
        for other_option, other in seen:
            if ident.same_as(other):
                raise InputError("{0} and {1} are the same file ({2} and {3} both resolve to {4}); give each its own "
                                 "path".format(other_option, option, other.path, path, ident.real),
                                 option=option)
        seen.append((option, ident))


def _read_head(path, size):
    with open(path, "rb") as handle:
        return handle.read(size)


def _is_progress_document(path):
    try:
        with open(path, "rb") as handle:
            doc = json.loads(handle.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and all(key in doc for key in PROGRESS_KEYS)


def _kind_of(path):
    """``manifest``, ``progress``, ``journal``, ``empty`` or ``other`` for an existing regular file."""
    if os.path.getsize(path) == 0:
        return "empty"
    head = _read_head(path, 8)
    if head == Manifest.MAGIC:
        return "manifest"
    if head == Journal.MAGIC:
        return "journal"
    if _is_progress_document(path):
        return "progress"
    return "other"


def check_own_kind(option, path, kind):
    """Refuse to overwrite an existing file at ``path`` unless it is empty or of ``kind``.

    ``kind`` is ``manifest``, ``progress`` or ``journal``. A directory, a device or another special
    file is refused too. Symlinks are followed: the file written is the link's target.
    """
    if not path:
        return
    real = os.path.realpath(os.path.expanduser(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InputError("{0}: cannot inspect {1}: {2}".format(option, path, exc.strerror or exc), option=option)
    if stat.S_ISDIR(st.st_mode):
        raise InputError("{0}: {1} is a directory; give a file path".format(option, path), option=option)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("{0}: {1} is not a regular file".format(option, path), option=option)
    try:
        found = _kind_of(real)
    except OSError as exc:
        raise InputError("{0}: cannot read {1}: {2}".format(option, path, exc.strerror or exc), option=option)
    if found not in (kind, "empty"):
        raise InputError("{0}: {1} exists and is not a blockwise.ebs {2} file ({3}); refusing to overwrite it: give "
                         "another path or remove it".format(option, path, kind, _describe(found)), option=option)


def _describe(found):
    if found in ("manifest", "progress", "journal"):
        return "it is a blockwise.ebs {0} file".format(found)
    return "it holds other data"


def check_writable_dir(option, path):
    """Fail now when the directory that will hold ``path`` does not exist or cannot be written (a read-only
    file system, no permission): the file is written by rename at the end, after every AWS call."""
    if not path:
        return
    directory = os.path.dirname(os.path.realpath(os.path.expanduser(path)))
    if not os.path.isdir(directory):
        raise InputError("{0}: cannot write {1}: {2} is not an existing directory".format(option, path, directory),
                         option=option)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError("{0}: cannot write {1}: directory {2} is not writable ({3})".format(
            option, path, directory, "Read-only file system" if _read_only(directory) else "Permission denied"),
            option=option)


def _read_only(directory):
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False
