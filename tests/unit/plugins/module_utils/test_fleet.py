# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the bulk region reads and the bounded-concurrency runner, with a fake EC2 client."""
from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet


class FakeEC2:
    """Answers describe calls from lists, ``page_size`` items per page, and records every call."""

    def __init__(self, page_size=2, **items):
        self.page_size = page_size
        self.items = items
        self.calls = []

    def _page(self, method, key, **params):
        self.calls.append((method, params))
        assert params.pop("aws_retry") is True
        data = self.items.get(key, [])
        start = int(params.get("NextToken") or 0)
        page = {key: data[start:start + self.page_size]}
        if start + self.page_size < len(data):
            page["NextToken"] = str(start + self.page_size)
        return page

    def describe_volumes(self, **params):
        return self._page("describe_volumes", "Volumes", **params)

    def describe_snapshots(self, **params):
        return self._page("describe_snapshots", "Snapshots", **params)

    def describe_images(self, **params):
        return self._page("describe_images", "Images", **params)

    def describe_instances(self, **params):
        return self._page("describe_instances", "Reservations", **params)


def test_read_volumes_follows_pages_and_turns_tags_into_a_dict():
    volumes = [{"VolumeId": "vol-%d" % i, "Tags": [{"Key": "Name", "Value": "v%d" % i}]} for i in range(5)]
    ec2 = FakeEC2(Volumes=volumes)
    result = fleet.read_volumes(ec2, filters={"tag:backup": "yes"})
    assert [v["VolumeId"] for v in result] == ["vol-0", "vol-1", "vol-2", "vol-3", "vol-4"]
    assert result[1]["tags"] == {"Name": "v1"} and fleet.name_of(result[1]) == "v1"
    assert len(ec2.calls) == 3
    assert ec2.calls[0][1]["Filters"] == [{"Name": "tag:backup", "Values": ["yes"]}]
    assert ec2.calls[1][1]["NextToken"] == "2"


def test_id_lists_are_read_in_batches_not_one_call_per_id():
    ec2 = FakeEC2(page_size=1000)
    fleet.read_volumes(ec2, volume_ids=["vol-%d" % i for i in range(450)] + ["vol-1"])
    assert len(ec2.calls) == 3
    assert [len(call[1]["Filters"][0]["Values"]) for call in ec2.calls] == [200, 200, 50]
    assert ec2.calls[0][1]["Filters"][0]["Name"] == "volume-id"


def test_read_attached_volumes_filters_by_instance_ids():
    ec2 = FakeEC2()
    assert fleet.read_attached_volumes(ec2, []) == []
    assert ec2.calls == []
    fleet.read_attached_volumes(ec2, ["i-1", "i-2"])
    assert ec2.calls[0][1]["Filters"] == [{"Name": "attachment.instance-id", "Values": ["i-1", "i-2"]}]


def test_read_snapshots_and_images_are_owner_self():
    ec2 = FakeEC2()
    fleet.read_snapshots(ec2, filters={"tag:blockwise:policy": "daily"})
    fleet.read_images(ec2, include_hidden=True)
    fleet.read_images(ec2)
    assert ec2.calls[0][1]["OwnerIds"] == ["self"]
    assert ec2.calls[1][1] == {"Filters": [], "Owners": ["self"], "IncludeDisabled": True, "IncludeDeprecated": True}
    assert ec2.calls[2][1] == {"Filters": [], "Owners": ["self"]}


def test_read_instances_flattens_reservations_and_defaults_to_live_states():
    reservations = [{"Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}]}, {"Instances": [{"InstanceId": "i-3"}]}]
    ec2 = FakeEC2(Reservations=reservations)
    result = fleet.read_instances(ec2, filters={"tag:Environment": "prod"})
    assert [i["InstanceId"] for i in result] == ["i-1", "i-2", "i-3"]
    names = {f["Name"] for f in ec2.calls[0][1]["Filters"]}
    assert names == {"tag:Environment", "instance-state-name"}


def test_image_snapshot_ids():
    images = [
        {"ImageId": "ami-2", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}, {"VirtualName": "ephemeral0"}]},
        {"ImageId": "ami-1", "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-1"}}, {"Ebs": {"SnapshotId": "snap-2"}}]},
    ]
    assert fleet.image_snapshot_ids(images) == {"snap-1": ["ami-1", "ami-2"], "snap-2": ["ami-1"]}


def test_run_bounded_keeps_order_reports_errors_and_bounds_concurrency():
    lock = threading.Lock()
    state = {"running": 0, "peak": 0}

    def call(item):
        with lock:
            state["running"] += 1
            state["peak"] = max(state["peak"], state["running"])
        time.sleep(0.01)
        with lock:
            state["running"] -= 1
        if item % 5 == 0:
            raise ValueError("bad %d" % item)
        return item * 10

    outcomes = fleet.run_bounded(call, range(1, 21), workers=3)
    assert [item for item, dummy, dummy2 in outcomes] == list(range(1, 21))
    assert [result for item, result, error in outcomes if error is None] == [i * 10 for i in range(1, 21) if i % 5]
    assert [str(error) for item, result, error in outcomes if error is not None] == ["bad 5", "bad 10", "bad 15", "bad 20"]
    assert 1 < state["peak"] <= 3


@pytest.mark.parametrize("workers", [0, 1])
def test_run_bounded_sequential(workers):
    assert fleet.run_bounded(lambda x: x + 1, [1, 2], workers) == [(1, 2, None), (2, 3, None)]
    assert fleet.run_bounded(lambda x: x, [], workers) == []


@pytest.mark.parametrize("filters", [
    {"tag-key": []}, {"tag-key": None}, {"tag:Name": ["web", None]}, {"": "x"}, {"tag-key": [["x"]]}, ["tag-key"],
])
def test_filter_problem_refuses_empty_or_malformed_values(filters):
    problem = fleet.filter_problem(filters, option="volume_filters")
    assert problem and problem.startswith("volume_filters")


@pytest.mark.parametrize("filters", [None, {}, {"tag-key": "backup"}, {"tag:Name": ["a", "b"]}, {"volume-size": 8},
                                     {"tag:Name": ""}])
def test_filter_problem_accepts_usable_filters(filters):
    assert fleet.filter_problem(filters) is None


def test_clock_skew_errors_carry_a_hint():
    from botocore.exceptions import ClientError

    from ansible_collections.blockwise.ebs.plugins.module_utils import aws

    for code, message in (("RequestExpired", "Request has expired."),
                          ("InvalidSignatureException", "Signature expired: 20260101T000000Z is now earlier than ...")):
        exc = ClientError({"Error": {"Code": code, "Message": message}}, "DescribeSnapshots")
        assert aws.error_message(exc).endswith(aws.CLOCK_HINT)
    other = ClientError({"Error": {"Code": "InvalidSignatureException", "Message": "bad key"}}, "X")
    assert "clock" not in aws.error_message(other)
