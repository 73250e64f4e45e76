# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block helpers for tests that talk to the EBS direct APIs of the local endpoint."""

import base64
import hashlib

BLOCK_SIZE = 524288


def block(fill):
    """A 512 KiB block filled with one byte value (0-255)."""
    return bytes([fill]) * BLOCK_SIZE


def checksum(data):
    """Base64 SHA256, as the EBS direct APIs expect it."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def linear_checksum(blocks):
    """The LINEAR aggregate checksum of ``{index: data}``."""
    digests = b"".join(hashlib.sha256(blocks[index]).digest() for index in sorted(blocks))
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def put_block(ebs, snapshot_id, index, data, **extra):
    """PutSnapshotBlock with a correct checksum (``extra`` overrides any parameter)."""
    params = {
        "SnapshotId": snapshot_id, "BlockIndex": index, "BlockData": data, "DataLength": len(data),
        "Checksum": checksum(data), "ChecksumAlgorithm": "SHA256",
    }
    params.update(extra)
    return ebs.put_snapshot_block(**params)


def write_snapshot(ebs, blocks, volume_size=1, **start):
    """Start a snapshot, write ``{index: data}``, complete it with count and checksum; return its id."""
    snapshot_id = ebs.start_snapshot(VolumeSize=volume_size, **start)["SnapshotId"]
    for index, data in blocks.items():
        put_block(ebs, snapshot_id, index, data)
    status = ebs.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=len(blocks), Checksum=linear_checksum(blocks),
        ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )["Status"]
    assert status == "completed"
    return snapshot_id
