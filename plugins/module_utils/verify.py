# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of ``ebs_snapshot_verify``: data in, data out, no I/O.

* :func:`parse_sample` / :func:`choose_sample`: which blocks a sampled verification reads. The sample is
  drawn with a generator seeded by the snapshot id (the same snapshot always gets the same sample) and
  always holds block 0 and the last data block.
* :func:`refusal`: why a snapshot cannot be verified (pending, failed, archived, another account's).
* :func:`block_error_kind`: whether a block that could not be read makes the snapshot ``unreadable``
  or stops the run (access denied, throttling, a snapshot deleted meanwhile: facts about the caller or
  the service, never about the snapshot).
* :class:`BadBlocks`: a bounded, thread-safe record of bad block indexes (the lowest N and a count).
* :func:`compare`: block by block against a reference's digests.
* :func:`outcome`, :func:`summary`, :func:`restore_estimate`, :func:`verify_tags`: the result.
* :func:`fs_check_argv`, :func:`output_tail`: the file system check command.
"""
from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import random
import re
import shlex
import threading

from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import ZERO_BLOCK_DIGEST
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError

VERIFIED_TAG = "blockwise:verified"
VERIFIED_AT_TAG = "blockwise:verified-at"
VERIFY_MODE_TAG = "blockwise:verify-mode"
VERIFY_TAGS = (VERIFIED_TAG, VERIFIED_AT_TAG, VERIFY_MODE_TAG)

OK = "ok"
MISMATCH = "mismatch"
UNREADABLE = "unreadable"
FULL = "full"
SAMPLE = "sample"

DEFAULT_MAX_BAD_BLOCKS = 100
MAX_BAD_BLOCKS_LIMIT = 100000
FS_CHECK_PLACEHOLDER = "{image}"
DEFAULT_OUTPUT_LINES = 20
MIB = 1024 * 1024

# Errors that say something about the caller or the service, not about the snapshot's data: the
# run stops, and nothing is recorded on the snapshot.
FATAL_CODES = frozenset((
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure", "OptInRequired",
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "InvalidSignatureException", "SignatureDoesNotMatch",
    "RequestThrottledException", "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "SlowDown", "ServiceQuotaExceededException", "ConcurrentLimitExceededException",
    "ResourceNotFoundException", "ResourceNotFound",
))
_KMS_CODE = re.compile(r"^(KMS|Kms)")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*$")


# ---------------------------------------------------------------------------------------------- sample

class SampleSpec:
    """A requested sample: ``count`` blocks, or ``percent`` of the blocks that hold data."""

    def __init__(self, count=None, percent=None, text=None):
        self.count = count
        self.percent = percent
        self.text = text

    def size(self, population):
        """How many blocks the sample holds for ``population`` data blocks (at least 1 when any)."""
        if population <= 0:
            return 0
        if self.count is not None:
            return min(population, self.count)
        return min(population, max(1, int(math.ceil(population * self.percent / 100.0))))


def parse_sample(value):
    """``None`` (no sample: full verification), an integer N (blocks) or ``"P%"`` -> :class:`SampleSpec`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InputError("sample: give a number of blocks (e.g. 1000) or a percentage (e.g. '1%'), got {0!r}".format(
            value), option="sample")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    match = _PERCENT.match(text)
    if match:
        percent = float(match.group(1))
        if not 0 < percent <= 100:
            raise InputError("sample: a percentage must be above 0% and at most 100%, got {0!r}".format(value),
                             option="sample")
        return SampleSpec(percent=percent, text=text.strip())
    match = _COUNT.match(text)
    if match and int(match.group(1)) >= 1:
        return SampleSpec(count=int(match.group(1)), text=text.strip())
    raise InputError("sample: give a number of blocks of at least 1 (e.g. 1000) or a percentage (e.g. '1%'), got "
                     "{0!r}".format(value), option="sample")


def sample_seed(snapshot_id):
    """The seed of a snapshot's sample: the same snapshot always gets the same blocks."""
    return int.from_bytes(hashlib.sha256(("blockwise.ebs verify sample\0" + snapshot_id).encode("utf-8")).digest()[:8],
                          "big")


def choose_sample(snapshot_id, domain, spec, always=()):
    """The sorted block indexes of the sample of ``domain`` (sorted data block indexes).

    ``always`` (block 0, the last data block) are in the sample whatever its size; the rest is drawn
    without replacement from ``domain`` by a generator seeded with the snapshot id. Returns None when
    the sample would hold every block of ``domain`` (that is a full verification).
    """
    size = spec.size(len(domain))
    if size >= len(domain):
        return None
    chosen = set(int(i) for i in always)
    positions = [p for p in (bisect.bisect_left(domain, i) for i in chosen) if p < len(domain)]
    taken = set(p for p in positions if domain[p] in chosen)
    wanted = max(0, size - len(chosen))
    rng = random.Random(sample_seed(snapshot_id))
    free = len(domain) - len(taken)
    if wanted >= free:
        return sorted(chosen.union(domain))
    # Drawing len(taken) more than wanted leaves at least ``wanted`` positions that are not taken yet.
    drawn = rng.sample(range(len(domain)), min(len(domain), wanted + len(taken)))
    picks = [pos for pos in drawn if pos not in taken][:wanted]
    chosen.update(domain[pos] for pos in picks)
    return sorted(chosen)


def sorted_union(*sequences):
    """Ascending union of ascending sequences (a list)."""
    out = []
    last = None
    for value in heapq.merge(*sequences):
        if value != last:
            out.append(value)
            last = value
    return out


def intersect_sorted(left, right):
    """Ascending values present in both ascending sequences (a list)."""
    out = []
    other = iter(right)
    nxt = next(other, None)
    for value in left:
        while nxt is not None and nxt < value:
            nxt = next(other, None)
        if nxt is None:
            break
        if nxt == value:
            out.append(value)
    return out


# ---------------------------------------------------------------------------------------------- snapshot

def refusal(snapshot, owned):
    """Why ``snapshot`` (a DescribeSnapshots item) cannot be verified, or None.

    ``owned``: whether the snapshot belongs to the caller's account (a snapshot another account
    shares cannot be tagged, and is not this account's backup to certify).
    """
    sid = snapshot.get("SnapshotId")
    state = snapshot.get("State")
    if not owned:
        return ("snapshot_id: {0} belongs to account {1}, not to this account; only this account's snapshots are "
                "verified (copy it into this account first)".format(sid, snapshot.get("OwnerId") or "unknown"))
    if state == "pending":
        return ("snapshot_id: {0} is pending ({1}); only completed snapshots can be read through the EBS direct "
                "APIs: verify it once it is completed".format(sid, snapshot.get("Progress") or "0%"))
    if state != "completed":
        return "snapshot_id: {0} is in state {1}{2}; only completed snapshots can be verified".format(
            sid, state or "unknown", ": " + snapshot["StateMessage"] if snapshot.get("StateMessage") else "")
    if (snapshot.get("StorageTier") or "standard") == "archive":
        return ("snapshot_id: {0} is in the archive tier, which the EBS direct APIs cannot read; restore it "
                "(RestoreSnapshotTier) and verify it then".format(sid))
    return None


def block_error_kind(exc):
    """``unreadable`` (the block could not be read: a bad checksum, an internal error or a validation
    error after retries) or ``fatal`` (a fact about the caller or the service: the run stops)."""
    code = getattr(exc, "code", None)
    if not code:
        return "fatal"  # connection trouble: nothing is known about the block
    if code in FATAL_CODES or _KMS_CODE.match(code):
        return "fatal"
    return UNREADABLE


class BadBlocks:
    """Bad block indexes of one kind: how many, and the ``limit`` lowest (thread-safe)."""

    def __init__(self, limit):
        self.limit = int(limit)
        self.count = 0
        self.errors = {}
        self._heap = []  # max-heap (negated) of the lowest ``limit`` indexes
        self._lock = threading.Lock()

    def add(self, index, error=None):
        with self._lock:
            self.count += 1
            if len(self._heap) < self.limit:
                heapq.heappush(self._heap, -index)
            elif -self._heap[0] > index:
                dropped = -heapq.heapreplace(self._heap, -index)
                self.errors.pop(dropped, None)
            else:
                return
            if error is not None:
                self.errors[index] = error

    def indexes(self):
        with self._lock:
            return sorted(-i for i in self._heap)


def compare(indexes, snapshot_digest, reference_digest, skip=None):
    """Indexes (ascending) among ``indexes`` whose snapshot digest differs from the reference's.

    ``snapshot_digest(i)`` / ``reference_digest(i)`` return a 32-byte digest or None (a block that
    holds no data reads as zeros, so None and the zero block's digest are the same content).
    ``skip(i)`` is true for blocks that were not read (unreadable): they are not compared.
    """
    out = []
    for index in indexes:
        if skip is not None and skip(index):
            continue
        mine = snapshot_digest(index) or ZERO_BLOCK_DIGEST
        theirs = reference_digest(index) or ZERO_BLOCK_DIGEST
        if mine != theirs:
            out.append(index)
    return out


# ---------------------------------------------------------------------------------------------- result

def outcome(unreadable_count, mismatch_count, content_matches=None, fs_check_passed=None):
    """``unreadable`` when any block could not be read; else ``mismatch`` when any block differs from
    the reference, the content digest differs from the ``blockwise:content`` tag, or the file system
    check failed; else ``ok``."""
    if unreadable_count:
        return UNREADABLE
    if mismatch_count or content_matches is False or fs_check_passed is False:
        return MISMATCH
    return OK


def throughput_mib_s(nbytes, seconds):
    return round(nbytes / MIB / seconds, 2) if seconds > 0 and nbytes > 0 else 0.0


def restore_estimate(data_blocks, blocks_read, seconds, workers):
    """Seconds to read the snapshot's ``data_blocks`` at the rate measured (None when nothing was read).

    ``blocks_read`` blocks took ``seconds`` with at most ``min(workers, blocks_read)`` in flight; a
    restore keeps ``min(workers, data_blocks)`` in flight. The rate is scaled by that ratio, so a full
    verification's estimate is its own read time, and a sample smaller than ``workers`` (which cannot
    fill the workers) is extrapolated as reads at the latency it measured, ``workers`` at a time.
    """
    if data_blocks <= 0:
        return 0.0
    if blocks_read <= 0 or seconds <= 0:
        return None
    per_block = float(seconds) / blocks_read * min(workers, blocks_read)
    return round(data_blocks * per_block / min(workers, data_blocks), 3)


def verify_tags(result, mode, now):
    """The tags that record a verification: result, time (ISO 8601 UTC, seconds) and mode."""
    return {VERIFIED_TAG: result, VERIFIED_AT_TAG: now.strftime("%Y-%m-%dT%H:%M:%SZ"), VERIFY_MODE_TAG: mode}


def recorded_tags(tags):
    """The verification tags a snapshot carries now (only those that are set)."""
    return dict((key, tags[key]) for key in VERIFY_TAGS if key in tags)


def _indexes_text(indexes, count):
    shown = ", ".join(str(i) for i in indexes)
    more = " and {0} more".format(count - len(indexes)) if count > len(indexes) else ""
    return shown + more


def summary(snapshot_id, result, mode, unreadable, mismatched, reference, content_matches, fs_check):
    """One sentence for the task's ``msg``: what was verified and what was found."""
    where = "{0} ({1} verification, reference: {2})".format(snapshot_id, mode, reference)
    if result == OK:
        return "{0}: ok".format(where)
    parts = []
    if unreadable.count:
        parts.append("{0} block(s) could not be read: {1}".format(
            unreadable.count, _indexes_text(unreadable.indexes(), unreadable.count)))
    if mismatched.count:
        parts.append("{0} block(s) differ from the {1}: {2}".format(
            mismatched.count, reference, _indexes_text(mismatched.indexes(), mismatched.count)))
    if content_matches is False and reference in ("blockwise:content tag", "none"):
        parts.append("the content differs from its blockwise:content tag (which blocks differ is not known "
                     "without a manifest or compare_to)")
    elif content_matches is False:
        parts.append("the content differs from its blockwise:content tag{0}".format(
            "" if mismatched.count else ", although every block matches the {0}: the tag does not describe this "
            "snapshot".format(reference)))
    if fs_check and fs_check.get("passed") is False:
        parts.append("fs_check failed with exit code {0}".format(fs_check.get("exit_code")))
    return "{0}: {1}: {2}".format(where, result, "; ".join(parts))


# ---------------------------------------------------------------------------------------------- fs_check

def check_fs_template(template):
    """Refuse a file system check template that cannot work, before anything is read."""
    if template is None:
        return
    if FS_CHECK_PLACEHOLDER not in template:
        raise InputError("fs_check: the command must name the image as {0}, got {1!r}".format(
            FS_CHECK_PLACEHOLDER, template), option="fs_check")
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise InputError("fs_check: cannot split {0!r} into words: {1}".format(template, exc), option="fs_check")
    if not words or words[0] == FS_CHECK_PLACEHOLDER:
        raise InputError("fs_check: the command must start with a program, got {0!r}".format(template),
                         option="fs_check")


def fs_check_argv(template, image, shell=False):
    """The command to run: the template split into words (``{image}`` replaced in each word), or with
    ``shell`` one ``/bin/sh -c`` line in which the image path is quoted."""
    if shell:
        return ["/bin/sh", "-c", template.replace(FS_CHECK_PLACEHOLDER, shlex.quote(image))]
    return [word.replace(FS_CHECK_PLACEHOLDER, image) for word in shlex.split(template)]


def output_tail(text, lines=DEFAULT_OUTPUT_LINES):
    """The last ``lines`` non-empty lines of a command's output."""
    kept = [line.rstrip() for line in (text or "").splitlines() if line.strip()]
    return kept[-lines:]
