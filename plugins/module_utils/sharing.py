# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planner of ``ebs_snapshot_share``: who may create volumes from the selected snapshots.

Data in, data out. The module reads the selected snapshots once, then either (without ``purge``)
one ``DescribeSnapshots(OwnerIds=[self], RestorableByUserIds=[account])`` per listed account, which
says which snapshots that account can already use, or (with ``purge``) each snapshot's
``createVolumePermission`` attribute. ``plan`` turns that into per-snapshot add/remove changes and
``requests`` into ModifySnapshotAttribute calls.

Never public: ``all`` is refused in ``account_ids`` before any call, the module never adds a group,
and ``purge`` removes a public (``all``) permission it finds. Snapshots encrypted with the AWS
managed key ``aws/ebs`` cannot be used by another account (AWS refuses to share them): asking to
share one fails before any write (``check_managed_key``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.blockwise.ebs.plugins.module_utils import copies
from ansible_collections.blockwise.ebs.plugins.module_utils.copies import POLICY_TAG

PRESENT, ABSENT = "present", "absent"
ALL_GROUP = "all"
MANAGED_ALIAS = "alias/aws/ebs"
MAX_CONCURRENCY = 64
COMPLETED = "completed"

_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")


class ShareError(ValueError):
    """Invalid ebs_snapshot_share input; the message names the option and the value."""


@dataclass(frozen=True)
class ShareOptions:
    """The validated options of one share run."""

    account_ids: tuple
    state: str = PRESENT
    purge: bool = False
    policy: str = ""
    filters: dict = field(default_factory=dict, hash=False)
    snapshot_ids: tuple = ()
    max_concurrency: int = 4

    @property
    def snapshot_filters(self):
        """DescribeSnapshots filters of the selection: ``filters`` and the policy tag."""
        filters = dict(self.filters)
        if self.policy:
            filters["tag:" + POLICY_TAG] = self.policy
        return filters


def check_account_ids(values):
    """12-digit account ids, deduplicated and sorted; ``all`` (public) is refused."""
    if not values:
        raise ShareError("account_ids must list at least one 12-digit AWS account id")
    accounts = []
    for value in values:
        text = str(value).strip() if value is not None else ""
        if text.lower() == ALL_GROUP:
            raise ShareError("account_ids: 'all' would make the snapshots public; this module never does (list account ids)")
        if not _ACCOUNT_RE.match(text):
            raise ShareError("account_ids: %r is not a 12-digit AWS account id" % (value,))
        accounts.append(text)
    return tuple(sorted(set(accounts)))


def options_from_params(params):
    """Validate the module parameters; ``ShareError`` names the bad option."""
    try:
        policy, filters, ids = copies.check_selection(params.get("policy"), params.get("filters"), params.get("snapshot_ids"))
    except copies.CopyError as exc:
        raise ShareError(str(exc).replace("owner comes from source_owner_id (default: this account)",
                                          "module only shares the account's own snapshots")) from exc
    state = params.get("state") or PRESENT
    if state not in (PRESENT, ABSENT):
        raise ShareError("state must be present or absent, got %r" % (state,))
    purge = bool(params.get("purge"))
    if purge and state == ABSENT:
        raise ShareError("purge=true only goes with state=present (it removes the accounts not listed in account_ids)")
    concurrency = params.get("max_concurrency")
    concurrency = 4 if concurrency is None else concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ShareError("max_concurrency must be between 1 and %d, got %r" % (MAX_CONCURRENCY, concurrency))
    return ShareOptions(account_ids=check_account_ids(params.get("account_ids")), state=state, purge=purge, policy=policy,
                        filters=filters, snapshot_ids=ids, max_concurrency=concurrency)


def select(items, options):
    """The selected snapshots (sorted by id); ``ShareError`` for unknown ids or a policy nothing carries."""
    by_id = {}
    for item in items:
        if options.policy and (item.get("tags") or {}).get(POLICY_TAG) != options.policy:
            continue
        by_id.setdefault(item["SnapshotId"], item)
    missing = [snapshot_id for snapshot_id in options.snapshot_ids if snapshot_id not in by_id]
    if missing:
        raise ShareError("snapshot_ids: not among this account's snapshots in this region%s: %s"
                         % (" with policy=%r" % options.policy if options.policy else "", ", ".join(missing)))
    if options.policy and not by_id:
        raise ShareError("policy: no snapshot of this account in this region carries %s=%s" % (POLICY_TAG, options.policy))
    return [by_id[snapshot_id] for snapshot_id in sorted(by_id)]


def is_managed_key(kms_key_id, managed_arn):
    """True when ``kms_key_id`` (as DescribeSnapshots reports it) is the AWS managed EBS key."""
    if not kms_key_id:
        return False
    return kms_key_id == managed_arn or kms_key_id == MANAGED_ALIAS or kms_key_id.endswith(":" + MANAGED_ALIAS)


def needs_managed_key(snapshots, options):
    """True when the run must know the AWS managed key's ARN (some encrypted snapshot is to be shared)."""
    return options.state == PRESENT and any(item.get("Encrypted") for item in snapshots)


def check_managed_key(snapshots, options, managed_arn):
    """Refuse to share any snapshot encrypted with the AWS managed key ``aws/ebs`` (no other account can use it)."""
    if options.state != PRESENT:
        return
    refused = [item["SnapshotId"] for item in snapshots if item.get("Encrypted") and is_managed_key(item.get("KmsKeyId"), managed_arn)]
    if refused:
        listed = ", ".join(refused[:10]) + (" ..." if len(refused) > 10 else "")
        raise ShareError(
            "account_ids: %d snapshot(s) are encrypted with the AWS managed key aws/ebs%s, which no other account can use, so AWS"
            " cannot share them: %s. Copy them with a customer managed key first (ebs_snapshot_copy kms_key_id) and share the copies;"
            " nothing was shared" % (len(refused), " (%s)" % managed_arn if managed_arn else "", listed))


def _change(item, before, add, remove, remove_groups, after):
    return {"snapshot_id": item["SnapshotId"], "before": before, "add": add, "remove": remove, "remove_groups": remove_groups,
            "after": after}


def plan(snapshots, options, shared=None, permissions=None):
    """One change per snapshot (``add``/``remove`` account lists, ``remove_groups``, ``before``/``after``).

    Without ``purge``, ``shared``: account id -> set of snapshot ids it can use (``before`` and
    ``after`` then only speak of the listed accounts). With ``purge``, ``permissions``: snapshot id ->
    ``{"user_ids": [...], "groups": [...]}`` (the whole attribute). Snapshots that are not
    ``completed`` are never shared (their change adds nothing).
    """
    wanted = set(options.account_ids)
    changes = []
    for item in snapshots:
        shareable = item.get("State", COMPLETED) == COMPLETED
        if options.purge:
            current = (permissions or {}).get(item["SnapshotId"], {"user_ids": [], "groups": []})
            users, groups = set(current["user_ids"]), list(current["groups"])
            add = sorted(wanted - users) if shareable else []
            remove = sorted(users - wanted)
            before = sorted(users) + ["group:" + group for group in groups]
            changes.append(_change(item, before, add, remove, groups, sorted((users - set(remove)) | set(add))))
            continue
        users = {account for account in wanted if item["SnapshotId"] in (shared or {}).get(account, ())}
        if options.state == PRESENT:
            add = sorted(wanted - users) if shareable else []
            changes.append(_change(item, sorted(users), add, [], [], sorted(users | set(add))))
        else:
            changes.append(_change(item, sorted(users), [], sorted(users), [], []))
    return changes


def is_change(change):
    """True when the change makes any call."""
    return bool(change["add"] or change["remove"] or change["remove_groups"])


def requests(change):
    """The ModifySnapshotAttribute keyword arguments of one change, in order (add first, then removals)."""
    calls = []
    base = {"SnapshotId": change["snapshot_id"], "Attribute": "createVolumePermission"}
    if change["add"]:
        calls.append(dict(base, OperationType="add", UserIds=list(change["add"])))
    if change["remove"]:
        calls.append(dict(base, OperationType="remove", UserIds=list(change["remove"])))
    if change["remove_groups"]:
        calls.append(dict(base, OperationType="remove", GroupNames=list(change["remove_groups"])))
    return calls


def snapshot_item(item, change, status, error=None):
    """A ``snapshots`` result item."""
    result = {
        "snapshot_id": item["SnapshotId"],
        "volume_id": item.get("VolumeId"),
        "lineage": copies.lineage_of(item, item.get("tags") or {}),
        "state": item.get("State"),
        "encrypted": bool(item.get("Encrypted")),
        "kms_key_id": item.get("KmsKeyId"),
        "start_time": copies.iso(copies.start_time_of(item)),
        "added": change["add"] if status in ("changed", "planned") else [],
        "removed": change["remove"] + ["group:" + group for group in change["remove_groups"]] if status in ("changed", "planned") else [],
        "accounts": change["after"] if status in ("changed", "planned", "unchanged") else change["before"],
        "status": status,
    }
    if error:
        result["error"] = error
    return result


def build_result(snapshots, changes, outcomes=None, check_mode=False):
    """The module result (without ``msg``) and its diff.

    ``outcomes``: snapshot id -> error text (None when its calls succeeded), for the changes applied.
    """
    outcomes = outcomes or {}
    by_id = {change["snapshot_id"]: change for change in changes}
    items, errors, before, after = [], [], {}, {}
    for item in snapshots:
        change = by_id[item["SnapshotId"]]
        if not is_change(change):
            items.append(snapshot_item(item, change, "unchanged"))
            continue
        error = None if check_mode else outcomes.get(item["SnapshotId"], "not attempted")
        status = "planned" if check_mode else ("failed" if error else "changed")
        items.append(snapshot_item(item, change, status, error))
        if error:
            errors.append({"snapshot_id": item["SnapshotId"], "error": error})
            continue
        before[item["SnapshotId"]], after[item["SnapshotId"]] = change["before"], change["after"]
    changed_items = [i for i in items if i["status"] in ("changed", "planned")]
    return {
        "changed": bool(changed_items),
        "snapshots": items,
        "errors": errors,
        "source_tags": {item["SnapshotId"]: dict(item.get("tags") or {}) for item in snapshots},
        "summary": {
            "snapshots": len(items),
            "changed": len(changed_items),
            "unchanged": sum(1 for i in items if i["status"] == "unchanged"),
            "errors": len(errors),
            "accounts_added": sum(len(i["added"]) for i in changed_items),
            "accounts_removed": sum(len(i["removed"]) for i in changed_items),
        },
        "diff": {"before": before, "after": after},
    }
