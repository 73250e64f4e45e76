# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local writes that either write every byte or raise: no short write is ever ignored.

* :func:`pwrite_all` / :func:`write_all` loop until every byte is written; a write that makes no
  progress raises ``OSError(ENOSPC)``.
* :func:`atomic_write` writes a small file through a temporary file in the same directory, fsyncs it
  and renames it over the target (symlinks are followed: the link's target is replaced, never the
  link). Temporary names carry the writer's pid, and temporaries of dead writers are removed, so a
  killed run leaves nothing the next one does not clean up.
* :func:`describe_os_error` words an ``OSError`` for a user (``No space left on device (ENOSPC)``).

Only the standard library is used.
"""
from __future__ import annotations

import errno
import glob
import os

TMP_SUFFIX = ".blockwise-tmp"


def pwrite_all(fd, data, offset):
    """Write all of ``data`` at ``offset``; returns ``len(data)``. Raises ``OSError`` on failure."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            n = os.pwrite(fd, view[done:], offset + done)
        except InterruptedError:
            continue
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n
    return done


def write_all(fd, data):
    """Write all of ``data`` at the file position (or the end, for ``O_APPEND``)."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            n = os.write(fd, view[done:])
        except InterruptedError:
            continue
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done += n
    return done


def describe_os_error(exc):
    """``No space left on device (ENOSPC)`` for an ``OSError``."""
    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return "{0} ({1})".format(text, name) if name else text


def _tmp_name(real, pid):
    directory, name = os.path.split(real)
    return os.path.join(directory, ".{0}.{1}{2}".format(name, pid, TMP_SUFFIX))


def tmp_path_for(path, pid=None):
    """The temporary file :func:`atomic_write` uses for ``path`` in this process."""
    return _tmp_name(os.path.realpath(os.path.expanduser(path)), os.getpid() if pid is None else pid)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(path):
    """Remove the temporaries that writers of ``path`` that are no longer running left behind."""
    real = os.path.realpath(os.path.expanduser(path))
    directory, name = os.path.split(real)
    prefix = os.path.join(directory, "." + name + ".")
    for tmp in glob.glob(glob.escape(prefix) + "*" + TMP_SUFFIX):
        pid = tmp[len(prefix):-len(TMP_SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def atomic_write(path, data, mode=0o644, sync=True):
    """Replace ``path`` (its symlink target, if it is a link) with ``data``, all or nothing.

    ``sync=False`` skips the fsync (for advisory files such as progress, rewritten every half second).
    """
    real = os.path.realpath(os.path.expanduser(path))
    remove_stale_tmp(real)
    tmp = _tmp_name(real, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FileLock:
    """An exclusive ``flock`` on a lock file that is removed when released.

    A waiter that wakes up holding the lock of a file that was removed meanwhile starts again on the
    new file, so removing lock files is safe and nothing stays behind. A lock held by a process that
    dies is released by the kernel.
    """

    def __init__(self, path):
        self.path = path
        self.fd = None

    def acquire(self, on_wait=None, blocking=True):
        """Block until the lock is held; ``on_wait()`` is called once if another process holds it.

        With ``blocking=False``, return None at once instead of waiting when another process holds it.
        """
        # POSIX only, like the rest of the block core
        import fcntl  # pylint: disable=import-outside-toplevel

        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not blocking:
                    os.close(fd)
                    return None
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            if self._still_ours(fd):
                self.fd = fd
                return self
            os.close(fd)

    def _still_ours(self, fd):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self):
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        fd, self.fd = self.fd, None
        os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
