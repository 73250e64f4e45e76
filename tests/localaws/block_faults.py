# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults of chosen blocks of a chosen snapshot, for GetSnapshotBlock (tests of verification and restores).

GetSnapshotBlock answers a block's data with its SHA256 checksum (``x-amz-Checksum``), and a client is to
check the one against the other (EBS direct API reference, GetSnapshotBlock). A rule set here changes
what GetSnapshotBlock answers for the blocks it names:

- ``error``: an error answer (status, code and message given; by default AWS's 500
  ``InternalServerException``) instead of the block;
- ``corrupt``: the block's data with one byte changed, under the checksum of the data that was written
  (data that does not match its checksum, as a damaged block would read);
- ``bad-checksum``: the data that was written, under a wrong checksum.

``count`` limits a rule to the next N reads of each block it names (None: every read). Rules are
per account, region and snapshot, and are dropped by ``clear`` (the control API's reset and
``DELETE /faults`` call it).
"""

import hashlib
import threading
from dataclasses import dataclass, field

MODES = ("error", "corrupt", "bad-checksum")


@dataclass
class BlockFault:
    """What GetSnapshotBlock answers for one block while the rule lasts."""

    mode: str
    status: int = 500
    code: str = "InternalServerException"
    message: str = "An internal error has occurred."
    remaining: int | None = None

    def as_dict(self):
        """JSON-ready form."""
        return dict(vars(self))


@dataclass
class BlockFaults:
    """The rules, keyed by (account, region, snapshot id, block index)."""

    _rules: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, account, region, snapshot_id, blocks, mode="error", status=500, code="InternalServerException",
               message="An internal error has occurred.", count=None):
        """Make the given block indexes of a snapshot answer per ``mode``."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if count is not None and int(count) < 1:
            raise ValueError("count must be a positive integer or None")
        indexes = [int(index) for index in blocks]
        if not indexes or min(indexes) < 0:
            raise ValueError("blocks must be a non-empty list of block indexes")
        with self._lock:
            for index in indexes:
                self._rules[(account, region, snapshot_id, index)] = BlockFault(
                    mode, int(status), code, message, None if count is None else int(count))

    def take(self, account, region, snapshot_id, index):
        """The rule that answers this read of the block (and one read less of it), or None."""
        key = (account, region, snapshot_id, index)
        with self._lock:
            rule = self._rules.get(key)
            if rule is None:
                return None
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self._rules[key]
            return rule

    def as_list(self):
        """The rules, JSON-ready."""
        with self._lock:
            return [dict(rule.as_dict(), account=key[0], region=key[1], snapshot_id=key[2], block_index=key[3])
                    for key, rule in sorted(self._rules.items())]

    def clear(self, snapshot_id=None):
        """Drop every rule (of one snapshot, when given)."""
        with self._lock:
            for key in [k for k in self._rules if snapshot_id is None or k[2] == snapshot_id]:
                del self._rules[key]


def corrupted(data):
    """``data`` with its first byte changed."""
    return bytes([data[0] ^ 0xFF]) + data[1:]


def wrong_digest(digest):
    """A digest that is not ``digest``."""
    return hashlib.sha256(b"not the block\0" + digest).digest()
