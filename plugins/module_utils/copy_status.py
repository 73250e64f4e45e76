# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure status of a policy's disaster-recovery copies: recovery point age (RPO) and what to share.

Data in, data out. ``home`` is the policy's snapshots in their home region (as the owner reads them:
id, volume id, state, start time, tags); each destination is a name and the copies read there (the
snapshots carrying ``blockwise:source-snapshot``). Snapshot dicts may be boto3's (``SnapshotId``,
``StartTime``, ``Tags`` list) or ``amazon.aws.ec2_snapshot_info``'s (``snapshot_id``, ``start_time``,
``tags`` dict). No AWS call and no clock here: ``now`` is given.

Recovery point of a copy
    The point in time a copy restores is its *source's* start time, not the copy's own start time
    (a copy made today of last week's snapshot restores last week). It is read from the home
    snapshots; when the source is no longer there (pruned at home), the copy's own start time is the
    only bound left, which is later than the truth: the age is then reported as ``approximate``.
    Only ``completed`` copies count: a pending copy restores nothing yet.

Compliance
    A destination is compliant for a lineage (source volume) when its newest completed copy is at most
    ``limit`` old (the policy's frequency gap plus a grace). A lineage without any completed copy is
    compliant only while its first completed home snapshot is younger than ``limit`` (its first copy
    is not late yet). Lineages that exist only in the destination (volume gone at home) are reported,
    not judged.
"""
from __future__ import annotations

from datetime import datetime, timezone

POLICY_TAG = "blockwise:policy"
LINEAGE_TAG = "blockwise:lineage"
SOURCE_SNAPSHOT_TAG = "blockwise:source-snapshot"
PLACEHOLDER_VOLUME_ID = "vol-ffffffff"
COMPLETED = "completed"


def _field(item, snake, camel):
    return item.get(snake, item.get(camel))


def tags_of(item):
    """The snapshot's tags as a dict (from a boto3 ``Tags`` list or an already converted ``tags`` dict)."""
    tags = item.get("tags")
    if isinstance(tags, dict):
        return tags
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags") or []}


def start_of(item):
    """The snapshot's start time as an aware UTC datetime (None when missing)."""
    value = _field(item, "start_time", "StartTime")
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def snapshot_id_of(item):
    return _field(item, "snapshot_id", "SnapshotId")


def state_of(item):
    return _field(item, "state", "State")


def home_lineage(item):
    """A home snapshot's lineage: its lineage tag, else its real volume id, else its own id (as copies record it)."""
    tags = tags_of(item)
    if tags.get(LINEAGE_TAG):
        return tags[LINEAGE_TAG]
    volume_id = _field(item, "volume_id", "VolumeId") or ""
    if volume_id and volume_id != PLACEHOLDER_VOLUME_ID and SOURCE_SNAPSHOT_TAG not in tags:
        return volume_id
    return snapshot_id_of(item)


def _completed_newest_first(items):
    done = [item for item in items if state_of(item) == COMPLETED and start_of(item) is not None]
    return sorted(done, key=lambda item: (-start_of(item).timestamp(), snapshot_id_of(item)))


def originals(home):
    """The home snapshots that are not themselves copies (a region can be home and destination at once)."""
    return [item for item in home if SOURCE_SNAPSHOT_TAG not in tags_of(item)]


def to_share(home, copied_source_ids, latest_only):
    """Ids of the completed home snapshots another account still has to copy, sorted.

    ``copied_source_ids``: the sources that already have a copy there (any state). With
    ``latest_only`` only the newest completed snapshot of each lineage is a candidate, so an older
    snapshot that will never be copied is never shared.
    """
    copied, seen, out = set(copied_source_ids), set(), []
    for item in _completed_newest_first(originals(home)):
        lineage = home_lineage(item)
        if latest_only and lineage in seen:
            continue
        seen.add(lineage)
        if snapshot_id_of(item) not in copied:
            out.append(snapshot_id_of(item))
    return sorted(out)


def _age(now, when):
    return None if when is None else int((now - when).total_seconds())


def _point(item, now):
    return {"snapshot_id": snapshot_id_of(item), "start_time": start_of(item).isoformat(), "age_seconds": _age(now, start_of(item))}


def newest_home(home, now):
    """lineage -> the newest completed home snapshot (with its age) and the start of the oldest one."""
    out = {}
    for item in _completed_newest_first(originals(home)):
        entry = out.setdefault(home_lineage(item), dict(_point(item, now), first_start=start_of(item)))
        entry["first_start"] = min(entry["first_start"], start_of(item))
    return out


def newest_copies(copies, home_starts, now):
    """lineage -> the copy with the newest recovery point (completed copies only), with that point's age."""
    out = {}
    for item in copies:
        tags = tags_of(item)
        if state_of(item) != COMPLETED or not tags.get(SOURCE_SNAPSHOT_TAG):
            continue
        source = tags[SOURCE_SNAPSHOT_TAG]
        point = home_starts.get(source) or start_of(item)
        if point is None:
            continue
        lineage = tags.get(LINEAGE_TAG) or source
        best = out.get(lineage)
        if best is None or point > best["point"]:
            out[lineage] = {"snapshot_id": snapshot_id_of(item), "source_snapshot_id": source, "point": point,
                            "approximate": source not in home_starts}
    for entry in out.values():
        entry["recovery_point"] = entry["point"].isoformat()
        entry["age_seconds"] = _age(now, entry.pop("point"))
    return out


def judge(home_entry, copy, limit_seconds, now):
    """``(compliant, reason)`` of one lineage in one destination."""
    if home_entry is None:
        return True, "no-home-snapshot"
    if copy is None:
        if _age(now, home_entry["first_start"]) <= limit_seconds:
            return True, "first-copy-not-due"
        return False, "no-completed-copy"
    if copy["age_seconds"] > limit_seconds:
        return False, "copy-older-than-limit"
    return True, "ok"


def assess(home, destinations, limit_seconds, now):
    """The RPO of a policy's copies: per lineage the newest home snapshot and the newest copy per destination.

    ``destinations``: ``[{"name": ..., "copies": [...]}]``. Returns ``{"limit_seconds", "volumes": [...],
    "destinations": {name: {"compliant", "late": [lineages], "oldest_age_seconds"}}, "compliant"}``.
    """
    heads = newest_home(home, now)
    home_starts = {snapshot_id_of(item): start_of(item) for item in home if start_of(item) is not None}
    per_dest = {dest["name"]: newest_copies(dest.get("copies") or [], home_starts, now) for dest in destinations}
    lineages = sorted(set(heads).union(*[set(found) for found in per_dest.values()]))
    volumes, summary = [], {name: {"compliant": True, "late": [], "oldest_age_seconds": None} for name in per_dest}
    for lineage in lineages:
        head = heads.get(lineage)
        row = {"lineage": lineage, "home": None if head is None else {k: v for k, v in head.items() if k != "first_start"},
               "destinations": {}}
        for name, found in per_dest.items():
            copy = found.get(lineage)
            compliant, reason = judge(head, copy, limit_seconds, now)
            row["destinations"][name] = dict(copy or {"snapshot_id": None, "age_seconds": None}, compliant=compliant, reason=reason)
            if not compliant:
                summary[name]["compliant"] = False
                summary[name]["late"].append(lineage)
            if copy is not None and head is not None:
                oldest = summary[name]["oldest_age_seconds"]
                summary[name]["oldest_age_seconds"] = copy["age_seconds"] if oldest is None else max(oldest, copy["age_seconds"])
        volumes.append(row)
    return {"limit_seconds": limit_seconds, "volumes": volumes, "destinations": summary,
            "compliant": all(item["compliant"] for item in summary.values())}
