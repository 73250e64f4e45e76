# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the put and get jobs share: a background start-up task, output-path checks, the job base."""
from __future__ import annotations

import os
import threading
import time

from ansible_collections.blockwise.ebs.plugins.module_utils.progress import Progress
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
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


class Job:
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
