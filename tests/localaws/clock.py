# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint's clock, and the SigV4 request-time check AWS makes on every signed request.

AWS refuses a request whose SigV4 date (``X-Amz-Date``) is more than 15 minutes away from its own
clock, in either direction; a pre-signed request (``X-Amz-Date`` and ``X-Amz-Expires`` in the query
string) is refused once ``X-Amz-Date + X-Amz-Expires`` has passed, or when it is dated more than
15 minutes ahead. The refusal is sent before the action runs, in the calling protocol's own words:

========== =================================== ====== ==================================================
protocol   code                                status message
========== =================================== ====== ==================================================
ec2        ``RequestExpired``                  400    ``Request has expired.``
json       ``InvalidSignatureException``       400    ``Signature expired: ...`` / ``Signature not yet current: ...``
query      ``SignatureDoesNotMatch``           403    same texts
rest-json  ``InvalidSignatureException``       403    same texts
rest-xml   ``RequestTimeTooSkewed``            403    ``The difference between the request time and the current time is too large.``
========== =================================== ====== ==================================================

``ServerClock`` is real time plus an offset set through the control API, so that tests can play a
control node whose clock is far ahead (a negative offset) or behind without touching the machine's
clock. The offset only moves this check and the ``Date`` header of its answers; the timestamps moto
gives resources (a snapshot's ``StartTime``) stay in real time.
"""

import math
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from .wire import AwsError

MAX_SKEW = timedelta(minutes=15)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
S3_SKEW_MESSAGE = "The difference between the request time and the current time is too large."


class ServerClock:
    """Real UTC time plus an offset in seconds (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._offset = 0.0

    @property
    def offset(self):
        """Seconds added to the real time (negative: the endpoint is behind its clients)."""
        with self._lock:
            return self._offset

    def set_offset(self, seconds):
        """Move the endpoint's clock ``seconds`` away from real time; refuse anything but a finite number."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise ValueError(f"offset_seconds must be a finite number of seconds, got {seconds!r}")
        with self._lock:
            self._offset = float(seconds)

    def clear(self):
        """Back to real time."""
        self.set_offset(0)

    def now(self):
        """The endpoint's current time (aware, UTC)."""
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset)


def _parse(stamp):
    try:
        return datetime.strptime(stamp, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def signed_window(request):
    """``(signed time, seconds it stays valid or None)`` of a SigV4 request; ``(None, None)`` when unsigned.

    The header ``X-Amz-Date`` wins; a pre-signed request carries ``X-Amz-Date`` and ``X-Amz-Expires``
    in its query string.
    """
    header = request.header("X-Amz-Date")
    if header:
        return _parse(header), None
    stamp = request.query.get("X-Amz-Date")
    if not stamp:
        return None, None
    try:
        expires = int(request.query.get("X-Amz-Expires", ""))
    except ValueError:
        expires = None
    return _parse(stamp), expires


def skew_error(request, now):
    """The error AWS answers when ``request`` was signed too far from ``now``, or None when it is in time."""
    signed, expires = signed_window(request)
    if signed is None:
        return None
    if signed > now + MAX_SKEW:
        return _refusal(request, signed, now, ahead=True)
    oldest = now - (timedelta(seconds=expires) if expires is not None else MAX_SKEW)
    if signed < oldest:
        return _refusal(request, signed, now, ahead=False, expires=expires)
    return None


def _stamp(moment):
    return moment.strftime(AMZ_DATE_FORMAT)


def _signature_message(signed, now, ahead):
    if ahead:
        return f"Signature not yet current: {_stamp(signed)} is still later than {_stamp(now + MAX_SKEW)} ({_stamp(now)} + 15 min.)"
    return f"Signature expired: {_stamp(signed)} is now earlier than {_stamp(now - MAX_SKEW)} ({_stamp(now)} - 15 min.)"


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _refusal(request, signed, now, ahead, expires=None):
    protocol = request.protocol
    if protocol == "ec2":
        return AwsError(400, "RequestExpired", "Request has expired.")
    if protocol == "rest-xml":
        server_time = _iso(now)
        if expires is not None:
            return AwsError(403, "AccessDenied", "Request has expired",
                            details=(("Expires", _iso(signed + timedelta(seconds=expires))), ("ServerTime", server_time)))
        return AwsError(403, "RequestTimeTooSkewed", S3_SKEW_MESSAGE, details=(
            ("RequestTime", _stamp(signed)), ("ServerTime", server_time),
            ("MaxAllowedSkewMilliseconds", str(int(MAX_SKEW.total_seconds() * 1000)))))
    message = _signature_message(signed, now, ahead)
    if protocol == "query":
        return AwsError(403, "SignatureDoesNotMatch", message)
    if protocol == "json":
        return AwsError(400, "InvalidSignatureException", message)
    return AwsError(403, "InvalidSignatureException", message)


def http_date(moment):
    """``moment`` as an HTTP ``Date`` header value."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
