# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/upload_image.yml (blockwise.ebs.upload_image) through ansible-playbook against the local endpoint.

The snapshot's blocks are read back with plain boto3 calls and compared with the image.
"""
import random

import pytest

from tests.functional.harness import ansible_env, run_playbook_file

PLAYBOOK = "blockwise.ebs.upload_image"
ROLE = "blockwise.ebs.disk_image : "
POLL = ROLE + "Wait for the transfer ({0})"
SUMMARY = ROLE + "Summarise the transfer ({0})"
REGION = "us-east-1"
BS = 524288
MIB = 1024 * 1024


def write_image(path, size, blocks):
    """A sparse image of ``size`` bytes with ``blocks`` = {index: 512 KiB of data}."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for index, data in sorted(blocks.items()):
            handle.seek(index * BS)
            handle.write(data)
    return str(path)


def random_blocks(indexes, seed):
    rnd = random.Random(seed)
    return {i: rnd.randbytes(BS) for i in indexes}


def snapshot_blocks(aws, snapshot_id, region=REGION):
    """{index: data} of the blocks a snapshot holds, read with plain boto3 calls."""
    ebs = aws.client("ebs", region=region)
    out = {}
    for item in ebs.list_snapshot_blocks(SnapshotId=snapshot_id, MaxResults=1000)["Blocks"]:
        out[item["BlockIndex"]] = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=item["BlockIndex"],
                                                         BlockToken=item["BlockToken"])["BlockData"].read()
    return out


def snapshots(aws, region=REGION):
    return aws.client("ec2", region=region).describe_snapshots(OwnerIds=["self"])["Snapshots"]


@pytest.fixture
def run(aws, tmp_path):
    """``run(extra_vars, check=False)``: the playbook against the endpoint, journals in a scratch directory."""
    counter = {"n": 0}
    state = tmp_path / "state"
    state.mkdir()

    def _run(extra_vars, check=False):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": aws.endpoint_url, "state_dir": str(state), "poll_interval": 1, "workers": 4}, **extra_vars)
        return run_playbook_file(PLAYBOOK, workdir, check=check, extra_vars=extra_vars, env=ansible_env(aws.endpoint_url))

    return _run


@pytest.fixture
def image(tmp_path):
    blocks = random_blocks([0, 3, 17, 200], seed=1)
    return write_image(tmp_path / "web.raw", 256 * MIB + 1000, blocks), blocks


def test_check_mode_hashes_and_uploads_nothing(aws, run, image):
    path, blocks = image
    aws.reset_counters()
    out = run({"image_path": path, "regions": [REGION]}, check=True)
    assert out.rc == 0, out
    assert out.result(SUMMARY.format(REGION))["msg"].startswith("us-east-1: would upload 4 of 2048 blocks")
    assert aws.mutating_calls() == {}
    assert snapshots(aws) == []


def test_upload_prints_progress_then_second_run_changes_nothing(aws, run, image):
    path, blocks = image
    out = run({"image_path": path, "regions": "us-east-1", "snapshot_tags": "Name: web-2024\nteam: web"})
    assert out.rc == 0, out
    polls = out.result(POLL.format(REGION))
    assert polls["changed"] is True
    labels = [item["_ansible_item_label"] for item in polls["results"]]
    assert labels[-1].startswith("upload: done 4/4 blocks (100%) in "), labels
    summary = out.result(SUMMARY.format(REGION))["msg"]
    assert summary.startswith("us-east-1: uploaded 4 of 2048 blocks into snap-")
    (snap,) = snapshots(aws)
    assert snap["State"] == "completed" and snap["VolumeSize"] == 1
    tags = {t["Key"]: t["Value"] for t in snap["Tags"]}
    assert tags["Name"] == "web-2024" and tags["team"] == "web" and tags["blockwise:content"].startswith("sha256:")
    assert tags["blockwise:lineage"] == path  # nightly uploads of one image are one disk for retention
    assert snapshot_blocks(aws, snap["SnapshotId"]) == blocks

    aws.reset_counters()
    again = run({"image_path": path, "regions": [REGION], "snapshot_tags": {"Name": "web-2024", "team": "web"}})
    assert again.rc == 0, again
    assert again.result(POLL.format(REGION))["changed"] is False
    assert "already holds this image" in again.result(SUMMARY.format(REGION))["msg"]
    assert aws.mutating_calls() == {}
    assert len(snapshots(aws)) == 1


def test_incremental_upload_with_manifest_and_two_regions(aws, run, image, tmp_path):
    path, blocks = image
    manifest = str(tmp_path / "web.manifest")
    out = run({"image_path": path, "manifest": manifest})  # no regions: the connection's (AWS_REGION)
    assert out.rc == 0, out
    (parent,) = snapshots(aws)

    changed = random_blocks([3, 500], seed=2)
    path2 = write_image(tmp_path / "web-v2.raw", 256 * MIB + 1000, {**blocks, **changed})
    aws.reset_counters()
    out = run({"image_path": path2, "parent_snapshot_id": parent["SnapshotId"], "manifest": manifest, "regions": [REGION]})
    assert out.rc == 0, out
    assert aws.counters().get("ebs:PutSnapshotBlock") == 2  # only the changed blocks
    child = next(s for s in snapshots(aws) if s["SnapshotId"] != parent["SnapshotId"])
    assert snapshot_blocks(aws, child["SnapshotId"]) == {**blocks, **changed}

    out = run({"image_path": path, "regions": "us-east-1 eu-west-1", "manifest": str(tmp_path / "multi.manifest")})
    assert out.rc == 0, out
    assert "already holds this image" in out.result(SUMMARY.format("us-east-1"))["msg"]
    assert "uploaded 4 of 2048 blocks" in out.result(SUMMARY.format("eu-west-1"))["msg"]
    assert (tmp_path / "multi.manifest.eu-west-1").exists()
    assert len(snapshots(aws, "eu-west-1")) == 1


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"image_path": None}, "Validate the extra vars", "image_path"),
    ({"image_path": "/nonexistent/disk.raw"}, "Check that the image exists", "image_path=/nonexistent/disk.raw does not exist"),
    ({"encryption": "maybe"}, "Validate the extra vars", "encryption must be one of: auto, encrypted, unencrypted"),
    ({"parent_snapshot_id": "snap-0123456789abcdef0", "regions": ["us-east-1", "eu-west-1"]},
     "Check that an incremental upload goes to one region", "with parent_snapshot_id give one"),
    ({"snapshot_tags": "[a, b]"}, "Check that snapshot_tags is a dictionary", "snapshot_tags must be a dictionary"),
    ({"kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/x"}, ROLE + "Check the encryption key",
     "disk_image_kms_key_arn needs disk_image_encryption=encrypted"),
])
def test_bad_extra_vars_fail_clearly_without_writes(aws, run, image, extra_vars, task, fragment):
    path, _blocks = image
    extra_vars = dict({"image_path": path}, **extra_vars)
    if extra_vars["image_path"] is None:
        del extra_vars["image_path"]
    aws.reset_counters()
    out = run(extra_vars)
    assert out.rc != 0, out
    res = out.result(task)
    assert res.get("failed") is True, res
    assert fragment in res["msg"], res["msg"]
    assert aws.mutating_calls() == {}
    assert snapshots(aws) == []
