# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_cost_info through ansible-playbook: a chain written through the EBS direct APIs, computed by hand."""
from datetime import datetime, timedelta, timezone

import pytest

from tests.localaws.blockdata import block, write_snapshot

REGION = "us-east-1"
MODULE = "blockwise.ebs.ebs_snapshot_cost_info"
BLOCK_GIB = 524288 / 2 ** 30


def task(**params):
    return {"name": "cost", MODULE: params, "register": "out", "ignore_errors": True}


@pytest.fixture
def chain(aws):
    ebs = aws.client("ebs", region=REGION)
    s0 = write_snapshot(ebs, {0: block(1), 1: block(2), 2: block(3), 3: block(4)})
    s1 = write_snapshot(ebs, {1: block(5), 4: block(6)}, ParentSnapshotId=s0)
    s2 = write_snapshot(ebs, {1: block(7), 2: block(8)}, ParentSnapshotId=s1)
    now = datetime.now(timezone.utc)
    for age, snapshot_id in ((3, s0), (2, s1), (1, s2)):
        aws.backdate_snapshot(snapshot_id, now - timedelta(days=age))
    return [s0, s1, s2]


def test_cost_of_a_hand_computed_chain(aws, playbook, chain):
    aws.reset_counters()
    run = playbook([task(snapshot_ids=list(reversed(chain)), standard_price=1.0, archive_price=0.5, workers=2)], check=True)
    res = run.result("cost")
    assert run.rc == 0, run
    assert [row["snapshot_id"] for row in res["snapshots"]] == chain  # oldest first, whatever the order given
    assert [row["added_blocks"] for row in res["snapshots"]] == [4, 2, 2]
    assert [row["freed_if_deleted_blocks"] for row in res["snapshots"]] == [1, 1, 2]
    assert [row["full_blocks"] for row in res["snapshots"]] == [4, 5, 5]
    assert res["total"]["stored_blocks"] == 8
    assert res["total"]["standard_monthly_cost"] == pytest.approx(8 * BLOCK_GIB, abs=1e-6)
    assert res["snapshots"][1]["archive_monthly_cost"] == pytest.approx(5 * BLOCK_GIB * 0.5, abs=1e-6)
    assert res["not_completed"] == [] and res["changed"] is False
    counts = aws.counters()
    assert counts.get("ebs:ListSnapshotBlocks") == 1 and counts.get("ebs:ListChangedBlocks") == 2
    assert aws.mutating_calls() == {}


def test_archived_snapshot_in_the_chain_fails_naming_it(aws, playbook, chain):
    aws.client("ec2", region=REGION).modify_snapshot_tier(SnapshotId=chain[1], StorageTier="archive")
    res = playbook([task(snapshot_ids=chain)]).result("cost")
    assert res["failed"] is True and chain[1] in res["msg"]


@pytest.mark.parametrize("params, option", [
    ({}, "volume_id"),
    ({"volume_id": "vol-1", "snapshot_ids": ["snap-1"]}, "volume_id"),
    ({"snapshot_ids": ["snap-0123456789abcdef0"]}, "snapshot_ids"),
    ({"volume_id": "vol-1", "standard_price": -1}, "standard_price"),
    ({"volume_id": "vol-1", "workers": 0}, "workers"),
])
def test_bad_input_fails_naming_the_option(aws, playbook, params, option):
    res = playbook([task(**params)]).result("cost")
    assert res["failed"] is True and option in res["msg"]
