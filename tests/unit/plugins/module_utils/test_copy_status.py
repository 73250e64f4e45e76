# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of copy_status: recovery point age of the copies (RPO) and what a cross-account copy needs shared."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import copy_status

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
DAY = 24 * 3600
LIMIT = DAY + 3600  # a daily policy with one hour of grace


def home(snapshot_id, volume_id, hours_ago, state="completed", **tags):
    """An ec2_snapshot_info item."""
    return {"snapshot_id": snapshot_id, "volume_id": volume_id, "state": state,
            "start_time": (NOW - timedelta(hours=hours_ago)).isoformat(), "tags": dict(tags, **{"blockwise:policy": "p"})}


def copy(snapshot_id, source_id, lineage, hours_ago, state="completed"):
    """A boto3 DescribeSnapshots item (the module takes either shape)."""
    tags = {"blockwise:source-snapshot": source_id, "blockwise:lineage": lineage, "blockwise:policy": "p"}
    return {"SnapshotId": snapshot_id, "VolumeId": "vol-ffffffff", "State": state, "StartTime": NOW - timedelta(hours=hours_ago),
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


HOME = [home("snap-a1", "vol-a", 1), home("snap-a2", "vol-a", 25), home("snap-a3", "vol-a", 49),
        home("snap-b1", "vol-b", 2), home("snap-b2", "vol-b", 26)]


def test_the_age_of_a_copy_is_the_age_of_its_source_not_of_the_copy():
    # The copy of snap-a3 (49 h old) was made 1 h ago: it restores a 49 h old point in time.
    rpo = copy_status.assess(HOME, [{"name": "dr", "copies": [copy("snap-c", "snap-a3", "vol-a", 1)]}], LIMIT, NOW)
    row = {item["lineage"]: item for item in rpo["volumes"]}["vol-a"]
    assert row["home"]["snapshot_id"] == "snap-a1" and row["home"]["age_seconds"] == 3600
    dest = row["destinations"]["dr"]
    assert dest["age_seconds"] == 49 * 3600 and not dest["approximate"] and dest["reason"] == "copy-older-than-limit"
    assert not dest["compliant"] and not rpo["compliant"]
    assert rpo["destinations"]["dr"]["late"] == ["vol-a", "vol-b"]  # vol-b has no copy and its first snapshot is 26 h old


def test_fresh_copies_are_compliant_and_pending_copies_do_not_count():
    copies = [copy("snap-c1", "snap-a1", "vol-a", 0.5), copy("snap-c2", "snap-b2", "vol-b", 20),
              copy("snap-c3", "snap-b1", "vol-b", 0.1, state="pending")]
    rpo = copy_status.assess(HOME, [{"name": "dr", "copies": copies}], LIMIT, NOW)
    rows = {item["lineage"]: item["destinations"]["dr"] for item in rpo["volumes"]}
    assert rows["vol-a"]["snapshot_id"] == "snap-c1" and rows["vol-a"]["age_seconds"] == 3600 and rows["vol-a"]["compliant"]
    # vol-b: the pending copy of snap-b1 restores nothing yet; the newest completed one restores snap-b2 (26 h > 25 h).
    assert rows["vol-b"]["snapshot_id"] == "snap-c2" and rows["vol-b"]["age_seconds"] == 26 * 3600
    assert not rows["vol-b"]["compliant"] and rpo["destinations"]["dr"]["oldest_age_seconds"] == 26 * 3600
    assert not rpo["compliant"] and rpo["destinations"]["dr"]["late"] == ["vol-b"]


def test_a_copy_whose_source_was_pruned_at_home_is_dated_by_the_copy_and_marked_approximate():
    rpo = copy_status.assess(HOME[:1], [{"name": "dr", "copies": [copy("snap-c", "snap-gone", "vol-a", 30)]}], LIMIT, NOW)
    dest = rpo["volumes"][0]["destinations"]["dr"]
    assert dest["approximate"] and dest["age_seconds"] == 30 * 3600 and not dest["compliant"]


def test_a_new_volume_is_not_late_before_its_first_copy_is_due_and_destination_only_lineages_are_not_judged():
    rpo = copy_status.assess([home("snap-n", "vol-new", 1)], [{"name": "dr", "copies": [copy("snap-o", "snap-old", "vol-old", 5)]}],
                             LIMIT, NOW)
    rows = {item["lineage"]: item["destinations"]["dr"] for item in rpo["volumes"]}
    assert rows["vol-new"]["reason"] == "first-copy-not-due" and rows["vol-new"]["compliant"]
    assert rows["vol-old"]["reason"] == "no-home-snapshot" and rpo["compliant"]


def test_each_destination_is_judged_on_its_own():
    fresh = [copy("snap-x%d" % n, source, lineage, 0.5) for n, (source, lineage) in enumerate([("snap-a1", "vol-a"), ("snap-b1", "vol-b")])]
    rpo = copy_status.assess(HOME, [{"name": "region", "copies": fresh}, {"name": "account", "copies": []}], LIMIT, NOW)
    assert rpo["destinations"]["region"]["compliant"] and not rpo["destinations"]["account"]["compliant"]
    assert rpo["destinations"]["account"]["late"] == ["vol-a", "vol-b"] and not rpo["compliant"]


def test_to_share_lists_only_what_has_no_copy_and_with_latest_only_only_the_newest_per_volume():
    assert copy_status.to_share(HOME, ["snap-a1"], latest_only=True) == ["snap-b1"]
    assert copy_status.to_share(HOME, ["snap-a1", "snap-b1"], latest_only=True) == []
    assert copy_status.to_share(HOME, ["snap-a1"], latest_only=False) == ["snap-a2", "snap-a3", "snap-b1", "snap-b2"]
    pending = HOME + [home("snap-a0", "vol-a", 0.1, state="pending")]
    assert copy_status.to_share(pending, [], latest_only=True) == ["snap-a1", "snap-b1"]  # never a pending snapshot


def test_copies_at_home_are_never_home_snapshots():
    made_here = dict(home("snap-h", "vol-ffffffff", 0.5), tags={"blockwise:source-snapshot": "snap-z", "blockwise:lineage": "vol-z"})
    assert copy_status.to_share(HOME + [made_here], [], latest_only=True) == ["snap-a1", "snap-b1"]
    assert "vol-z" not in {item["lineage"] for item in copy_status.assess(HOME + [made_here], [], LIMIT, NOW)["volumes"]}
