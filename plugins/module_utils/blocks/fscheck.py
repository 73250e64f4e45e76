# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The temporary image of a file system check, and the check command.

The image of snapshot ``snap-x`` made by process ``pid`` is ``.blockwise-verify-snap-x-<pid>.img`` in
the temporary directory (its partial file, while it is written, ``..blockwise-verify-snap-x-<pid>.img
.blockwise-part``). The pid in the name lets a later run tell the leftovers of a killed run (their
process no longer runs: they are removed) from the image of a verification running now (left alone).

The command runs without a shell unless asked, in its own session (so that a timeout stops it and
everything it started), with no input, and its output captured.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess

from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import describe_os_error
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import PART_SUFFIX
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.paths import part_path

IMAGE_PREFIX = ".blockwise-verify-"
_LEFTOVER = re.compile(r"^\.?\.blockwise-verify-(snap-[0-9a-zA-Z]+)-(\d+)\.img(" + re.escape(PART_SUFFIX) + r")?$")


def image_path(tmp_dir, snapshot_id, pid=None):
    """The temporary image of ``snapshot_id`` for this process, in ``tmp_dir`` (resolved)."""
    directory = os.path.realpath(os.path.expanduser(tmp_dir))
    name = "{0}{1}-{2}.img".format(IMAGE_PREFIX, snapshot_id, os.getpid() if pid is None else pid)
    return os.path.join(directory, name)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_tmp_dir(tmp_dir, image):
    """Refuse a temporary directory the image cannot be written to, or an image path that is in use."""
    directory = os.path.realpath(os.path.expanduser(tmp_dir))
    if not os.path.isdir(directory):
        raise InputError("tmp_dir: {0} is not an existing directory".format(tmp_dir), option="tmp_dir")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError("tmp_dir: {0} is not writable".format(tmp_dir), option="tmp_dir")
    for path in (image, part_path(image)):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            raise InputError("tmp_dir: {0} is in the way of the temporary image and is not a regular file; remove "
                             "it".format(path), option="tmp_dir")


def remove_leftovers(tmp_dir, own_image):
    """Remove the images (and partial images) that runs which no longer run left in ``tmp_dir``.

    Only regular files named as this module names its images are touched; ``own_image`` (this
    process's, left by an earlier process with the same pid) is removed too. Returns the paths removed.
    """
    directory = os.path.realpath(os.path.expanduser(tmp_dir))
    removed = []
    for name in sorted(os.listdir(directory)):
        match = _LEFTOVER.match(name)
        path = os.path.join(directory, name)
        if not match:
            continue
        mine = path in (own_image, part_path(own_image))
        if not mine and _alive(int(match.group(2))):
            continue
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def remove_image(image):
    """Remove the image and its partial file; no error when they are gone already."""
    for path in (image, part_path(image)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def check_program(argv, shell):
    """Fail before anything is read when the check's program cannot be run."""
    program = argv[0]
    found = shutil.which(program) if os.sep not in program else (program if os.access(program, os.X_OK) else None)
    if found is None:
        hint = "" if shell else " (give its full path, or fs_check_shell=true for a shell command line)"
        raise InputError("fs_check: program {0!r} was not found or is not executable{1}".format(program, hint),
                         option="fs_check")


def run_check(argv, timeout):
    """Run the check -> ``(exit code or None when it timed out, output text)``."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                close_fds=True, start_new_session=True)
    except OSError as exc:
        raise BlockError("fs_check: cannot run {0}: {1}".format(argv[0], describe_os_error(exc)),
                         option="fs_check") from None
    try:
        out, _err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _err = proc.communicate()
        code = None
    finally:
        if proc.poll() is None:  # interrupted while waiting: leave nothing running
            _kill_group(proc.pid)
            proc.wait()
    return code, (out or b"").decode("utf-8", errors="replace")


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
