# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planner of ``ebs_snapshot_policy``: which volumes are due, and exactly what to create.

Data in, data out: the module reads the region once (``fleet.py``), calls ``options_from_params`` and
``plan``, and then makes the requests that ``create_request`` describes. Nothing here talks to AWS or
reads the clock.

Selection
    The volumes the module read *are* the selection: those matched by ``volume_filters``, by
    ``volume_ids``, attached to instances matched by ``instance_filters``, or every volume of the region
    with ``all_volumes``. ``plan`` then drops the volumes named in ``exclude``, the volumes attached to
    an instance named in ``exclude`` and, with ``exclude_boot_volume``, each instance's root volume.

Due
    A volume is due when this policy has no ``completed`` or ``pending`` snapshot of it newer than the
    last scheduled point, with a ``grace`` for runs that start a little early (``schedule.is_due``).
    "Not due" is an "already done" answer, so it only ever rests on a snapshot read in this run that
    exists and counts (``counts_for_volume``): in state ``completed`` or ``pending`` (not ``error``, not
    ``recoverable`` = deleted into the Recycle Bin, not ``recovering``), and taken *of* the volume (a copy
    or a lineage-tagged snapshot does not count: its start time is the copy's). A pending snapshot,
    however old, counts as in flight: the volume is not due until it completes, so a snapshot that takes
    longer than the frequency is never stacked up by the next runs.

Runs that overlap
    Two runs of the same policy at the same time (two schedulers, a job started by hand during the
    scheduled one) may both find a volume due. After creating, each run reads the policy's snapshots of
    those volumes again and removes its own new snapshot when an older one of the same due period exists
    (``rival_of``): the oldest snapshot of a period stays, so at most one per volume and due period is
    left, whatever the timing, and the run reports its removed snapshot under ``superseded``.

    That check is a fast path only: EC2 may list a new snapshot later than the check reads, and a run may
    be killed between creating and checking. Every snapshot therefore carries ``PERIOD_TAG`` (the due
    period it fills) and ``RUN_TAG`` (the run): every later run removes the extra snapshots of one volume
    and period (``period_duplicates``, oldest stays, as in ``rival_of``), a prune counts them once, and a
    run finds its own snapshots, also the one of a request whose answer was lost (``ours_by_run``).

What is created
    One ``CreateSnapshot`` per due volume; with ``crash_consistent``, one ``CreateSnapshots`` per
    instance matched by ``instance_filters`` with at least one due volume, covering all its selected
    volumes (the set is taken whole, so members that are not due yet are snapshotted too). Tags go with
    the request (``TagSpecifications``) so that a snapshot never exists without its policy tag. They
    are, later ones winning: the instance's tags (``copy_tags``, instance selection only), the volume's
    tags (``copy_tags``, single-volume snapshots only), ``tags``, ``Name`` from ``name_template`` and
    ``blockwise:policy=<name>``. Copied tags never include ``aws:`` keys nor the collection's own
    ``blockwise:`` keys (a volume's ``blockwise:protect`` must not protect its snapshots for ever).

    A crash-consistent set gets one description and one set of tags for all its snapshots (that is what
    ``CreateSnapshots`` does), so its templates may only use the set's variables: ``policy``,
    ``instance_id``, ``instance_name``, ``date`` and ``timestamp``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Optional

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet, retention, schedule
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import (
    TemplateError,
    check_tag_key,
    check_tag_value,
    check_tags,
    drop_aws_tags,
    merge_tags,
    render,
    time_variables,
    validate_template,
)

POLICY_TAG = "blockwise:policy"
# Markers on every snapshot a policy run makes. RUN_TAG: the run (one random id per run), so that a run finds every
# snapshot it made, even one whose CreateSnapshot answer was lost. PERIOD_TAG: the due period the snapshot fills,
# named by the newest snapshot of the volume the run found (NO_PREVIOUS for the first one; for a crash-consistent
# set, SET_MARKER_PREFIX and a digest of its members' newest snapshots). Two snapshots of one volume with the same
# PERIOD_TAG were made by runs that read the same state: they are duplicates of one period.
RUN_TAG = "blockwise:run"
PERIOD_TAG = "blockwise:due-after"
NO_PREVIOUS = "none"
SET_MARKER_PREFIX = "set:"
COLLECTION_TAG_PREFIX = "blockwise:"

VOLUME_VARIABLES = ("policy", "volume_id", "volume_name", "instance_id", "instance_name", "device", "date", "timestamp")
SET_VARIABLES = ("policy", "instance_id", "instance_name", "date", "timestamp")

DEFAULT_NAME_TEMPLATE = "{policy}-{volume_id}-{timestamp}"
DEFAULT_SET_NAME_TEMPLATE = "{policy}-{instance_id}-{timestamp}"
DEFAULT_DESCRIPTION_TEMPLATE = "blockwise.ebs policy {policy}: {volume_id} {volume_name}"
DEFAULT_SET_DESCRIPTION_TEMPLATE = "blockwise.ebs policy {policy}: crash-consistent set of {instance_id} {instance_name}"

MAX_DESCRIPTION_LENGTH = 255
MAX_CONCURRENCY = 64

VOLUME = "volume"
INSTANCE = "instance"
ERROR_STATE = "error"
PENDING_STATE = "pending"
# The state reported for a created snapshot that EC2 no longer lists (with wait: deleted while the task waited).
MISSING_STATE = "missing"
# The states in which a snapshot makes its volume not due: done, or in flight. Not error, nor recoverable
# (deleted, in the Recycle Bin), nor recovering (being restored from it), nor any state EC2 may add.
COUNTING_STATES = ("completed", PENDING_STATE)
LIVE_ATTACHMENT_STATES = ("attaching", "attached")

_ZERO_RE = re.compile(r"^0+(\.0*)?\s*[A-Za-z]*$")


class PolicyError(ValueError):
    """Invalid ebs_snapshot_policy input; the message names the option and the value."""


@dataclass(frozen=True)
class PolicyOptions:
    """The validated options of one policy run."""

    name: str
    frequency: schedule.Frequency
    grace: Optional[timedelta] = None
    volume_filters: dict = field(default_factory=dict, hash=False)
    instance_filters: dict = field(default_factory=dict, hash=False)
    volume_ids: tuple = ()
    exclude: frozenset = frozenset()
    all_volumes: bool = False
    crash_consistent: bool = False
    exclude_boot_volume: bool = False
    name_template: str = DEFAULT_NAME_TEMPLATE
    description_template: str = DEFAULT_DESCRIPTION_TEMPLATE
    copy_tags: bool = False
    tags: dict = field(default_factory=dict, hash=False)

    @property
    def snapshot_filters(self):
        """The DescribeSnapshots filters of this policy's snapshots (one server-side filtered pass)."""
        return {"tag:" + POLICY_TAG: self.name}

    def grace_at(self, now):
        """The grace in effect at ``now``: the option, or ``schedule.default_grace``."""
        return self.grace if self.grace is not None else schedule.default_grace(self.frequency, now)


def check_selection(volume_filters, instance_filters, volume_ids, all_volumes):
    """Refuse an empty selection (unless ``all_volumes``) and ``all_volumes`` mixed with selectors."""
    given = [name for name, value in (("volume_filters", volume_filters), ("instance_filters", instance_filters),
                                      ("volume_ids", volume_ids)) if value]
    if all_volumes and given:
        raise PolicyError("all_volumes=true selects every volume of the region and cannot be combined with %s" % ", ".join(given))
    if not all_volumes and not given:
        raise PolicyError(
            "empty selection: set volume_filters, instance_filters or volume_ids"
            " (or all_volumes=true to snapshot every volume of the region on purpose)"
        )


def parse_grace(value, frequency):
    """``None`` (use the default), or a ``timedelta`` >= 0 shorter than an interval frequency."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and _ZERO_RE.match(value.strip()):
        return timedelta(0)
    try:
        grace = schedule.parse_duration(value)
    except ValueError as exc:
        raise PolicyError("grace: %s" % exc) from exc
    if frequency.interval is not None and grace >= frequency.interval:
        raise PolicyError("grace=%r must be shorter than frequency=%r" % (value, frequency.text))
    return grace


_ID_KINDS = {"vol-": "volume id (vol-...)", "i-": "instance id (i-...)"}


def _check_ids(values, prefixes, option):
    result = []
    for value in values or ():
        if not isinstance(value, str) or not value.startswith(prefixes):
            raise PolicyError("%s: %r is not a %s" % (option, value, " or ".join(_ID_KINDS[prefix] for prefix in prefixes)))
        result.append(value)
    return result


def _check_template(template, option, crash_consistent):
    if template is None:
        return None
    allowed = SET_VARIABLES if crash_consistent else VOLUME_VARIABLES
    try:
        validate_template(template, allowed, option)
    except TemplateError as exc:
        message = str(exc)
        if crash_consistent and any("'%s'" % name in message for name in set(VOLUME_VARIABLES) - set(SET_VARIABLES)):
            message += (" (a crash_consistent set shares one Name and description among its snapshots,"
                        " so only the set's variables can be used)")
        raise PolicyError(message) from exc
    return template


def _stringify(tags):
    """Numbers in tag values (``Daily_Gens: 7`` in YAML) become strings; anything else is checked as is."""
    if not isinstance(tags, dict):
        return tags
    return {key: str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value for key, value in tags.items()}


def _check_numbers(params):
    concurrency = params.get("max_concurrency")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise PolicyError("max_concurrency must be between 1 and %d, got %r" % (MAX_CONCURRENCY, concurrency))
    timeout = params.get("wait_timeout")
    if timeout is not None and timeout < 1:
        raise PolicyError("wait_timeout must be at least 1 second, got %r" % (timeout,))


def _check_tags(params):
    try:
        tags = check_tags(_stringify(params.get("tags")), "tags")
    except TemplateError as exc:
        raise PolicyError(str(exc)) from exc
    reserved_keys = (
        (POLICY_TAG, "it is set to the policy name"),
        ("Name", "use name_template"),
        (retention.LINEAGE_TAG, "it marks uploads and copies, whose snapshots never count for a volume"),
        (retention.COPY_SOURCE_TAG, "it marks copies, whose snapshots never count for a volume"),
        (RUN_TAG, "it marks the run that made a snapshot"),
        (PERIOD_TAG, "it marks the due period a snapshot fills"),
    )
    for reserved, hint in reserved_keys:
        if reserved in tags:
            raise PolicyError("tags: the key %r is reserved (%s)" % (reserved, hint))
    return tags


def _templates(params, crash):
    """``(name_template, description_template)``: the options or the defaults, checked."""
    name_template = params.get("name_template")
    if name_template is None:
        name_template = DEFAULT_SET_NAME_TEMPLATE if crash else DEFAULT_NAME_TEMPLATE
    description_template = params.get("description_template")
    if description_template is None:
        description_template = DEFAULT_SET_DESCRIPTION_TEMPLATE if crash else DEFAULT_DESCRIPTION_TEMPLATE
    _check_template(name_template, "name_template", crash)
    _check_template(description_template, "description_template", crash)
    return name_template, description_template


def options_from_params(params):
    """Validate the module parameters and build ``PolicyOptions``; ``PolicyError`` names the bad option.

    ``schedule.MissingLibraryError`` passes through (the module reports the missing library).
    """
    name = params.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyError("name must be a non-empty string, got %r" % (name,))
    try:
        check_tag_value(name, "name")
    except TemplateError as exc:
        raise PolicyError(str(exc)) from exc

    for option in ("volume_filters", "instance_filters"):
        problem = fleet.filter_problem(params.get(option), option)
        if problem:
            raise PolicyError(problem)
    check_selection(params.get("volume_filters"), params.get("instance_filters"), params.get("volume_ids"), params.get("all_volumes"))
    crash = bool(params.get("crash_consistent"))
    if crash and not params.get("instance_filters"):
        raise PolicyError("crash_consistent=true needs instance_filters: a multi-volume set is taken per instance")

    zone = params.get("timezone") or "UTC"
    try:
        schedule.get_zone(zone)
    except ValueError as exc:
        raise PolicyError("timezone: %s" % exc) from exc
    try:
        frequency = schedule.parse_frequency(params.get("frequency"), zone)
    except schedule.MissingLibraryError:
        raise
    except ValueError as exc:
        raise PolicyError("frequency: %s" % exc) from exc
    grace = parse_grace(params.get("grace"), frequency)

    name_template, description_template = _templates(params, crash)
    tags = _check_tags(params)

    _check_numbers(params)
    return PolicyOptions(
        name=name,
        frequency=frequency,
        grace=grace,
        volume_filters=dict(params.get("volume_filters") or {}),
        instance_filters=dict(params.get("instance_filters") or {}),
        volume_ids=tuple(_check_ids(params.get("volume_ids"), ("vol-",), "volume_ids")),
        exclude=frozenset(_check_ids(params.get("exclude"), ("vol-", "i-"), "exclude")),
        all_volumes=bool(params.get("all_volumes")),
        crash_consistent=crash,
        exclude_boot_volume=bool(params.get("exclude_boot_volume")),
        name_template=name_template,
        description_template=description_template,
        copy_tags=bool(params.get("copy_tags")),
        tags=tags,
    )


def missing_ids(requested, found):
    """The requested ids (in request order, once each) that were not found."""
    found = set(found)
    return [item for item in dict.fromkeys(requested or ()) if item not in found]


def attachment_of(volume):
    """``(instance_id, device)`` of a volume's (first live) attachment, or ``(None, None)``."""
    attachments = [a for a in volume.get("Attachments") or () if a.get("State", "attached") in LIVE_ATTACHMENT_STATES]
    if not attachments:
        return None, None
    first = sorted(attachments, key=lambda a: (a.get("InstanceId") or "", a.get("Device") or ""))[0]
    return first.get("InstanceId"), first.get("Device")


def unknown_instance_ids(volumes, instances):
    """Instance ids that ``volumes`` are attached to but ``instances`` does not hold (to read in one pass)."""
    known = {instance["InstanceId"] for instance in instances}
    wanted = {attachment_of(volume)[0] for volume in volumes}
    return sorted(item for item in wanted if item and item not in known)


def _iso(value):
    return value.astimezone(schedule.UTC).isoformat() if isinstance(value, datetime) else value


def _start_time(snapshot):
    start = snapshot["StartTime"]
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return schedule.require_aware(start, "StartTime of %s" % snapshot.get("SnapshotId"))


def counts_for_volume(snap, policy_name):
    """The real volume a DescribeSnapshots item stands for as this policy's snapshot, or ``None``.

    It must carry the policy's tag, be ``completed`` or ``pending`` (in flight; ``error``, ``recoverable``
    = deleted into the Recycle Bin and ``recovering`` do not count) and be a snapshot *of* that volume:
    a copy or a lineage-tagged snapshot (``retention.group_of``) does not count, because its start time
    is when the copy began, not when the data was taken.
    """
    if (snap.get("tags") or {}).get(POLICY_TAG) != policy_name or snap.get("State") not in COUNTING_STATES:
        return None
    item = {"SnapshotId": snap["SnapshotId"], "VolumeId": snap.get("VolumeId"), "StartTime": _start_time(snap),
            "Tags": snap.get("tags") or {}}
    group = retention.group_of(retention.Snapshot.from_api(item))
    return group if group == snap.get("VolumeId") else None


def latest_snapshots(snapshots, policy_name):
    """volume_id -> the newest snapshot of this policy that counts (``counts_for_volume``; pending counts)."""
    latest = {}
    for snap in snapshots:
        volume_id = counts_for_volume(snap, policy_name)
        if volume_id is None:
            continue
        key = (_start_time(snap), snap["SnapshotId"])
        current = latest.get(volume_id)
        if current is None or key > current[0]:
            latest[volume_id] = (key, snap)
    return {volume_id: item[1] for volume_id, item in latest.items()}


def _copied(tags):
    return {key: value for key, value in drop_aws_tags(tags).items() if not str(key).startswith(COLLECTION_TAG_PREFIX)}


def _check_rendered(tags, name, description, subject):
    try:
        if name:
            check_tag_value(name, "name_template (rendered for %s)" % subject)
        for key in tags:
            check_tag_key(key, "tags of the snapshot of %s" % subject)
        check_tags(tags, "tags of the snapshot of %s" % subject)
    except TemplateError as exc:
        raise PolicyError(str(exc)) from exc
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise PolicyError(
            "description_template renders %d characters for %s; EC2 allows at most %d: %r..."
            % (len(description), subject, MAX_DESCRIPTION_LENGTH, description[:60])
        )


@dataclass
class VolumeView:
    """One selected volume with what the plan needs to know about it."""

    volume: dict
    instance: Optional[dict]
    instance_id: Optional[str]
    device: Optional[str]
    latest: Optional[dict]

    @property
    def volume_id(self):
        """The volume's id."""
        return self.volume["VolumeId"]

    @property
    def is_boot(self):
        """True when the volume is attached as its instance's root device."""
        return bool(self.instance and self.device and self.device == self.instance.get("RootDeviceName"))

    def variables(self, policy_name, time_vars):
        """The template variables of a snapshot of this volume."""
        return dict(
            time_vars,
            policy=policy_name,
            volume_id=self.volume_id,
            volume_name=(self.volume.get("tags") or {}).get("Name", ""),
            instance_id=self.instance_id or "",
            instance_name=(self.instance.get("tags") or {}).get("Name", "") if self.instance else "",
            device=self.device or "",
        )


@dataclass
class Plan:
    """What a policy run does: ``actions`` to create, and the volumes that are ``not_due``."""

    matched: list
    actions: list
    not_due: list
    excluded: list
    latest: dict

    @property
    def changed(self):
        """True when anything is (or would be) created."""
        return bool(self.actions)


def _select(options, volumes, instances):
    instances_by_id = {instance["InstanceId"]: instance for instance in instances}
    selected, excluded = [], []
    seen = set()
    for volume in sorted(volumes, key=lambda v: v["VolumeId"]):
        volume_id = volume["VolumeId"]
        if volume_id in seen:
            continue
        seen.add(volume_id)
        instance_id, device = attachment_of(volume)
        view = VolumeView(volume, instances_by_id.get(instance_id), instance_id, device, None)
        if volume_id in options.exclude:
            excluded.append({"volume_id": volume_id, "reason": "exclude"})
        elif instance_id and instance_id in options.exclude:
            excluded.append({"volume_id": volume_id, "reason": "exclude:%s" % instance_id})
        elif options.exclude_boot_volume and view.is_boot:
            excluded.append({"volume_id": volume_id, "reason": "boot-volume"})
        else:
            selected.append(view)
    return selected, excluded, instances_by_id


def pending_volumes(snapshots, policy_name):
    """volume_id -> the ids of this policy's pending snapshots of it (in flight)."""
    pending = {}
    for snap in snapshots:
        volume_id = counts_for_volume(snap, policy_name)
        if volume_id is not None and snap.get("State") == PENDING_STATE:
            pending.setdefault(volume_id, []).append(snap["SnapshotId"])
    return {volume_id: sorted(ids) for volume_id, ids in pending.items()}


def _not_due_item(view, next_due, in_flight):
    latest = view.latest
    return {
        "volume_id": view.volume_id,
        "instance_id": view.instance_id,
        "latest_snapshot_id": latest["SnapshotId"],
        "latest_start_time": _iso(_start_time(latest)),
        "latest_state": latest.get("State"),
        "in_flight": in_flight,
        "next_due": _iso(next_due),
    }


def _volume_action(options, view, time_vars, selected_instance_ids):
    variables = view.variables(options.name, time_vars)
    name = render(options.name_template, variables, VOLUME_VARIABLES, "name_template")
    description = render(options.description_template, variables, VOLUME_VARIABLES, "description_template")
    copied = {}
    if options.copy_tags:
        if view.instance and view.instance_id in selected_instance_ids:
            copied.update(_copied(view.instance.get("tags")))
        copied.update(_copied(view.volume.get("tags")))
    tags = merge_tags(copied, options.tags, {"Name": name} if name else None, {POLICY_TAG: options.name})
    _check_rendered(tags, name, description, view.volume_id)
    return {
        "kind": VOLUME,
        "volume_id": view.volume_id,
        "volume_ids": [view.volume_id],
        "instance_id": view.instance_id,
        "devices": {view.volume_id: view.device},
        "name": name,
        "description": description,
        "tags": tags,
    }


def _set_action(options, instance_id, instance, members, attached, time_vars):
    instance_name = (instance.get("tags") or {}).get("Name", "") if instance else ""
    variables = dict(time_vars, policy=options.name, instance_id=instance_id, instance_name=instance_name)
    name = render(options.name_template, variables, SET_VARIABLES, "name_template")
    description = render(options.description_template, variables, SET_VARIABLES, "description_template")
    copied = _copied(instance.get("tags")) if options.copy_tags and instance else {}
    tags = merge_tags(copied, options.tags, {"Name": name} if name else None, {POLICY_TAG: options.name})
    _check_rendered(tags, name, description, instance_id)
    member_ids = {view.volume_id for view in members}
    boot = [view for view in attached if view.is_boot]
    exclude_boot = bool(boot) and boot[0].volume_id not in member_ids
    if not boot and options.exclude_boot_volume:
        exclude_boot = True
    exclude_data = sorted(view.volume_id for view in attached if not view.is_boot and view.volume_id not in member_ids)
    return {
        "kind": INSTANCE,
        "instance_id": instance_id,
        "instance_name": instance_name,
        "volume_ids": sorted(member_ids),
        "devices": {view.volume_id: view.device for view in members},
        "exclude_boot_volume": exclude_boot,
        "exclude_data_volume_ids": exclude_data,
        "name": name,
        "description": description,
        "tags": tags,
    }


def _due_status(options, views, snapshots, now):
    """Per selected volume: ``{volume_id: (due, next_due, in_flight, since)}``; sets ``view.latest``.

    ``since`` (due volumes only) is the due threshold of this run: a snapshot of the volume started at or
    after it would have made the volume not due (``now + grace - interval``, or the cron point minus the
    grace). Another run's snapshot of the same period starts after it (see ``rival_of``).
    """
    latest = latest_snapshots(snapshots, options.name)
    pending = pending_volumes(snapshots, options.name)
    grace = options.grace_at(now)
    status = {}
    for view in views:
        view.latest = latest.get(view.volume_id)
        start = _start_time(view.latest) if view.latest else None
        due, next_due = schedule.is_due(options.frequency, now, start, grace)
        in_flight = view.volume_id in pending
        if in_flight and due:
            due, next_due = False, now
        since = None
        if due:
            since = next_due - grace if options.frequency.interval is None else now + grace - options.frequency.interval
        status[view.volume_id] = (due, next_due, in_flight, since)
    return status


def _set_actions(options, views, volumes, instances_by_id, status, time_vars, selected_instance_ids):
    """With ``crash_consistent``: one set action per selected instance with a due member; and the member ids."""
    members_by_instance = {}
    for view in views:
        if view.instance_id in selected_instance_ids:
            members_by_instance.setdefault(view.instance_id, []).append(view)
    attached_by_instance = {}
    for volume in volumes:
        instance_id, device = attachment_of(volume)
        if instance_id in members_by_instance:
            attached_by_instance.setdefault(instance_id, {})[volume["VolumeId"]] = VolumeView(
                volume, instances_by_id.get(instance_id), instance_id, device, None)
    actions, in_sets = [], set()
    for instance_id in sorted(members_by_instance):
        members = members_by_instance[instance_id]
        in_sets.update(view.volume_id for view in members)
        since = {view.volume_id: _iso(status[view.volume_id][3]) for view in members if status[view.volume_id][0]}
        if since:
            attached = sorted(attached_by_instance[instance_id].values(), key=lambda v: v.volume_id)
            action = _set_action(options, instance_id, instances_by_id.get(instance_id), members, attached, time_vars)
            action["since"] = since
            actions.append(action)
    return actions, in_sets


def period_marker(action, latest):
    """The ``PERIOD_TAG`` value of ``action``'s snapshots; ``latest``: volume_id -> newest counting snapshot."""
    if action["kind"] == VOLUME:
        snap = latest.get(action["volume_id"])
        return snap["SnapshotId"] if snap else NO_PREVIOUS
    members = ["%s=%s" % (v, latest[v]["SnapshotId"] if v in latest else NO_PREVIOUS) for v in sorted(action["volume_ids"])]
    return SET_MARKER_PREFIX + hashlib.sha256("|".join(members).encode()).hexdigest()[:32]


def _mark(actions, latest, run_id):
    """Add the run and period markers to every action's tags (the tag limits are checked again)."""
    for action in actions:
        markers = {PERIOD_TAG: period_marker(action, latest)}
        if run_id:
            markers[RUN_TAG] = run_id
        action["tags"] = merge_tags(action["tags"], markers)
        try:
            check_tags(action["tags"], "tags of the snapshot of %s" % (action["instance_id"] if action["kind"] == INSTANCE else action["volume_id"]))
        except TemplateError as exc:
            raise PolicyError(str(exc)) from exc


def plan(options, volumes, instances, snapshots, now, selected_instance_ids=(), run_id=None):
    """Decide what to create.

    ``volumes``: every volume read for the selection (fleet dicts, duplicates allowed). ``instances``:
    the instances those volumes are attached to (for names, root devices and tags).
    ``snapshots``: this policy's snapshots (DescribeSnapshots items with ``tags``). ``now``: aware
    datetime. ``selected_instance_ids``: the instances matched by ``instance_filters`` (their tags are
    copied; with ``crash_consistent`` they get one multi-volume set each).

    Each action carries ``since``: its due volumes -> their due threshold (ISO 8601, see ``_due_status``).
    Its tags carry ``PERIOD_TAG`` and, with ``run_id``, ``RUN_TAG=run_id``.
    Returns a ``Plan``; raises ``PolicyError`` when a rendered name, description or tag set is invalid.
    """
    now = schedule.require_aware(now, "now").astimezone(schedule.UTC)
    selected_instance_ids = set(selected_instance_ids or ())
    views, excluded, instances_by_id = _select(options, volumes, instances)
    time_vars = time_variables(now)
    status = _due_status(options, views, snapshots, now)

    actions, in_sets = [], set()
    if options.crash_consistent:
        actions, in_sets = _set_actions(options, views, volumes, instances_by_id, status, time_vars, selected_instance_ids)
    for view in views:
        if status[view.volume_id][0] and view.volume_id not in in_sets:
            action = _volume_action(options, view, time_vars, selected_instance_ids)
            action["since"] = {view.volume_id: _iso(status[view.volume_id][3])}
            actions.append(action)

    _mark(actions, {view.volume_id: view.latest for view in views if view.latest}, run_id)
    covered = {volume_id for action in actions for volume_id in action["volume_ids"]}
    not_due = [_not_due_item(view, status[view.volume_id][1], status[view.volume_id][2])
               for view in views if not status[view.volume_id][0] and view.volume_id not in covered]
    return Plan(
        matched=[view.volume_id for view in views],
        actions=actions,
        not_due=not_due,
        excluded=excluded,
        latest={view.volume_id: view.latest for view in views if view.latest},
    )


def create_request(action, tag_specifications):
    """``(method, kwargs)`` of the EC2 call that carries out ``action``.

    ``tag_specifications`` is amazon.aws' ``boto3_tag_specifications`` (passed in to keep this file free
    of Ansible imports).
    """
    kwargs = {"TagSpecifications": tag_specifications(action["tags"], ["snapshot"])}
    if action["description"]:
        kwargs["Description"] = action["description"]
    if action["kind"] == VOLUME:
        kwargs["VolumeId"] = action["volume_id"]
        return "create_snapshot", kwargs
    spec = {"InstanceId": action["instance_id"], "ExcludeBootVolume": bool(action["exclude_boot_volume"])}
    if action["exclude_data_volume_ids"]:
        spec["ExcludeDataVolumeIds"] = list(action["exclude_data_volume_ids"])
    kwargs["InstanceSpecification"] = spec
    return "create_snapshots", kwargs


def _created_item(action, volume_id, snapshot=None):
    snapshot = snapshot or {}
    return {
        "volume_id": volume_id,
        "snapshot_id": snapshot.get("SnapshotId"),
        "instance_id": action["instance_id"],
        "device": action["devices"].get(volume_id),
        "name": action["name"],
        "description": action["description"],
        "tags": dict(action["tags"]),
        "state": snapshot.get("State"),
        "start_time": _iso(snapshot.get("StartTime")),
        "kind": action["kind"],
    }


def created_items(action, response=None):
    """One ``created`` result item per snapshot of ``action``.

    ``response`` is the CreateSnapshot/CreateSnapshots answer, or ``None`` in check mode (then the items
    describe what would be created and have no ``snapshot_id``).
    """
    if response is None:
        return [_created_item(action, volume_id) for volume_id in action["volume_ids"]]
    if action["kind"] == VOLUME:
        return [_created_item(action, action["volume_id"], response)]
    snapshots = sorted(response.get("Snapshots") or [], key=lambda s: s.get("VolumeId") or "")
    return [_created_item(action, snap.get("VolumeId"), snap) for snap in snapshots]


def failed_item(action, message):
    """A ``failed`` result item for an action whose request failed."""
    return {
        "kind": action["kind"],
        "volume_ids": list(action["volume_ids"]),
        "instance_id": action["instance_id"],
        "name": action["name"],
        "error": message,
    }


def build_diff(the_plan, created):
    """``{"before": ..., "after": ...}``: per volume that gets a snapshot, its newest policy snapshot before/after."""
    before, after = {}, {}
    for item in created:
        volume_id = item["volume_id"]
        latest = the_plan.latest.get(volume_id)
        before[volume_id] = {
            "latest_snapshot_id": latest["SnapshotId"] if latest else None,
            "latest_start_time": _iso(_start_time(latest)) if latest else None,
        }
        after[volume_id] = {
            "latest_snapshot_id": item["snapshot_id"] or "(new snapshot)",
            "latest_start_time": item["start_time"],
            "name": item["name"],
        }
    return {"before": before, "after": after}


def build_result(the_plan, created, superseded, failed):
    """The module result (without ``diff``): what was created, superseded, not due, matched, excluded, failed."""
    cleaned = any(item.get("reason") == "leftover" and item["status"] in ("removed", "planned") for item in superseded)
    return dict(
        changed=bool(created) or cleaned,
        created=created,
        superseded=superseded,
        not_due=the_plan.not_due,
        matched=the_plan.matched,
        excluded=the_plan.excluded,
        errors=failed,
        summary=dict(
            matched=len(the_plan.matched),
            created=len(created),
            superseded=sum(len(item["snapshot_ids"]) for item in superseded if item["status"] == "removed"),
            not_due=len(the_plan.not_due),
            errors=len(failed),
            requests=len(the_plan.actions),
        ),
    )


def snapshot_states(snapshots):
    """Split DescribeSnapshots items into ``(pending_ids, error_ids)`` (sorted)."""
    pending = sorted(s["SnapshotId"] for s in snapshots if s.get("State") == "pending")
    errors = sorted(s["SnapshotId"] for s in snapshots if s.get("State") == ERROR_STATE)
    return pending, errors


# --- runs that overlap: at most one snapshot per volume and due period ---------------------------

# How long a run waits after its creations before it looks for another run's snapshots of the same period.
# It must exceed the resolution of StartTime (a second, at worst) plus the time EC2 takes to list a new
# snapshot: then either run's check sees the other's snapshot, or the other snapshot started this much
# later, so (StartTime, SnapshotId) orders the two the same way for both runs (see ``rival_of``).
DUPLICATE_CHECK_SECONDS = 3.0


def _key(snap):
    return (_start_time(snap), snap["SnapshotId"])


def snapshot_key(snap):
    """The order of snapshots of one period: ``(StartTime, SnapshotId)``, oldest first."""
    return _key(snap)


def period_duplicates(snapshots, policy_name, volume_ids=None, include_sets=False):
    """Duplicates of one due period: ``{snapshot_id: the snapshot that stays}``.

    Among this policy's snapshots that count (``counts_for_volume``), those of one volume with the same
    ``PERIOD_TAG`` were made by runs that read the same state (overlapping runs, a run killed before its own
    check, a retried CreateSnapshot): the oldest by ``(StartTime, SnapshotId)`` stays, as in ``rival_of``, so
    every run that looks agrees on which one stays, and the others are duplicates. ``volume_ids``: only these
    volumes (``None``: all). Members of crash-consistent sets are left out unless ``include_sets`` (removing one
    member of a set would break the set; a prune only needs to know not to count them).
    """
    groups = {}
    for snap in snapshots:
        volume_id = counts_for_volume(snap, policy_name)
        marker = (snap.get("tags") or {}).get(PERIOD_TAG)
        if volume_id is None or not marker or (volume_ids is not None and volume_id not in volume_ids):
            continue
        if marker.startswith(SET_MARKER_PREFIX) and not include_sets:
            continue
        groups.setdefault((volume_id, marker), []).append(snap)
    result = {}
    for members in groups.values():
        members.sort(key=_key)
        for duplicate in members[1:]:
            result[duplicate["SnapshotId"]] = members[0]
    return result


def leftover_items(duplicates, status):
    """``superseded`` items (reason ``leftover``) for ``period_duplicates`` found by a run: one per kept snapshot."""
    by_keeper = {}
    for snapshot_id, keeper in sorted(duplicates.items()):
        by_keeper.setdefault(keeper["SnapshotId"], (keeper, []))[1].append(snapshot_id)
    return [{
        "kind": VOLUME,
        "volume_ids": [keeper.get("VolumeId")],
        "instance_id": None,
        "snapshot_ids": ids,
        "kept_snapshot_id": keeper["SnapshotId"],
        "kept_start_time": _iso(_start_time(keeper)),
        "status": status,
        "reason": "leftover",
    } for keeper, ids in by_keeper.values()]


def ours_by_run(action, snapshots, run_id, policy_name):
    """The snapshots of ``action``'s volumes that carry this run's ``RUN_TAG`` (oldest first)."""
    volumes = set(action["volume_ids"])
    ours = [snap for snap in snapshots if run_id and (snap.get("tags") or {}).get(RUN_TAG) == run_id
            and counts_for_volume(snap, policy_name) in volumes]
    return sorted(ours, key=_key)


def rival_of(action, ours, snapshots, policy_name, run_id=None):
    """The snapshot that makes this run's new snapshots of ``action`` redundant, or ``None``.

    ``ours``: the snapshots this run just made for ``action`` (CreateSnapshot(s) answers or fresh reads).
    ``snapshots``: this policy's snapshots of the action's volumes, read *after* creating. Candidates are
    the snapshots of the action's due volumes that count (``counts_for_volume``), are not ``ours`` and
    started at or after that volume's due threshold (``action["since"]``): they belong to the same due
    period, so another run made them. There is a rival when every due volume has a candidate (a
    crash-consistent set is only given up for another run's snapshots of all its due volumes, never for a
    snapshot of one member) and the oldest candidate is older, by ``(StartTime, SnapshotId)``, than the
    oldest of ``ours``; it is returned. Each run removes its own snapshots when it finds a rival, so:

    * two runs never both remove theirs: each would need the other's oldest to be the older;
    * at most one stays: a run checks ``DUPLICATE_CHECK_SECONDS`` after its creation. A snapshot it does
      not see then was started later than that, so it is the newer one, and its own run, which does see
      the first one, removes it.
    """
    our_ids = {snap["SnapshotId"] for snap in ours}
    if not our_ids:
        return None
    snapshots = [snap for snap in snapshots if not run_id or (snap.get("tags") or {}).get(RUN_TAG) != run_id]
    since = {volume_id: datetime.fromisoformat(value) for volume_id, value in (action.get("since") or {}).items() if value}
    oldest_by_volume = {}
    for snap in snapshots:
        volume_id = counts_for_volume(snap, policy_name)
        if volume_id not in since or snap["SnapshotId"] in our_ids or _start_time(snap) < since[volume_id]:
            continue
        if volume_id not in oldest_by_volume or _key(snap) < _key(oldest_by_volume[volume_id]):
            oldest_by_volume[volume_id] = snap
    if not since or set(oldest_by_volume) != set(since):
        return None
    rival = min(oldest_by_volume.values(), key=_key)
    return rival if _key(rival) < min(_key(snap) for snap in ours) else None


def superseded_item(action, ours, rival, status="removed", error=None, reason="overlap"):
    """A ``superseded`` result item: this run's redundant snapshots of ``action`` and the older one that stays.

    ``reason``: ``overlap`` (another run's older snapshot of the period stays) or ``retry`` (a CreateSnapshot
    retried after a lost answer made a second snapshot; this run's first one stays)."""
    item = {
        "kind": action["kind"],
        "volume_ids": list(action["volume_ids"]),
        "instance_id": action["instance_id"],
        "snapshot_ids": sorted(snap["SnapshotId"] for snap in ours),
        "kept_snapshot_id": rival["SnapshotId"],
        "kept_start_time": _iso(_start_time(rival)),
        "status": status,
        "reason": reason,
    }
    if error:
        item["error"] = error
    return item
