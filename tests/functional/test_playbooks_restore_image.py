# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/restore_image.yml (blockwise.ebs.restore_image) through ansible-playbook against the local endpoint.

Snapshots are written with plain boto3 calls to the EBS direct APIs; the restored file is compared byte for byte.
"""
import hashlib
import random

import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tests.localaws.blockdata import write_snapshot

PLAYBOOK = "blockwise.ebs.restore_image"
ROLE = "blockwise.ebs.disk_image : "
POLL = ROLE + "Wait for the transfer ({0})"
SUMMARY = ROLE + "Summarise the transfer ({0})"
REGION = "eu-west-1"
BS = 524288
GIB = 1024 ** 3


def random_blocks(indexes, seed):
    rnd = random.Random(seed)
    return {i: rnd.randbytes(BS) for i in indexes}


def expected_sha256(blocks):
    """sha256 of a 1 GiB volume holding ``blocks`` (zeros elsewhere)."""
    digest, zero = hashlib.sha256(), bytes(BS)
    for index in range(GIB // BS):
        digest.update(blocks.get(index, zero))
    return digest.hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(8 * 1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def snapshot(aws):
    blocks = random_blocks([0, 2, 9, 1000, 2047], seed=3)
    return write_snapshot(aws.client("ebs", region=REGION), blocks), blocks


@pytest.fixture
def run(aws, tmp_path):
    """``run(extra_vars, check=False, env=None)``: the playbook against the endpoint."""
    counter = {"n": 0}

    def _run(extra_vars, check=False, env=None):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": aws.endpoint_url, "poll_interval": 1, "workers": 4}, **extra_vars)
        return run_playbook_file(PLAYBOOK, workdir, check=check, extra_vars=extra_vars, env=env or ansible_env(aws.endpoint_url))

    return _run


def test_check_mode_writes_nothing(aws, run, snapshot, tmp_path):
    snapshot_id, _blocks = snapshot
    dest = tmp_path / "restored.raw"
    aws.reset_counters()
    out = run({"snapshot_id": snapshot_id, "restore_path": str(dest), "regions": [REGION]}, check=True)
    assert out.rc == 0, out
    assert out.result(SUMMARY.format(REGION))["msg"].startswith("eu-west-1: would restore {0} to {1} (new, 5 of 2048".format(snapshot_id, dest))
    assert not dest.exists()
    assert aws.mutating_calls() == {}
    assert "ebs:GetSnapshotBlock" not in aws.counters()


def test_restore_is_byte_identical_and_second_run_downloads_nothing(aws, run, snapshot, tmp_path):
    snapshot_id, blocks = snapshot
    dest, manifest = tmp_path / "restored.raw", tmp_path / "restored.manifest"
    args = {"snapshot_id": snapshot_id, "restore_path": str(dest), "manifest": str(manifest), "regions": REGION}
    out = run(args)
    assert out.rc == 0, out
    polls = out.result(POLL.format(REGION))
    assert polls["changed"] is True
    assert polls["results"][-1]["_ansible_item_label"].startswith("restore: done 5/5 blocks (100%)")
    assert "restored {0} to {1} (new): 5 of 2048 blocks".format(snapshot_id, dest) in out.result(SUMMARY.format(REGION))["msg"]
    assert dest.stat().st_size == GIB
    assert dest.stat().st_blocks * 512 < 16 * 1024 * 1024  # sparse: the holes were not written
    assert file_sha256(dest) == expected_sha256(blocks)

    aws.reset_counters()
    again = run(args)
    assert again.rc == 0, again
    assert again.result(POLL.format(REGION))["changed"] is False
    assert "already holds" in again.result(SUMMARY.format(REGION))["msg"]
    assert "ebs:GetSnapshotBlock" not in aws.counters()
    assert aws.mutating_calls() == {}


def test_connection_region_from_the_environment(aws, run, snapshot, tmp_path):
    snapshot_id, blocks = snapshot
    dest = tmp_path / "restored.raw"
    out = run({"snapshot_id": snapshot_id, "restore_path": str(dest)}, env=ansible_env(aws.endpoint_url, region=REGION))
    assert out.rc == 0, out
    assert file_sha256(dest) == expected_sha256(blocks)


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"snapshot_id": None}, "Validate the extra vars", "snapshot_id"),
    ({"snapshot_id": "vol-0123"}, "Check that snapshot_id is a snapshot id", "snapshot_id=vol-0123 is not a snapshot id"),
    ({"restore_path": "/nonexistent/dir/restored.raw"}, "Check that the directory of restore_path exists",
     "the directory /nonexistent/dir does not exist"),
    ({"regions": ["us-east-1", "eu-west-1"]}, "Check that one region is given", "A snapshot is restored from one region"),
    ({"workers": "many"}, "Validate the extra vars", "workers"),
])
def test_bad_extra_vars_fail_clearly(aws, run, snapshot, tmp_path, extra_vars, task, fragment):
    snapshot_id, _blocks = snapshot
    extra_vars = dict({"snapshot_id": snapshot_id, "restore_path": str(tmp_path / "r.raw"), "regions": [REGION]}, **extra_vars)
    if extra_vars["snapshot_id"] is None:
        del extra_vars["snapshot_id"]
    aws.reset_counters()
    out = run(extra_vars)
    assert out.rc != 0, out
    res = out.result(task)
    assert res.get("failed") is True, res
    assert fragment in res["msg"], res["msg"]
    assert aws.counters() == {}
    assert not (tmp_path / "r.raw").exists()


def test_unknown_snapshot_fails_with_the_module_message(aws, run, tmp_path):
    out = run({"snapshot_id": "snap-0123456789abcdef0", "restore_path": str(tmp_path / "r.raw"), "regions": [REGION]})
    assert out.rc != 0, out
    poll = out.result(POLL.format(REGION))
    assert poll["failed"] is True
    failed = [item for item in poll["results"] if item.get("failed")]
    assert failed and "snap-0123456789abcdef0" in failed[-1]["msg"], failed
    assert not (tmp_path / "r.raw").exists()
