# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the put and get jobs share: a background start-up task, path checks, checked local writes, the job base."""
from __future__ import annotations

import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import pwrite_all
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import tmp_path_for
from ansible_collections.blockwise.ebs.plugins.module_utils.progress import Progress
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_own_kind
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import check_writable_dir
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier


class Background:
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
    """Fail before any AWS call when a file the job writes at the end could not be written then.

    The file must be missing, empty or of its own kind (a manifest for ``manifest``, a progress
    document for ``progress_file``), and its directory must exist.
    """
    kinds = {"manifest": "manifest", "progress_file": "progress"}
    for option in options:
        path = params.get(option)
        if not path:
            continue
        check_own_kind(option, path, kinds[option])
        check_writable_dir(option, path)


def job_paths(params, inputs):
    """``[(option, path)]`` of every local file a job touches: ``inputs`` plus the shared outputs.

    Temporary files of the manifest and the progress file are included, so that no option can
    name a file the job would create and rename.
    """
    paths = list(inputs)
    for option in ("manifest", "progress_file"):
        path = params.get(option)
        if path:
            paths.append((option, path))
            paths.append(("the temporary file of " + option, tmp_path_for(path)))
    return paths


class LocalFile:
    """A local file or device that a job writes: every write is complete or raises a :class:`BlockError`.

    The error names the option, the path, what failed and how many bytes this job had written.
    """

    def __init__(self, fd, path, option):
        self.fd = fd
        self.path = path
        self.option = option
        self.bytes_written = 0
        self._lock = threading.Lock()

    def error(self, what, exc):
        return BlockError("{0}: {1} {2} failed after {3} bytes were written: {4}".format(
            self.option, what, self.path, self.bytes_written, describe_os_error(exc)), option=self.option)

    def pwrite(self, data, offset):
        try:
            n = pwrite_all(self.fd, data, offset)
        except OSError as exc:
            raise self.error("writing", exc) from None
        with self._lock:
            self.bytes_written += n

    def call(self, what, fn, *args):
        """``fn(fd, *args)`` (truncate, fsync, ...) with its ``OSError`` turned into a named error."""
        try:
            return fn(self.fd, *args)
        except OSError as exc:
            raise self.error(what, exc) from None


class Job:
    """What put and get jobs share: options, mode, retry policy, warnings, clock, progress file.

    ``run()`` returns ``(result, warnings)``; a failure marks the progress file failed and raises.
    The progress file is written only after :meth:`paths_checked` (never for refused input) and never
    in check mode (check mode writes nothing).
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
        # No progress file until the paths were checked: a refused path is never written.
        self.progress = Progress(None, operation=self.operation)

    def paths_checked(self):
        """Called once every path passed its checks: from now on the progress file is kept (not in check mode)."""
        if not self.check_mode and self.p.get("progress_file"):
            self.progress.path = self.p["progress_file"]
            self.progress.write(force=True)

    def run(self):
        try:
            return self._run()
        except BlockError as exc:
            self.progress.finish("failed", str(exc))
            raise
        except OSError as exc:
            error = BlockError("local I/O failed: {0}{1}".format(
                describe_os_error(exc), " ({0})".format(exc.filename) if exc.filename else ""))
            self.progress.finish("failed", str(error))
            raise error from None

    def _run(self):
        raise NotImplementedError
