# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure side of ``ebs_snapshot_prune``: options, plan, circuit breaker, outcomes, result and diff.

The module reads the region once (this policy's snapshots, the account's images and, with a
``retention_tag``, the snapshots' volumes), ``plan`` decides with ``retention.decide``, the circuit
breaker may stop the run before any deletion, the module deletes, and ``build_result`` turns the plan
and the per-snapshot outcomes into the module result and its diff. No AWS call and no clock here.
"""
from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Optional

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet, policy as policy_core, retention, schedule
from ansible_collections.blockwise.ebs.plugins.module_utils.policy import POLICY_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import TemplateError, check_tag_key

DEFAULT_MAX_DELETIONS = 50
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 64
DIRECT_API_VOLUME = retention.PLACEHOLDER_VOLUME_ID

# Outcomes of one deletion.
DELETED = "deleted"
ALREADY_GONE = "already-gone"
FAILED = "failed"
PLANNED = "planned"
BLOCKED = "blocked"

NOT_FOUND_CODES = ("InvalidSnapshot.NotFound",)

# Tags of a copy made by ebs_snapshot_copy (see copies.py).
COPY_SOURCE_TAG = "blockwise:source-snapshot"
COPY_REGION_TAG = "blockwise:source-region"
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")

# How far the clock of the node that runs the module may be from AWS's before keep_within counts back from
# AWS's time instead (AWS itself refuses requests signed more than 15 minutes off).
CLOCK_TOLERANCE = timedelta(minutes=5)


class PruneError(ValueError):
    """Invalid ebs_snapshot_prune input; the message names the option and the value."""


@dataclass(frozen=True)
class PruneOptions:
    """The validated options of one prune run."""

    policy: str
    filters: dict
    retention: retention.RetentionPolicy
    retention_tag: str
    protect_tag: str
    max_deletions: int
    max_concurrency: int
    fail_on_deletion_error: bool
    copy_regions: tuple = ()
    copy_accounts: tuple = ()
    frequency: Optional[schedule.Frequency] = None
    grace: Optional[timedelta] = None
    planned_snapshots: tuple = ()

    @property
    def snapshot_filters(self):
        """DescribeSnapshots filters of the scope: the user's ``filters`` and the policy tag."""
        filters = dict(self.filters)
        if self.policy:
            filters["tag:" + POLICY_TAG] = self.policy
        return filters

    def in_scope(self, snap):
        """Defence in depth: with a ``policy``, only snapshots carrying its tag are in scope."""
        if not self.policy:
            return True
        return (snap.tags or {}).get(POLICY_TAG) == self.policy


def check_copy_targets(copy_regions, copy_accounts, known_regions=None):
    """``copy_regions`` (known regions) and ``copy_accounts`` (12-digit ids), deduplicated in order."""
    regions = tuple(dict.fromkeys(copy_regions or ()))
    for region in regions:
        if not isinstance(region, str) or (known_regions is not None and region not in known_regions):
            raise PruneError("copy_regions: unknown region %r" % (region,))
    accounts = tuple(dict.fromkeys(str(account).strip() for account in copy_accounts or ()))
    for account in accounts:
        if not _ACCOUNT_RE.match(account):
            raise PruneError("copy_accounts: %r is not a 12-digit AWS account id" % (account,))
    return regions, accounts


def check_schedule(params):
    """``(frequency, grace)`` of the policy whose snapshots are pruned (``None``s without ``frequency``)."""
    text = params.get("frequency")
    if text is None or (isinstance(text, str) and not text.strip()):
        if params.get("grace") not in (None, ""):
            raise PruneError("grace needs frequency (the schedule whose grace it is)")
        return None, None
    zone = params.get("frequency_timezone") or "UTC"
    try:
        schedule.get_zone(zone)
        frequency = schedule.parse_frequency(text, zone)
    except schedule.MissingLibraryError:
        raise
    except ValueError as exc:
        raise PruneError("frequency: %s" % exc) from exc
    try:
        return frequency, policy_core.parse_grace(params.get("grace"), frequency)
    except policy_core.PolicyError as exc:
        raise PruneError(str(exc)) from exc


def check_planned(planned):
    """``planned_snapshots``: volume ids (``vol-...``), once each, in order."""
    result = tuple(dict.fromkeys(planned or ()))
    for volume_id in result:
        if not isinstance(volume_id, str) or not volume_id.startswith("vol-") or volume_id == DIRECT_API_VOLUME:
            raise PruneError("planned_snapshots: %r is not the id of a volume (vol-...)" % (volume_id,))
    return result


def options_from_params(params, known_regions=None):
    """Validate the module parameters; ``PruneError`` (or ``retention.RetentionError``) names the option.

    ``known_regions``: the region names ``copy_regions`` may use (None: not checked).
    """
    policy = params.get("policy")
    filters = params.get("filters") or {}
    if policy is not None and not str(policy).strip():
        raise PruneError("policy must be a non-empty policy name, got %r" % (policy,))
    if not isinstance(filters, dict):
        raise PruneError("filters must be a dictionary of EC2 DescribeSnapshots filters, got %r" % (filters,))
    problem = fleet.filter_problem(filters, "filters")
    if problem:
        raise PruneError(problem)
    if not policy and not filters:
        raise PruneError(
            "no scope: set policy (snapshots tagged %s=<policy>) or filters (EC2 DescribeSnapshots filters);"
            " pruning every snapshot of the account is never implied" % POLICY_TAG
        )
    tag_filter = "tag:" + POLICY_TAG
    if policy and tag_filter in filters and filters[tag_filter] not in (policy, [policy]):
        raise PruneError("filters[%r]=%r contradicts policy=%r" % (tag_filter, filters[tag_filter], policy))
    if any(str(key).lower() in ("owner-id", "owner-alias") for key in filters):
        raise PruneError("filters: owner filters are not allowed; the module only ever prunes the account's own snapshots")

    policy_rules = retention.RetentionPolicy.from_options(params.get("retention"))

    retention_tag = params.get("retention_tag")
    if retention_tag is not None:
        try:
            check_tag_key(retention_tag, "retention_tag")
        except TemplateError as exc:
            raise PruneError(str(exc)) from exc
    protect_tag = params.get("protect_tag")
    if protect_tag is None:
        protect_tag = retention.PROTECT_TAG
    if not isinstance(protect_tag, str) or not protect_tag.strip():
        raise PruneError("protect_tag must be a non-empty tag key (the protection cannot be turned off), got %r" % (protect_tag,))

    max_deletions = params.get("max_deletions")
    if max_deletions is None:
        max_deletions = DEFAULT_MAX_DELETIONS
    if isinstance(max_deletions, bool) or not isinstance(max_deletions, int) or max_deletions < 1:
        raise PruneError("max_deletions must be an integer >= 1, got %r" % (max_deletions,))
    concurrency = params.get("max_concurrency")
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise PruneError("max_concurrency must be between 1 and %d, got %r" % (MAX_CONCURRENCY, concurrency))
    copy_regions, copy_accounts = check_copy_targets(params.get("copy_regions"), params.get("copy_accounts"), known_regions)
    frequency, grace = check_schedule(params)
    planned = check_planned(params.get("planned_snapshots"))
    if planned and not policy:
        raise PruneError("planned_snapshots needs policy (the policy whose run takes them)")
    return PruneOptions(
        policy=policy or "",
        filters=dict(filters),
        retention=policy_rules,
        retention_tag=retention_tag or "",
        protect_tag=protect_tag,
        max_deletions=max_deletions,
        max_concurrency=concurrency,
        fail_on_deletion_error=params.get("fail_on_deletion_error", True) is not False,
        copy_regions=copy_regions,
        copy_accounts=copy_accounts,
        frequency=frequency,
        grace=grace,
        planned_snapshots=planned,
    )


def reference_time(local_now, server_date):
    """The time ``keep_within`` counts back from, and a warning or ``None``.

    ``server_date`` is the HTTP ``Date`` header of an AWS answer (AWS's clock, which also set every
    snapshot's StartTime). When the local clock is more than ``CLOCK_TOLERANCE`` off it, AWS's time is
    used: a node whose clock runs days ahead would otherwise find every snapshot older than it is and
    keep none of them by ``keep_within``.
    """
    try:
        server = email.utils.parsedate_to_datetime(server_date) if server_date else None
    except (TypeError, ValueError, IndexError):
        server = None
    if server is None:
        return local_now, None
    if server.tzinfo is None:
        server = server.replace(tzinfo=timezone.utc)
    skew = local_now - server
    if abs(skew) <= CLOCK_TOLERANCE:
        return local_now, None
    return server, ("the clock of this node is %s %s AWS's (%s); keep_within counts back from AWS's time"
                    % (abs(skew), "ahead of" if skew > timedelta(0) else "behind", server.isoformat()))


def volume_ids_of(snapshot_items):
    """The real volumes whose snapshots are grouped by volume (not the placeholder of the EBS direct APIs,
    not lineage-tagged snapshots, not copies without lineage): the volumes a ``retention_tag`` is read from."""
    groups = {retention.group_of(retention.Snapshot.from_api(item)) for item in snapshot_items}
    return sorted(group for group in groups if group and not group.startswith(retention.LINEAGE_GROUP_PREFIX))


@dataclass
class PrunePlan:
    """The decisions of one run, and the volumes whose retention tag changed or held them."""

    decisions: list
    held: dict
    tag_counts: dict
    overdue: dict = None

    def of(self, action):
        """The decisions with ``action`` (``keep``, ``delete`` or ``protect``)."""
        return [decision for decision in self.decisions if decision.action == action]

    @property
    def deletions(self):
        """The decisions to delete."""
        return self.of(retention.DELETE)


def copy_protections(pending_copies, shared, region):
    """snapshot_id -> reasons for the sources whose copy is not finished.

    ``pending_copies``: copy region -> the copies read there (items with ``tags``; the module reads only
    pending copies of this ``region``'s snapshots, and this checks it again): their source is protected
    as ``copy-pending:<copy region>``. ``shared``: account id -> ids of the snapshots still shared with it
    (a cross-account copy may be in flight): ``copy-shared:<account>``.
    """
    reasons = {}
    for copy_region, items in sorted(pending_copies.items()):
        for item in items:
            tags = item.get("tags") or {}
            source = tags.get(COPY_SOURCE_TAG)
            if source and item.get("State") == "pending" and tags.get(COPY_REGION_TAG) == region:
                reasons.setdefault(source, []).append("copy-pending:%s" % copy_region)
    for account, snapshot_ids in sorted(shared.items()):
        for snapshot_id in sorted(snapshot_ids):
            reasons.setdefault(snapshot_id, []).append("copy-shared:%s" % account)
    return {snapshot_id: list(dict.fromkeys(items)) for snapshot_id, items in reasons.items()}


PLANNED_ID = "(new snapshot of %s)"
REASON_DUPLICATE = "duplicate-of:%s"


def planned_items(options, now, account_id=None):
    """The snapshots the same run takes first (check mode), as completed snapshots started ``now``: the prediction
    then matches a real run whose new snapshots have completed when it prunes (one still pending at that time is
    protected and not counted, so the real run deletes less, never more)."""
    tags = {POLICY_TAG: options.policy}
    return [{"SnapshotId": PLANNED_ID % volume_id, "VolumeId": volume_id, "StartTime": now, "State": retention.COMPLETED,
             "OwnerId": account_id, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()], "tags": dict(tags)}
            for volume_id in options.planned_snapshots]


def duplicate_protections(snapshot_items):
    """snapshot_id -> [``duplicate-of:<kept>``]: duplicates of one due period (``policy.period_duplicates``, per policy
    tag) are one generation; the copies a policy run removes are never counted (nor deleted) by a prune."""
    names = sorted({(item.get("tags") or {}).get(POLICY_TAG) for item in snapshot_items} - {None})
    reasons = {}
    for name in names:
        for snapshot_id, kept in policy_core.period_duplicates(snapshot_items, name, include_sets=True).items():
            reasons[snapshot_id] = [REASON_DUPLICATE % kept["SnapshotId"]]
    return reasons


def overdue_groups(snapshot_items, options, now):
    """group -> the start time of its newest snapshot, for the volumes whose policy snapshot is overdue.

    Needs ``options.frequency``; read from AWS's state (this policy's completed and pending snapshots of each volume,
    ``policy.latest_snapshots``). ``keep_within`` of such a group counts back from its last backup, not from now: a
    prune-only job never deletes by age the last good backups of a volume whose snapshots have stopped."""
    if options.frequency is None or not options.policy:
        return {}
    result = {}
    for volume_id, latest in policy_core.latest_snapshots(snapshot_items, options.policy).items():
        start = policy_core.snapshot_key(latest)[0]
        grace = options.grace if options.grace is not None else schedule.default_grace(options.frequency, now)
        if schedule.is_due(options.frequency, now, start, grace)[0]:
            result[volume_id] = start
    return result


def plan(snapshot_items, images, volume_tags, options, now, account_id=None, extra_protections=None):
    """Decide every snapshot of the scope.

    ``snapshot_items``: DescribeSnapshots items; ``images``: DescribeImages items of the account (their
    snapshots are protected as ``ami:<image_id>``); ``volume_tags``: volume_id -> tags (for
    ``retention_tag``); ``account_id``: the caller's account (snapshots of other owners are protected
    as ``owner:<id>``), or ``None`` when unknown. ``extra_protections``: snapshot_id -> reasons decided
    from other reads (``copy_protections``).
    """
    snapshot_items = list(snapshot_items) + planned_items(options, now, account_id)
    snaps = [retention.Snapshot.from_api(item) for item in snapshot_items]
    protected = retention.protections(
        snaps,
        retention.snapshot_images(images),
        protect_tag_key=options.protect_tag,
        scope=options.in_scope,
        owner_id=account_id,
    )
    for snapshot_id, reasons in list((extra_protections or {}).items()) + list(duplicate_protections(snapshot_items).items()):
        protected.setdefault(snapshot_id, []).extend(reasons)
    by_volume, held = retention.volume_policies(options.retention, volume_tags or {}, options.retention_tag)
    overdue = overdue_groups(snapshot_items, options, now)
    decisions = retention.decide(snaps, options.retention, now, protected=protected, policy_by_volume=by_volume, held_volumes=held,
                                 now_by_group=overdue)
    return PrunePlan(decisions=decisions, held=held, tag_counts={volume_id: rules.keep_last for volume_id, rules in by_volume.items()},
                     overdue={volume_id: start.astimezone(timezone.utc).isoformat() for volume_id, start in overdue.items()})


def circuit_breaker(the_plan, max_deletions):
    """``None`` when the plan may run, else the message of a run stopped before any deletion."""
    deletions = the_plan.deletions
    if len(deletions) <= max_deletions:
        return None
    volumes = len({decision.volume_id for decision in deletions})
    return (
        "circuit breaker: the plan deletes %d snapshots of %d volumes, more than max_deletions=%d; nothing was deleted."
        " Check the scope and the retention rules (the result lists every snapshot under 'blocked'; run in check mode to audit),"
        " then raise max_deletions if this is intended." % (len(deletions), volumes, max_deletions)
    )


def deletion_outcome(error_code):
    """``already-gone`` for a snapshot that no longer exists, else ``failed``."""
    return ALREADY_GONE if error_code in NOT_FOUND_CODES else FAILED


def _item(decision, **extra):
    item = retention.to_result(decision)
    item.update(extra)
    return item


def _outcome_items(the_plan, outcomes, check_mode, blocked):
    """Sort the planned deletions by what happened: ``(deleted, already_gone, failed, blocked)`` item lists."""
    deleted, gone, failed, blocked_items = [], [], [], []
    for decision in the_plan.deletions:
        if blocked:
            blocked_items.append(_item(decision, status=BLOCKED))
        elif check_mode:
            deleted.append(_item(decision, status=PLANNED))
        else:
            status, error = outcomes.get(decision.snapshot_id, (FAILED, "not attempted"))
            if status == FAILED:
                failed.append(_item(decision, status=FAILED, error=error))
            elif status == ALREADY_GONE:
                gone.append(_item(decision, status=ALREADY_GONE))
            else:
                deleted.append(_item(decision, status=DELETED))
    return deleted, gone, failed, blocked_items


def build_result(the_plan, outcomes=None, check_mode=False, blocked=False):
    """The module result (without ``msg``) and its diff.

    ``outcomes``: snapshot_id -> ``(status, error)`` for the deletions that were attempted (``deleted``,
    ``already-gone`` or ``failed``); ignored in check mode and when ``blocked`` by the circuit breaker.
    A snapshot that was already gone was not deleted by this run: it is listed under ``already_gone``,
    not ``deleted``, and does not make the run ``changed`` nor appear in the diff.
    """
    deleted, gone, failed, blocked_items = _outcome_items(the_plan, outcomes or {}, check_mode, blocked)
    volumes = retention.summarize(the_plan.decisions)
    for volume_id, counts in volumes.items():
        if volume_id in the_plan.tag_counts:
            counts["keep_last"] = the_plan.tag_counts[volume_id]
        if volume_id in the_plan.held:
            counts["held"] = the_plan.held[volume_id]
        if volume_id in (the_plan.overdue or {}):
            counts["overdue_last_snapshot"] = the_plan.overdue[volume_id]
    result = {
        "changed": bool(deleted),
        "deleted": deleted,
        "already_gone": gone,
        "kept": [_item(d) for d in the_plan.of(retention.KEEP)],
        "protected": [_item(d) for d in the_plan.of(retention.PROTECT)],
        "errors": failed,
        "volumes": volumes,
        "summary": {
            "snapshots": len(the_plan.decisions),
            "volumes": len(volumes),
            "deleted": len(deleted),
            "kept": len(the_plan.of(retention.KEEP)),
            "protected": len(the_plan.of(retention.PROTECT)),
            "errors": len(failed),
            "already_gone": len(gone),
            "planned_deletions": len(the_plan.deletions),
        },
    }
    if blocked:
        result["blocked"] = blocked_items
    result["diff"] = build_diff(the_plan, {item["snapshot_id"] for item in deleted})
    return result


def build_diff(the_plan, gone_ids):
    """Per retention group that loses snapshots: its snapshot ids (newest first) before and after."""
    before, after = {}, {}
    touched = {decision.group for decision in the_plan.decisions if decision.snapshot_id in gone_ids}
    for decision in the_plan.decisions:
        if decision.group not in touched:
            continue
        before.setdefault(decision.group, []).append(decision.snapshot_id)
        if decision.snapshot_id not in gone_ids:
            after.setdefault(decision.group, []).append(decision.snapshot_id)
        else:
            after.setdefault(decision.group, [])
    return {"before": before, "after": after}
