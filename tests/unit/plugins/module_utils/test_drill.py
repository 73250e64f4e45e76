# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the restore drill's and the audit's pure core (``drill.py``)."""
from datetime import datetime, timedelta, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import drill

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def snap(sid, days, policy="daily", volume="vol-1", state="completed", tier=None, **tags):
    item = {"SnapshotId": sid, "VolumeId": volume, "StartTime": NOW - timedelta(days=days), "State": state,
            "VolumeSize": 8, "tags": dict({"blockwise:policy": policy} if policy else {},
                                          **{k.replace("_", "-").replace("blockwise-", "blockwise:"): v for k, v in tags.items()})}
    if tier:
        item["StorageTier"] = tier
    return item


def verified(item, result, at, mode="full"):
    item["tags"].update({"blockwise:verified": result, "blockwise:verified-at": at, "blockwise:verify-mode": mode})
    return item


def test_the_restore_point_is_the_newest_completed_standard_snapshot_of_each_volume():
    points = drill.restore_points([
        snap("snap-old", 3), snap("snap-new", 1), snap("snap-pending", 0, state="pending"),
        snap("snap-archived", 0.5, tier="archive"), snap("snap-v2", 2, volume="vol-2"),
        snap("snap-other", 1, policy="weekly"), snap("snap-untagged", 0, policy=None),
    ], NOW)
    assert [(p["policy"], p["volume"], p["snapshot_id"]) for p in points] == [
        ("daily", "vol-1", "snap-new"), ("daily", "vol-2", "snap-v2"), ("weekly", "vol-1", "snap-other")]
    assert points[0]["snapshots"] == 4 and points[0]["restorable"] == 2 and points[0]["age_seconds"] == 86400
    assert points[0]["start_time"] == "2026-11-27T12:00:00Z"


def test_a_volume_without_a_restorable_snapshot_is_listed_with_none():
    points = drill.restore_points([snap("snap-p", 0, state="pending")], NOW)
    assert points[0]["snapshot_id"] is None and drill.pick(points) == []


def test_lineage_groups_copies_and_uploads_not_their_placeholder_volume():
    points = drill.restore_points([
        snap("snap-a", 1, volume="vol-ffffffff", blockwise_lineage="disk-a"),
        snap("snap-b", 1, volume="vol-ffffffff", blockwise_lineage="disk-b"),
        snap("snap-c", 1, volume="vol-ffffffff"),
    ], NOW)
    assert sorted(p["volume"] for p in points) == ["disk-a", "disk-b", "snap-c"]


def test_policies_filter():
    points = drill.restore_points([snap("s1", 1), snap("s2", 1, policy="weekly")], NOW, policies=["weekly"])
    assert [p["snapshot_id"] for p in points] == ["s2"]


def test_last_verification_is_the_newest_on_any_snapshot_of_the_volume():
    points = drill.restore_points([
        verified(snap("snap-old", 3), "ok", "2026-11-26T00:00:00Z"),
        verified(snap("snap-mid", 2), "mismatch", "2026-11-27T00:00:00Z", "sample"),
        snap("snap-new", 1),
        verified(snap("snap-v2", 1, volume="vol-2"), "ok", "2026-11-28T01:00:00Z"),
        verified(snap("snap-bad-time", 1, volume="vol-3"), "ok", "yesterday"),
    ], NOW)
    by_volume = {p["volume"]: p for p in points}
    assert by_volume["vol-1"]["last_verification"] == {"snapshot_id": "snap-mid", "result": "mismatch",
                                                       "at": "2026-11-27T00:00:00Z", "mode": "sample"}
    assert by_volume["vol-1"]["restore_point_verified"] is False
    assert by_volume["vol-2"]["restore_point_verified"] is True
    assert by_volume["vol-3"]["last_verification"] is None  # an unparsable time is no verification
    summary = drill.policy_verifications(points)["daily"]
    assert summary["volumes"] == 3 and summary["verified"] == 2
    assert summary["last_verified_at"] == "2026-11-28T01:00:00Z" and summary["last_result"] == "ok"
    assert summary["last_snapshot_id"] == "snap-v2"
    assert summary["never_verified"] == ["vol-3"] and summary["failing"] == ["vol-1"]


def test_sample_is_deterministic_per_seed_and_a_subset():
    points = drill.restore_points([snap("s%d" % i, 1, volume="vol-%d" % i) for i in range(20)], NOW)
    first = drill.pick(points, 5, "2026-11-28")
    assert len(first) == 5 and first == drill.pick(points, 5, "2026-11-28")
    assert all(p in points for p in first)
    assert any(drill.pick(points, 5, str(seed)) != first for seed in range(10))
    assert drill.pick(points, 50, "x") == points and drill.pick(points, 0, "x") == points


def _item(volume, result=None, estimate=None, failed=False, msg=None, skipped=False):
    point = {"policy": "daily", "volume": volume, "snapshot_id": "snap-" + volume, "start_time": "t", "age_seconds": 60}
    verification = {"skipped": True} if skipped else dict(
        {"result": result, "mode": "full", "restore_estimate_seconds": estimate, "throughput_mib_s": 1.0,
         "blocks_read": 1, "bad_blocks": []} if result else {}, failed=failed, **({"msg": msg} if msg else {}))
    return {"region": "us-east-1", "point": point, "verification": verification}


def test_report_fleet_rto_is_the_slowest_ok_estimate_and_failures_fail_it():
    report = drill.drill_report([_item("a", "ok", 2.5), _item("b", "ok", 7.0), _item("c", "unreadable", 99.0),
                                 _item("d", failed=True, msg="AccessDenied")], NOW)
    s = report["summary"]
    assert s["fleet_rto_seconds"] == 7.0 and s["slowest"]["volume"] == "b"
    assert s["passed"] is False and s["failed"] == 2 and s["failed_volumes"] == ["c", "d"]
    rows = {r["volume"]: r for r in report["volumes"]}
    assert rows["d"]["result"] == "error" and rows["d"]["error"] == "AccessDenied"
    text = drill.drill_markdown(report)
    assert "FAILED" in text and "| us-east-1 | daily | d | snap-d |" in text and "7.0 s (b)" in text


def test_report_passes_only_with_volumes_all_ok_and_no_region_error():
    assert drill.drill_report([_item("a", "ok", 1.0)], NOW)["summary"]["passed"] is True
    assert drill.drill_report([_item("a", "ok", 1.0)], NOW, errors=["eu-west-1: denied"])["summary"]["passed"] is False
    assert drill.drill_report([], NOW)["summary"]["passed"] is False


def test_check_mode_report_is_a_plan():
    report = drill.drill_report([_item("a", skipped=True)], NOW, check_mode=True)
    assert report["volumes"][0]["result"] == "planned" and report["summary"]["passed"] is None
    assert "PLAN" in drill.drill_markdown(report)
