# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure retention engine: which snapshots to keep, delete or protect, and why.

The policy is plain data (``RetentionPolicy``); ``decide`` is one pure function from (snapshots,
policy, now, protections) to one ``Decision`` per snapshot, each with its reasons. No I/O, no clock:
``now`` is passed in.

Semantics
    * Snapshots are grouped by ``group_of``: the ``blockwise:lineage`` tag when there is one (group
      ``lineage:<value>``, never merged with a real volume id), else the ``volume_id``. A snapshot whose
      volume id says nothing (the placeholder ``vol-ffffffff`` of every snapshot made through the EBS
      direct APIs, or any copy, whose volume id AWS makes arbitrary) and that has no lineage is *held*:
      protected with the reason ``no-lineage``, never grouped, never deleted. Inside a group snapshots are
      ordered newest first by ``(start_time, snapshot_id)``: of two snapshots with the same start time,
      the one with the greater ``snapshot_id`` counts as the newer. The input order never matters.
    * A snapshot is *protected* (action ``protect``) when its state is not ``completed`` (reason: the
      state, e.g. ``pending``), when the caller says so (``protected``: e.g. ``ami:ami-0123``,
      ``protect-tag``), when it is out of scope (``out-of-scope``) or when its volume is held
      (``retention-tag-invalid``). Protected snapshots are never deleted and are **not counted** by the
      rules: the rules (and the ``minimum`` floor) run over the *candidates*, i.e. the completed,
      unprotected snapshots of the volume. A protected snapshot therefore never uses up a slot that
      would otherwise keep one of the policy's own snapshots.
    * Rules are a union: a candidate kept by any rule is kept, with every rule that keeps it as reasons:
        - ``keep_last`` N: the N newest candidates;
        - ``keep_hourly``/``keep_daily``/``keep_weekly``/``keep_monthly``/``keep_yearly`` N: calendar
          buckets (hour, day, ISO week, month, year) of the start time in ``policy.timezone``; walking
          newest first, the first N distinct buckets each keep their newest candidate. Buckets with no
          snapshot are skipped, not counted (restic semantics). Daylight saving time: an hour bucket is a
          local hour *and* its UTC offset, so the hour that repeats when summer time ends is two buckets
          (two real hours), and a day, week, month or year is a local calendar one, however many hours
          it has (a 23- or 25-hour day is one day);
        - ``keep_within`` D: every candidate with ``start_time >= now - D``;
        - ``minimum`` N: the N newest candidates, whatever the other rules say (reason ``minimum``).
      Any other candidate is deleted with the reason ``no rule keeps it``.
    * Properties (checked by property tests): protected/pending/out-of-scope/minimum-floor snapshots are
      never deleted; the result does not depend on input order; running ``decide`` again over the kept
      and protected snapshots deletes nothing; adding a rule or raising a count never deletes more.

Per-volume overrides
    ``volume_policies`` reads a ``retention_tag`` (e.g. ``Daily_Gens: 7``) from the volumes' tags: a
    valid value (an integer >= 1) gives that volume ``policy.with_keep_last(n)`` (the tag replaces
    ``keep_last``; the other rules of the base policy still apply). An invalid value (``"seven"``,
    ``"0"``, ``"-3"``) *holds* the volume: none of its snapshots is deleted (reason
    ``retention-tag-invalid``) and the message says why, because deleting on a misread intent cannot be
    undone. Snapshots of volumes without the tag (or whose volume no longer exists) follow the base policy.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Optional

from ansible_collections.blockwise.ebs.plugins.module_utils.schedule import check_duration_range, get_zone, parse_duration, require_aware, UTC

PROTECT_TAG = "blockwise:protect"
LINEAGE_TAG = "blockwise:lineage"
# Written on every copy (with the source's lineage in LINEAGE_TAG); a copy's own VolumeId is arbitrary.
COPY_SOURCE_TAG = "blockwise:source-snapshot"
# On a copy: when its source was taken (the point in time it holds); retention orders and ages copies by it.
SOURCE_START_TAG = "blockwise:source-start-time"
# The VolumeId AWS gives every snapshot made through the EBS direct APIs.
PLACEHOLDER_VOLUME_ID = "vol-ffffffff"
LINEAGE_GROUP_PREFIX = "lineage:"

KEEP = "keep"
DELETE = "delete"
PROTECT = "protect"
ACTIONS = (KEEP, DELETE, PROTECT)

COMPLETED = "completed"
REASON_DELETE = "no rule keeps it"
REASON_PROTECT_TAG = "protect-tag"
REASON_OUT_OF_SCOPE = "out-of-scope"
REASON_TAG_INVALID = "retention-tag-invalid"
REASON_MINIMUM = "minimum"
REASON_WITHIN = "keep_within"
REASON_NO_LINEAGE = "no-lineage"

COUNT_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
RULES = COUNT_RULES + ("keep_within",)
OPTIONS = RULES + ("minimum", "timezone")

_DIGITS_RE = re.compile(r"^[0-9]+$")
_INTEGER_RE = re.compile(r"^-?[0-9]+$")


class RetentionError(ValueError):
    """Invalid retention input; the message names the option (``retention.keep_last ...``)."""


def _hour_key(local):
    # The UTC offset tells the two passes of a repeated hour apart (02:30 CEST and 02:30 CET at the end of
    # summer time are an hour apart): each (local hour, offset) is one contiguous stretch of at most an hour.
    return (local.year, local.month, local.day, local.hour, local.utcoffset())


def _day_key(local):
    return (local.year, local.month, local.day)


def _week_key(local):
    iso = local.isocalendar()
    return (iso[0], iso[1])


def _month_key(local):
    return (local.year, local.month)


def _year_key(local):
    return local.year


# Calendar rules in reason order: (rule name, bucket key of a local datetime).
_BUCKET_RULES = (
    ("keep_hourly", _hour_key),
    ("keep_daily", _day_key),
    ("keep_weekly", _week_key),
    ("keep_monthly", _month_key),
    ("keep_yearly", _year_key),
)


def _as_count(value, name, minimum):
    if isinstance(value, bool):
        raise RetentionError("%s must be an integer, got %r" % (name, value))
    if isinstance(value, str) and _INTEGER_RE.match(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise RetentionError("%s must be an integer, got %r" % (name, value))
    if value < minimum:
        raise RetentionError("%s must be >= %d, got %d" % (name, minimum, value))
    return value


@dataclass(frozen=True)
class RetentionPolicy:
    """Which snapshots of a volume to keep. ``None`` turns a rule off; at least one rule is required.

    ``minimum`` is a floor (the newest N candidates are always kept), not a rule on its own.
    ``timezone`` (IANA name) places the calendar buckets.
    """

    keep_last: Optional[int] = None
    keep_hourly: Optional[int] = None
    keep_daily: Optional[int] = None
    keep_weekly: Optional[int] = None
    keep_monthly: Optional[int] = None
    keep_yearly: Optional[int] = None
    keep_within: Optional[timedelta] = None
    minimum: int = 0
    timezone: str = "UTC"

    def __post_init__(self):
        for name in COUNT_RULES:
            value = getattr(self, name)
            if value is not None:
                _as_count(value, "retention." + name, 1)
                if not isinstance(value, int):
                    raise RetentionError("retention.%s must be an integer, got %r" % (name, value))
        if self.keep_within is not None:
            if not isinstance(self.keep_within, timedelta):
                raise RetentionError("retention.keep_within must be a timedelta, got %r" % (self.keep_within,))
            if self.keep_within <= timedelta(0):
                raise RetentionError("retention.keep_within must be positive, got %s" % self.keep_within)
            try:
                check_duration_range(self.keep_within)
            except ValueError as exc:
                raise RetentionError("retention.keep_within: %s" % exc) from exc
        if isinstance(self.minimum, bool) or not isinstance(self.minimum, int):
            raise RetentionError("retention.minimum must be an integer, got %r" % (self.minimum,))
        if self.minimum < 0:
            raise RetentionError("retention.minimum must be >= 0, got %d" % self.minimum)
        try:
            get_zone(self.timezone)
        except ValueError as exc:
            raise RetentionError("retention.timezone: %s" % exc) from exc
        if not self.has_rules:
            raise RetentionError("retention: at least one rule is required (one of %s)" % ", ".join(RULES))

    @property
    def has_rules(self):
        """True when at least one keep rule is on."""
        return any(getattr(self, name) is not None for name in RULES)

    @property
    def tzinfo(self):
        """The tzinfo of ``timezone``."""
        return get_zone(self.timezone)

    @classmethod
    def from_options(cls, options, prefix="retention"):
        """Build a policy from an Ansible-style option dict (``None`` values mean "not set").

        ``keep_within`` is a duration string (``"30 days"``) or a ``timedelta``; counts are integers
        (digit strings are accepted). Unknown keys, missing rules, ``keep_* < 1``, ``minimum < 0``,
        unknown time zones, unparsable, empty or out-of-range durations raise ``RetentionError`` naming
        ``<prefix>.<option>``.
        """
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise RetentionError("%s must be a dictionary of rules, got %r" % (prefix, options))
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise RetentionError("%s: unknown option(s) %s; known: %s" % (prefix, ", ".join(map(str, unknown)), ", ".join(OPTIONS)))
        values = {}
        for name in COUNT_RULES:
            if options.get(name) is not None:
                values[name] = _as_count(options[name], "%s.%s" % (prefix, name), 1)
        within = options.get("keep_within")
        if within is not None:
            if isinstance(within, str) and not within.strip():
                raise RetentionError(
                    "%s.keep_within: an empty duration is refused (it would turn the rule off without a word);"
                    " give a duration such as '30 days', or leave keep_within out" % prefix
                )
            try:
                values["keep_within"] = parse_duration(within)
            except ValueError as exc:
                raise RetentionError("%s.keep_within: %s" % (prefix, exc)) from exc
        if options.get("minimum") is not None:
            values["minimum"] = _as_count(options["minimum"], "%s.minimum" % prefix, 0)
        zone = options.get("timezone")
        if zone is not None:
            try:
                get_zone(zone)
            except ValueError as exc:
                raise RetentionError("%s.timezone: %s" % (prefix, exc)) from exc
            values["timezone"] = zone
        if not any(name in values for name in RULES):
            raise RetentionError("%s: at least one rule is required (one of %s)" % (prefix, ", ".join(RULES)))
        return cls(**values)

    def with_keep_last(self, count):
        """A copy of this policy whose ``keep_last`` is ``count`` (an integer >= 1)."""
        return replace(self, keep_last=_as_count(count, "retention.keep_last", 1))


@dataclass(frozen=True)
class Snapshot:
    """The fields of an EBS snapshot the engine needs. ``start_time`` must be timezone-aware."""

    snapshot_id: str
    volume_id: str
    start_time: datetime
    state: str = COMPLETED
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    owner_id: Optional[str] = None

    @classmethod
    def from_api(cls, item):
        """Build from one DescribeSnapshots item (``Tags`` as a Key/Value list or a dict)."""
        tags = item.get("Tags") or {}
        if not isinstance(tags, Mapping):
            tags = {tag["Key"]: tag.get("Value", "") for tag in tags}
        start = source_start_time(tags) or item["StartTime"]
        if isinstance(start, str):
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        return cls(
            snapshot_id=item["SnapshotId"],
            volume_id=item.get("VolumeId") or "",
            start_time=start,
            state=item.get("State") or COMPLETED,
            tags=dict(tags),
            owner_id=item.get("OwnerId"),
        )


def source_start_time(tags):
    """The start time of a copy's source (``blockwise:source-start-time``, aware), or None when absent or unreadable
    (a copy made before the tag was written is then ordered by its own start time)."""
    value = tags.get(SOURCE_START_TAG) if COPY_SOURCE_TAG in tags else None
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def group_of(snapshot):
    """The retention group of a ``Snapshot``: which disk it belongs to, or ``None`` when that is unknown.

    * a ``blockwise:lineage`` tag (written by ``ebs_block_put`` and by copies) -> ``"lineage:<value>"``,
      whatever the volume id: a namespace of its own, never merged with a real volume's snapshots;
    * else a real source volume -> its ``volume_id``;
    * else ``None``: the placeholder ``vol-ffffffff`` (EBS direct API snapshots), no volume id, or a copy
      (``blockwise:source-snapshot``) without lineage. Such snapshots are held, never grouped.

    A module that makes snapshots of a disk without a real volume only has to write the lineage tag.
    """
    tags = snapshot.tags or {}
    if LINEAGE_TAG in tags:
        lineage = str(tags.get(LINEAGE_TAG) or "").strip()
        return LINEAGE_GROUP_PREFIX + lineage if lineage else None
    if not snapshot.volume_id or snapshot.volume_id == PLACEHOLDER_VOLUME_ID or COPY_SOURCE_TAG in tags:
        return None
    return snapshot.volume_id


@dataclass(frozen=True)
class Decision:
    """What to do with one snapshot (``keep``, ``delete`` or ``protect``) and why; ``group`` is its retention group."""

    snapshot: Snapshot
    action: str
    reasons: tuple = ()
    group: str = ""

    @property
    def snapshot_id(self):
        """The snapshot's id."""
        return self.snapshot.snapshot_id

    @property
    def volume_id(self):
        """The snapshot's volume id."""
        return self.snapshot.volume_id


def parse_retention_tag(value, tag_key="retention_tag"):
    """The ``keep_last`` count a volume tag value asks for: an integer >= 1 (surrounding blanks allowed).

    Raises ``RetentionError`` naming the tag and the value otherwise.
    """
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and _DIGITS_RE.match(text) and int(text) >= 1:
        return int(text)
    if isinstance(text, int) and not isinstance(text, bool) and text >= 1:
        return text
    raise RetentionError("retention tag %s=%r is not an integer >= 1" % (tag_key, value))


def volume_policies(policy, volume_tags, tag_key):
    """Per-volume policies from a retention tag (e.g. ``Daily_Gens``).

    ``volume_tags`` maps volume_id -> tag dict. Returns ``(policy_by_volume, held)``: volumes with a
    valid tag get ``policy.with_keep_last(n)``; volumes with an invalid value are in ``held``
    (volume_id -> message) and must be passed to ``decide(held_volumes=held)`` so that nothing of theirs
    is deleted. Volumes without the tag are in neither and follow ``policy``.
    """
    by_volume = {}
    held = {}
    if not tag_key:
        return by_volume, held
    for volume_id in sorted(volume_tags):
        tags = volume_tags[volume_id] or {}
        if tag_key not in tags:
            continue
        try:
            by_volume[volume_id] = policy.with_keep_last(parse_retention_tag(tags[tag_key], tag_key))
        except RetentionError as exc:
            held[volume_id] = "%s: %s; none of its snapshots is deleted until the tag is fixed" % (volume_id, exc)
    return by_volume, held


def snapshot_images(images):
    """Map snapshot_id -> sorted image ids from DescribeImages items (their EBS block device mappings)."""
    result = {}
    for image in images:
        image_id = image.get("ImageId")
        for mapping in image.get("BlockDeviceMappings") or ():
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id and image_id:
                result.setdefault(snapshot_id, set()).add(image_id)
    return {snapshot_id: sorted(ids) for snapshot_id, ids in result.items()}


def protections(snapshots, image_snapshot_ids=None, protect_tag_key=PROTECT_TAG, scope=None, owner_id=None):
    """Why each snapshot must not be deleted: snapshot_id -> list of reasons (protected ones only).

    Reasons, in this order: the state when not ``completed`` (``pending``, ``error``), ``ami:<image_id>``
    for each image in ``image_snapshot_ids`` (snapshot_id -> image ids) that the snapshot backs,
    ``protect-tag`` when the snapshot has the collection's own ``blockwise:protect`` tag or the tag
    ``protect_tag_key`` (any value; a custom key adds to ``blockwise:protect``, it never replaces it, and
    ``None``/``""`` adds nothing), ``owner:<id>`` when ``owner_id`` is given and the snapshot belongs to another account,
    and ``out-of-scope`` when ``scope`` (a callable taking a ``Snapshot``) returns false.
    """
    image_snapshot_ids = image_snapshot_ids or {}
    protect_keys = {PROTECT_TAG} | ({protect_tag_key} if protect_tag_key else set())
    result = {}
    for snap in snapshots:
        reasons = []
        if snap.state != COMPLETED:
            reasons.append(snap.state)
        for image_id in sorted(image_snapshot_ids.get(snap.snapshot_id) or ()):
            reasons.append("ami:%s" % image_id)
        if protect_keys & set(snap.tags or {}):
            reasons.append(REASON_PROTECT_TAG)
        if owner_id is not None and snap.owner_id is not None and snap.owner_id != owner_id:
            reasons.append("owner:%s" % snap.owner_id)
        if scope is not None and not scope(snap):
            reasons.append(REASON_OUT_OF_SCOPE)
        if reasons:
            result[snap.snapshot_id] = reasons
    return result


def _newest_first(snap):
    return (snap.start_time, snap.snapshot_id)


def _in_scope(in_scope, snap):
    if in_scope is None:
        return True
    if callable(in_scope):
        return bool(in_scope(snap))
    return snap.snapshot_id in in_scope


def _dedupe(reasons):
    seen = set()
    result = []
    for reason in reasons:
        if reason not in seen:
            seen.add(reason)
            result.append(reason)
    return tuple(result)


def keep_reasons(candidates, policy, now):
    """Apply ``policy`` to ``candidates`` (one volume, sorted newest first): index -> list of reasons.

    Candidates not in the result are kept by no rule.
    """
    reasons = {}
    total = len(candidates)

    def mark(index, reason):
        reasons.setdefault(index, []).append(reason)

    if policy.keep_last:
        for index in range(min(policy.keep_last, total)):
            mark(index, "keep_last")
    active = [(name, key, getattr(policy, name)) for name, key in _BUCKET_RULES if getattr(policy, name)]
    if active:
        zone = policy.tzinfo
        local = [snap.start_time.astimezone(zone) for snap in candidates]
        for name, key, count in active:
            seen = set()
            for index in range(total):
                bucket = key(local[index])
                if bucket in seen:
                    continue
                seen.add(bucket)
                mark(index, name)
                if len(seen) >= count:
                    break
    if policy.keep_within is not None:
        cutoff = now - policy.keep_within
        for index, snap in enumerate(candidates):
            if snap.start_time < cutoff:
                break
            mark(index, REASON_WITHIN)
    for index in range(min(policy.minimum, total)):
        mark(index, REASON_MINIMUM)
    return reasons


def _group_snapshots(snapshots):
    """``{group: [(snapshot, held)]}``; a held snapshot (no known lineage) is listed under its own volume id."""
    groups = {}
    seen_ids = set()
    for snap in snapshots:
        if snap.snapshot_id in seen_ids:
            raise RetentionError("snapshot %s appears more than once in the input" % snap.snapshot_id)
        seen_ids.add(snap.snapshot_id)
        require_aware(snap.start_time, "start_time of %s" % snap.snapshot_id)
        group = group_of(snap)
        groups.setdefault(group if group is not None else snap.volume_id, []).append((snap, group is None))
    return groups


def _protect_reasons(snap, no_lineage, protected, in_scope, held):
    why = []
    if snap.state != COMPLETED:
        why.append(snap.state)
    extra = protected.get(snap.snapshot_id) or ()
    why.extend((extra,) if isinstance(extra, str) else extra)
    if not _in_scope(in_scope, snap):
        why.append(REASON_OUT_OF_SCOPE)
    if no_lineage:
        why.append(REASON_NO_LINEAGE)
    if held:
        why.append(REASON_TAG_INVALID)
    return why


def _decide_group(group, members, policy, now, protected, in_scope, held):
    candidates, slots = [], []
    for snap, no_lineage in sorted(members, key=lambda item: _newest_first(item[0]), reverse=True):
        why = _protect_reasons(snap, no_lineage, protected, in_scope, held)
        if why:
            slots.append(Decision(snap, PROTECT, _dedupe(why), group))
        else:
            slots.append(len(candidates))
            candidates.append(snap)
    kept = keep_reasons(candidates, policy, now)
    decisions = []
    for slot in slots:
        if isinstance(slot, Decision):
            decisions.append(slot)
        elif slot in kept:
            decisions.append(Decision(candidates[slot], KEEP, _dedupe(kept[slot]), group))
        else:
            decisions.append(Decision(candidates[slot], DELETE, (REASON_DELETE,), group))
    return decisions


def decide(snapshots, policy, now, protected=None, in_scope=None, policy_by_volume=None, held_volumes=None, now_by_group=None):
    """Decide, for every snapshot, ``keep``, ``delete`` or ``protect``, with reasons.

    ``snapshots``: iterable of ``Snapshot`` (unique ids, aware start times). ``policy``: the base
    ``RetentionPolicy``. ``now``: aware datetime (for ``keep_within``). ``protected``: snapshot_id ->
    reasons (see ``protections``). ``in_scope``: ``None`` (all in scope), a callable taking a
    ``Snapshot`` or a collection of snapshot ids; others are protected as ``out-of-scope``.
    ``policy_by_volume``: volume_id -> ``RetentionPolicy`` replacing ``policy`` for that volume.
    ``held_volumes``: volume ids (or volume_id -> message) whose snapshots are all protected.
    ``now_by_group``: group -> aware datetime that ``keep_within`` counts back from instead of ``now`` (for a
    group whose backups stopped: its age rule counts from its last backup, so it never loses more by waiting).

    Snapshots are grouped by ``group_of``; those without a known lineage are protected (``no-lineage``).
    Returns one ``Decision`` per snapshot, ordered by group, then newest first.
    """
    if not isinstance(policy, RetentionPolicy):
        raise TypeError("policy must be a RetentionPolicy, got %r" % (policy,))
    now = require_aware(now, "now").astimezone(UTC)
    policy_by_volume = policy_by_volume or {}
    held_volumes = held_volumes or ()
    now_by_group = now_by_group or {}
    groups = _group_snapshots(snapshots)
    decisions = []
    for group in sorted(groups):
        group_now = min(now, require_aware(now_by_group[group], "now of %s" % group)) if group in now_by_group else now
        decisions.extend(_decide_group(group, groups[group], policy_by_volume.get(group, policy), group_now, protected or {},
                                       in_scope, group in held_volumes))
    return decisions


def summarize(decisions):
    """Per-group counts: ``{group: {"keep": n, "delete": n, "protect": n}}`` (a group is a volume id or ``lineage:<value>``)."""
    counts = {}
    for decision in decisions:
        per_group = counts.setdefault(decision.group or decision.snapshot.volume_id, {action: 0 for action in ACTIONS})
        per_group[decision.action] += 1
    return {group: counts[group] for group in sorted(counts)}


def to_result(decision):
    """A module-result item: snapshot_id, volume_id, group, start_time (ISO 8601, UTC) and reasons (list)."""
    snap = decision.snapshot
    return {
        "snapshot_id": snap.snapshot_id,
        "volume_id": snap.volume_id,
        "group": decision.group or snap.volume_id,
        "start_time": snap.start_time.astimezone(UTC).isoformat(),
        "reasons": list(decision.reasons),
    }
