# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pagination of the block listings (ListSnapshotBlocks / ListChangedBlocks) against the local endpoint."""
import base64
import hashlib

from ansible_collections.blockwise.ebs.plugins.module_utils import blocks
from tests.functional.test_block_put import BS, conn, ok

DATA = bytes(range(256)) * (BS // 256)
CHECKSUM = base64.b64encode(hashlib.sha256(DATA).digest()).decode()


def snapshot_with_blocks(ebs, indexes, parent=None):
    params = {"VolumeSize": 1}
    if parent:
        params["ParentSnapshotId"] = parent
    sid = ebs.start_snapshot(**params)["SnapshotId"]
    for index in indexes:
        ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=DATA, DataLength=BS, Checksum=CHECKSUM,
                               ChecksumAlgorithm="SHA256")
    linear = base64.b64encode(hashlib.sha256(hashlib.sha256(DATA).digest() * len(indexes)).digest()).decode()
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(indexes), Checksum=linear, ChecksumAlgorithm="SHA256",
                          ChecksumAggregationMethod="LINEAR")
    return sid


def test_changed_blocks_follow_every_page(aws, playbook):
    ebs = aws.client("ebs")
    first = snapshot_with_blocks(ebs, range(0, 300, 2))        # 150 blocks
    second = snapshot_with_blocks(ebs, range(1, 241, 2), first)  # 120 more blocks
    aws.reset_counters()
    delta = blocks.changed_blocks_info(ebs, second, first, return_block_indexes=True, page_size=100)
    assert delta["changed_blocks"] == 120 and delta["pages"] == 2
    assert delta["block_indexes"] == list(range(1, 241, 2))
    assert delta["changed_bytes"] == 120 * BS and delta["volume_size"] == 1
    assert aws.counters()["ebs:ListChangedBlocks"] == 2
    everything = blocks.changed_blocks_info(ebs, second, page_size=100, return_block_indexes=True)
    assert everything["changed_blocks"] == 270 and everything["pages"] == 3
    assert everything["block_indexes"] == sorted(set(range(0, 300, 2)) | set(range(1, 241, 2)))

    module = "blockwise.ebs.ebs_changed_blocks_info"
    run = playbook([
        {"name": "delta", module: dict(conn(aws), first_snapshot_id=first, second_snapshot_id=second)},
        {"name": "all", module: dict(conn(aws), second_snapshot_id=second, return_block_indexes=True)},
    ])
    assert ok(run, "delta")["changed_blocks"] == 120
    assert ok(run, "all")["block_indexes"] == everything["block_indexes"]
