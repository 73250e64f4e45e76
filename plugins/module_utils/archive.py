# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Archive tier decisions on top of the retention engine's: pure, data in, data out.

A retention policy may say ``archive: {after: <duration>, rules: [keep_monthly, keep_yearly]}``. After
``retention.decide``, ``apply`` turns each decision into an ``ArchiveDecision``:

- a snapshot kept *only* by rules listed in ``rules`` (every reason of its ``keep`` is one of them) and older than
  ``after`` is moved to the archive tier: action ``archive``, its keep reasons plus ``archive-after``;
- a snapshot that would be archived but cannot be stays ``keep`` with the reason: ``not-archivable:<state>``
  (pending or error: EC2 archives completed snapshots only), ``not-archivable:restoring`` /
  ``not-archivable:archiving`` (a tiering operation is in progress), ``archived`` (already in the archive tier);
  AMI-backed snapshots never get here (the engine protects them);
- an archived snapshot that retention would delete is kept with reason ``archive-minimum`` while it has been in the
  archive tier for less than 90 days (AWS bills 90 days at least; deleting earlier saves nothing) unless
  ``allow_early_archive_delete``; an archival still in progress counts as day 0.

Members of a crash-consistent set (snapshots of one CreateSnapshots call) are decided one by one like any
snapshot: each archived snapshot is a full, self-contained copy, the set's point in time is unchanged. Restoring
the set later means restoring each member (RestoreSnapshotTier) first; that is documented for users.

The union of keep rules is unchanged: ``apply`` never turns a ``keep`` or ``protect`` into a ``delete``; it only
changes ``keep`` into ``archive`` (the snapshot is still kept) and ``delete`` into ``keep``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ansible_collections.blockwise.ebs.plugins.module_utils import schedule

ARCHIVE = "archive"
KEEP = "keep"
DELETE = "delete"
ARCHIVE_TIER = "archive"
MINIMUM_ARCHIVE_DAYS = 90
REASON_AFTER = "archive-after"
REASON_MINIMUM = "archive-minimum"
REASON_ARCHIVED = "archived"
ARCHIVABLE_RULES = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within", "minimum")
_IN_PROGRESS = {"archival-in-progress": "archiving", "temporary-restore-in-progress": "restoring",
                "permanent-restore-in-progress": "restoring"}


class ArchiveError(ValueError):
    """Bad ``archive`` option; the message names it."""


@dataclass(frozen=True)
class ArchivePolicy:
    after: timedelta
    rules: frozenset
    allow_early_delete: bool = False


@dataclass(frozen=True)
class Tier:
    """A snapshot's tier as DescribeSnapshots / DescribeSnapshotTierStatus report it."""

    storage_tier: str = "standard"
    archival_complete_time: object = None  # aware datetime or None
    operation_status: str = ""


@dataclass(frozen=True)
class ArchiveDecision:
    snapshot_id: str
    action: str
    reasons: tuple
    decision: object  # the retention.Decision it came from


def parse_policy(spec, allow_early_archive_delete=False, option="retention.archive"):
    """An ``ArchivePolicy`` from the ``archive`` option (or None when it is absent)."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"after", "rules"}:
        raise ArchiveError("{0} must be a dictionary with after and rules, got {1!r}".format(option, spec))
    try:
        after = schedule.parse_duration(spec.get("after"))
    except ValueError as e:
        raise ArchiveError("{0}.after: {1}".format(option, e)) from e
    rules = spec.get("rules") or []
    if not isinstance(rules, list) or not rules:
        raise ArchiveError("{0}.rules must be a non-empty list of keep rules, e.g. [keep_monthly, keep_yearly]".format(option))
    unknown = [rule for rule in rules if rule not in ARCHIVABLE_RULES]
    if unknown:
        raise ArchiveError("{0}.rules: unknown rule {1!r}; known: {2}".format(option, unknown[0], ", ".join(ARCHIVABLE_RULES)))
    return ArchivePolicy(after=after, rules=frozenset(rules), allow_early_delete=bool(allow_early_archive_delete))


def _blocked(snapshot, tier):
    """Why a snapshot the policy would archive cannot be, or None."""
    if tier.storage_tier == ARCHIVE_TIER:
        return REASON_ARCHIVED
    if tier.operation_status in _IN_PROGRESS:
        return "not-archivable:" + _IN_PROGRESS[tier.operation_status]
    if snapshot.state != "completed":
        return "not-archivable:" + snapshot.state
    return None


def in_minimum_period(tier, now):
    """True while an archived (or archiving) snapshot has spent less than 90 days in the archive tier."""
    if tier.storage_tier != ARCHIVE_TIER and tier.operation_status != "archival-in-progress":
        return False
    if tier.archival_complete_time is None:
        return True
    return now - tier.archival_complete_time < timedelta(days=MINIMUM_ARCHIVE_DAYS)


def decide_one(decision, tier, policy, now):
    """The ``ArchiveDecision`` of one retention decision."""
    snap = decision.snapshot
    reasons = tuple(decision.reasons)
    if decision.action == DELETE and in_minimum_period(tier, now) and not policy.allow_early_delete:
        return ArchiveDecision(snap.snapshot_id, KEEP, (REASON_MINIMUM,), decision)
    if decision.action != KEEP or not reasons or not set(reasons) <= policy.rules or now - snap.start_time <= policy.after:
        return ArchiveDecision(snap.snapshot_id, decision.action, reasons, decision)
    blocked = _blocked(snap, tier)
    if blocked:
        return ArchiveDecision(snap.snapshot_id, KEEP, reasons + (blocked,), decision)
    return ArchiveDecision(snap.snapshot_id, ARCHIVE, reasons + (REASON_AFTER,), decision)


def apply(decisions, tiers, policy, now):
    """``[ArchiveDecision]`` for ``decisions`` (``retention.decide``'s); ``tiers``: snapshot id -> ``Tier``.

    Without a policy, archived snapshots are still never deleted within their 90 days (unless the caller passes a
    policy with ``allow_early_delete``): pass ``ArchivePolicy(after=<any>, rules=frozenset())`` to get only that guard.
    """
    return [decide_one(d, tiers.get(d.snapshot.snapshot_id, Tier()), policy, now) for d in decisions]


def tier_from_api(item):
    """A ``Tier`` from a DescribeSnapshots item or a DescribeSnapshotTierStatus item."""
    return Tier(storage_tier=item.get("StorageTier") or "standard", archival_complete_time=item.get("ArchivalCompleteTime"),
                operation_status=item.get("LastTieringOperationStatus") or "")
