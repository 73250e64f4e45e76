# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of restore drills and of the audit's verification section: data in, data out, no I/O.

* :func:`restore_points`: per policy and volume, the newest snapshot a restore would use and the last
  verification recorded on any snapshot of that volume (the ``blockwise:verified*`` tags).
* :func:`pick`: the restore points a drill verifies: all of them, or a seeded sample of N volumes.
* :func:`policy_verifications`: per policy, the newest verification and what is unverified or failing.
* :func:`drill_report` / :func:`drill_markdown`: the drill's report, with the fleet's RTO.

A volume is the snapshot's ``blockwise:lineage`` tag when it has one (uploads and copies, whose
``VolumeId`` is a placeholder or arbitrary), else its ``VolumeId``, else (a placeholder with no lineage)
the snapshot itself.
"""
from __future__ import annotations

import random
from datetime import datetime, timezone

POLICY_TAG = "blockwise:policy"
LINEAGE_TAG = "blockwise:lineage"
SOURCE_REGION_TAG = "blockwise:source-region"
VERIFIED_TAG = "blockwise:verified"
VERIFIED_AT_TAG = "blockwise:verified-at"
VERIFY_MODE_TAG = "blockwise:verify-mode"
DETACHED_VOLUME_ID = "vol-ffffffff"
PASSING = "ok"


def _iso(moment):
    if isinstance(moment, datetime):
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment


def _when(moment):
    """A datetime (UTC) from a datetime or an ISO 8601 text; None when it is neither."""
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def volume_key(snapshot):
    """The volume a snapshot belongs to (see the module docstring)."""
    tags = snapshot.get("tags") or {}
    if tags.get(LINEAGE_TAG):
        return tags[LINEAGE_TAG]
    volume_id = snapshot.get("VolumeId")
    if volume_id and volume_id != DETACHED_VOLUME_ID:
        return volume_id
    return snapshot["SnapshotId"]


def _restorable(snapshot):
    return snapshot.get("State") == "completed" and snapshot.get("StorageTier", "standard") != "archive"


def _verification(snapshot):
    tags = snapshot.get("tags") or {}
    at = _when(tags.get(VERIFIED_AT_TAG, ""))
    if not tags.get(VERIFIED_TAG) or at is None:
        return None
    return {"snapshot_id": snapshot["SnapshotId"], "result": tags[VERIFIED_TAG], "at": _iso(at),
            "mode": tags.get(VERIFY_MODE_TAG)}


def _point(policy, volume, group, now):
    usable = sorted((s for s in group if _restorable(s)), key=lambda s: (_when(s["StartTime"]), s["SnapshotId"]))
    checks = [v for v in (_verification(s) for s in group) if v]
    last = max(checks, key=lambda v: (v["at"], v["snapshot_id"])) if checks else None
    newest = usable[-1] if usable else None
    point = {"policy": policy, "volume": volume, "snapshots": len(group), "restorable": len(usable),
             "snapshot_id": None, "start_time": None, "age_seconds": None, "volume_size": None,
             "source_region": None, "last_verification": last, "restore_point_verified": False}
    if newest:
        started = _when(newest["StartTime"])
        point.update(snapshot_id=newest["SnapshotId"], start_time=_iso(started), volume_size=newest.get("VolumeSize"),
                     age_seconds=max(0, int((now - started).total_seconds())),
                     source_region=(newest.get("tags") or {}).get(SOURCE_REGION_TAG),
                     restore_point_verified=bool(last and last["snapshot_id"] == newest["SnapshotId"]))
    return point


def restore_points(snapshots, now, policies=None):
    """Per (policy, volume) of ``snapshots`` (DescribeSnapshots items with a ``tags`` dict), sorted.

    ``policies``: only these policy names (None: every snapshot with a ``blockwise:policy`` tag).
    A restore point is the newest completed snapshot in the standard tier (pending, failed and archived
    snapshots cannot be read by the EBS direct APIs); ``snapshot_id`` is None when a volume has none.
    """
    groups = {}
    for snapshot in snapshots:
        policy = (snapshot.get("tags") or {}).get(POLICY_TAG)
        if not policy or (policies is not None and policy not in policies):
            continue
        groups.setdefault((policy, volume_key(snapshot)), []).append(snapshot)
    return [_point(policy, volume, groups[(policy, volume)], now) for policy, volume in sorted(groups)]


def pick(points, volumes=0, seed=""):
    """The restore points a drill verifies: every one that has a snapshot, or a sample of ``volumes``.

    The sample is drawn by a generator seeded with ``seed`` over the sorted points, so the same seed
    and fleet give the same sample (a check-mode plan and the run after it agree).
    """
    candidates = [p for p in points if p["snapshot_id"]]
    if volumes and volumes < len(candidates):
        chosen = set(random.Random(seed).sample(range(len(candidates)), volumes))
        candidates = [p for i, p in enumerate(candidates) if i in chosen]
    return candidates


def policy_verifications(points):
    """Per policy: the newest verification (time, result, snapshot) and the volumes never verified or failing."""
    out = {}
    for point in points:
        entry = out.setdefault(point["policy"], {"volumes": 0, "verified": 0, "last_verified_at": None,
                                                 "last_result": None, "last_snapshot_id": None,
                                                 "never_verified": [], "failing": []})
        entry["volumes"] += 1
        last = point["last_verification"]
        if not last:
            entry["never_verified"].append(point["volume"])
            continue
        entry["verified"] += 1
        if last["result"] != PASSING:
            entry["failing"].append(point["volume"])
        if entry["last_verified_at"] is None or last["at"] > entry["last_verified_at"]:
            entry.update(last_verified_at=last["at"], last_result=last["result"], last_snapshot_id=last["snapshot_id"])
    return out


def _row(item):
    """One report row from a drill item: its restore point and the verification's result (or error)."""
    point, res = item["point"], item.get("verification") or {}
    error = None
    if res.get("skipped"):
        result = "planned"
    elif res.get("result"):
        result = res["result"]
        error = res.get("msg") if res.get("failed") and result == PASSING else None
    else:
        result, error = "error", res.get("msg", "not verified")
    return {"region": item["region"], "policy": point["policy"], "volume": point["volume"],
            "snapshot_id": point["snapshot_id"], "source_region": point.get("source_region"),
            "start_time": point["start_time"], "age_seconds": point["age_seconds"],
            "result": result, "mode": res.get("mode"), "blocks_read": res.get("blocks_read"),
            "throughput_mib_s": res.get("throughput_mib_s"), "restore_estimate_seconds": res.get("restore_estimate_seconds"),
            "bad_blocks": res.get("bad_blocks", []), "fs_check_passed": (res.get("fs_check") or {}).get("passed"),
            "error": error}


def drill_report(items, now, check_mode=False, errors=None):
    """The drill's report from ``items`` ({region, point, verification}) and per-region ``errors``.

    It passes when every volume verified ``ok`` and no region failed; the fleet's RTO is the slowest
    restore estimate (the volumes restore in parallel, the slowest one bounds the recovery).
    """
    rows = sorted((_row(i) for i in items), key=lambda r: (r["region"], r["policy"], r["volume"]))
    estimates = [r for r in rows if r["restore_estimate_seconds"] is not None and r["result"] == PASSING]
    slowest = max(estimates, key=lambda r: r["restore_estimate_seconds"]) if estimates else None
    failed = [r for r in rows if r["result"] not in (PASSING, "planned")]
    errors = [e for e in (errors or []) if e]
    return {"generated_at": _iso(now), "check_mode": bool(check_mode), "volumes": rows,
            "summary": {"volumes": len(rows), "ok": sum(1 for r in rows if r["result"] == PASSING),
                        "failed": len(failed), "failed_volumes": [r["volume"] for r in failed],
                        "errors": errors, "passed": None if check_mode else not failed and not errors and bool(rows),
                        "fleet_rto_seconds": slowest["restore_estimate_seconds"] if slowest else None,
                        "slowest": {k: slowest[k] for k in ("region", "policy", "volume", "snapshot_id")} if slowest else None}}


def _cell(value):
    return "-" if value is None or value == [] else str(value).replace("|", "\\|")


def drill_markdown(report):
    """The report as Markdown: a summary, then one row per volume."""
    s = report["summary"]
    verdict = "PLAN (check mode, nothing verified)" if report["check_mode"] else ("PASSED" if s["passed"] else "FAILED")
    lines = ["# Restore drill", "", "Generated: {0}".format(report["generated_at"]), "",
             "**{0}**: {1} of {2} volume(s) ok, {3} failed.".format(verdict, s["ok"], s["volumes"], s["failed"]),
             "Fleet RTO (slowest restore estimate): {0}".format(
                 "-" if s["fleet_rto_seconds"] is None else "{0} s ({1})".format(s["fleet_rto_seconds"], s["slowest"]["volume"])),
             ""]
    lines += ["- error: " + e for e in s["errors"]] + ([""] if s["errors"] else [])
    lines += ["| Region | Policy | Volume | Snapshot | Age (h) | Result | Mode | MiB/s | Restore estimate (s) | Bad blocks |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["volumes"]:
        age = None if r["age_seconds"] is None else round(r["age_seconds"] / 3600.0, 1)
        result = r["result"] + (": " + r["error"] if r["error"] else "")
        cells = (r["region"], r["policy"], r["volume"], r["snapshot_id"], age, result, r["mode"], r["throughput_mib_s"],
                 r["restore_estimate_seconds"], r["bad_blocks"])
        lines.append("| " + " | ".join(_cell(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"
