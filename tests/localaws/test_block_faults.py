# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Injected faults of chosen blocks of a snapshot, seen through plain boto3 GetSnapshotBlock calls.

GetSnapshotBlock returns the block's data with ``x-amz-Checksum``, the base64 SHA256 of the data, and
``x-amz-Checksum-Algorithm`` SHA256; its errors include ``InternalServerException`` (HTTP 500) and
``ValidationException`` (HTTP 400). EBS direct API reference, GetSnapshotBlock:
https://docs.aws.amazon.com/ebs/latest/APIReference/API_GetSnapshotBlock.html
"""
import base64
import hashlib

import pytest
from botocore.exceptions import ClientError

from tests.localaws import LocalAWSControlError
from tests.localaws.blockdata import block, write_snapshot

NO_RETRIES = {"retries": {"total_max_attempts": 1, "mode": "standard"}}


def read(ebs, snapshot_id):
    """{index: (data, checksum matches)} of every block, or the error code for blocks that fail."""
    out = {}
    for item in ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]:
        try:
            resp = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=item["BlockIndex"], BlockToken=item["BlockToken"])
        except ClientError as exc:
            out[item["BlockIndex"]] = exc.response["Error"]["Code"]
            continue
        data = resp["BlockData"].read()
        matches = base64.b64encode(hashlib.sha256(data).digest()).decode() == resp["Checksum"]
        out[item["BlockIndex"]] = (data, matches)
    return out


@pytest.fixture
def snap(aws):
    return write_snapshot(aws.client("ebs"), {0: block(1), 1: block(2), 2: block(3), 3: block(4)})


def test_corrupt_blocks_do_not_match_their_checksum(aws, snap):
    aws.inject_block_fault(snap, [1, 3], mode="corrupt")
    got = read(aws.client("ebs"), snap)
    assert got[0] == (block(1), True) and got[2] == (block(3), True)
    for index in (1, 3):
        data, matches = got[index]
        assert not matches and len(data) == len(block(1)) and data != block(index + 1)


def test_bad_checksum_blocks_carry_the_written_data(aws, snap):
    aws.inject_block_fault(snap, [2], mode="bad-checksum")
    got = read(aws.client("ebs"), snap)
    assert got[2] == (block(3), False) and got[1] == (block(2), True)


def test_error_blocks_answer_the_given_error(aws, snap):
    aws.inject_block_fault(snap, [0], mode="error")
    aws.inject_block_fault(snap, [2], mode="error", status=400, code="ValidationException", message="unreadable block")
    ebs = aws.client("ebs", **NO_RETRIES)
    got = read(ebs, snap)
    assert got[0] == "InternalServerException" and got[2] == "ValidationException"
    assert got[1] == (block(2), True) and got[3] == (block(4), True)


def test_count_limits_a_fault_to_the_next_reads(aws, snap):
    aws.inject_block_fault(snap, [1], mode="corrupt", count=2)
    ebs = aws.client("ebs")
    assert [read(ebs, snap)[1][1] for _n in range(3)] == [False, False, True]


def test_faults_are_per_snapshot_and_cleared(aws, snap):
    other = write_snapshot(aws.client("ebs"), {1: block(9)})
    aws.inject_block_fault(snap, [1], mode="corrupt")
    ebs = aws.client("ebs")
    assert read(ebs, other)[1] == (block(9), True)
    assert [rule["block_index"] for rule in aws.faults()["block_faults"]] == [1]
    aws.clear_block_faults(snap)
    assert read(ebs, snap)[1] == (block(2), True)
    aws.inject_block_fault(snap, [1], mode="corrupt")
    aws.clear_faults()
    assert read(ebs, snap)[1] == (block(2), True) and aws.faults()["block_faults"] == []


def test_reset_drops_block_faults(aws, snap):
    aws.inject_block_fault(snap, [0], mode="error")
    aws.reset()
    assert aws.faults()["block_faults"] == []


@pytest.mark.parametrize("payload, word", [
    ({"blocks": [1], "mode": "melt"}, "mode"),
    ({"blocks": []}, "blocks"),
    ({"blocks": [-1]}, "blocks"),
    ({"blocks": [1], "count": 0}, "count"),
])
def test_bad_block_fault_requests_are_refused(aws, snap, payload, word):
    with pytest.raises(LocalAWSControlError, match=word):
        aws.inject_block_fault(snap, **payload)
