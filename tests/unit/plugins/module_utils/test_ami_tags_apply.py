# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the write side of the AMI snapshot planner, against a fake EC2 client."""
from __future__ import annotations

import botocore.exceptions
import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import ami_tags as core


def client_error(code, message, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeEc2:
    """Records CreateTags/DeleteTags; fails calls naming a snapshot in ``gone`` like EC2 (whole call)."""

    def __init__(self, gone=(), name_in_message=True, fail_on=None):
        self.gone = set(gone)
        self.name_in_message = name_in_message
        self.fail_on = fail_on
        self.calls = []
        self.tags = {}

    def _check(self, operation, resources, kwargs):
        assert kwargs.pop("aws_retry") is True
        self.calls.append((operation, list(resources)))
        if self.fail_on and self.fail_on in resources:
            raise client_error("UnauthorizedOperation", "You are not authorized to perform this operation.", operation)
        missing = sorted(self.gone.intersection(resources))
        if missing:
            message = "The snapshot '%s' does not exist." % missing[0] if self.name_in_message else None
            raise client_error("InvalidSnapshot.NotFound", message, operation)

    def create_tags(self, Resources, Tags, **kwargs):  # noqa: N803  pylint: disable=invalid-name
        self._check("CreateTags", Resources, kwargs)
        for rid in Resources:
            self.tags.setdefault(rid, {}).update({tag["Key"]: tag["Value"] for tag in Tags})

    def delete_tags(self, Resources, Tags, **kwargs):  # noqa: N803  pylint: disable=invalid-name
        self._check("DeleteTags", Resources, kwargs)
        assert all(set(tag) == {"Key"} for tag in Tags)
        for rid in Resources:
            for tag in Tags:
                self.tags.get(rid, {}).pop(tag["Key"], None)


def shared_calls(count):
    ids = ["snap-%02d" % i for i in range(count)]
    return ids, {"delete": [], "create": [{"tags": {"env": "prod"}, "resources": ids}]}


def test_apply_writes_every_call_deletes_first():
    ec2 = FakeEc2()
    ec2.tags = {"snap-1": {"old": "x"}}
    calls = {
        "delete": [{"tags": {"old": None}, "resources": ["snap-1"]}],
        "create": [{"tags": {"Name": "a"}, "resources": ["snap-1"]}, {"tags": {"env": "prod"}, "resources": ["snap-1", "snap-2"]}],
    }
    outcome = core.apply(ec2, calls)
    assert outcome == {"written": {"snap-1", "snap-2"}, "vanished": {}, "error": None, "unfinished": set()}
    assert [c[0] for c in ec2.calls] == ["DeleteTags", "CreateTags", "CreateTags"]
    assert ec2.tags == {"snap-1": {"Name": "a", "env": "prod"}, "snap-2": {"env": "prod"}}


def test_vanished_snapshot_named_in_the_message_is_set_aside():
    ids, calls = shared_calls(6)
    ec2 = FakeEc2(gone={"snap-03"})
    outcome = core.apply(ec2, calls)
    assert set(outcome["vanished"]) == {"snap-03"}
    assert "InvalidSnapshot.NotFound" in outcome["vanished"]["snap-03"]
    assert outcome["written"] == set(ids) - {"snap-03"}
    assert outcome["error"] is None
    assert len(ec2.calls) == 2  # the failed call, then the rest in one call


def test_vanished_snapshots_without_ids_in_the_message_are_found_by_halving():
    ids, calls = shared_calls(16)
    ec2 = FakeEc2(gone={"snap-02", "snap-11"}, name_in_message=False)
    outcome = core.apply(ec2, calls)
    assert set(outcome["vanished"]) == {"snap-02", "snap-11"}
    assert outcome["written"] == set(ids) - {"snap-02", "snap-11"}
    assert all(rid in ec2.tags for rid in outcome["written"])
    assert len(ec2.calls) <= 2 * 2 * 4 + 1  # two leaves, log2(16) levels


def test_a_vanished_snapshot_is_not_retried_in_later_calls():
    calls = {
        "delete": [{"tags": {"old": None}, "resources": ["snap-1", "snap-2"]}],
        "create": [{"tags": {"env": "prod"}, "resources": ["snap-1", "snap-2"]}],
    }
    ec2 = FakeEc2(gone={"snap-2"})
    outcome = core.apply(ec2, calls)
    assert set(outcome["vanished"]) == {"snap-2"}
    assert ec2.calls == [("DeleteTags", ["snap-1", "snap-2"]), ("DeleteTags", ["snap-1"]), ("CreateTags", ["snap-1"])]


def test_single_vanished_snapshot():
    ec2 = FakeEc2(gone={"snap-1"}, name_in_message=False)
    outcome = core.apply(ec2, {"create": [{"tags": {"Name": "a"}, "resources": ["snap-1"]}]})
    assert set(outcome["vanished"]) == {"snap-1"} and outcome["written"] == set()


def test_other_errors_stop_and_report_what_is_unfinished():
    calls = {
        "delete": [],
        "create": [
            {"tags": {"Name": "a"}, "resources": ["snap-1"]},
            {"tags": {"Name": "b"}, "resources": ["snap-2"]},
            {"tags": {"env": "prod"}, "resources": ["snap-1", "snap-3"]},
        ],
    }
    outcome = core.apply(FakeEc2(fail_on="snap-2"), calls)
    assert outcome["written"] == {"snap-1"}
    assert outcome["unfinished"] == {"snap-1", "snap-2", "snap-3"}
    assert outcome["error"] == "CreateTags failed: UnauthorizedOperation: You are not authorized to perform this operation."


def test_apply_of_nothing():
    ec2 = FakeEc2()
    assert core.apply(ec2, {"delete": [], "create": []}) == {"written": set(), "vanished": {}, "error": None, "unfinished": set()}
    assert not ec2.calls


class FakeReader:
    """DescribeImages/DescribeSnapshots answering from lists, recording the parameters."""

    def __init__(self, images=(), snapshots=()):
        self.images = list(images)
        self.snapshots = list(snapshots)
        self.calls = []

    def describe_images(self, **kwargs):
        assert kwargs.pop("aws_retry") is True
        self.calls.append(("DescribeImages", kwargs))
        ids = [v for f in kwargs.get("Filters", []) if f["Name"] == "image-id" for v in f["Values"]]
        return {"Images": [dict(i) for i in self.images if not ids or i["ImageId"] in ids]}

    def describe_snapshots(self, **kwargs):
        assert kwargs.pop("aws_retry") is True
        self.calls.append(("DescribeSnapshots", kwargs))
        ids = [v for f in kwargs.get("Filters", []) if f["Name"] == "snapshot-id" for v in f["Values"]]
        return {"Snapshots": [dict(s) for s in self.snapshots if s["SnapshotId"] in ids]}


def test_readers():
    images = [
        {"ImageId": "ami-1", "State": "available", "Tags": [{"Key": "env", "Value": "prod"}]},
        {"ImageId": "ami-2", "State": "deregistered"},
    ]
    reader = FakeReader(images, [{"SnapshotId": "snap-1"}])
    found, missing = core.read_images(reader, image_ids=["ami-1", "ami-2", "ami-3"])
    assert [i["ImageId"] for i in found] == ["ami-1"] and found[0]["tags"] == {"env": "prod"}
    assert missing == ["ami-2", "ami-3"]
    assert reader.calls[0][1]["Owners"] == ["self"]
    assert reader.calls[0][1]["IncludeDisabled"] is True and reader.calls[0][1]["IncludeDeprecated"] is True
    assert core.read_snapshots(reader, []) == []
    assert [s["SnapshotId"] for s in core.read_snapshots(reader, ["snap-1", "snap-2"])] == ["snap-1"]
    assert reader.calls[-1][1]["OwnerIds"] == ["self"]
    assert core.read_other_images(reader, []) == []
    assert [i["ImageId"] for i in core.read_other_images(reader, ["ami-1"])] == ["ami-1"]
    assert "Owners" not in reader.calls[-1][1] and reader.calls[-1][1]["IncludeDisabled"] is True


@pytest.mark.parametrize("count", [1, 200, 201, 450])
def test_snapshots_are_read_in_batches_of_200(count):
    reader = FakeReader(snapshots=[{"SnapshotId": "snap-%04d" % i} for i in range(count)])
    assert len(core.read_snapshots(reader, ["snap-%04d" % i for i in range(count)])) == count
    assert len(reader.calls) == -(-count // 200)


# ------------------------------------------------------------------------------------- confirm


class ReadBackEc2:
    """DescribeSnapshots over ``tags``; ``stale`` answers the first ``lag`` reads of a snapshot with old tags."""

    def __init__(self, tags, stale=None, lag=0):
        self.tags = tags
        self.stale = stale or {}
        self.lag = lag
        self.reads = []

    def describe_snapshots(self, **kwargs):
        assert kwargs.pop("aws_retry") is True and kwargs["OwnerIds"] == ["self"]
        ids = [value for flt in kwargs["Filters"] if flt["Name"] == "snapshot-id" for value in flt["Values"]]
        self.reads.append(ids)
        answer = []
        for sid in ids:
            if sid not in self.tags:
                continue
            tags = self.stale[sid] if sid in self.stale and len(self.reads) <= self.lag else self.tags[sid]
            answer.append({"SnapshotId": sid, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})
        return {"Snapshots": answer}


def item(sid, wanted, to_unset=None):
    return {"snapshot_id": sid, "wanted": wanted, "to_unset": to_unset or {}}


def test_confirm_reads_every_item_once_when_all_hold():
    ec2 = ReadBackEc2({"snap-1": {"Name": "a", "x": "1"}, "snap-2": {"Name": "b"}})
    sleeps = []
    found = core.confirm(ec2, [item("snap-1", {"Name": "a"}), item("snap-2", {"Name": "b"}), item("snap-3", {"Name": "c"})], sleep=sleeps.append)
    assert found == {"snap-1": {"Name": "a", "x": "1"}, "snap-2": {"Name": "b"}, "snap-3": None}
    assert ec2.reads == [["snap-1", "snap-2", "snap-3"]] and sleeps == []


def test_confirm_waits_out_eventual_consistency_before_reporting_drift():
    ec2 = ReadBackEc2({"snap-1": {"Name": "a"}, "snap-2": {"Name": "b"}}, stale={"snap-1": {"Name": "old"}}, lag=2)
    sleeps = []
    found = core.confirm(ec2, [item("snap-1", {"Name": "a"}), item("snap-2", {"Name": "b"})], sleep=sleeps.append, delays=(1, 2, 4))
    assert found["snap-1"] == {"Name": "a"}
    assert ec2.reads == [["snap-1", "snap-2"], ["snap-1"], ["snap-1"]]  # only the mismatch is read again
    assert sleeps == [1, 2]


def test_confirm_gives_up_after_the_waits_and_returns_what_it_read():
    ec2 = ReadBackEc2({"snap-1": {"Name": "someone-else"}})
    sleeps = []
    found = core.confirm(ec2, [item("snap-1", {"Name": "a"})], sleep=sleeps.append, delays=(1, 2))
    assert found == {"snap-1": {"Name": "someone-else"}}
    assert sleeps == [1, 2] and len(ec2.reads) == 3
