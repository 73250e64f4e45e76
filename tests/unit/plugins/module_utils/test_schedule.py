# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of durations, cron frequencies and "is this volume due?"."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import schedule
from ansible_collections.blockwise.ebs.plugins.module_utils.schedule import (
    CRON,
    INTERVAL,
    Due,
    Frequency,
    MissingLibraryError,
    get_zone,
    is_due,
    last_scheduled_point,
    next_scheduled_point,
    parse_duration,
    parse_frequency,
)

UTC = timezone.utc


def at(*args):
    return datetime(*args, tzinfo=UTC)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 hours", timedelta(hours=12)),
        ("1d", timedelta(days=1)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("90 days", timedelta(days=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("01:30:00", timedelta(minutes=90)),
        ("  4 days ", timedelta(days=4)),
        ("1 day 2 hours 30m", timedelta(days=1, hours=2, minutes=30)),
        ("3600s", timedelta(hours=1)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("forever", "cannot parse duration 'forever'"),
        ("", "cannot parse duration ''"),
        ("0s", "duration '0s' must be positive"),
        ("0 days", "duration '0 days' must be positive"),
        ("-1h", "duration '-1h' must be positive"),
        ("7", "duration '7' has no unit: write e.g. '7s', '7m', '7h' or '7d'"),
        (3600, "duration '3600' has no unit"),
        (1.5, "duration '1.5' has no unit"),
        ("1y", "months and years vary in length"),
        ("2 months", "months and years vary in length"),
        ("1 year", "months and years vary in length"),
        ("99999999999999999w", "duration '99999999999999999w' is too long: at most 36500 days"),
        ("99999999 weeks", "duration '99999999 weeks' is too long: at most 36500 days"),
        ("36500d 1s", "duration '36500d 1s' is too long"),
        (timedelta(days=36501), "is too long"),
        (None, "cannot parse duration None"),
        (True, "cannot parse duration True"),
        (timedelta(0), "must be positive"),
        (timedelta(hours=-1), "must be positive"),
    ],
)
def test_parse_duration_errors(value, message):
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert message in str(info.value)


def test_longest_duration_is_accepted_and_stays_in_datetime_range():
    assert parse_duration("36500d") == schedule.MAX_DURATION
    assert parse_duration(schedule.MAX_DURATION) == schedule.MAX_DURATION
    freq = parse_frequency("36500 days")
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert is_due(freq, now, now - timedelta(days=1), grace=schedule.MAX_DURATION - timedelta(days=1)).due is False


def test_out_of_range_frequency_is_named_as_such_not_as_an_unknown_form():
    with pytest.raises(schedule.DurationRangeError, match="duration '99999999 weeks' is too long"):
        parse_frequency("99999999 weeks")


def test_durations_need_pytimeparse(monkeypatch):
    monkeypatch.setattr(schedule, "HAS_PYTIMEPARSE", False)
    with pytest.raises(MissingLibraryError, match="the Python library 'pytimeparse' is required to parse durations") as info:
        parse_duration("12 hours")
    assert info.value.library == "pytimeparse"
    assert not isinstance(info.value, ValueError)
    # A timedelta needs no parsing.
    assert parse_duration(timedelta(hours=1)) == timedelta(hours=1)


def test_import_flags():
    assert schedule.HAS_CRONITER and schedule.CRONITER_IMPORT_ERROR is None
    assert schedule.HAS_PYTIMEPARSE and schedule.PYTIMEPARSE_IMPORT_ERROR is None


# --- time zones --------------------------------------------------------------------------------


def test_get_zone():
    assert get_zone("UTC") is UTC
    assert get_zone("Etc/UTC") is UTC
    assert get_zone("Europe/Berlin").utcoffset(datetime(2024, 7, 1)) == timedelta(hours=2)
    for bad in ("Mars/Base", "utc", "../etc/passwd", "/etc/localtime", "Europe"):
        with pytest.raises(ValueError, match="unknown time zone"):
            get_zone(bad)
    for bad in ("", None, 5):
        with pytest.raises(ValueError, match="time zone must be a non-empty IANA name"):
            get_zone(bad)


# --- frequencies -------------------------------------------------------------------------------


def test_parse_frequency_interval():
    freq = parse_frequency("12 hours")
    assert freq == Frequency(text="12 hours", interval=timedelta(hours=12), timezone="UTC")
    assert freq.kind == INTERVAL and not freq.fixed_time
    assert parse_frequency(timedelta(days=1)).interval == timedelta(days=1)
    assert parse_frequency("1 day 2 hours 30m").interval == timedelta(days=1, hours=2, minutes=30)


@pytest.mark.parametrize(
    "text, cron, fixed",
    [
        ("0 2 * * *", "0 2 * * *", True),
        ("  30   2 * *   mon-fri ", "30 2 * * mon-fri", True),
        ("*/15 * * * *", "*/15 * * * *", False),
        ("0 */6 * * *", "0 */6 * * *", False),
        ("0 0 L * *", "0 0 L * *", True),
        ("0 3 * jan,jul sun", "0 3 * jan,jul sun", True),
        ("0 0 29 2 *", "0 0 29 2 *", True),
        ("1 2 3 4 5", "1 2 3 4 5", True),
        ("@daily", "0 0 * * *", True),
        ("@HOURLY", "0 * * * *", False),
        ("@weekly", "0 0 * * 0", True),
    ],
)
def test_parse_frequency_cron(text, cron, fixed):
    freq = parse_frequency(text, "Europe/Berlin")
    assert freq.kind == CRON
    assert freq.cron == cron
    assert freq.timezone == "Europe/Berlin"
    assert freq.fixed_time is fixed
    assert freq.interval is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 2 * * * *", "invalid cron expression '0 2 * * * *': expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("0 0 2 * * * 2024", "expected 5 fields (minute hour day-of-month month day-of-week), got 7"),
        ("61 * * * *", "invalid cron expression '61 * * * *'"),
        ("0 24 * * *", "invalid cron expression '0 24 * * *'"),
        ("0 2 32 * *", "invalid cron expression '0 2 32 * *'"),
        ("0 2 * 13 *", "invalid cron expression '0 2 * 13 *'"),
        ("0 2 * * 8", "invalid cron expression '0 2 * * 8'"),
        ("*/0 * * * *", "invalid cron expression '*/0 * * * *'"),
        ("5-1 * * * *", "minute range '5-1' is reversed"),
        ("0 22-2 * * *", "hour range '22-2' is reversed"),
        ("0 0 30 2 *", "invalid cron expression '0 0 30 2 *': it never fires"),
        ("R 2 * * *", "minute field 'R' uses unsupported syntax"),
        ("H 2 * * *", "minute field 'H' uses unsupported syntax"),
        ("0 2 * foo *", "month field 'foo' uses unsupported syntax"),
        ("@sometimes", "unknown cron macro '@sometimes'"),
        ("every day", "frequency 'every day' is neither a duration"),
        ("0 2 * *", "frequency '0 2 * *' is neither a duration"),
        ("", "frequency must be a duration"),
        (None, "frequency must be a duration"),
        ("0s", "duration '0s' must be positive"),
    ],
)
def test_parse_frequency_errors(text, message):
    with pytest.raises(ValueError) as info:
        parse_frequency(text, "Europe/Berlin")
    assert message in str(info.value)


def test_parse_frequency_bad_timezone():
    for text in ("0 2 * * *", "12 hours"):
        with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
            parse_frequency(text, "Mars/Base")


def test_cron_needs_croniter(monkeypatch):
    freq = parse_frequency("0 2 * * *")
    monkeypatch.setattr(schedule, "HAS_CRONITER", False)
    with pytest.raises(MissingLibraryError, match="the Python library 'croniter' is required to evaluate cron expressions"):
        parse_frequency("0 2 * * *")
    with pytest.raises(MissingLibraryError, match="croniter"):
        last_scheduled_point(freq, at(2024, 1, 1))
    # Durations do not need it.
    assert parse_frequency("1d").interval == timedelta(days=1)


# --- scheduled points --------------------------------------------------------------------------


def test_interval_points():
    freq = parse_frequency("12 hours")
    now = at(2024, 5, 1, 12)
    assert last_scheduled_point(freq, now) == at(2024, 5, 1, 0)
    assert next_scheduled_point(freq, at(2024, 5, 1, 3)) == at(2024, 5, 1, 15)


def test_cron_last_point_includes_now_and_is_utc():
    freq = parse_frequency("0 2 * * *", "Europe/Berlin")  # 02:00 CEST = 00:00 UTC in summer
    assert last_scheduled_point(freq, at(2024, 5, 1, 0, 0)) == at(2024, 5, 1, 0, 0)
    assert last_scheduled_point(freq, at(2024, 5, 1, 0, 0, 0, 1)) == at(2024, 5, 1, 0, 0)
    assert last_scheduled_point(freq, at(2024, 4, 30, 23, 59, 59)) == at(2024, 4, 30, 0, 0)
    point = last_scheduled_point(freq, at(2024, 5, 1, 12))
    assert point.tzinfo is UTC
    # Winter: 02:00 CET = 01:00 UTC.
    assert last_scheduled_point(freq, at(2024, 1, 10, 12)) == at(2024, 1, 10, 1)
    # now in another offset is the same instant.
    assert last_scheduled_point(freq, datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == at(2024, 5, 1, 0)


def test_cron_next_point_is_strictly_after():
    freq = parse_frequency("0 2 * * *", "Europe/Berlin")
    assert next_scheduled_point(freq, at(2024, 5, 1, 0, 0)) == at(2024, 5, 2, 0, 0)
    assert next_scheduled_point(freq, at(2024, 4, 30, 23, 59)) == at(2024, 5, 1, 0, 0)


def test_dst_spring_forward_skipped_time_fires_after_the_jump():
    # Europe/Berlin, 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist.
    freq = parse_frequency("30 2 * * *", "Europe/Berlin")
    assert last_scheduled_point(freq, at(2024, 3, 31, 1, 30)) == at(2024, 3, 31, 1, 0)  # 03:00 CEST
    assert last_scheduled_point(freq, at(2024, 3, 31, 0, 59)) == at(2024, 3, 30, 1, 30)  # the day before, 02:30 CET
    assert next_scheduled_point(freq, at(2024, 3, 30, 12)) == at(2024, 3, 31, 1, 0)
    assert next_scheduled_point(freq, at(2024, 3, 31, 1, 0)) == at(2024, 4, 1, 0, 30)  # 02:30 CEST


def test_dst_fall_back_fixed_time_fires_once():
    # Europe/Berlin, 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
    freq = parse_frequency("30 2 * * *", "Europe/Berlin")
    assert last_scheduled_point(freq, at(2024, 10, 27, 0, 45)) == at(2024, 10, 27, 0, 30)
    # During and after the repeated hour, the last point is still the first 02:30.
    assert last_scheduled_point(freq, at(2024, 10, 27, 1, 45)) == at(2024, 10, 27, 0, 30)
    assert last_scheduled_point(freq, at(2024, 10, 27, 12)) == at(2024, 10, 27, 0, 30)
    assert next_scheduled_point(freq, at(2024, 10, 27, 0, 30)) == at(2024, 10, 28, 1, 30)
    # So a snapshot taken at the first 02:30 is not followed by a second one an hour later.
    assert is_due(freq, at(2024, 10, 27, 1, 40), at(2024, 10, 27, 0, 31)) == Due(False, at(2024, 10, 28, 1, 30))


def test_dst_fall_back_wildcard_hour_follows_the_wall_clock():
    freq = parse_frequency("0 * * * *", "Europe/Berlin")
    # 02:00 CEST (00:00 UTC) and 02:00 CET (01:00 UTC) both fire.
    assert last_scheduled_point(freq, at(2024, 10, 27, 0, 30)) == at(2024, 10, 27, 0, 0)
    assert last_scheduled_point(freq, at(2024, 10, 27, 1, 30)) == at(2024, 10, 27, 1, 0)
    assert next_scheduled_point(freq, at(2024, 10, 27, 0, 0)) == at(2024, 10, 27, 1, 0)
    # Spring forward: the hour 02:xx does not exist; 01:00 CET is followed by 03:00 CEST, one hour later.
    assert next_scheduled_point(freq, at(2024, 3, 31, 0, 0)) == at(2024, 3, 31, 1, 0)


def test_cron_in_other_zones():
    freq = parse_frequency("0 0 * * *", "Pacific/Auckland")  # midnight NZDT = 11:00 UTC the day before
    assert last_scheduled_point(freq, at(2024, 1, 10, 12)) == at(2024, 1, 10, 11)
    weekly = parse_frequency("0 3 * * 1", "UTC")  # Mondays 03:00
    assert last_scheduled_point(weekly, at(2024, 5, 1)) == at(2024, 4, 29, 3)  # 2024-04-29 is a Monday


# --- is_due ------------------------------------------------------------------------------------


def test_is_due_interval():
    freq = parse_frequency("12 hours")
    now = at(2024, 5, 1, 12)
    assert is_due(freq, now, None) == Due(True, now)
    assert is_due(freq, now, at(2024, 4, 30, 23, 59)) == Due(True, now)
    # Exactly one interval old: taken at the point, not due yet.
    assert is_due(freq, now, at(2024, 5, 1, 0)) == Due(False, at(2024, 5, 1, 12))
    assert is_due(freq, now, at(2024, 5, 1, 6)) == Due(False, at(2024, 5, 1, 18))
    due, next_due = is_due(freq, now, at(2024, 5, 1, 6))
    assert (due, next_due) == (False, at(2024, 5, 1, 18))


def test_is_due_cron():
    freq = parse_frequency("0 2 * * *", "UTC")
    now = at(2024, 5, 1, 12)
    assert is_due(freq, now, None) == Due(True, at(2024, 5, 1, 2))
    assert is_due(freq, now, at(2024, 5, 1, 1, 59)) == Due(True, at(2024, 5, 1, 2))
    assert is_due(freq, now, at(2024, 5, 1, 2)) == Due(False, at(2024, 5, 2, 2))
    # A pending snapshot started after the point is in flight: not due.
    assert is_due(freq, now, at(2024, 5, 1, 2, 0, 30)) == Due(False, at(2024, 5, 2, 2))
    # A snapshot from the future (clock skew) is not due either.
    assert is_due(freq, now, at(2024, 5, 3, 5)) == Due(False, at(2024, 5, 4, 2))


def test_is_due_requires_aware_times():
    freq = parse_frequency("1d")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        is_due(freq, datetime(2024, 1, 1), None)
    with pytest.raises(ValueError, match="latest snapshot time must be timezone-aware"):
        is_due(freq, at(2024, 1, 1), datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="now must be a datetime"):
        last_scheduled_point(freq, "2024-01-01")


# --- grace ---------------------------------------------------------------------------------------


def test_default_grace_and_schedule_gap():
    now = at(2024, 5, 1, 12)
    assert schedule.default_grace(parse_frequency("12 hours"), now) == timedelta(minutes=5)
    assert schedule.default_grace(parse_frequency("30m"), now) == timedelta(minutes=3)
    assert schedule.default_grace(parse_frequency("0 2 * * *"), now) == timedelta(minutes=5)
    assert schedule.default_grace(parse_frequency("*/10 * * * *"), now) == timedelta(minutes=1)
    assert schedule.schedule_gap(parse_frequency("0 2 * * 1-5"), at(2024, 5, 4, 12)) == timedelta(days=3)  # Fri -> Mon


def test_is_due_interval_with_grace():
    freq = parse_frequency("12 hours")
    now = at(2024, 5, 1, 12)
    grace = timedelta(minutes=5)
    assert is_due(freq, now, at(2024, 5, 1, 0, 4), grace) == Due(True, now)  # 11:56 old: a run 4 minutes early
    assert is_due(freq, now, at(2024, 5, 1, 0, 5), grace) == Due(False, at(2024, 5, 1, 12, 5))
    assert is_due(freq, now, at(2024, 5, 1, 0, 4), timedelta(0)) == Due(False, at(2024, 5, 1, 12, 4))


def test_is_due_cron_with_grace():
    freq = parse_frequency("0 2 * * *")
    grace = timedelta(minutes=5)
    # A run at 01:58, two minutes before the fire time, takes the 02:00 snapshot ...
    assert is_due(freq, at(2024, 5, 1, 1, 58), at(2024, 4, 30, 2, 0, 5), grace) == Due(True, at(2024, 5, 1, 2))
    # ... and the scheduler's next run just after 02:00 finds it taken.
    assert is_due(freq, at(2024, 5, 1, 2, 1), at(2024, 5, 1, 1, 58), grace) == Due(False, at(2024, 5, 2, 2))
    # Without grace the early run would have skipped the day.
    assert is_due(freq, at(2024, 5, 1, 1, 58), at(2024, 4, 30, 2, 0, 5)).due is False
    with pytest.raises(ValueError, match="grace must be a timedelta >= 0"):
        is_due(freq, at(2024, 5, 1), None, timedelta(minutes=-1))


@pytest.mark.parametrize("text", ["12 hours", "1d", "0 */6 * * *", "30 2 * * *"])
def test_jittered_runs_on_schedule_never_skip_and_never_double(text):
    """A job started at each scheduled point +/- 2 minutes snapshots on every run; re-runs a minute later do not."""
    import random  # pylint: disable=import-outside-toplevel

    freq = parse_frequency(text)
    rnd = random.Random(text)
    point = at(2024, 3, 1)
    latest = None
    taken = 0
    for dummy in range(60):
        point = next_scheduled_point(freq, point)
        run = point + timedelta(seconds=rnd.randint(-120, 120))
        grace = schedule.default_grace(freq, run)
        due, dummy = is_due(freq, run, latest, grace)
        assert due, (text, run, latest)
        latest = run
        taken += 1
        assert not is_due(freq, run + timedelta(minutes=1), latest, grace).due
    assert taken == 60


# --- daylight saving time: cron helpers against a minute-by-minute oracle ----------------------

import functools  # noqa: E402  pylint: disable=wrong-import-position

from hypothesis import given, settings, strategies as st  # noqa: E402  pylint: disable=wrong-import-position

DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Auckland", "America/St_Johns", "Europe/London")
# (expression, how far back/forward the oracle must look to find the neighbouring fire times)
DST_EXPRESSIONS = (
    ("30 2 * * *", 2), ("0 2 * * *", 2), ("59 1 * * *", 2), ("0 3 * * *", 2), ("15 1-3 * * *", 2), ("45 0,2,4 * * *", 2),
    ("*/7 2 * * *", 2), ("30 * * * *", 1), ("0 * * * *", 1), ("*/20 * * * *", 1), ("0 */2 * * *", 1), ("30 2 * * 0", 8),
    ("30 1 * * 1-5", 4), ("0 0 * * *", 2),
)


def _field_values(text, low, high):
    values = set()
    for item in text.split(","):
        base, _slash, step = item.partition("/")
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            start, stop = (int(x) for x in base.split("-"))
        else:
            start = int(base)
            stop = high if step else start
        values.update(range(start, stop + 1, int(step) if step else 1))
    return values


def _matches(expression, wall):
    minute, hour, dom, month, dow = expression.split()
    days = {7 if d == 0 else d for d in _field_values(dow, 0, 7)} | ({0} if "7" in dow.split(",") else set())
    cron_dow = (wall.weekday() + 1) % 7
    day_ok_dom = wall.day in _field_values(dom, 1, 31)
    day_ok_dow = cron_dow in {d % 7 for d in days}
    if dom.startswith("*") or dow.startswith("*"):
        day_ok = day_ok_dom and day_ok_dow
    else:
        day_ok = day_ok_dom or day_ok_dow
    return (wall.minute in _field_values(minute, 0, 59) and wall.hour in _field_values(hour, 0, 23)
            and wall.month in _field_values(month, 1, 12) and day_ok)


def _oracle_fires(expression, zone_name, start, end):
    """The documented fire instants in [start, end): wall-clock matches; a fixed-time expression fires once in a
    repeated hour (its first pass) and, for a wall time skipped by a forward jump, at the first instant after it."""
    zone = get_zone(zone_name)
    minute, hour = expression.split()[:2]
    fixed = not minute.startswith("*") and not hour.startswith("*")
    fires = []
    t = start.replace(second=0, microsecond=0)
    previous = (t - timedelta(minutes=1)).astimezone(zone)
    while t < end:
        local = t.astimezone(zone)
        wall = local.replace(tzinfo=None)
        fire = _matches(expression, wall) and not (fixed and local.fold == 1)
        jump = wall - previous.replace(tzinfo=None)
        if fixed and not fire and jump > timedelta(minutes=1):
            skipped = previous.replace(tzinfo=None) + timedelta(minutes=1)
            while skipped < wall and not fire:
                fire = _matches(expression, skipped)
                skipped += timedelta(minutes=1)
        if fire:
            fires.append(t)
        previous = local
        t += timedelta(minutes=1)
    return fires


@functools.lru_cache(maxsize=None)
def _oracle_around(expression, zone_name, transition, days):
    """The oracle's fire times from ``days`` (+ 6 hours) before ``transition`` to as long after it (cached per case)."""
    margin = timedelta(days=days, hours=6)
    return tuple(_oracle_fires(expression, zone_name, transition - margin, transition + margin))


@functools.lru_cache(maxsize=None)
def _dst_transitions(zone_name, year=2024):
    zone = get_zone(zone_name)
    found = []
    start = datetime(year, 1, 1, tzinfo=UTC)
    for hour in range(366 * 24):
        before, after = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
        if before.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            found.append(after)
    return tuple(found)


DST_TRANSITIONS = [(zone, instant) for zone in DST_ZONES for instant in _dst_transitions(zone)]


@settings(max_examples=200, deadline=None, database=None)
@given(where=st.sampled_from(DST_TRANSITIONS), case=st.sampled_from(DST_EXPRESSIONS), seconds=st.integers(-6 * 3600, 6 * 3600))
def test_dst_cron_points_match_the_documented_oracle(where, case, seconds):
    zone_name, transition = where
    expression, days = case
    now = transition + timedelta(seconds=seconds)
    fires = _oracle_around(expression, zone_name, transition, days)
    freq = parse_frequency(expression, zone_name)
    expected_last = max(f for f in fires if f <= now)
    expected_next = min(f for f in fires if f > now)
    assert last_scheduled_point(freq, now) == expected_last, (zone_name, expression, now)
    assert next_scheduled_point(freq, now) == expected_next, (zone_name, expression, now)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("text", ["30 2 * * *", "0 2 * * *", "0 * * * *", "*/30 * * * *", "0 */2 * * *", "15 1-3 * * *"])
def test_jittered_runs_through_both_clock_changes_never_skip_and_never_double(zone, text):
    """A job started at each scheduled point +/- 2 minutes, over a year that holds both clock changes, snapshots
    on every run and a re-run a minute later takes nothing."""
    import random  # pylint: disable=import-outside-toplevel

    freq = parse_frequency(text, zone)
    rnd = random.Random(text + zone)
    for transition in _dst_transitions(zone):
        point = transition - timedelta(hours=8)
        latest = None
        while point < transition + timedelta(hours=8):
            point = next_scheduled_point(freq, point)
            run = point + timedelta(seconds=rnd.randint(-120, 120))
            grace = schedule.default_grace(freq, run)
            assert is_due(freq, run, latest, grace).due, (text, zone, run, latest)
            latest = run
            assert not is_due(freq, run + timedelta(minutes=1), latest, grace).due, (text, zone, run)
