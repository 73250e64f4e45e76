# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``LocalAWSControl``: the control API of a running local AWS endpoint, over HTTP.

It needs nothing but the standard library, so it also drives an endpoint started in another
process (``python -m tests.localaws serve``).
"""

import json
import re
import ssl
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from .faults import is_mutating


DEFAULT_ACCOUNT_ID = "123456789012"
_ACCOUNT_RE = re.compile(r"^\d{12}$")


def account_credentials(account_id):
    """boto3 credentials that make the endpoint treat a caller as ``account_id`` (12 digits).

    moto maps a 12-digit access key id to that account id, so two accounts can be exercised against one
    endpoint: ``boto3.client("ec2", endpoint_url=..., **account_credentials("210987654321"))``. For
    ``ansible-playbook`` set ``AWS_ACCESS_KEY_ID`` to the account id (and any ``AWS_SECRET_ACCESS_KEY``).
    """
    if not _ACCOUNT_RE.match(str(account_id)):
        raise ValueError(f"account_id must be 12 digits, got {account_id!r}")
    return {"aws_access_key_id": str(account_id), "aws_secret_access_key": "testing"}


class LocalAWSControlError(RuntimeError):
    """The control API refused a request."""


class LocalAWSControl:
    """Client of the ``/_localaws/`` control routes of the endpoint at ``endpoint_url``."""

    def __init__(self, endpoint_url, timeout=10.0, ca_bundle=None):
        self.endpoint_url = endpoint_url.rstrip("/")
        self.timeout = timeout
        self.ca_bundle = ca_bundle

    def _call(self, method, route, payload=None, query=None):
        url = f"{self.endpoint_url}/_localaws/{route}"
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            context = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else None
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as answer:
                body = answer.read()
        except urllib.error.HTTPError as exc:
            raise LocalAWSControlError(f"{method} {route}: HTTP {exc.code} {exc.read().decode(errors='replace')}") from None
        return json.loads(body) if body else None

    def health(self):
        """True when the endpoint answers."""
        return bool(self._call("GET", "health")["ok"])

    def counters(self):
        """Requests per ``service:Action`` since the last reset (faulted ones included)."""
        return self._call("GET", "counters")["counts"]

    def faulted_counters(self):
        """Faulted requests per ``service:Action``."""
        return self._call("GET", "counters")["faulted"]

    def mutating_calls(self):
        """The counters of mutating actions only (Create*, Delete*, Put*, Start*, ...)."""
        return {key: count for key, count in self.counters().items() if is_mutating(key)}

    def reset_counters(self):
        """Set every counter back to zero."""
        self._call("DELETE", "counters")

    def set_faults(self, latency=0.0, throttle_rate=0.0, error_rate=0.0, services=None, actions=None, seed=None):
        """Delay, throttle and fail a fraction of the requests, optionally only some services/actions."""
        payload = {
            "latency": latency, "throttle_rate": throttle_rate, "error_rate": error_rate,
            "services": list(services or ()), "actions": list(actions or ()), "seed": seed,
        }
        return self._call("POST", "faults", payload)

    def faults(self):
        """The active fault policy and the pending injected errors."""
        return self._call("GET", "faults")

    def clear_faults(self):
        """Remove the fault policy and every injected error."""
        self._call("DELETE", "faults")

    def inject_error(self, action, status=400, code="ValidationException", message="Injected error", count=1, service=None, reason=None,
                     region=None):
        """Answer the next ``count`` calls of ``action`` (``Action`` or ``service:Action``; all calls if ``count`` is None).

        With ``region`` only calls signed for that region are answered with the error (and counted
        against ``count``); calls to other regions go through.
        """
        payload = {"action": action, "status": status, "code": code, "message": message, "count": count, "service": service, "reason": reason}
        if region is not None:
            payload["region"] = region
        return self._call("POST", "errors", payload)

    def inject_block_fault(self, snapshot_id, blocks, mode="error", status=500, code="InternalServerException",
                           message="An internal error has occurred.", count=None, region="us-east-1"):
        """Make GetSnapshotBlock of the given block indexes of ``snapshot_id`` answer an error (``error``), data that
        does not match its checksum (``corrupt``) or the right data under a wrong checksum (``bad-checksum``), for the
        next ``count`` reads of each block (every read when None). Returns the block faults now set."""
        payload = {"blocks": list(blocks), "mode": mode, "status": status, "code": code, "message": message,
                   "count": count, "region": region}
        return self._call("POST", f"snapshots/{quote(snapshot_id)}/block-faults", payload)["block_faults"]

    def clear_block_faults(self, snapshot_id):
        """Remove the block faults of ``snapshot_id`` (``clear_faults`` and ``reset`` remove every one)."""
        self._call("DELETE", f"snapshots/{quote(snapshot_id)}/block-faults")

    def backdate_snapshot(self, snapshot_id, start_time, region="us-east-1", account_id=None):
        """Set a snapshot's StartTime to ``start_time`` (a time-zone aware datetime); ``account_id``: its owner (default account)."""
        if start_time.tzinfo is None:
            raise ValueError("start_time must be time-zone aware")
        payload = {"start_time": start_time.isoformat(), "region": region}
        if account_id:
            payload["account_id"] = account_id
        self._call("POST", f"snapshots/{quote(snapshot_id)}/start-time", payload)

    def add_foreign_snapshot(self, owner_id="210987654321", region="us-east-1", volume_size=8, tags=None, description="",
                             account_id=DEFAULT_ACCOUNT_ID):
        """A completed snapshot owned by ``owner_id`` and shared with ``account_id``; returns its id.

        It lives in ``owner_id``'s account (``tags`` are the owner's, which the other account does not
        see) with a ``createVolumePermission`` for ``account_id``: it shows in that account's
        DescribeSnapshots unless ``OwnerIds`` excludes its owner, can be copied, and deleting or tagging
        it fails with UnauthorizedOperation, as for a snapshot another account shared with you.
        """
        payload = {"owner_id": owner_id, "region": region, "volume_size": volume_size, "tags": tags or {}, "description": description,
                   "account_id": account_id}
        return self._call("POST", "snapshots/foreign", payload)["snapshot_id"]

    def snapshot_progress(self, snapshot_id, region="us-east-1"):
        """``{"status", "progress", "blocks_written", "direct"}`` of a snapshot; progress is the last reported value."""
        return self._call("GET", f"snapshots/{quote(snapshot_id)}/progress", query={"region": region})

    def copy_settings(self):
        """``{"duration_seconds": N, "limit": N}``: how long a standard CopySnapshot takes, and the concurrent copy limit."""
        return self._call("GET", "copies")

    def set_copy_duration(self, seconds):
        """Make new standard copies take ``seconds`` on the endpoint's clock (``advance_clock`` moves it); default 2."""
        return self._call("POST", "copies", {"duration_seconds": seconds})

    def set_copy_limit(self, limit):
        """Allow ``limit`` pending copies per account and destination region (AWS: 20, the default)."""
        return self._call("POST", "copies", {"limit": limit})

    def fail_copy(self, snapshot_id, region="us-east-1", message="The snapshot copy failed."):
        """End a pending copy (in ``region``, its destination) in ``error`` with ``message`` as its StateMessage."""
        return self._call("POST", f"copies/{quote(snapshot_id)}/fail", {"region": region, "message": message})["status"]

    def advance_clock(self, seconds):
        """Move the endpoint's clock of pending snapshots forward: EBS direct timeouts and copy progress."""
        self._call("POST", "clock", {"advance": seconds})

    def set_clock_skew(self, offset_seconds):
        """Move the endpoint's clock ``offset_seconds`` away from real time (negative: behind its clients).

        Requests signed more than 15 minutes away from that clock are refused as AWS refuses them.
        """
        return self._call("POST", "clock-skew", {"offset_seconds": offset_seconds})["offset_seconds"]

    def clock_skew(self):
        """The endpoint's clock offset in seconds (0 unless ``set_clock_skew`` moved it)."""
        return self._call("GET", "clock-skew")["offset_seconds"]

    def clear_clock_skew(self):
        """Put the endpoint's clock back on real time."""
        self._call("DELETE", "clock-skew")

    def reset(self):
        """Wipe all state: moto's backends, direct snapshots, counters, faults and both clocks."""
        self._call("POST", "reset")
