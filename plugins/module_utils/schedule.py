# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durations, cron expressions and "is this volume due?".

Pure: data in, data out. ``now`` is always passed in; nothing here reads the clock or talks to AWS.

Durations
    ``parse_duration`` reads human durations through the ``pytimeparse`` library: ``"12 hours"``,
    ``"1d"``, ``"30m"``, ``"2w"``, ``"90 days"``, ``"1h30m"``, ``"1.5h"``, ``"01:30:00"``. A bare
    number (``3600`` or ``"7"``) is refused: it is too easy to mean days and get seconds, so a unit is
    required (``"3600s"``, ``"7d"``). Months and years are refused too (their length varies): use days
    or weeks. Zero and negative durations are refused, and so are durations longer than
    ``MAX_DURATION`` (36500 days, about 100 years): ``"99999999 weeks"`` would otherwise pass here and
    end in "date value out of range" once the module subtracts it from the current time, after reading.

Frequencies
    ``parse_frequency`` accepts a duration (an *interval*: due when the newest snapshot is older than
    the interval) or a standard 5-field cron expression ``minute hour day-of-month month day-of-week``
    evaluated in an IANA time zone (via the ``croniter`` library), plus the macros ``@hourly``,
    ``@daily``/``@midnight``, ``@weekly``, ``@monthly`` and ``@yearly``/``@annually``. Seconds or year
    fields (6 or 7 fields), out-of-range values, reversed ranges (``5-1``), a zero step, croniter's
    non-standard ``H``/``R`` (hashed/random) forms and expressions that never fire (``0 0 30 2 *``) are
    refused. When both day-of-month and day-of-week are restricted, either matching fires (classic cron).

Daylight saving time (cron only), the classic cron behaviour:
    * expressions with a fixed minute and hour (neither field starting with ``*``): a fire time that
      falls in a skipped hour (spring forward) fires at the first instant after the jump (``30 2 * * *``
      in Europe/Berlin fires at 03:00 CEST on the last Sunday of March); expressions whose minute or hour
      field starts with ``*`` follow the wall clock, so their fire times in the skipped hour do not
      happen (``0 */2 * * *`` fires at 00:00 CET and then 04:00 CEST);
    * in a repeated hour (fall back), expressions with a fixed minute and hour (neither field starting
      with ``*``) fire once, at the first occurrence; expressions whose minute or hour field starts with
      ``*`` (``0 * * * *``, ``*/15 * * * *``, ``0 */2 * * *``) follow the wall clock and fire in both
      (also for the 30-minute changes of Australia/Lord_Howe).

    croniter only walks naive wall-clock times here; this module maps them to instants with the rules
    above (``_instants``), so the behaviour does not depend on croniter's own time zone handling.

Grace (jobs that start a little early)
    A scheduler that runs a playbook "every 12 hours" does not start it at exactly the same second each
    time; with a ``"12 hours"`` frequency a run that starts 10 seconds early would find the previous
    snapshot 11:59:50 old and skip, and the volume would only be snapshotted every other run. ``is_due``
    takes a ``grace``: a snapshot is due when it would be due ``grace`` from now.

    * interval: due when the newest snapshot is at least ``interval - grace`` old;
    * cron: due when no snapshot was started after ``P - grace``, where ``P`` is the last fire time at
      or before ``now + grace``. A run up to ``grace`` before a fire time takes that fire time's
      snapshot, and a run just after it then finds it taken.

    ``default_grace`` gives 5 minutes, or a tenth of the gap between two scheduled points when that is
    shorter (``"30m"`` -> 3 minutes), so that frequent runs never take snapshots much faster than asked.

Missing libraries
    ``croniter`` and ``pytimeparse`` may be missing on the node that runs a module. Importing this file
    never fails: ``HAS_CRONITER``/``HAS_PYTIMEPARSE`` say what is there and ``CRONITER_IMPORT_ERROR``/
    ``PYTIMEPARSE_IMPORT_ERROR`` hold the import traceback for ``fail_json(msg=missing_required_lib(...),
    exception=...)``. Asking for a cron or a duration without its library raises ``MissingLibraryError``.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as _dt_timezone
from typing import NamedTuple, Optional

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - Python < 3.9
    ZoneInfo = None
    ZoneInfoNotFoundError = LookupError

try:
    from croniter import croniter as _croniter
    HAS_CRONITER = True
    CRONITER_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by monkeypatching HAS_CRONITER in the tests
    _croniter = None
    HAS_CRONITER = False
    CRONITER_IMPORT_ERROR = traceback.format_exc()

try:
    from pytimeparse import parse as _timeparse
    HAS_PYTIMEPARSE = True
    PYTIMEPARSE_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised by monkeypatching HAS_PYTIMEPARSE in the tests
    _timeparse = None
    HAS_PYTIMEPARSE = False
    PYTIMEPARSE_IMPORT_ERROR = traceback.format_exc()

UTC = _dt_timezone.utc
UTC_NAMES = ("UTC", "Etc/UTC")

INTERVAL = "interval"
CRON = "cron"

CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")

_BARE_NUMBER_RE = re.compile(r"^[+-]?[0-9]+(\.[0-9]*)?$")
_MONTHS_YEARS_RE = re.compile(r"(?i)\b(months?|mo|years?|yrs?|y)\b|[0-9](mo|y)\b")
_CRON_TOKEN_RE = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
_CRON_TIME_TOKEN_RE = re.compile(r"^[0-9*/,-]+$")
_CRON_NAMES_RE = re.compile(r"(?i)jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat")
_CRON_RANGE_RE = re.compile(r"(?<![0-9])([0-9]+)-([0-9]+)")
# Letters left in a field once month/day names are removed: only ``L`` (last) where croniter knows it.
_CRON_LETTERS_ALLOWED = ("", "", "L", "", "L")

# Safety bound of the wall-clock walk of one cron step.
_MAX_CRON_STEPS = 10000
# More than any clock change moves local time (daylight saving time moves it by 30 minutes to 2 hours).
_CLOCK_CHANGE_MARGIN = timedelta(hours=3)


# The longest duration any option takes: far beyond any schedule or retention, far inside datetime's range.
MAX_DURATION = timedelta(days=36500)


class DurationRangeError(ValueError):
    """A duration that parses but is out of range (longer than ``MAX_DURATION``)."""


class MissingLibraryError(RuntimeError):
    """A Python library needed for this input is not installed on the node running the module."""

    def __init__(self, library, purpose):
        self.library = library
        super().__init__(
            "the Python library '%s' is required to %s; install it where the module runs (pip install %s)" % (library, purpose, library)
        )


class Due(NamedTuple):
    """Result of ``is_due``: unpacks as ``(due, next_due)``."""

    due: bool
    next_due: datetime


def get_zone(name):
    """The tzinfo for an IANA time zone name; ``ValueError`` naming it when unknown.

    ``UTC`` and ``Etc/UTC`` never need the time zone database (slim hosts may lack it).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("time zone must be a non-empty IANA name such as 'UTC' or 'Europe/Berlin', got %r" % (name,))
    if name in UTC_NAMES:
        return UTC
    if ZoneInfo is None:  # pragma: no cover - Python < 3.9
        raise ValueError("time zone %r needs Python 3.9 or later (zoneinfo); only 'UTC' is available" % name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError("unknown time zone %r (use an IANA name such as 'UTC' or 'Europe/Berlin')" % name) from exc


def require_aware(value, what):
    """Return ``value`` if it is a timezone-aware datetime, else raise ``ValueError`` naming ``what``."""
    if not isinstance(value, datetime):
        raise ValueError("%s must be a datetime, got %r" % (what, value))
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("%s must be timezone-aware, got naive %s" % (what, value.isoformat()))
    return value


def parse_duration(text):
    """Parse a human duration into a positive ``timedelta``.

    Accepts a ``timedelta`` (returned as is when positive) or a string with units, e.g. ``"12 hours"``,
    ``"1d"``, ``"30m"``, ``"2w"``, ``"90 days"``, ``"1h30m"``. Bare numbers, months/years, zero,
    negative or unparsable values raise ``ValueError`` naming the value; durations longer than
    ``MAX_DURATION`` raise ``DurationRangeError`` (a ``ValueError``).
    """
    if isinstance(text, timedelta):
        if text <= timedelta(0):
            raise ValueError("duration %r must be positive" % (str(text),))
        return check_duration_range(text, str(text))
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError("cannot parse duration %r: expected a string such as '12 hours', '1d' or '30m'" % (text,))
    raw = str(text).strip()
    if not raw:
        raise ValueError("cannot parse duration '': expected a string such as '12 hours', '1d' or '30m'")
    if _BARE_NUMBER_RE.match(raw):
        raise ValueError("duration '%s' has no unit: write e.g. '%ss', '%sm', '%sh' or '%sd'" % (raw, raw, raw, raw, raw))
    if _MONTHS_YEARS_RE.search(raw):
        raise ValueError("cannot parse duration '%s': months and years vary in length, use days or weeks (e.g. '30d', '52w')" % raw)
    if not HAS_PYTIMEPARSE:
        raise MissingLibraryError("pytimeparse", "parse durations such as %r" % raw)
    seconds = _timeparse(raw)
    if seconds is None:
        raise ValueError("cannot parse duration '%s': expected e.g. '12 hours', '1d', '30m', '2w' or '90 days'" % raw)
    if seconds <= 0:
        raise ValueError("duration '%s' must be positive" % raw)
    if seconds > MAX_DURATION.total_seconds():
        raise _too_long(raw)
    return check_duration_range(timedelta(seconds=seconds), raw)


def _too_long(raw):
    return DurationRangeError("duration '%s' is too long: at most %d days (about 100 years)" % (raw, MAX_DURATION.days))


def check_duration_range(value, raw=None):
    """``value`` (a ``timedelta``) if it is at most ``MAX_DURATION``, else ``DurationRangeError`` naming ``raw``."""
    if value > MAX_DURATION:
        raise _too_long(raw if raw is not None else str(value))
    return value


@dataclass(frozen=True)
class Frequency:
    """How often a volume is due: an ``interval`` (timedelta) or a ``cron`` expression in ``timezone``."""

    text: str
    interval: Optional[timedelta] = None
    cron: Optional[str] = None
    timezone: str = "UTC"

    @property
    def kind(self):
        """``"cron"`` or ``"interval"``."""
        return CRON if self.cron is not None else INTERVAL

    @property
    def fixed_time(self):
        """True for cron expressions whose minute and hour fields do not start with ``*``."""
        if self.cron is None:
            return False
        minute, hour = self.cron.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")


def _looks_like_cron(tokens):
    if not 5 <= len(tokens) <= 7:
        return False
    if not all(_CRON_TOKEN_RE.match(token) for token in tokens):
        return False
    if any("*" in token or "?" in token for token in tokens):
        return True
    return bool(_CRON_TIME_TOKEN_RE.match(tokens[0]) and _CRON_TIME_TOKEN_RE.match(tokens[1]))


def _check_cron_fields(text, fields):
    for index, (name, value) in enumerate(zip(CRON_FIELDS, fields)):
        letters = set(re.sub(r"[^A-Za-z]", "", _CRON_NAMES_RE.sub("", value)).upper())
        allowed = set(_CRON_LETTERS_ALLOWED[index])
        if letters - allowed:
            raise ValueError(
                "invalid cron expression '%s': %s field '%s' uses unsupported syntax (only numbers, *, ranges, lists, steps%s)"
                % (text, name, value, " and month/day names" if index >= 3 else "")
            )
        for low, high in _CRON_RANGE_RE.findall(value):
            if int(low) > int(high):
                raise ValueError("invalid cron expression '%s': %s range '%s-%s' is reversed" % (text, name, low, high))


def _parse_cron(text, expression, timezone):
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            "invalid cron expression '%s': expected 5 fields (minute hour day-of-month month day-of-week), got %d;"
            " seconds and year fields are not supported" % (text, len(fields))
        )
    _check_cron_fields(text, fields)
    if not HAS_CRONITER:
        raise MissingLibraryError("croniter", "evaluate cron expressions such as %r" % text)
    zone = get_zone(timezone)
    normalized = " ".join(fields)
    try:
        # Construct and step once: bad values raise here, and so do expressions that never fire.
        _croniter(normalized, datetime(2000, 1, 1, tzinfo=zone)).get_next(datetime)
    except (ValueError, TypeError, KeyError) as exc:
        detail = str(exc)
        if "failed to find" in detail:
            detail = "it never fires"
        raise ValueError("invalid cron expression '%s': %s" % (text, detail)) from exc
    return Frequency(text=text, cron=normalized, timezone=timezone)


def parse_frequency(text, timezone="UTC"):
    """Parse ``text`` into a ``Frequency``.

    ``text`` is a duration (``"12 hours"``, ``"1d"``, a ``timedelta``), a 5-field cron expression or a
    cron macro (``@daily``). ``timezone`` (IANA) applies to cron expressions and is validated either way.
    Raises ``ValueError`` naming the value, or ``MissingLibraryError``.
    """
    get_zone(timezone)
    if isinstance(text, timedelta):
        return Frequency(text=str(text), interval=parse_duration(text), timezone=timezone)
    if not isinstance(text, str) or not text.strip():
        raise ValueError("frequency must be a duration such as '12 hours' or a 5-field cron expression, got %r" % (text,))
    raw = text.strip()
    macro = CRON_MACROS.get(raw.lower())
    if macro is not None:
        return _parse_cron(raw, macro, timezone)
    if raw.startswith("@"):
        raise ValueError("unknown cron macro '%s'; known: %s" % (raw, ", ".join(sorted(CRON_MACROS))))
    tokens = raw.split()
    if _looks_like_cron(tokens):
        return _parse_cron(raw, raw, timezone)
    try:
        interval = parse_duration(raw)
    except DurationRangeError:
        raise
    except ValueError as exc:
        raise ValueError(
            "frequency '%s' is neither a duration (e.g. '12 hours', '1d', '30m') nor a 5-field cron expression (e.g. '0 2 * * *'): %s"
            % (raw, exc)
        ) from exc
    return Frequency(text=raw, interval=interval, timezone=timezone)


def _gap_end(zone, wall):
    """The first instant after the forward jump that skips the (nonexistent) local wall time ``wall``."""
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # the offset after the jump: an instant before it
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # the offset before the jump: an instant after it
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _instants(freq, zone, wall):
    """The instants (aware UTC) at which the matching local wall time ``wall`` (naive) fires.

    One for an ordinary wall time; in a repeated hour both passes, or only the first for a fixed-time
    expression; in a skipped hour none, or the first instant after the jump for a fixed-time expression.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.utcoffset() > second.utcoffset():  # repeated: fold=0 is the first pass
        return [first.astimezone(UTC)] if freq.fixed_time else [first.astimezone(UTC), second.astimezone(UTC)]
    return [_gap_end(zone, wall)] if freq.fixed_time else []


def _steady_step(freq, zone, start, wall_start, backwards):
    """The step without the walk, when no clock change is near: ``None`` when one is.

    With the same UTC offset from ``_CLOCK_CHANGE_MARGIN`` before ``start`` to as long after it, no
    repeated wall time can order before or after ``start`` differently from its wall time; when the
    neighbouring fire time is then an ordinary wall time (neither repeated nor skipped), it is the answer.
    """
    offset = start.utcoffset() if start.tzinfo is zone else start.astimezone(zone).utcoffset()
    for edge in (start - _CLOCK_CHANGE_MARGIN, start + _CLOCK_CHANGE_MARGIN):
        if edge.astimezone(zone).utcoffset() != offset:
            return None
    iterator = _croniter(freq.cron, wall_start + timedelta(seconds=1) if backwards else wall_start)
    wall = iterator.get_prev(datetime) if backwards else iterator.get_next(datetime)
    if wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset():
        return None
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if (instant <= start) if backwards else (instant > start):
        return instant
    return None  # a fire time in the second after ``start`` (backwards): the walk answers


def _cron_step(freq, start, backwards):
    """The first fire instant strictly after ``start`` (or the last one at or before it, ``backwards``).

    croniter walks *naive* local wall times (no daylight saving time rules of its own); ``_instants`` turns
    each into instants. A clock change reorders instants against wall times by at most its size, so the
    walk starts ``_CLOCK_CHANGE_MARGIN`` on the far side of ``start`` and stops that far past the best find.
    """
    if not HAS_CRONITER:
        raise MissingLibraryError("croniter", "evaluate cron expressions such as %r" % freq.text)
    zone = get_zone(freq.timezone)
    wall_start = start.astimezone(zone).replace(tzinfo=None)
    quick = _steady_step(freq, zone, start, wall_start, backwards)
    if quick is not None:
        return quick
    # Backwards: start after ``start`` (croniter's get_prev is strictly before its start); forwards: before it.
    iterator = _croniter(freq.cron, wall_start + (_CLOCK_CHANGE_MARGIN if backwards else -_CLOCK_CHANGE_MARGIN))
    best = None
    for dummy in range(_MAX_CRON_STEPS):
        wall = iterator.get_prev(datetime) if backwards else iterator.get_next(datetime)
        if best is not None and (wall < best[1] - _CLOCK_CHANGE_MARGIN if backwards else wall > best[1] + _CLOCK_CHANGE_MARGIN):
            return best[0]
        for instant in _instants(freq, zone, wall):
            if (instant <= start if backwards else instant > start) and (
                    best is None or (instant > best[0] if backwards else instant < best[0])):
                best = (instant, wall)
    raise ValueError("cron expression '%s' has no usable fire time near %s" % (freq.text, start.isoformat()))  # pragma: no cover


def last_scheduled_point(freq, now):
    """The most recent point at which ``freq`` made a volume due, as an aware UTC datetime.

    Cron: the most recent fire time ``<= now``. Interval: ``now - interval``.
    """
    now = require_aware(now, "now").astimezone(UTC)
    if freq.interval is not None:
        return now - freq.interval
    return _cron_step(freq, now, backwards=True)


def next_scheduled_point(freq, after):
    """The first cron fire time strictly after ``after`` (aware UTC), or ``after + interval``."""
    after = require_aware(after, "after").astimezone(UTC)
    if freq.interval is not None:
        return after + freq.interval
    return _cron_step(freq, after, backwards=False)


DEFAULT_GRACE = timedelta(minutes=5)
GRACE_FRACTION = 10


def schedule_gap(freq, now):
    """The time between two scheduled points around ``now``: the interval, or the cron gap that contains ``now``."""
    if freq.interval is not None:
        return freq.interval
    point = last_scheduled_point(freq, now)
    return next_scheduled_point(freq, point) - point


def default_grace(freq, now):
    """``DEFAULT_GRACE`` (5 minutes), or a tenth of ``schedule_gap(freq, now)`` when that is shorter."""
    return min(DEFAULT_GRACE, schedule_gap(freq, now) / GRACE_FRACTION)


def is_due(freq, now, latest, grace=None):
    """Whether a volume is due, and when it is (or was) next due.

    ``latest`` is the start time of the newest completed *or pending* snapshot this policy made of the
    volume (a pending snapshot counts as in flight), or ``None``. ``grace`` (a ``timedelta``, default
    none) tolerates runs that start a little early, see the module docstring.

    Without grace: due when ``latest`` is ``None`` or older than ``last_scheduled_point(freq, now)``; a
    snapshot exactly at the point counts as taken. With grace: interval -> due when ``latest`` is older
    than ``now + grace - interval``; cron -> due when ``latest`` is older than ``P - grace`` where ``P``
    is ``last_scheduled_point(freq, now + grace)``.

    ``next_due`` (aware UTC): interval -> ``latest + interval``, or ``now`` when due; cron -> the first
    fire time after ``latest`` (after ``latest + grace`` with grace), or the scheduled point when due.
    Returns ``Due(due, next_due)``.
    """
    now = require_aware(now, "now").astimezone(UTC)
    if latest is not None:
        latest = require_aware(latest, "latest snapshot time").astimezone(UTC)
    grace = _check_grace(grace)
    if freq.interval is not None:
        point = now + grace - freq.interval
        if latest is None or latest < point:
            return Due(True, now)
        return Due(False, next_scheduled_point(freq, latest))
    point = last_scheduled_point(freq, now + grace)
    if latest is None or latest < point - grace:
        return Due(True, point)
    return Due(False, next_scheduled_point(freq, latest + grace))


def _check_grace(grace):
    if grace is None:
        return timedelta(0)
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise ValueError("grace must be a timedelta >= 0, got %r" % (grace,))
    return grace
