# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EBS direct APIs of the local endpoint, through plain boto3 clients."""

import base64
import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.localaws.blockdata import BLOCK_SIZE, block, checksum, linear_checksum, put_block, write_snapshot


@pytest.fixture
def ebs(aws):
    """An EBS direct client that does not retry."""
    return aws.client("ebs", retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def raw_ebs(aws):
    """An EBS direct client without client-side parameter validation (to reach server checks)."""
    return aws.client("ebs", parameter_validation=False, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def ec2(aws):
    """An EC2 client."""
    return aws.client("ec2")


def error_of(call, *args, **kwargs):
    """Run a call that must fail; return its botocore error response."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response


def assert_error(response, status, code, reason=None):
    """The status, ``x-amzn-ErrorType`` header, code and (when given) Reason of an error."""
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"]
    if reason is not None:
        assert response["Reason"] == reason


def ec2_snapshot(ec2, snapshot_id):
    """DescribeSnapshots for one snapshot."""
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


# -- StartSnapshot --------------------------------------------------------------------------------


def test_start_snapshot_answers_every_documented_field(ebs):
    answer = ebs.start_snapshot(VolumeSize=8, Description="nightly", Tags=[{"Key": "Name", "Value": "disk"}])
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert answer["SnapshotId"].startswith("snap-")
    assert answer["OwnerId"] == "123456789012"
    assert answer["Status"] == "pending"
    assert answer["VolumeSize"] == 8
    assert answer["BlockSize"] == BLOCK_SIZE
    assert answer["Tags"] == [{"Key": "Name", "Value": "disk"}]
    assert answer["Description"] == "nightly"
    assert answer["SseType"] == "none"
    assert answer["StartTime"].year >= 2024
    assert "ParentSnapshotId" not in answer and "KmsKeyArn" not in answer


@pytest.mark.parametrize("size", [0, 65537])
def test_start_snapshot_rejects_volume_sizes_outside_1_to_65536(raw_ebs, size):
    assert_error(error_of(raw_ebs.start_snapshot, VolumeSize=size), 400, "ValidationException", "INVALID_VOLUME_SIZE")


def test_start_snapshot_accepts_the_largest_volume(ebs):
    assert ebs.start_snapshot(VolumeSize=65536)["VolumeSize"] == 65536


def test_client_token_returns_the_same_snapshot_for_the_same_parameters(ebs, ec2):
    first = ebs.start_snapshot(VolumeSize=2, ClientToken="token-1", Description="x")
    again = ebs.start_snapshot(VolumeSize=2, ClientToken="token-1", Description="x")
    assert again["SnapshotId"] == first["SnapshotId"]
    assert len(ec2.describe_snapshots()["Snapshots"]) == 1


def test_client_token_replays_the_original_result_even_after_the_snapshot_was_deleted(ebs, ec2):
    """"If you retry an API request with the same client token and the same request parameters after it has
    completed successfully, the result of the original request is returned." (Amazon EBS User Guide, "Ensure
    idempotency in StartSnapshot API requests"). Nothing says a deleted snapshot frees its token: the caller
    must confirm the snapshot with DescribeSnapshots."""
    first = ebs.start_snapshot(VolumeSize=1, ClientToken="token-gone")
    ebs.complete_snapshot(SnapshotId=first["SnapshotId"], ChangedBlocksCount=0)
    ec2.delete_snapshot(SnapshotId=first["SnapshotId"])
    again = ebs.start_snapshot(VolumeSize=1, ClientToken="token-gone")
    assert again["SnapshotId"] == first["SnapshotId"] and again["Status"] == "pending"
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []


def test_start_snapshot_refuses_more_than_50_tags(raw_ebs):
    """StartSnapshot Tags: "Array Members: Maximum number of 50 items" (EBS direct API reference)."""
    tags = [{"Key": "k%d" % i, "Value": "v"} for i in range(51)]
    assert_error(error_of(raw_ebs.start_snapshot, VolumeSize=1, Tags=tags), 400, "ValidationException")


def test_client_token_with_other_parameters_is_a_conflict(ebs):
    ebs.start_snapshot(VolumeSize=2, ClientToken="token-2")
    assert_error(error_of(ebs.start_snapshot, VolumeSize=3, ClientToken="token-2"), 409, "ConflictException")


def test_start_snapshot_without_client_token_creates_a_new_snapshot_each_time(ebs):
    assert ebs.start_snapshot(VolumeSize=1)["SnapshotId"] != ebs.start_snapshot(VolumeSize=1)["SnapshotId"]


def test_start_snapshot_creates_no_ec2_volume(ebs, ec2):
    ebs.start_snapshot(VolumeSize=4)
    assert ec2.describe_volumes()["Volumes"] == []


# -- parents and encryption -----------------------------------------------------------------------


def test_parent_must_exist(ebs):
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, ParentSnapshotId="snap-0123456789abcdef0"), 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND")


def test_parent_must_be_completed(ebs):
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, ParentSnapshotId=pending), 400, "ValidationException")


def test_child_cannot_be_smaller_than_its_parent(ebs):
    parent = write_snapshot(ebs, {0: block(1)}, volume_size=2)
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, ParentSnapshotId=parent), 400, "ValidationException", "INVALID_VOLUME_SIZE")


def test_child_of_an_encrypted_parent_is_encrypted_with_the_parents_key(aws, ebs, ec2):
    key_arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    parent = write_snapshot(ebs, {0: block(1)}, Encrypted=True, KmsKeyArn=key_arn)
    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent)
    assert child["ParentSnapshotId"] == parent
    assert child["SseType"] == "sse-kms"
    assert child["KmsKeyArn"] == key_arn
    described = ec2_snapshot(ec2, child["SnapshotId"])
    assert described["Encrypted"] is True
    assert described["KmsKeyId"] == key_arn


def test_parent_and_encrypted_in_one_request_is_invalid(ebs):
    parent = write_snapshot(ebs, {0: block(1)})
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, ParentSnapshotId=parent, Encrypted=True), 400, "ValidationException")


def test_encrypted_without_key_uses_the_regions_default_key(ebs, ec2):
    answer = ebs.start_snapshot(VolumeSize=1, Encrypted=True)
    assert answer["KmsKeyArn"] == ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert answer["SseType"] == "sse-kms"


def test_unknown_kms_key_is_rejected(ebs):
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, Encrypted=True, KmsKeyArn=missing), 400, "ValidationException", "INVALID_CUSTOMER_KEY")


def test_encryption_by_default_encrypts_and_refuses_unencrypted_parents(ebs, ec2):
    plain_parent = write_snapshot(ebs, {0: block(1)})
    ec2.enable_ebs_encryption_by_default()
    assert ebs.start_snapshot(VolumeSize=1)["SseType"] == "sse-kms"
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, Encrypted=False), 400, "ValidationException")
    assert_error(error_of(ebs.start_snapshot, VolumeSize=1, ParentSnapshotId=plain_parent), 400, "ValidationException")


# -- PutSnapshotBlock -----------------------------------------------------------------------------


def test_put_returns_the_checksum_and_records_progress(aws, ebs, ec2):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = block(7)
    answer = put_block(ebs, snapshot_id, 0, data, Progress=42)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert answer["Checksum"] == checksum(data)
    assert answer["ChecksumAlgorithm"] == "SHA256"
    progress = aws.snapshot_progress(snapshot_id)
    assert progress == {"snapshot_id": snapshot_id, "status": "pending", "progress": 42, "blocks_written": 1, "direct": True, "copy": False}
    assert ec2_snapshot(ec2, snapshot_id)["Progress"] == "42%"


def test_put_rejects_a_wrong_checksum(ebs):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    response = error_of(put_block, ebs, snapshot_id, 0, block(1), Checksum=checksum(block(2)))
    assert_error(response, 400, "ValidationException", "INVALID_BLOCK")


def test_put_requires_a_full_512_kib_block(ebs):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    assert_error(error_of(put_block, ebs, snapshot_id, 0, b"\0" * 4096), 400, "ValidationException")


def test_put_refuses_a_data_length_that_does_not_match_the_body(ebs):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    assert_error(error_of(put_block, ebs, snapshot_id, 0, block(1)[:-1] + b"\0\0"), 400, "ValidationException")


def test_put_block_index_must_fit_the_volume_size(ebs):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, snapshot_id, 2047, block(1))
    assert_error(error_of(put_block, ebs, snapshot_id, 2048, block(1)), 400, "ValidationException", "INVALID_BLOCK")


def test_put_to_an_unknown_snapshot_is_not_found(ebs):
    assert_error(error_of(put_block, ebs, "snap-0123456789abcdef0", 0, block(1)), 404, "ResourceNotFoundException", "SNAPSHOT_NOT_FOUND")


def test_put_to_a_completed_snapshot_is_refused(ebs):
    snapshot_id = write_snapshot(ebs, {0: block(1)})
    assert_error(error_of(put_block, ebs, snapshot_id, 1, block(1)), 400, "ValidationException")


def test_concurrent_puts_are_all_stored(aws):
    ebs = aws.client("ebs", max_pool_connections=32)
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {index: block(index % 256) for index in range(64)}
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda index: put_block(ebs, snapshot_id, index, blocks[index]), blocks))
    answer = ebs.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=64, Checksum=linear_checksum(blocks),
        ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )
    assert answer["Status"] == "completed"
    assert len(ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]) == 64


# -- CompleteSnapshot -----------------------------------------------------------------------------


def test_complete_with_the_right_count_and_linear_checksum(ebs, ec2):
    blocks = {5: block(5), 1: block(1), 3: block(3)}
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for index, data in blocks.items():
        put_block(ebs, snapshot_id, index, data)
    assert ec2_snapshot(ec2, snapshot_id)["State"] == "pending"
    answer = ebs.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=3, Checksum=linear_checksum(blocks),
        ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["Status"] == "completed"
    described = ec2_snapshot(ec2, snapshot_id)
    assert described["State"] == "completed"
    assert described["Progress"] == "100%"


def test_linear_checksum_is_over_digests_in_ascending_index_order(ebs):
    blocks = {2: block(2), 0: block(0)}
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for index, data in blocks.items():
        put_block(ebs, snapshot_id, index, data)
    insertion_order = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(data).digest() for data in blocks.values())).digest()).decode()
    answer = ebs.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=2, Checksum=insertion_order,
        ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )
    assert answer["Status"] == "error"


def test_complete_without_checksum_checks_only_the_count(ebs):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, snapshot_id, 0, block(1))
    put_block(ebs, snapshot_id, 0, block(2))
    assert ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=1)["Status"] == "completed"


def test_wrong_changed_blocks_count_puts_the_snapshot_in_error(ebs, ec2):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, snapshot_id, 0, block(1))
    assert ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=2)["Status"] == "error"
    assert ec2_snapshot(ec2, snapshot_id)["State"] == "error"


def test_wrong_aggregate_checksum_puts_the_snapshot_in_error(ebs, ec2):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, snapshot_id, 0, block(1))
    answer = ebs.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=1, Checksum=linear_checksum({0: block(9)}),
        ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )
    assert answer["Status"] == "error"
    assert ec2_snapshot(ec2, snapshot_id)["State"] == "error"


def test_pending_snapshot_times_out_without_writes(aws, ebs, ec2):
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Timeout=10)["SnapshotId"]
    aws.advance_clock(300)
    put_block(ebs, snapshot_id, 0, block(1))
    aws.advance_clock(400)
    assert ec2_snapshot(ec2, snapshot_id)["State"] == "pending"
    aws.advance_clock(300)
    assert ec2_snapshot(ec2, snapshot_id)["State"] == "error"
    assert_error(error_of(put_block, ebs, snapshot_id, 1, block(1)), 400, "ValidationException", "WRITE_REQUEST_TIMEOUT")


# -- EC2 view -------------------------------------------------------------------------------------


def test_ec2_describe_snapshots_mirrors_a_direct_snapshot(aws, ebs, ec2):
    key_arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    started = ebs.start_snapshot(VolumeSize=3, Description="image", Tags=[{"Key": "k", "Value": "v"}], Encrypted=True, KmsKeyArn=key_arn)
    described = ec2_snapshot(ec2, started["SnapshotId"])
    assert described["State"] == "pending"
    assert described["VolumeId"] == "vol-ffffffff"
    assert described["VolumeSize"] == 3
    assert described["Encrypted"] is True
    assert described["KmsKeyId"] == key_arn
    assert described["Description"] == "image"
    assert described["Tags"] == [{"Key": "k", "Value": "v"}]
    assert described["OwnerId"] == "123456789012"
    assert abs((described["StartTime"] - started["StartTime"]).total_seconds()) < 2
    assert ec2.describe_volumes()["Volumes"] == []


def test_snapshot_deleted_through_ec2_is_gone_for_ebs(ebs, ec2):
    snapshot_id = write_snapshot(ebs, {0: block(1)})
    ec2.delete_snapshot(SnapshotId=snapshot_id)
    assert_error(error_of(ebs.list_snapshot_blocks, SnapshotId=snapshot_id), 404, "ResourceNotFoundException")


# -- reads ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["list_snapshot_blocks", "list_changed_blocks"])
def test_pending_snapshots_are_not_readable(ebs, operation):
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, snapshot_id, 0, block(1))
    argument = "SnapshotId" if operation == "list_snapshot_blocks" else "SecondSnapshotId"
    assert_error(error_of(getattr(ebs, operation), **{argument: snapshot_id}), 400, "ValidationException")


def test_get_block_of_a_pending_snapshot_is_refused(ebs):
    completed = write_snapshot(ebs, {0: block(1)})
    token = ebs.list_snapshot_blocks(SnapshotId=completed)["Blocks"][0]["BlockToken"]
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put_block(ebs, pending, 0, block(1))
    assert_error(error_of(ebs.get_snapshot_block, SnapshotId=pending, BlockIndex=0, BlockToken=token), 400, "ValidationException")


def test_get_snapshot_block_returns_data_length_and_checksum(ebs):
    data = block(200)
    snapshot_id = write_snapshot(ebs, {9: data})
    listing = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)
    assert listing["VolumeSize"] == 1 and listing["BlockSize"] == BLOCK_SIZE
    assert [entry["BlockIndex"] for entry in listing["Blocks"]] == [9]
    answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=9, BlockToken=listing["Blocks"][0]["BlockToken"])
    assert answer["DataLength"] == BLOCK_SIZE
    assert answer["Checksum"] == checksum(data)
    assert answer["ChecksumAlgorithm"] == "SHA256"
    assert answer["BlockData"].read() == data


def test_block_tokens_are_bound_to_snapshot_and_index(ebs):
    first = write_snapshot(ebs, {0: block(1), 1: block(2)})
    other = write_snapshot(ebs, {0: block(3)})
    tokens = {entry["BlockIndex"]: entry["BlockToken"] for entry in ebs.list_snapshot_blocks(SnapshotId=first)["Blocks"]}
    assert_error(error_of(ebs.get_snapshot_block, SnapshotId=first, BlockIndex=1, BlockToken=tokens[0]), 400, "ValidationException", "INVALID_BLOCK_TOKEN")
    assert_error(error_of(ebs.get_snapshot_block, SnapshotId=other, BlockIndex=0, BlockToken=tokens[0]), 400, "ValidationException", "INVALID_BLOCK_TOKEN")


def test_unwritten_blocks_are_not_listed(ebs):
    snapshot_id = write_snapshot(ebs, {0: block(1), 100: block(2)})
    assert [entry["BlockIndex"] for entry in ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]] == [0, 100]


# -- lineage --------------------------------------------------------------------------------------


@pytest.fixture
def lineage(ebs):
    """parent: blocks 0, 1, 2; child: rewrites 1 (new data) and 2 (same data), adds 5."""
    parent = write_snapshot(ebs, {0: block(10), 1: block(11), 2: block(12)})
    child = write_snapshot(ebs, {1: block(21), 2: block(12), 5: block(25)}, ParentSnapshotId=parent)
    return parent, child


def test_child_reads_its_own_blocks_over_its_parents(ebs, lineage):
    child = lineage[1]
    listing = ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]
    assert [entry["BlockIndex"] for entry in listing] == [0, 1, 2, 5]
    expected = {0: block(10), 1: block(21), 2: block(12), 5: block(25)}
    for entry in listing:
        data = ebs.get_snapshot_block(SnapshotId=child, BlockIndex=entry["BlockIndex"], BlockToken=entry["BlockToken"])["BlockData"].read()
        assert data == expected[entry["BlockIndex"]]


def test_grandchild_inherits_through_two_generations(ebs, lineage):
    child = lineage[1]
    grandchild = write_snapshot(ebs, {0: block(30)}, ParentSnapshotId=child)
    listing = {entry["BlockIndex"]: entry["BlockToken"] for entry in ebs.list_snapshot_blocks(SnapshotId=grandchild)["Blocks"]}
    assert sorted(listing) == [0, 1, 2, 5]
    assert ebs.get_snapshot_block(SnapshotId=grandchild, BlockIndex=1, BlockToken=listing[1])["BlockData"].read() == block(21)
    assert ebs.get_snapshot_block(SnapshotId=grandchild, BlockIndex=0, BlockToken=listing[0])["BlockData"].read() == block(30)


def test_changed_blocks_between_parent_and_child(ebs, lineage):
    parent, child = lineage
    changed = ebs.list_changed_blocks(FirstSnapshotId=parent, SecondSnapshotId=child)
    assert changed["VolumeSize"] == 1 and changed["BlockSize"] == BLOCK_SIZE
    by_index = {entry["BlockIndex"]: entry for entry in changed["ChangedBlocks"]}
    assert sorted(by_index) == [1, 2, 5]
    assert set(by_index[1]) == {"BlockIndex", "FirstBlockToken", "SecondBlockToken"}
    assert set(by_index[2]) == {"BlockIndex", "FirstBlockToken", "SecondBlockToken"}
    assert set(by_index[5]) == {"BlockIndex", "SecondBlockToken"}
    first = ebs.get_snapshot_block(SnapshotId=parent, BlockIndex=1, BlockToken=by_index[1]["FirstBlockToken"])["BlockData"].read()
    second = ebs.get_snapshot_block(SnapshotId=child, BlockIndex=1, BlockToken=by_index[1]["SecondBlockToken"])["BlockData"].read()
    assert (first, second) == (block(11), block(21))


def test_block_only_in_the_first_snapshot_has_only_a_first_token(ebs, lineage):
    parent, child = lineage
    changed = ebs.list_changed_blocks(FirstSnapshotId=child, SecondSnapshotId=parent)["ChangedBlocks"]
    by_index = {entry["BlockIndex"]: entry for entry in changed}
    assert set(by_index[5]) == {"BlockIndex", "FirstBlockToken"}


def test_changed_blocks_without_first_snapshot_lists_all_blocks_of_the_second(ebs, lineage):
    child = lineage[1]
    changed = ebs.list_changed_blocks(SecondSnapshotId=child)["ChangedBlocks"]
    assert [entry["BlockIndex"] for entry in changed] == [0, 1, 2, 5]
    assert all(set(entry) == {"BlockIndex", "SecondBlockToken"} for entry in changed)


def test_siblings_are_related(ebs, lineage):
    parent, child = lineage
    sibling = write_snapshot(ebs, {0: block(40)}, ParentSnapshotId=parent)
    changed = ebs.list_changed_blocks(FirstSnapshotId=child, SecondSnapshotId=sibling)["ChangedBlocks"]
    assert [entry["BlockIndex"] for entry in changed] == [0, 1, 2, 5]


def test_unrelated_snapshots_are_refused(ebs, lineage):
    child = lineage[1]
    stranger = write_snapshot(ebs, {0: block(1)})
    response = error_of(ebs.list_changed_blocks, FirstSnapshotId=stranger, SecondSnapshotId=child)
    assert_error(response, 400, "ValidationException", "UNRELATED_SNAPSHOTS")


# -- EC2-created snapshots ------------------------------------------------------------------------


def test_ec2_created_snapshots_are_readable_and_empty(ebs, ec2):
    volume = ec2.create_volume(Size=2, AvailabilityZone="us-east-1a")["VolumeId"]
    older = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    newer = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    listing = ebs.list_snapshot_blocks(SnapshotId=older)
    assert listing["Blocks"] == [] and listing["VolumeSize"] == 2
    assert ebs.list_changed_blocks(FirstSnapshotId=older, SecondSnapshotId=newer)["ChangedBlocks"] == []
    assert ebs.list_changed_blocks(SecondSnapshotId=newer)["ChangedBlocks"] == []


def test_ec2_snapshots_of_different_volumes_are_unrelated(ebs, ec2):
    snapshots = []
    for _attempt in range(2):
        volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        snapshots.append(ec2.create_snapshot(VolumeId=volume)["SnapshotId"])
    response = error_of(ebs.list_changed_blocks, FirstSnapshotId=snapshots[0], SecondSnapshotId=snapshots[1])
    assert_error(response, 400, "ValidationException", "UNRELATED_SNAPSHOTS")


def test_ec2_snapshot_can_be_a_parent(ebs, ec2):
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    base = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    child = write_snapshot(ebs, {3: block(3)}, ParentSnapshotId=base)
    changed = ebs.list_changed_blocks(FirstSnapshotId=base, SecondSnapshotId=child)["ChangedBlocks"]
    assert [entry["BlockIndex"] for entry in changed] == [3]


def test_copy_of_a_direct_snapshot_holds_its_data(aws, ebs):
    parent = write_snapshot(ebs, {0: block(1), 1: block(2)})
    child = write_snapshot(ebs, {1: block(3)}, ParentSnapshotId=parent)
    copy_id = aws.client("ec2", region="eu-west-1").copy_snapshot(SourceSnapshotId=child, SourceRegion="us-east-1")["SnapshotId"]
    aws.advance_clock(2)  # a copy is readable once completed (see test_copies.py)
    remote = aws.client("ebs", region="eu-west-1")
    listing = {entry["BlockIndex"]: entry["BlockToken"] for entry in remote.list_snapshot_blocks(SnapshotId=copy_id)["Blocks"]}
    assert sorted(listing) == [0, 1]
    assert remote.get_snapshot_block(SnapshotId=copy_id, BlockIndex=1, BlockToken=listing[1])["BlockData"].read() == block(3)


def test_pending_direct_snapshot_cannot_be_copied(ebs, ec2):
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    with pytest.raises(ClientError) as caught:
        ec2.copy_snapshot(SourceSnapshotId=pending, SourceRegion="us-east-1")
    assert caught.value.response["Error"]["Code"] == "IncorrectState"


# -- pagination -----------------------------------------------------------------------------------


@pytest.fixture
def many_blocks(aws):
    """A completed parent with 10 blocks and a child that writes blocks 0..249 (one shared 512 KiB buffer)."""
    ebs = aws.client("ebs", max_pool_connections=8)
    data = block(99)
    parent = write_snapshot(ebs, {index: data for index in range(10)})
    child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=parent)["SnapshotId"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda index: put_block(ebs, child, index, data), range(250)))
    assert ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=250)["Status"] == "completed"
    return parent, child


def collect(call, key, **params):
    """Every entry of a paginated listing, and the number of pages."""
    entries, pages = [], 0
    while True:
        answer = call(**params)
        pages += 1
        entries.extend(answer[key])
        if "NextToken" not in answer:
            return entries, pages
        params["NextToken"] = answer["NextToken"]


def test_list_snapshot_blocks_pages(ebs, many_blocks):
    child = many_blocks[1]
    entries, pages = collect(ebs.list_snapshot_blocks, "Blocks", SnapshotId=child, MaxResults=100)
    assert pages == 3
    assert [entry["BlockIndex"] for entry in entries] == list(range(250))
    assert len(ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]) == 250


def test_list_changed_blocks_pages_from_a_starting_index(ebs, many_blocks):
    parent, child = many_blocks
    entries, pages = collect(ebs.list_changed_blocks, "ChangedBlocks", FirstSnapshotId=parent, SecondSnapshotId=child, MaxResults=100, StartingBlockIndex=40)
    assert pages == 3
    assert [entry["BlockIndex"] for entry in entries] == list(range(40, 250))


def test_starting_block_index_skips_lower_blocks(ebs, many_blocks):
    child = many_blocks[1]
    blocks = ebs.list_snapshot_blocks(SnapshotId=child, StartingBlockIndex=200)["Blocks"]
    assert [entry["BlockIndex"] for entry in blocks] == list(range(200, 250))


@pytest.mark.parametrize("max_results", [99, 10001])
@pytest.mark.parametrize("operation", ["list_snapshot_blocks", "list_changed_blocks"])
def test_max_results_must_be_between_100_and_10000(ebs, raw_ebs, operation, max_results):
    snapshot_id = write_snapshot(ebs, {0: block(1)})
    argument = "SnapshotId" if operation == "list_snapshot_blocks" else "SecondSnapshotId"
    response = error_of(getattr(raw_ebs, operation), **{argument: snapshot_id, "MaxResults": max_results})
    assert_error(response, 400, "ValidationException")


def test_foreign_page_token_is_refused(ebs, many_blocks):
    parent, child = many_blocks
    token = ebs.list_snapshot_blocks(SnapshotId=child, MaxResults=100)["NextToken"]
    response = error_of(ebs.list_changed_blocks, FirstSnapshotId=parent, SecondSnapshotId=child, NextToken=token)
    assert_error(response, 400, "ValidationException", "INVALID_PAGE_TOKEN")
