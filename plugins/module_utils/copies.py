# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planner of ``ebs_snapshot_copy``: which source snapshots to copy into this region, and how.

Data in, data out: the module reads the source region once (the selected snapshots) and the
destination once per round (every copy the collection made there, found by the
``blockwise:source-snapshot`` tag key); ``options_from_params``, ``select_sources`` and ``plan``
decide; the module makes the requests that ``copy_request`` describes. No AWS call and no clock here.

Identity of a copy
    Every copy carries ``blockwise:source-snapshot``, ``blockwise:source-region`` and
    ``blockwise:source-account`` (the source's owner). A source that already has a copy in the
    destination, in any state, is never copied again. A copy in state ``error`` is deleted and the
    source copied again, in the same run that finds it (a copy this run made and saw fail is only
    reported: the next run retries it).

Lineage
    ``blockwise:lineage`` on a copy is the source's ``blockwise:lineage`` tag, else the source's
    ``VolumeId`` when it is a real volume (not the placeholder ``vol-ffffffff`` and not a copy, whose
    volume id AWS makes arbitrary), else the source snapshot id. The destination's retention groups
    copies by it; it never comes from a copy's own ``VolumeId``.

In flight
    At most ``max_in_flight`` copies of the collection are ``pending`` in the destination at once:
    the free slots are ``max_in_flight`` minus the pending copies read there (plus the copies this
    run started that are not visible yet). The rest is ``queued``, newest source first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils.fleet import filter_problem
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import (
    TemplateError,
    check_tag_value,
    check_tags,
    check_template_length,
    drop_aws_tags,
    merge_tags,
    render,
    time_variables,
)

POLICY_TAG = "blockwise:policy"
LINEAGE_TAG = "blockwise:lineage"
SOURCE_SNAPSHOT_TAG = "blockwise:source-snapshot"
SOURCE_REGION_TAG = "blockwise:source-region"
SOURCE_ACCOUNT_TAG = "blockwise:source-account"
# When the source was taken: a copy's own StartTime is when it was copied, so retention in the destination orders
# copies by this (a backlog copied in one run would otherwise look newest-source-oldest).
SOURCE_START_TAG = "blockwise:source-start-time"
COLLECTION_PREFIX = "blockwise:"
PLACEHOLDER_VOLUME_ID = "vol-ffffffff"

COMPLETED, PENDING, ERROR = "completed", "pending", "error"

DEFAULT_MAX_IN_FLIGHT = 20
MAX_IN_FLIGHT_LIMIT = 100
MAX_DESCRIPTION_LENGTH = 255
DESCRIBE_PAGE_SIZE = 1000
COMPLETION_STEP, COMPLETION_MIN, COMPLETION_MAX = 15, 15, 2880

VARIABLES = ("policy", "snapshot_id", "volume_id", "lineage", "source_region", "source_account", "source_name",
             "source_description", "date", "timestamp")
DEFAULT_DESCRIPTION = "blockwise.ebs copy of {snapshot_id} from {source_region}"

# Why a source is not copied.
SKIP_PENDING = "source-pending"
SKIP_ERROR = "source-error"
SKIP_OLDER = "latest_only"
SKIP_IS_COPY = "copy-in-destination"
# Why a copy waits.
QUEUE_FULL = "max_in_flight"
ENDED_IN_ERROR = "the copy this run made ended in state error; the next run deletes it and copies again"

# Error classes of a CopySnapshot request.
QUEUE_FULL_CODES = ("ResourceLimitExceeded", "RequestLimitExceeded", "Throttling", "ThrottlingException",
                    "TooManyRequestsException", "RequestThrottledException", "EC2ThrottledException", "SlowDown")
NOT_FOUND_CODES = ("InvalidSnapshot.NotFound",)
REQUEUE, UNCERTAIN, FAILED = "requeue", "uncertain", "failed"

_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):[0-9]{12}:(key|alias)/.+$")


class CopyError(ValueError):
    """Invalid ebs_snapshot_copy input; the message names the option and the value."""


@dataclass(frozen=True)
class CopyOptions:
    """The validated options of one copy run (``region`` is the destination)."""

    region: str
    source_region: str
    source_owner_id: str = ""
    policy: str = ""
    filters: dict = field(default_factory=dict, hash=False)
    snapshot_ids: tuple = ()
    latest_only: bool = False
    encrypted: bool = False
    kms_key_id: str = ""
    copy_tags: bool = True
    tags: dict = field(default_factory=dict, hash=False)
    description: str = DEFAULT_DESCRIPTION
    wait: bool = False
    wait_timeout: int = 900
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    completion_duration_minutes: int = 0
    source_tags: dict = field(default_factory=dict, hash=False)

    @property
    def cross_account(self):
        """True when the sources belong to another account (their tags are then not visible here)."""
        return bool(self.source_owner_id)

    @property
    def source_filters(self):
        """DescribeSnapshots filters of the source read; the policy tag only for the account's own snapshots."""
        filters = dict(self.filters)
        if self.policy and not self.cross_account:
            filters["tag:" + POLICY_TAG] = self.policy
        return filters

    @property
    def owner(self):
        """The ``OwnerIds`` value of the source read."""
        return self.source_owner_id or "self"


def is_collection_key(key):
    """True for the collection's own tag keys (``blockwise:...``, any case)."""
    return str(key).lower().startswith(COLLECTION_PREFIX)


def _check_int(params, name, low, high):
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CopyError("%s must be an integer between %d and %d, got %r" % (name, low, high, value))
    return value


def _check_completion(value):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not COMPLETION_MIN <= value <= COMPLETION_MAX or value % COMPLETION_STEP:
        raise CopyError("completion_duration_minutes must be %d to %d in steps of %d (AWS time-based copy), got %r"
                        % (COMPLETION_MIN, COMPLETION_MAX, COMPLETION_STEP, value))
    return value


def check_selection(policy, filters, snapshot_ids, option_filters="filters"):
    """Refuse an empty selection, bad filters and owner filters; return the cleaned ``(policy, filters, ids)``."""
    if policy is not None and (not isinstance(policy, str) or not policy.strip()):
        raise CopyError("policy must be a non-empty policy name, got %r" % (policy,))
    problem = filter_problem(filters, option_filters)
    if problem:
        raise CopyError(problem)
    filters = dict(filters or {})
    if any(str(key).lower() in ("owner-id", "owner-alias") for key in filters):
        raise CopyError("%s: owner filters are not allowed; the owner comes from source_owner_id (default: this account)" % option_filters)
    tag_filter = "tag:" + POLICY_TAG
    if policy and tag_filter in filters and filters[tag_filter] not in (policy, [policy]):
        raise CopyError("%s[%r]=%r contradicts policy=%r" % (option_filters, tag_filter, filters[tag_filter], policy))
    ids = list(dict.fromkeys(snapshot_ids or ()))
    bad = [item for item in ids if not isinstance(item, str) or not item.startswith("snap-")]
    if bad:
        raise CopyError("snapshot_ids: %r is not a snapshot id (snap-...)" % (bad[0],))
    if not policy and not filters and not ids:
        raise CopyError("no selection: set policy (snapshots tagged %s=<policy>), filters or snapshot_ids;"
                        " copying every snapshot is never implied" % POLICY_TAG)
    return policy or "", filters, tuple(ids)


def check_user_tags(tags, option="tags"):
    """Check ``tags`` (EC2 limits) and refuse the collection's own ``blockwise:`` keys; return a dict of strings."""
    tags = {key: str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            for key, value in (tags or {}).items()} if isinstance(tags, dict) else tags
    try:
        tags = check_tags(tags, option)
    except TemplateError as exc:
        raise CopyError(str(exc)) from exc
    reserved = sorted(key for key in tags if is_collection_key(key))
    if reserved:
        raise CopyError("%s: %s is reserved: blockwise: keys are the collection's own (set from the source)" % (option, reserved[0]))
    return tags


def check_source_tags(value):
    """``source_tags``: snapshot id -> tags of that snapshot as its owner sees them (``ebs_snapshot_share`` returns it)."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise CopyError("source_tags must be a dictionary of snapshot id -> tags, got %r" % (value,))
    result = {}
    for snapshot_id, tags in value.items():
        if not isinstance(snapshot_id, str) or not snapshot_id.startswith("snap-"):
            raise CopyError("source_tags: %r is not a snapshot id (snap-...)" % (snapshot_id,))
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise CopyError("source_tags[%r] must be a dictionary of string tags, got %r" % (snapshot_id, tags))
        result[snapshot_id] = dict(tags)
    return result


def check_regions(source_region, region, known_regions, source_owner_id, encrypted, kms_key_id):
    """Refuse unknown regions and a copy into its own region that changes nothing."""
    if not region:
        raise CopyError("region: the destination region is required (the module's region)")
    if not isinstance(source_region, str) or source_region not in known_regions:
        raise CopyError("source_region: unknown region %r" % (source_region,))
    if source_region == region and not source_owner_id and not (encrypted or kms_key_id):
        raise CopyError("source_region=%r is the destination region: a copy there without a key change (encrypted or kms_key_id)"
                        " would only duplicate the snapshots" % (source_region,))


def check_kms_key_id(kms_key_id, region):
    """A key id, alias or ARN; an ARN must name a key of the destination region."""
    if kms_key_id is None:
        return ""
    if not isinstance(kms_key_id, str) or not kms_key_id.strip():
        raise CopyError("kms_key_id must not be empty, got %r" % (kms_key_id,))
    match = _KEY_ARN_RE.match(kms_key_id)
    if match and match.group("region") != region:
        raise CopyError("kms_key_id=%r is a key of %s; a copy into %s needs a key of %s" % (kms_key_id, match.group("region"), region, region))
    return kms_key_id.strip()


def check_description(template):
    """Validate the ``description`` template (variables, syntax, fixed length)."""
    if template is None:
        return DEFAULT_DESCRIPTION
    try:
        check_template_length(template, VARIABLES, "description", MAX_DESCRIPTION_LENGTH)
    except TemplateError as exc:
        raise CopyError(str(exc)) from exc
    return template


def options_from_params(params, region, known_regions):
    """Validate the module parameters; ``CopyError`` names the bad option. ``region`` is the destination."""
    policy, filters, ids = check_selection(params.get("policy"), params.get("filters"), params.get("snapshot_ids"))
    owner = params.get("source_owner_id")
    if owner is not None and (not isinstance(owner, str) or not _ACCOUNT_RE.match(owner)):
        raise CopyError("source_owner_id must be a 12-digit AWS account id, got %r" % (owner,))
    encrypted = bool(params.get("encrypted"))
    check_regions(params.get("source_region"), region, known_regions, owner, encrypted, params.get("kms_key_id"))
    kms_key_id = check_kms_key_id(params.get("kms_key_id"), region)
    if policy:
        try:
            check_tag_value(policy, "policy")
        except TemplateError as exc:
            raise CopyError(str(exc)) from exc
    timeout = _check_int(params, "wait_timeout", 1, 7 * 24 * 3600)
    in_flight = _check_int(params, "max_in_flight", 1, MAX_IN_FLIGHT_LIMIT)
    return CopyOptions(
        region=region,
        source_region=params["source_region"],
        source_owner_id=owner or "",
        policy=policy,
        filters=filters,
        snapshot_ids=ids,
        latest_only=bool(params.get("latest_only")),
        encrypted=encrypted,
        kms_key_id=kms_key_id,
        copy_tags=params.get("copy_tags", True) is not False,
        tags=check_user_tags(params.get("tags")),
        description=check_description(params.get("description")),
        wait=bool(params.get("wait")),
        wait_timeout=900 if timeout is None else timeout,
        max_in_flight=DEFAULT_MAX_IN_FLIGHT if in_flight is None else in_flight,
        completion_duration_minutes=_check_completion(params.get("completion_duration_minutes")),
        source_tags=check_source_tags(params.get("source_tags")),
    )


# ------------------------------------------------------------------------------------------ sources

def start_time_of(item):
    start = item.get("StartTime")
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if isinstance(start, datetime) and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return start


def iso(value):
    return value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else value


def effective_tags(item, source_tags=None):
    """The source's tags: those visible to the caller, over the owner's tags passed in ``source_tags``."""
    return merge_tags((source_tags or {}).get(item["SnapshotId"]), item.get("tags"))


def lineage_of(item, tags):
    """The lineage a copy of ``item`` carries: its lineage tag, else its real volume id, else its own id."""
    lineage = str(tags.get(LINEAGE_TAG) or "").strip()
    if lineage:
        return lineage
    volume_id = item.get("VolumeId") or ""
    if volume_id and volume_id != PLACEHOLDER_VOLUME_ID and SOURCE_SNAPSHOT_TAG not in tags:
        return volume_id
    return item["SnapshotId"]


@dataclass
class Source:
    """One source snapshot with what the plan needs: its tags (as its owner sees them) and lineage."""

    item: dict
    tags: dict
    lineage: str

    @property
    def snapshot_id(self):
        """The source snapshot id."""
        return self.item["SnapshotId"]

    @property
    def account(self):
        """The source's owner (the ``blockwise:source-account`` of its copies)."""
        return self.item.get("OwnerId") or ""

    @property
    def start_time(self):
        """The source's start time (aware)."""
        return start_time_of(self.item)

    @property
    def newest_first_key(self):
        """Sort key: newest first, then by id."""
        start = self.start_time
        return (-(start.timestamp() if start else 0), self.snapshot_id)


def _skip(source, reason):
    return {"source_snapshot_id": source.snapshot_id, "lineage": source.lineage, "state": source.item.get("State"), "reason": reason}


def select_sources(items, options, destination_copy_ids=()):
    """Split the source read into ``(sources, excluded)``.

    Applies the policy on the effective tags (the server-side filter cannot see another account's
    tags), checks that every ``snapshot_ids`` entry was found and that a ``policy`` matches something
    (``CopyError`` otherwise), skips sources that are not ``completed``, copies made in this very
    region and account (``destination_copy_ids``), and with ``latest_only`` all but the newest
    completed source of each lineage. ``sources`` are newest first.
    """
    by_id = {}
    for item in items:
        tags = effective_tags(item, options.source_tags)
        if options.policy and tags.get(POLICY_TAG) != options.policy:
            continue
        by_id.setdefault(item["SnapshotId"], Source(item, tags, lineage_of(item, tags)))
    missing = [snapshot_id for snapshot_id in options.snapshot_ids if snapshot_id not in by_id]
    if missing:
        raise CopyError("snapshot_ids: not found in %s for owner %s%s: %s" % (
            options.source_region, options.owner, " with policy=%r" % options.policy if options.policy else "", ", ".join(missing)))
    if options.policy and not by_id:
        hint = " (another account's tags are not visible: pass source_tags from ebs_snapshot_share)" if options.cross_account else ""
        raise CopyError("policy: no snapshot of owner %s in %s carries %s=%s%s" % (options.owner, options.source_region, POLICY_TAG, options.policy, hint))
    sources, excluded = [], []
    for source in sorted(by_id.values(), key=lambda s: s.newest_first_key):
        state = source.item.get("State")
        if source.snapshot_id in destination_copy_ids:
            excluded.append(_skip(source, SKIP_IS_COPY))
        elif state != COMPLETED:
            excluded.append(_skip(source, SKIP_ERROR if state == ERROR else SKIP_PENDING))
        else:
            sources.append(source)
    if options.latest_only:
        seen, newest = set(), []
        for source in sources:
            if source.lineage in seen:
                excluded.append(_skip(source, SKIP_OLDER))
            else:
                seen.add(source.lineage)
                newest.append(source)
        sources = newest
    return sources, excluded


# ------------------------------------------------------------------------------------------- copies

def copy_key(tags):
    """``(source snapshot, source region, source account)`` of a copy, from its tags (None if not a copy)."""
    snapshot_id = tags.get(SOURCE_SNAPSHOT_TAG)
    if not snapshot_id:
        return None
    return (snapshot_id, tags.get(SOURCE_REGION_TAG, ""), tags.get(SOURCE_ACCOUNT_TAG, ""))


def source_key(source, options):
    """The identity a copy of ``source`` carries."""
    return (source.snapshot_id, options.source_region, source.account)


def index_copies(items):
    """source key -> the destination copies carrying it (newest first)."""
    index = {}
    for item in sorted(items, key=lambda i: (-(start_time_of(i).timestamp() if start_time_of(i) else 0), i["SnapshotId"])):
        key = copy_key(item.get("tags") or {})
        if key:
            index.setdefault(key, []).append(item)
    return index


def copy_view(item):
    """What the result says about one destination copy."""
    return {"snapshot_id": item["SnapshotId"], "state": item.get("State"), "progress": item.get("Progress"),
            "encrypted": item.get("Encrypted"), "kms_key_id": item.get("KmsKeyId"), "start_time": iso(start_time_of(item))}


def template_variables(source, options):
    """The ``description`` variables of a copy of ``source`` (``date``/``timestamp``: the source's start time)."""
    start = source.start_time
    variables = time_variables(start) if start else {}
    variables.update(
        policy=source.tags.get(POLICY_TAG, ""),
        snapshot_id=source.snapshot_id,
        volume_id=source.item.get("VolumeId") or "",
        lineage=source.lineage,
        source_region=options.source_region,
        source_account=source.account,
        source_name=source.tags.get("Name", ""),
        source_description=source.item.get("Description") or "",
    )
    return variables


def copy_tags_of(source, options):
    """The tags of a copy: the source's (``copy_tags``), ``tags``, then the collection's own."""
    copied = {}
    if options.copy_tags:
        copied = {key: value for key, value in drop_aws_tags(source.tags).items() if not is_collection_key(key)}
    own = {
        SOURCE_SNAPSHOT_TAG: source.snapshot_id,
        SOURCE_REGION_TAG: options.source_region,
        SOURCE_ACCOUNT_TAG: source.account,
        LINEAGE_TAG: source.lineage,
        SOURCE_START_TAG: iso(source.start_time),
    }
    if source.tags.get(POLICY_TAG):
        own[POLICY_TAG] = source.tags[POLICY_TAG]
    tags = merge_tags(copied, options.tags, own)
    try:
        check_tags(tags, "tags of the copy of %s (copy_tags + tags + %d collection tags)" % (source.snapshot_id, len(own)))
    except TemplateError as exc:
        raise CopyError(str(exc)) from exc
    return tags


def copy_action(source, options, replaces=()):
    """Everything one CopySnapshot needs, and what the result reports about it."""
    description = render(options.description, template_variables(source, options), VARIABLES, "description")
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise CopyError("description renders %d characters for %s; EC2 allows at most %d: %r..."
                        % (len(description), source.snapshot_id, MAX_DESCRIPTION_LENGTH, description[:60]))
    encrypt = bool(options.encrypted or options.kms_key_id)
    return {
        "source_snapshot_id": source.snapshot_id,
        "source_region": options.source_region,
        "source_account": source.account,
        "source_start_time": iso(source.start_time),
        "lineage": source.lineage,
        "description": description,
        "tags": copy_tags_of(source, options),
        "encrypted": True if encrypt or source.item.get("Encrypted") else None,
        "kms_key_id": options.kms_key_id or None,
        "replaces": list(replaces),
    }


@dataclass
class CopyPlan:
    """One round's decisions: ``start`` now, the rest of ``to_copy`` waits for a free slot."""

    to_copy: list
    slots: int
    held: list
    present: list
    failed: list
    duplicates: list
    in_flight: int
    copied_lineages: dict

    @property
    def start(self):
        """The copies to start in this round (as many as there are free slots)."""
        return self.to_copy[:self.slots]

    def queued(self, started_now=0):
        """What is left once ``started_now`` copies of ``start`` were started: one item per source."""
        left = [queue_item(action, QUEUE_FULL) for action in self.to_copy[started_now:]]
        return left + list(self.held)


def queue_item(action, reason):
    """A ``queued`` result item."""
    return {"source_snapshot_id": action["source_snapshot_id"], "lineage": action["lineage"],
            "source_start_time": action.get("source_start_time"), "reason": reason}


def _present(source, copy):
    return dict(copy_view(copy), source_snapshot_id=source.snapshot_id, lineage=source.lineage)


def _not_visible_yet(source, copy_id):
    return {"source_snapshot_id": source.snapshot_id, "lineage": source.lineage, "snapshot_id": copy_id, "state": PENDING,
            "progress": None, "encrypted": None, "kms_key_id": None, "start_time": None}


def in_flight_count(copies, started):
    """The collection's pending copies in the destination, plus this run's copies not visible yet."""
    visible = {copy["SnapshotId"] for copy in copies}
    pending = sum(1 for copy in copies if copy.get("State") == PENDING)
    return pending + sum(1 for copy_id in started.values() if copy_id not in visible)


def plan(sources, copies, options, started=None, hold=None):
    """Decide one round.

    ``sources``: from ``select_sources``. ``copies``: the destination's copies (DescribeSnapshots items
    with ``tags``, found by the source-snapshot tag key). ``started``: source key -> copy id of the
    copies this run made (a copy not visible yet still counts as in flight). ``hold``: source key ->
    reason for sources this run must not copy again (a copy it made failed, or a request whose outcome
    is unknown). Raises ``CopyError`` when a description or tag set cannot be written.
    """
    started, hold = started or {}, hold or {}
    index = index_copies(copies)
    to_copy, held, present, failed, duplicates, lineages = [], [], [], [], [], {}
    for source in sources:
        key = source_key(source, options)
        found = index.get(key, [])
        live = [copy for copy in found if copy.get("State") != ERROR]
        broken = [copy for copy in found if copy.get("State") == ERROR]
        if live:
            present.append(_present(source, live[0]))
            lineages.setdefault(source.lineage, set()).add(source.snapshot_id)
            if len(live) > 1:
                duplicates.append({"source_snapshot_id": source.snapshot_id, "copies": [copy["SnapshotId"] for copy in live]})
        elif broken and (key in hold or key in started):
            failed.append(dict(_present(source, broken[0]), reason=hold.get(key, ENDED_IN_ERROR)))
        elif key in started:
            present.append(_not_visible_yet(source, started[key]))
            lineages.setdefault(source.lineage, set()).add(source.snapshot_id)
        elif key in hold:
            held.append({"source_snapshot_id": source.snapshot_id, "lineage": source.lineage,
                         "source_start_time": iso(source.start_time), "reason": hold[key]})
        else:
            to_copy.append(copy_action(source, options, [copy["SnapshotId"] for copy in broken]))
    in_flight = in_flight_count(copies, started)
    slots = max(0, options.max_in_flight - in_flight)
    return CopyPlan(to_copy, slots, held, present, failed, duplicates, in_flight, lineages)


def copy_request(action, options, tag_specifications):
    """The CopySnapshot keyword arguments of ``action`` (``tag_specifications``: amazon.aws' ``boto3_tag_specifications``)."""
    kwargs = {
        "SourceRegion": options.source_region,
        "SourceSnapshotId": action["source_snapshot_id"],
        "Description": action["description"],
        "TagSpecifications": tag_specifications(action["tags"], ["snapshot"]),
    }
    if options.encrypted or options.kms_key_id:
        kwargs["Encrypted"] = True
    if options.kms_key_id:
        kwargs["KmsKeyId"] = options.kms_key_id
    if options.completion_duration_minutes:
        kwargs["CompletionDurationMinutes"] = options.completion_duration_minutes
    return kwargs


def classify_error(code, status=None):
    """What a failed CopySnapshot means: ``requeue`` (quota or throttling: try later), ``uncertain``
    (5xx or no answer: the copy may exist; the next read tells), or ``failed``."""
    if code in QUEUE_FULL_CODES:
        return REQUEUE
    if not code or (status and int(status) >= 500) or code in ("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"):
        return UNCERTAIN
    return FAILED


def poll_delay(polls_since_start, cap=15):
    """Seconds to sleep before the next read: 1, 2, 4, 8, then ``cap``; back to 1 after copies start."""
    return min(cap, 2 ** max(0, polls_since_start))


def build_diff(copied_before, started_actions):
    """Per lineage that gets copies: the source snapshots with a copy here, before and after."""
    before, after = {}, {}
    touched = sorted({action["lineage"] for action in started_actions})
    for lineage in touched:
        have = set(copied_before.get(lineage, ()))
        before[lineage] = sorted(have)
        after[lineage] = sorted(have | {action["source_snapshot_id"] for action in started_actions if action["lineage"] == lineage})
    return {"before": before, "after": after}


def copy_item(action, copy=None):
    """A ``copies`` result item: what was asked (``action``) and what the destination shows (``copy``)."""
    item = {key: action[key] for key in ("source_snapshot_id", "source_region", "source_account", "source_start_time", "lineage",
                                         "description", "tags")}
    copy = copy or {}
    item.update(
        snapshot_id=copy.get("snapshot_id") or action.get("snapshot_id"),
        state=copy.get("state"),
        progress=copy.get("progress"),
        encrypted=copy["encrypted"] if copy.get("encrypted") is not None else action["encrypted"],
        kms_key_id=copy.get("kms_key_id") or action["kms_key_id"],
        replaced=list(action["replaces"]),
    )
    return item


def build_result(first, final, started, excluded, requeued=None, errors=(), check_mode=False):
    """The module result (without ``msg``) and its diff.

    ``first``: the plan made from the first read (what was there before the run); ``final``: the plan
    made from the last read (what is there now; ``first`` again in check mode). ``started``: the actions
    this run carried out, each with its ``snapshot_id``. ``requeued``: source id -> why AWS refused to
    start it now (quota, throttling). ``errors``: requests that failed.
    """
    requeued = requeued or {}
    if check_mode:
        started = first.start
        queued = first.queued(len(first.start))
    else:
        queued = [dict(item, reason=requeued.get(item["source_snapshot_id"], item["reason"])) for item in final.queued(0)]
    now = {item["source_snapshot_id"]: item for item in final.present + final.failed}
    copies = [copy_item(action, None if check_mode else now.get(action["source_snapshot_id"])) for action in started]
    mine = {action["source_snapshot_id"] for action in started}
    present = [now.get(item["source_snapshot_id"], item) for item in first.present if item["source_snapshot_id"] not in mine]
    replaced = sorted(copy_id for action in started for copy_id in action["replaces"])
    result = {
        "changed": bool(started),
        "copies": copies,
        "present": present,
        "queued": queued,
        "failed_copies": final.failed,
        "duplicates": final.duplicates,
        "excluded": list(excluded),
        "errors": list(errors),
        "summary": {
            "sources": len(first.present) + len(first.to_copy) + len(first.held) + len(first.failed),
            "present": len(present),
            "copies": len(copies),
            "queued": len(queued),
            "in_flight": final.in_flight,
            "failed_copies": len(final.failed),
            "errors": len(errors),
            "excluded": len(excluded),
            "replaced": len(replaced),
        },
        "diff": build_diff(first.copied_lineages, started),
    }
    return result
