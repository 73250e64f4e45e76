# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure evaluation of the security and backup controls of one region: data in, finding rows out.

Each control has a stable id (never renamed: reports and dashboards key on it) and the AWS Foundational
Security Best Practices (FSBP) control it corresponds to, when there is one. A row says ``pass``,
``fail`` or ``not-checked`` (the data needed was not read: never reported as a pass), with the
offending resource ids, their count and, for volumes and snapshots, their total size in GiB.
"""
from __future__ import annotations

import re
from datetime import timedelta

from ansible_collections.blockwise.ebs.plugins.module_utils import schedule

POLICY_TAG = "blockwise:policy"
DIRECT_VOLUME_ID = "vol-ffffffff"

# control id -> (FSBP control or None, what a finding means)
CONTROLS = {
    "snapshot-public": ("EC2.1", "snapshots that every AWS account can restore (createVolumePermission group all)"),
    "snapshot-shared-outside": (None, "snapshots shared with accounts that are not in audit_allowed_share_accounts"),
    "snapshot-block-public-access": ("EC2.182", "block public access for snapshots is not block-all-sharing"),
    "encryption-by-default": ("EC2.7", "EBS encryption by default is off"),
    "volume-unencrypted": ("EC2.3", "unencrypted volumes (EC2.3 asks it of attached volumes; all are listed)"),
    "snapshot-unencrypted": (None, "unencrypted snapshots"),
    "volume-without-policy": ("EC2.28", "volumes selected by no policy and without a recent snapshot"),
    "volume-rpo-exceeded": ("EC2.28", "volumes whose newest snapshot is older than their policy's frequency plus grace"),
    "snapshot-orphan": (None, "snapshots of volumes that no longer exist, behind no AMI, in no policy's scope"),
}


_ACCOUNT_RE = re.compile(r"^\d{12}$")


def check_accounts(accounts):
    """Raise ValueError naming ``allowed_share_accounts`` for an id that is not a 12-digit account id."""
    for account in accounts or []:
        if not _ACCOUNT_RE.match(str(account)):
            raise ValueError("allowed_share_accounts: {0!r} is not a 12-digit AWS account id".format(account))


def audit_policies(policies, now):
    """The policies in the form ``evaluate`` uses; ValueError naming ``policies[i].<key>`` on bad input."""
    out = []
    for index, policy in enumerate(policies or []):
        where = "policies[{0}]".format(index)
        if not isinstance(policy, dict) or not policy.get("name"):
            raise ValueError("{0}: each policy needs a name".format(where))
        if not isinstance(policy.get("target_tags") or {}, dict):
            raise ValueError("{0}.target_tags must be a dictionary of tag names and values".format(where))
        if not isinstance(policy.get("volume_ids") or [], list):
            raise ValueError("{0}.volume_ids must be a list of volume ids".format(where))
        item = {key: policy.get(key) for key in ("name", "target_tags", "volume_ids", "all_volumes", "frequency", "grace", "timezone")}
        if item["frequency"]:
            try:
                rpo(item, now)
            except ValueError as e:
                raise ValueError("{0} ({1}): frequency/grace/timezone: {2}".format(where, item["name"], e)) from e
        out.append(item)
    return out


def row(control, region, ids=None, gib=None, status=None, detail=None):
    """One finding row; ``status`` defaults to ``fail`` when ``ids`` is not empty, else ``pass``."""
    fsbp, description = CONTROLS[control]
    ids = sorted(ids or [])
    out = {"control": control, "fsbp": fsbp, "description": description, "region": region,
           "status": status or ("fail" if ids else "pass"), "count": len(ids), "resource_ids": ids}
    if gib is not None:
        out["total_gib"] = gib
    if detail is not None:
        out["detail"] = detail
    return out


def _gib(items, ids, size_key):
    """Total GiB of the volumes (``size_key`` ``Size``) or snapshots (``VolumeSize``) whose id is in ``ids``."""
    id_key = "VolumeId" if size_key == "Size" else "SnapshotId"
    return sum(item.get(size_key) or 0 for item in items if item[id_key] in ids)


def selects(policy, volume):
    """True when ``policy`` (audit form: ``target_tags``, ``volume_ids``, ``all_volumes``) selects ``volume``."""
    if policy.get("all_volumes"):
        return True
    if volume["VolumeId"] in (policy.get("volume_ids") or []):
        return True
    wanted = policy.get("target_tags") or {}
    tags = volume.get("tags") or {}
    return bool(wanted) and all(str(tags.get(key)) == str(value) for key, value in wanted.items())


def newest_snapshot_times(snapshots):
    """``{volume id: start time of its newest completed snapshot}``."""
    newest = {}
    for snap in snapshots:
        if snap.get("State") != "completed":
            continue
        volume_id, started = snap.get("VolumeId"), snap["StartTime"]
        if volume_id not in newest or started > newest[volume_id]:
            newest[volume_id] = started
    return newest


def rpo(policy, now):
    """The policy's recovery point objective: the frequency's gap around ``now`` plus its grace."""
    freq = schedule.parse_frequency(policy["frequency"], policy.get("timezone") or "UTC")
    grace = schedule.parse_duration(policy["grace"]) if policy.get("grace") else schedule.default_grace(freq, now)
    return schedule.schedule_gap(freq, now) + grace


def coverage_rows(region, volumes, snapshots, policies, now, recent):
    """``volume-without-policy`` and ``volume-rpo-exceeded``."""
    newest = newest_snapshot_times(snapshots)
    uncovered, late = [], []
    limits = {p["name"]: rpo(p, now) for p in policies if p.get("frequency")}
    for volume in volumes:
        volume_id = volume["VolumeId"]
        latest = newest.get(volume_id)
        mine = [p for p in policies if selects(p, volume)]
        if not mine:
            if latest is None or now - latest > recent:
                uncovered.append(volume_id)
            continue
        budgets = [limits[p["name"]] for p in mine if p["name"] in limits]
        if budgets and (latest is None or now - latest > min(budgets)):
            late.append(volume_id)
    return [row("volume-without-policy", region, uncovered, _gib(volumes, set(uncovered), "Size")),
            row("volume-rpo-exceeded", region, late, _gib(volumes, set(late), "Size"))]


def orphan_ids(volumes, snapshots, image_snapshot_ids, policy_names):
    """Owned completed snapshots of volumes that no longer exist, behind no AMI and in no listed policy's scope."""
    existing = {volume["VolumeId"] for volume in volumes}
    orphans = []
    for snap in snapshots:
        tags = snap.get("tags") or {}
        if snap.get("State") != "completed" or snap["SnapshotId"] in image_snapshot_ids:
            continue
        if snap.get("VolumeId") in existing or tags.get(POLICY_TAG) in policy_names:
            continue
        if snap.get("VolumeId") == DIRECT_VOLUME_ID and ("blockwise:lineage" in tags or "blockwise:content" in tags):
            continue  # a disk image uploaded through the EBS direct APIs: it never had a volume
        orphans.append(snap["SnapshotId"])
    return orphans


def sharing_rows(region, data, allowed_accounts):
    """``snapshot-public`` and ``snapshot-shared-outside``; the latter ``not-checked`` when shares were not read."""
    public = set(data["public_snapshot_ids"])
    latent = sorted(set(data.get("permission_public_ids") or []) - public)
    public |= set(latent)
    detail = {"hidden_by_block_public_access": latent} if latent else None
    rows = [row("snapshot-public", region, public, _gib(data["snapshots"], public, "VolumeSize"), detail=detail)]
    shares = data.get("shares")
    if shares is None:
        rows.append(row("snapshot-shared-outside", region, status="not-checked",
                        detail="account shares were not read (audit_share_accounts_check=false)"))
        return rows
    allowed = set(allowed_accounts or [])
    outside = {snap_id: sorted(set(accounts) - allowed) for snap_id, accounts in shares.items() if set(accounts) - allowed}
    rows.append(row("snapshot-shared-outside", region, outside, _gib(data["snapshots"], set(outside), "VolumeSize"),
                    detail=dict(sorted(outside.items()))))
    return rows


def evaluate(region, data, policies, now, allowed_accounts=(), recent=timedelta(days=7)):
    """Every control's row for one region.

    ``data``: ``volumes`` and ``snapshots`` (owned; DescribeVolumes/DescribeSnapshots items with a ``tags``
    dict), ``image_snapshot_ids`` (set), ``public_snapshot_ids`` (list), ``shares`` (``{snapshot id:
    [account ids]}``, or None when not read), ``block_public_access`` (state), ``encryption_by_default``
    (bool). ``policies``: ``{name, target_tags, volume_ids, all_volumes, frequency, grace, timezone}``.
    ``permission_public_ids`` (optional, read with the shares): snapshots whose permission lists ``all``, also those
    that block public access hides now; they are public findings too (``detail.hidden_by_block_public_access``).
    ``recent``: how new a snapshot must be for a volume in no policy to count as covered.
    """
    volumes, snapshots = data["volumes"], data["snapshots"]
    bpa = data["block_public_access"]
    rows = sharing_rows(region, data, allowed_accounts)
    rows.append(row("snapshot-block-public-access", region, [] if bpa == "block-all-sharing" else [region], detail={"state": bpa}))
    rows.append(row("encryption-by-default", region, [] if data["encryption_by_default"] else [region]))
    plain_volumes = [v["VolumeId"] for v in volumes if not v.get("Encrypted")]
    rows.append(row("volume-unencrypted", region, plain_volumes, _gib(volumes, set(plain_volumes), "Size")))
    plain_snaps = [s["SnapshotId"] for s in snapshots if not s.get("Encrypted")]
    rows.append(row("snapshot-unencrypted", region, plain_snaps, _gib(snapshots, set(plain_snaps), "VolumeSize")))
    rows.extend(coverage_rows(region, volumes, snapshots, policies, now, recent))
    orphans = orphan_ids(volumes, snapshots, data["image_snapshot_ids"], {p["name"] for p in policies})
    rows.append(row("snapshot-orphan", region, orphans, _gib(snapshots, set(orphans), "VolumeSize")))
    return rows


def summary(rows):
    """``{"failed": [control ids], "not_checked": [...], "compliant": bool}`` of one region's rows."""
    failed = [r["control"] for r in rows if r["status"] == "fail"]
    unchecked = [r["control"] for r in rows if r["status"] == "not-checked"]
    return {"failed": failed, "not_checked": unchecked, "compliant": not failed}
