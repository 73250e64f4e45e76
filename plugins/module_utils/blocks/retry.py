# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retrying one EBS direct or EC2 call per the error classes of the block streaming core."""
from __future__ import annotations

import random
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
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import Cancelled
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import TransferError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import BlockError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import NOT_FOUND_GRACE_SECONDS


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
        err = TransferError("{0} failed{1}: {2}{3}".format(what, where, error_message(exc), suffix),
                            block_index=block_index, code=error_code(exc) or None, snapshot_id=snapshot_id)
        # AWS's own words, without the snapshot id added above: callers that must tell which
        # snapshot AWS complains about search these, not ``msg``.
        err.aws_message = error_message(exc)
        return err
