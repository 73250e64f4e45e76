# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from datetime import datetime, timedelta, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_cost as core

MIB_HALF = 524288


def test_hand_computed_chain():
    # S0 holds blocks 0-3; S1 rewrites 1 and adds 4; S2 rewrites 1 and 2 and drops 3.
    changes = [({0, 1, 2, 3}, set()), ({1, 4}, set()), ({1, 2, 3}, {3})]
    rows, total = core.chain_cost(["s0", "s1", "s2"], changes, standard_price=1.0, archive_price=0.5)
    by_id = {row["snapshot_id"]: row for row in rows}
    assert [by_id[s]["added_blocks"] for s in ("s0", "s1", "s2")] == [4, 2, 2]
    # s0: of its blocks, s1 rewrote only 1; s1: s2 rewrote 1 (not 4); s2 (newest): all it added.
    assert [by_id[s]["freed_if_deleted_blocks"] for s in ("s0", "s1", "s2")] == [1, 1, 2]
    assert [by_id[s]["full_blocks"] for s in ("s0", "s1", "s2")] == [4, 5, 4]
    assert by_id["s1"]["added_gib"] == round(2 * MIB_HALF / 2 ** 30, 6)
    assert total["stored_blocks"] == 8
    assert total["standard_monthly_cost"] == round(8 * MIB_HALF / 2 ** 30, 6)
    assert by_id["s2"]["archive_monthly_cost"] == round(4 * MIB_HALF / 2 ** 30 * 0.5, 6)


def test_single_snapshot_frees_everything_it_holds():
    rows, total = core.chain_cost(["s0"], [({5, 6}, set())])
    assert rows[0]["freed_if_deleted_blocks"] == 2 == rows[0]["full_blocks"]
    assert total["standard_price_per_gib_month"] == core.STANDARD_PRICE and total["archive_minimum_days"] == 90


def test_order_chain_oldest_first_and_skips_unfinished():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    snaps = [{"SnapshotId": "b", "StartTime": now, "State": "completed"},
             {"SnapshotId": "a", "StartTime": now - timedelta(days=1), "State": "completed"},
             {"SnapshotId": "c", "StartTime": now, "State": "pending"}]
    assert core.order_chain(snaps) == (["a", "b"], ["c"])


def test_policy_chains_group_by_lineage_or_volume_and_skip_others():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def snap(snapshot_id, volume, days, policy="daily", lineage=None, state="completed"):
        tags = {"blockwise:policy": policy}
        if lineage:
            tags["blockwise:lineage"] = lineage
        return {"SnapshotId": snapshot_id, "VolumeId": volume, "StartTime": now - timedelta(days=days), "State": state, "tags": tags}

    snaps = [snap("a2", "vol-1", 1), snap("a1", "vol-1", 2), snap("b1", "vol-ffffffff", 1, lineage="disk"),
             snap("c1", "vol-2", 1, policy="other"), snap("d1", "vol-1", 0, state="pending")]
    assert core.policy_chains(snaps, ["daily"]) == {"daily": {"vol-1": ["a1", "a2"], "lineage:disk": ["b1"]}}


def test_policy_total_sums_chains_and_keeps_errors():
    totals = [core.chain_cost(["x"], [({1, 2}, set())], standard_price=1.0)[1], core.chain_cost(["y"], [({3}, set())], standard_price=1.0)[1]]
    row = core.policy_total("eu-west-1", "daily", totals, ["cannot list y"])
    assert row["chains"] == 2 and row["snapshots"] == 2 and row["stored_gib"] == core.gib(3)
    assert row["errors"] == ["cannot list y"]
