# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The control API of the local AWS endpoint, served under ``/_localaws/`` (no AWS route starts so).

Routes (JSON in, JSON out):

==========  =====================================================  ============================================
GET         /_localaws/health                                      ``{"ok": true}``
GET         /_localaws/counters                                    ``{"counts": {...}, "faulted": {...}}``
DELETE      /_localaws/counters                                    clear the counters
GET         /_localaws/faults                                      current policy and injected errors
POST        /_localaws/faults                                      set the random fault policy
DELETE      /_localaws/faults                                      clear the policy and injected errors
POST        /_localaws/errors                                      inject an error for an action (optionally in one ``region``)
POST        /_localaws/snapshots/foreign                           a snapshot of ``owner_id`` shared with ``account_id``
POST        /_localaws/snapshots/{id}/start-time                   back-date a snapshot (``start_time``, ISO 8601)
POST        /_localaws/snapshots/{id}/block-faults                 GetSnapshotBlock faults of chosen blocks (``blocks``, ``mode``)
DELETE      /_localaws/snapshots/{id}/block-faults                 remove them
GET         /_localaws/snapshots/{id}/progress?region=             state, progress, blocks written, copy or not
GET         /_localaws/copies                                      ``{"duration_seconds", "limit"}`` of CopySnapshot
POST        /_localaws/copies                                      set ``duration_seconds`` and/or ``limit``
POST        /_localaws/copies/{id}/fail                            end a pending copy in error (``region``, ``message``)
POST        /_localaws/clock                                       ``{"advance": seconds}``: pending snapshots and copies
GET         /_localaws/clock-skew                                  ``{"offset_seconds": N}``: the endpoint's clock offset
POST        /_localaws/clock-skew                                  ``{"offset_seconds": N}``: move the endpoint's clock
DELETE      /_localaws/clock-skew                                  back to real time
POST        /_localaws/reset                                       wipe all state (moto, snapshots, counters, faults)
==========  =====================================================  ============================================

Control requests are never counted nor faulted.
"""

import json
import os
import re
from datetime import datetime
from urllib.parse import parse_qs

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from .copies import CopiedSnapshot
from .ebs_direct import DirectSnapshot
from .ec2_extras import add_foreign_snapshot, backdate_snapshot
from .sharing import find_snapshot
from .wire import Response, json_response

CONTROL_PREFIX = "/_localaws/"


class ControlError(Exception):
    """A control API error answered as ``{"error": message}``."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class ControlAPI:
    """WSGI handler of the control routes."""

    def __init__(self, *, counters, faults, ebs, clock, reset, copies):
        self._counters = counters
        self._copies = copies
        self._faults = faults
        self._ebs = ebs
        self._clock = clock
        self._reset = reset
        self._routes = [
            ("GET", r"health", self._health),
            ("GET", r"counters", self._get_counters),
            ("DELETE", r"counters", self._clear_counters),
            ("GET", r"faults", self._get_faults),
            ("POST", r"faults", self._set_faults),
            ("DELETE", r"faults", self._clear_faults),
            ("POST", r"errors", self._inject_error),
            ("POST", r"snapshots/foreign", self._foreign_snapshot),
            ("POST", r"snapshots/(snap-[0-9a-f]+)/start-time", self._backdate),
            ("POST", r"snapshots/(snap-[0-9a-f]+)/block-faults", self._inject_block_faults),
            ("DELETE", r"snapshots/(snap-[0-9a-f]+)/block-faults", self._clear_block_faults),
            ("GET", r"snapshots/(snap-[0-9a-f]+)/progress", self._progress),
            ("GET", r"copies", self._copy_settings),
            ("POST", r"copies", self._set_copy_settings),
            ("POST", r"copies/(snap-[0-9a-f]+)/fail", self._fail_copy),
            ("POST", r"clock", self._advance_clock),
            ("GET", r"clock-skew", self._get_clock_skew),
            ("POST", r"clock-skew", self._set_clock_skew),
            ("DELETE", r"clock-skew", self._clear_clock_skew),
            ("POST", r"reset", self._reset_all),
        ]

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")[len(CONTROL_PREFIX):].strip("/")
        query = {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            for route_method, pattern, handler in self._routes:
                match = re.fullmatch(pattern, path)
                if match and route_method == method:
                    payload = _json_body(environ) if method == "POST" else {}
                    return handler(payload, query, *match.groups())(start_response)
            raise ControlError(f"No control route for {method} {CONTROL_PREFIX}{path}", 404)
        except ControlError as exc:
            return json_response(exc.status, {"error": str(exc)})(start_response)
        except (KeyError, TypeError, ValueError) as exc:
            return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})(start_response)

    @staticmethod
    def _health(_payload, _query):
        return json_response(200, {"ok": True})

    def _get_counters(self, _payload, _query):
        return json_response(200, self._counters.as_dict())

    def _clear_counters(self, _payload, _query):
        self._counters.clear()
        return Response(204)

    def _get_faults(self, _payload, _query):
        return json_response(200, dict(self._faults.as_dict(), block_faults=self._ebs.block_faults.as_list()))

    def _set_faults(self, payload, _query):
        self._faults.configure(**payload)
        return json_response(200, self._faults.as_dict())

    def _clear_faults(self, _payload, _query):
        self._faults.clear()
        self._ebs.block_faults.clear()
        return Response(204)

    def _inject_block_faults(self, payload, _query, snapshot_id):
        account = payload.pop("account_id", None) or default_account_id()
        region = payload.pop("region", "us-east-1")
        self._ebs.block_faults.inject(account, region, snapshot_id, **payload)
        return json_response(200, {"block_faults": self._ebs.block_faults.as_list()})

    def _clear_block_faults(self, _payload, _query, snapshot_id):
        self._ebs.block_faults.clear(snapshot_id)
        return Response(204)

    def _inject_error(self, payload, _query):
        self._faults.inject(**payload)
        return json_response(200, self._faults.as_dict())

    @staticmethod
    def _backdate(payload, _query, snapshot_id):
        start_time = datetime.fromisoformat(payload["start_time"])
        if start_time.tzinfo is None:
            raise ControlError("start_time needs a time zone")
        account = payload.get("account_id") or default_account_id()
        if not backdate_snapshot(account, payload.get("region", "us-east-1"), snapshot_id, start_time):
            raise ControlError(f"Snapshot {snapshot_id} not found", 404)
        return json_response(200, {"snapshot_id": snapshot_id, "start_time": start_time.isoformat()})

    @staticmethod
    def _foreign_snapshot(payload, _query):
        account = payload.get("account_id") or default_account_id()
        if payload["owner_id"] == account:
            raise ControlError("owner_id must be another account than account_id")
        snapshot_id = add_foreign_snapshot(account, payload.get("region", "us-east-1"), payload["owner_id"],
                                           volume_size=int(payload.get("volume_size", 8)), tags=payload.get("tags"),
                                           description=payload.get("description", ""))
        return json_response(200, {"snapshot_id": snapshot_id})

    @staticmethod
    def _progress(_payload, query, snapshot_id):
        region = query.get("region", "us-east-1")
        account = query.get("account_id") or default_account_id()
        snapshot = ec2_backends[account][region].snapshots.get(snapshot_id) or find_snapshot(region, snapshot_id)
        if snapshot is None:
            raise ControlError(f"Snapshot {snapshot_id} not found", 404)
        direct, copied = isinstance(snapshot, DirectSnapshot), isinstance(snapshot, CopiedSnapshot)
        status = snapshot.status
        if direct:
            progress = snapshot.reported_progress
        else:
            progress = int(snapshot.progress.rstrip("%")) if copied else 100
        return json_response(200, {
            "snapshot_id": snapshot_id,
            "status": status,
            "progress": progress,
            "blocks_written": len(snapshot.blocks) if direct else 0,
            "direct": direct,
            "copy": copied,
        })

    def _copy_settings(self, _payload, _query):
        return json_response(200, self._copies.settings())

    def _set_copy_settings(self, payload, _query):
        unknown = sorted(set(payload) - {"duration_seconds", "limit"})
        if unknown:
            raise ControlError(f"Unknown copy settings: {', '.join(unknown)} (duration_seconds, limit)")
        return json_response(200, self._copies.configure(**payload))

    def _fail_copy(self, payload, _query, snapshot_id):
        try:
            status = self._copies.fail_copy(payload.get("region", "us-east-1"), snapshot_id, payload.get("message") or "The snapshot copy failed.")
        except KeyError as exc:
            raise ControlError(str(exc.args[0]), 404) from None
        return json_response(200, {"snapshot_id": snapshot_id, "status": status})

    def _advance_clock(self, payload, _query):
        self._ebs.advance_clock(payload["advance"])
        return json_response(200, {"advanced": payload["advance"]})

    def _get_clock_skew(self, _payload, _query):
        return json_response(200, {"offset_seconds": self._clock.offset})

    def _set_clock_skew(self, payload, _query):
        if "offset_seconds" not in payload:
            raise ControlError("offset_seconds is required (seconds to add to the endpoint's clock; negative: behind)")
        self._clock.set_offset(payload["offset_seconds"])
        return json_response(200, {"offset_seconds": self._clock.offset})

    def _clear_clock_skew(self, _payload, _query):
        self._clock.clear()
        return Response(204)

    def _reset_all(self, _payload, _query):
        self._reset()
        return Response(204)


def default_account_id():
    """The account of control calls that name none: ``MOTO_ACCOUNT_ID`` or moto's default account."""
    return os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)


def _json_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    return json.loads(raw) if raw else {}
