# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A control node whose clock is far ahead of AWS's: every module fails before it writes anything.

AWS refuses requests signed more than 15 minutes away from its clock (RequestExpired, "The request
reached the service more than 15 minutes after the date stamp on the request ..., or the date stamp
on the request is more than 15 minutes in the future", https://docs.aws.amazon.com/AWSEC2/latest/APIReference/CommonErrors.html).
The local endpoint does the same (``tests/localaws/clock.py``); here its clock is set 30 days behind
the machine's, which is what AWS sees of a control node 30 days ahead. The danger is retention:
``keep_within`` counted from a clock a month ahead makes every snapshot look a month old.

Each refused call must be attempted once: the modules' retry policies must not retry a clock error
(it cannot heal by waiting).
"""
from datetime import datetime, timedelta, timezone

import pytest

from tests.functional.conftest import playbook  # noqa: F401  pylint: disable=unused-import
from tests.localaws.faults import is_mutating

DAY = 24 * 3600
BEHIND = -30 * DAY
POLICY_TAG = "blockwise:policy"
AZ = "us-east-1a"


def task(module, title="run", **params):
    return {"name": title, "blockwise.ebs." + module: params, "register": "out", "ignore_errors": True}


def policy_snapshots(aws, ec2, count, age):
    """``count`` daily-policy snapshots of one volume, ``age`` (+ i hours) old by the machine's clock."""
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"]
    ids = []
    for number in range(count):
        spec = [{"ResourceType": "snapshot", "Tags": [{"Key": POLICY_TAG, "Value": "daily"}]}]
        snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]
        aws.backdate_snapshot(snapshot_id, datetime.now(timezone.utc) - age - timedelta(hours=number))
        ids.append(snapshot_id)
    return volume_id, ids


def existing(ec2):
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_prune_with_keep_within_deletes_nothing_when_the_clocks_disagree(aws, playbook):
    ec2 = aws.client("ec2")
    # Taken "just now" by AWS's clock (30 days behind the control node): a month old by the node's clock.
    dummy, ids = policy_snapshots(aws, ec2, 5, timedelta(days=30))
    aws.reset_counters()
    aws.set_clock_skew(BEHIND)
    run = playbook([task("ebs_snapshot_prune", policy="daily", retention={"keep_within": "7 days"})])
    counts = aws.counters()
    aws.clear_clock_skew()
    res = run.result("run")
    assert res.get("failed") is True, res
    assert "Could not read the snapshots in scope" in res["msg"]
    assert "RequestExpired" in res["msg"] and "Request has expired" in res["msg"]
    assert "ec2:DeleteSnapshot" not in counts
    assert counts["ec2:DescribeSnapshots"] == 1  # refused once, not retried
    assert counts.get("sts:GetCallerIdentity", 0) <= 1
    assert existing(ec2) == set(ids)

    # The premise: with agreeing clocks, the same policy from the node's clock would delete all five.
    planned = playbook([task("ebs_snapshot_prune", policy="daily", retention={"keep_within": "7 days"})], check=True).result("run")
    assert {item["snapshot_id"] for item in planned["deleted"]} == set(ids)
    assert existing(ec2) == set(ids)


def _refused_once(counts):
    """Every action was attempted exactly once (a clock error is never retried)."""
    return {key: count for key, count in counts.items() if count != 1}


@pytest.mark.parametrize("module, params", [
    ("ebs_snapshot_policy", {"name": "daily", "volume_filters": {"tag:backup": "yes"}, "frequency": "1d"}),
    ("ebs_snapshot_prune", {"policy": "daily", "retention": {"keep_last": 1}}),
    ("ami_snapshot_tag", {"all_images": True}),
    ("ebs_default_encryption", {"regions": ["us-east-1", "eu-west-1"]}),
])
def test_every_module_fails_without_a_write_when_the_clocks_disagree(aws, playbook, module, params):
    ec2 = aws.client("ec2")
    ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": "yes"}]}])
    aws.reset_counters()
    aws.set_clock_skew(BEHIND)
    run = playbook([task(module, **params)])
    counts = aws.counters()
    aws.clear_clock_skew()
    res = run.result("run")
    assert res.get("failed") is True, res
    assert any(code in res["msg"] for code in ("RequestExpired", "SignatureDoesNotMatch", "InvalidSignatureException")), res["msg"]
    assert not any(is_mutating(key) for key in counts), counts
    assert _refused_once(counts) == {}, counts
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False


def test_block_put_fails_without_a_snapshot_when_the_clocks_disagree(aws, playbook, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"\x07" * 524288 * 3)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    aws.reset_counters()
    aws.set_clock_skew(BEHIND)
    run = playbook([task("ebs_block_put", src=str(image), state_dir=str(state_dir))])
    counts = aws.counters()
    aws.clear_clock_skew()
    res = run.result("run")
    assert res.get("failed") is True, res
    assert any(code in res["msg"] for code in ("RequestExpired", "InvalidSignatureException")), res["msg"]
    assert _refused_once(counts) == {}, counts
    assert not any(key.startswith("ebs:PutSnapshotBlock") or key == "ebs:CompleteSnapshot" for key in counts), counts
    assert aws.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
