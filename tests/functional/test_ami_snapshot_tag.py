# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ami_snapshot_tag through ansible-playbook against the local endpoint.

Images are registered from snapshots made with plain boto3 calls, and the snapshots' tags are read
back with plain boto3 calls too.
"""
import threading
import time

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

MODULE = "blockwise.ebs.ami_snapshot_tag"
IMAGE_ID_TAG = "blockwise:image-id"


# ------------------------------------------------------------------------------------ helpers


def task(aws, name="tag", **params):
    """A module task; the endpoint is also given directly so the task works with or without module_defaults."""
    return {"name": name, MODULE: dict(params, endpoint_url=aws.endpoint_url), "register": "out", "ignore_errors": True}


class Fleet:
    """Registers images from snapshots of one volume and reads snapshot tags back."""

    def __init__(self, aws, region="us-east-1"):
        self.ec2 = aws.client("ec2", region=region)
        self.volume_id = self.ec2.create_volume(Size=1, AvailabilityZone=region + "a")["VolumeId"]

    def snapshot(self, tags=None):
        params = {"VolumeId": self.volume_id}
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        return self.ec2.create_snapshot(**params)["SnapshotId"]

    def image(self, name, devices, root=None, tags=None):
        """``devices``: list of device names (a new snapshot each), or (device, snapshot id / 'ephemeralN' / None)."""
        mappings, snapshots = [], {}
        for entry in devices:
            device, target = entry if isinstance(entry, tuple) else (entry, "new")
            if target == "new":
                target = self.snapshot()
            if target is None:
                mappings.append({"DeviceName": device, "Ebs": {"VolumeSize": 2}})
            elif target.startswith("ephemeral"):
                mappings.append({"DeviceName": device, "VirtualName": target})
            else:
                mappings.append({"DeviceName": device, "Ebs": {"SnapshotId": target}})
                snapshots[device] = target
        params = {"Name": name, "RootDeviceName": root or mappings[0]["DeviceName"], "BlockDeviceMappings": mappings}
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "image", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        return self.ec2.register_image(**params)["ImageId"], snapshots

    def tags(self, snapshot_id):
        snap = self.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        return {tag["Key"]: tag["Value"] for tag in snap.get("Tags", [])}

    def name(self, snapshot_id):
        return self.tags(snapshot_id).get("Name")

    def tag_image(self, image_id, **tags):
        self.ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


@pytest.fixture
def fleet(aws):
    return Fleet(aws)


def by_snapshot(result):
    return {entry["snapshot_id"]: entry for entry in result["snapshots"]}


def forget_snapshot(snapshot_id, region="us-east-1"):
    """Drop a snapshot from this account behind EC2's back, as DescribeSnapshots(OwnerIds=self) answers for
    another account's snapshot (the local endpoint's RegisterImage only maps snapshots of the same account)."""
    del ec2_backends[DEFAULT_ACCOUNT_ID][region].snapshots[snapshot_id]


# ------------------------------------------------------------------------------------ naming


def test_names_images_of_one_to_four_mappings_in_device_order(aws, playbook, fleet):
    one, one_snaps = fleet.image("one", ["/dev/xvda"])
    two, two_snaps = fleet.image("two", [("/dev/sdb", "ephemeral0"), "/dev/sdc", "/dev/xvda"], root="/dev/xvda")
    three, three_snaps = fleet.image("three", ["/dev/sdf", ("/dev/sde", None), "/dev/sda1", "/dev/sdb"], root="/dev/sda1")
    four, four_snaps = fleet.image("four", ["/dev/xvdc", "/dev/xvda", "/dev/sdb10", "/dev/sdb2"], root="/dev/xvda")
    store, dummy = fleet.image("store", [("/dev/sda1", "ephemeral0")])
    aws.reset_counters()

    run = playbook([task(aws, all_images=True)])
    res = run.result("tag")
    assert run.rc == 0, run
    assert res["changed"] is True
    # Images read once, snapshots in one batch (then once more to confirm what was written), one CreateTags
    # per snapshot (each Name differs).
    assert aws.counters() == {"ec2:DescribeImages": 1, "ec2:DescribeSnapshots": 2, "ec2:CreateTags": 10}
    expected = {
        one_snaps["/dev/xvda"]: ("one(001)", one),
        two_snaps["/dev/xvda"]: ("two(001)", two), two_snaps["/dev/sdc"]: ("two(002)", two),
        three_snaps["/dev/sda1"]: ("three(001)", three), three_snaps["/dev/sdb"]: ("three(002)", three),
        three_snaps["/dev/sdf"]: ("three(003)", three),
        four_snaps["/dev/xvda"]: ("four(001)", four), four_snaps["/dev/sdb2"]: ("four(002)", four),
        four_snaps["/dev/sdb10"]: ("four(003)", four), four_snaps["/dev/xvdc"]: ("four(004)", four),
    }
    for snapshot_id, (name, image_id) in expected.items():
        assert fleet.tags(snapshot_id) == {"Name": name, IMAGE_ID_TAG: image_id}
    entries = by_snapshot(res)
    assert set(entries) == set(expected)
    assert entries[four_snaps["/dev/sdb10"]] == {
        "snapshot_id": four_snaps["/dev/sdb10"], "image_id": four, "device": "/dev/sdb10", "index": 3, "name": "four(003)",
        "changed": True, "tags_added": {"Name": "four(003)", IMAGE_ID_TAG: four}, "tags_removed": {}, "also_used_by": [],
    }
    assert res["images"] == {"total": 5, "changed": 4, "unchanged": 1, "without_snapshots": 1}
    assert res["skipped_snapshots"] == [] and res["missing_image_ids"] == []

    aws.reset_counters()
    again = playbook([task(aws, all_images=True)]).result("tag")
    assert aws.counters() == {"ec2:DescribeImages": 1, "ec2:DescribeSnapshots": 1}
    assert again["changed"] is False
    assert not any(entry["changed"] for entry in again["snapshots"])


def test_check_mode_and_diff_change_nothing(aws, playbook, fleet):
    image_id, snaps = fleet.image("web", ["/dev/xvda", "/dev/sdb"], tags={"env": "prod"})
    fleet.ec2.create_tags(Resources=[snaps["/dev/sdb"]], Tags=[{"Key": "owner", "Value": "ops"}])
    aws.reset_counters()
    run = playbook([task(aws, image_ids=[image_id], copy_image_tags=True)], check=True, diff=True)
    res = run.result("tag")
    assert run.rc == 0, run
    assert res["changed"] is True
    assert aws.mutating_calls() == {}
    assert fleet.tags(snaps["/dev/xvda"]) == {}
    assert res["diff"]["before"] == {snaps["/dev/xvda"]: {}, snaps["/dev/sdb"]: {"owner": "ops"}}
    assert res["diff"]["after"][snaps["/dev/sdb"]] == {"Name": "web(002)", IMAGE_ID_TAG: image_id, "env": "prod", "owner": "ops"}
    assert "web(002)" in run.stdout  # the diff is shown to the user
    assert [entry["changed"] for entry in res["snapshots"]] == [True, True]

    assert playbook([task(aws, image_ids=[image_id], copy_image_tags=True)]).rc == 0
    quiet = playbook([task(aws, image_ids=[image_id], copy_image_tags=True)], check=True, diff=True).result("tag")
    assert quiet["changed"] is False
    assert quiet["diff"] == {"before": {}, "after": {}}


def test_templates_with_every_variable(aws, playbook, fleet):
    image_id, snaps = fleet.image("golden", ["/dev/xvda"])
    template = "{image_name}|{image_id}|{index:02d}|{device}|{snapshot_id}|{volume_id}|{date}|{timestamp}"
    res = playbook([task(aws, image_ids=[image_id], name_template=template)]).result("tag")
    created = fleet.ec2.describe_images(ImageIds=[image_id])["Images"][0]["CreationDate"]
    date, clock = created[:10], created[11:19].replace(":", "")
    expected = "golden|{0}|01|/dev/xvda|{1}|{2}|{3}|{4}T{5}Z".format(image_id, snaps["/dev/xvda"], fleet.volume_id, date, date.replace("-", ""), clock)
    assert res["snapshots"][0]["name"] == expected
    assert fleet.name(snaps["/dev/xvda"]) == expected


def test_selection_by_filters_and_ids(aws, playbook, fleet):
    web, web_snaps = fleet.image("front-web-1", ["/dev/xvda"])
    dummy, db_snaps = fleet.image("db-1", ["/dev/xvda"])
    other_region = Fleet(aws, "eu-west-1")
    dummy, far_snaps = other_region.image("front-web-2", ["/dev/xvda"])
    res = playbook([task(aws, filters={"name": "front-web-*"})]).result("tag")
    assert [entry["image_id"] for entry in res["snapshots"]] == [web]
    assert fleet.name(web_snaps["/dev/xvda"]) == "front-web-1(001)"
    assert fleet.name(db_snaps["/dev/xvda"]) is None
    assert other_region.name(far_snaps["/dev/xvda"]) is None

    run = playbook([task(aws, image_ids=[web, "ami-0123456789abcdef0"])])
    res = run.result("tag")
    assert run.rc == 0 and res["changed"] is False
    assert res["missing_image_ids"] == ["ami-0123456789abcdef0"]
    assert "Images not found: ami-0123456789abcdef0" in run.stderr + run.stdout

    res = playbook([task(aws, filters={"name": "front-web-*"}, region="eu-west-1")]).result("tag")
    assert res["changed"] is True and other_region.name(far_snaps["/dev/xvda"]) == "front-web-2(001)"


# ------------------------------------------------------------------------------------ tags


def test_image_tags_follow_and_shared_changes_are_batched(aws, playbook, fleet):
    images = [fleet.image("app-%d" % i, ["/dev/xvda", "/dev/sdb"], tags={"env": "prod", "team": "web"}) for i in range(3)]
    all_snaps = [snap for dummy, snaps in images for snap in snaps.values()]
    params = {"filters": {"name": "app-*"}, "copy_image_tags": True, "tags": {"backup": "ami"}}
    assert playbook([task(aws, **params)]).rc == 0
    assert fleet.tags(images[0][1]["/dev/sdb"]) == {
        "Name": "app-0(002)", IMAGE_ID_TAG: images[0][0], "env": "prod", "team": "web", "backup": "ami",
    }

    # The same change on every image: one CreateTags for all six snapshots.
    for image_id, dummy in images:
        fleet.tag_image(image_id, env="staging")
    aws.reset_counters()
    res = playbook([task(aws, **params)]).result("tag")
    assert res["changed"] is True
    assert all(entry["tags_added"] == {"env": "staging"} for entry in res["snapshots"])
    assert aws.mutating_calls() == {"ec2:CreateTags": 1}
    assert all(fleet.tags(snap)["env"] == "staging" for snap in all_snaps)

    # A per-image change: one call per image, not per snapshot.
    for number, (image_id, dummy) in enumerate(images):
        fleet.tag_image(image_id, version="v%d" % number)
    aws.reset_counters()
    assert playbook([task(aws, **params)]).result("tag")["changed"] is True
    assert aws.mutating_calls() == {"ec2:CreateTags": 3}

    # A tag removed from the images stays on the snapshots unless purge_tags is set.
    fleet.ec2.delete_tags(Resources=[image_id for image_id, dummy in images], Tags=[{"Key": "team"}])
    for snap in all_snaps[:2]:
        fleet.ec2.create_tags(Resources=[snap], Tags=[{"Key": "blockwise:protect", "Value": "yes"}])
    aws.reset_counters()
    res = playbook([task(aws, **params)]).result("tag")
    assert res["changed"] is False and aws.mutating_calls() == {}
    assert all(fleet.tags(snap)["team"] == "web" for snap in all_snaps)

    res = playbook([task(aws, purge_tags=True, **params)], diff=True).result("tag")
    assert res["changed"] is True
    assert all(entry["tags_removed"] == {"team": "web"} for entry in res["snapshots"])
    assert aws.mutating_calls() == {"ec2:DeleteTags": 1}
    assert all("team" not in fleet.tags(snap) for snap in all_snaps)
    assert fleet.tags(all_snaps[0])["blockwise:protect"] == "yes"  # the collection's own tags are never purged
    assert fleet.tags(all_snaps[0])["Name"] == "app-0(001)"

    aws.reset_counters()
    assert playbook([task(aws, purge_tags=True, **params)]).result("tag")["changed"] is False
    assert aws.mutating_calls() == {}


def test_renamed_image_renames_its_snapshots(aws, playbook, fleet):
    image_id, snaps = fleet.image("web", ["/dev/xvda"])
    assert playbook([task(aws, image_ids=[image_id])]).rc == 0
    res = playbook([task(aws, image_ids=[image_id], name_template="{image_name}-disk{index}")]).result("tag")
    assert res["snapshots"][0]["tags_added"] == {"Name": "web-disk1"}
    assert fleet.tags(snaps["/dev/xvda"]) == {"Name": "web-disk1", IMAGE_ID_TAG: image_id}


def test_disabled_images_are_named_too(aws, playbook, fleet):
    image_id, snaps = fleet.image("retired", ["/dev/xvda"])
    fleet.ec2.disable_image(ImageId=image_id)
    res = playbook([task(aws, filters={"name": "retired"})]).result("tag")
    assert [entry["name"] for entry in res["snapshots"]] == ["retired(001)"]
    assert fleet.name(snaps["/dev/xvda"]) == "retired(001)"


def test_user_tags_are_never_removed_without_purge(aws, playbook, fleet):
    image_id, snaps = fleet.image("web", ["/dev/xvda"])
    fleet.ec2.create_tags(Resources=[snaps["/dev/xvda"]], Tags=[{"Key": "Name", "Value": "hand-made"}, {"Key": "cost", "Value": "42"}])
    res = playbook([task(aws, image_ids=[image_id])], diff=True).result("tag")
    assert res["snapshots"][0]["tags_added"] == {"Name": "web(001)", IMAGE_ID_TAG: image_id}
    assert res["diff"]["before"][snaps["/dev/xvda"]] == {"Name": "hand-made", "cost": "42"}
    assert fleet.tags(snaps["/dev/xvda"]) == {"Name": "web(001)", IMAGE_ID_TAG: image_id, "cost": "42"}


# ------------------------------------------------------------------------------------ edge cases


def test_snapshot_shared_by_two_images_is_named_once_and_never_flips(aws, playbook, fleet):
    shared = fleet.snapshot()
    first, first_snaps = fleet.image("first", [("/dev/xvda", shared), "/dev/sdb"])
    second, second_snaps = fleet.image("second", [("/dev/xvda", shared), "/dev/sdb"])
    owner, other = sorted([first, second])  # same creation second: the lower image id wins
    owner_name = "first(001)" if owner == first else "second(001)"
    res = playbook([task(aws, image_ids=[first, second])]).result("tag")
    assert fleet.tags(shared) == {"Name": owner_name, IMAGE_ID_TAG: owner}
    entry = by_snapshot(res)[shared]
    assert entry["image_id"] == owner and entry["also_used_by"] == [other]
    assert [(s["snapshot_id"], s["image_id"], s["reason"]) for s in res["skipped_snapshots"]] == [(shared, other, "shared")]
    assert fleet.name(first_snaps["/dev/sdb"]) == "first(002)" and fleet.name(second_snaps["/dev/sdb"]) == "second(002)"

    # The other image alone: the snapshot stays with the image that still maps it.
    aws.reset_counters()
    res = playbook([task(aws, image_ids=[other])]).result("tag")
    assert res["changed"] is False and aws.mutating_calls() == {}
    assert res["skipped_snapshots"][0]["reason"] == "shared" and owner in res["skipped_snapshots"][0]["msg"]
    assert aws.counters()["ec2:DescribeImages"] == 2  # the selection, then the recorded owner
    assert fleet.tags(shared)["Name"] == owner_name

    # Once the owner is gone, the remaining image takes it, and keeps it.
    fleet.ec2.deregister_image(ImageId=owner)
    res = playbook([task(aws, image_ids=[first, second])]).result("tag")
    assert by_snapshot(res)[shared]["image_id"] == other
    assert fleet.tags(shared)[IMAGE_ID_TAG] == other
    aws.reset_counters()
    assert playbook([task(aws, image_ids=[first, second])]).result("tag")["changed"] is False
    assert aws.mutating_calls() == {}


def test_snapshot_of_another_account_is_skipped(aws, playbook, fleet):
    image_id, snaps = fleet.image("mixed", ["/dev/xvda", "/dev/sdb"])
    forget_snapshot(snaps["/dev/sdb"])
    aws.reset_counters()
    run = playbook([task(aws, image_ids=[image_id])])
    res = run.result("tag")
    assert run.rc == 0, run
    assert [entry["snapshot_id"] for entry in res["snapshots"]] == [snaps["/dev/xvda"]]
    assert res["skipped_snapshots"] == [{
        "snapshot_id": snaps["/dev/sdb"], "image_id": image_id, "device": "/dev/sdb", "index": 2, "reason": "not_owned",
        "msg": "snapshot {0} is not among this account's snapshots (owned by another account, or deleted)".format(snaps["/dev/sdb"]),
    }]
    assert aws.mutating_calls() == {"ec2:CreateTags": 1}


def test_snapshot_deleted_while_tagging_is_reported(aws, playbook, fleet):
    images = [fleet.image("app-%d" % i, ["/dev/xvda", "/dev/sdb"]) for i in range(3)]
    params = {"filters": {"name": "app-*"}, "tags": {"team": "storage"}}
    assert playbook([task(aws, filters={"name": "app-*"})]).rc == 0
    doomed_image, doomed = images[1][0], images[1][1]["/dev/sdb"]

    # Every snapshot needs the same new tag: one batched CreateTags, slowed down so that the image can
    # be deregistered and one of its snapshots deleted after the read and before the write.
    aws.set_faults(latency=0.5, actions=["CreateTags"])
    aws.reset_counters()

    def delete_when_tagging_starts():
        deadline = time.monotonic() + 60
        while aws.counters().get("ec2:CreateTags", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        fleet.ec2.deregister_image(ImageId=doomed_image)
        fleet.ec2.delete_snapshot(SnapshotId=doomed)

    worker = threading.Thread(target=delete_when_tagging_starts, daemon=True)
    worker.start()
    run = playbook([task(aws, **params)])
    worker.join()
    res = run.result("tag")
    assert run.rc == 0, run
    vanished = [s for s in res["skipped_snapshots"] if s["reason"] == "vanished"]
    assert [s["snapshot_id"] for s in vanished] == [doomed]
    assert vanished[0]["image_id"] == doomed_image and "InvalidSnapshot.NotFound" in vanished[0]["msg"]
    assert doomed not in by_snapshot(res)
    assert "Snapshots deleted while being tagged" in run.stdout + run.stderr
    survivors = [snap for image_id, snaps in images for snap in snaps.values() if snap != doomed]
    assert all(fleet.tags(snap)["team"] == "storage" for snap in survivors)
    assert all(by_snapshot(res)[snap]["changed"] for snap in survivors)


def test_not_found_error_naming_the_snapshot(aws, playbook, fleet):
    images = [fleet.image("app-%d" % i, ["/dev/xvda"]) for i in range(4)]
    assert playbook([task(aws, filters={"name": "app-*"})]).rc == 0
    gone = images[2][1]["/dev/xvda"]
    aws.inject_error("CreateTags", status=400, code="InvalidSnapshot.NotFound", message="The snapshot '{0}' does not exist.".format(gone))
    aws.reset_counters()
    res = playbook([task(aws, filters={"name": "app-*"}, tags={"team": "x"})]).result("tag")
    assert [s["snapshot_id"] for s in res["skipped_snapshots"]] == [gone]
    assert aws.mutating_calls() == {"ec2:CreateTags": 2}  # the failed batch, then the rest in one call
    assert len(res["snapshots"]) == 3 and all(entry["changed"] for entry in res["snapshots"])


def test_write_error_fails_with_partial_results(aws, playbook, fleet):
    image_id, snaps = fleet.image("web", ["/dev/xvda", "/dev/sdb"])
    aws.inject_error("CreateTags", status=403, code="UnauthorizedOperation", message="You are not authorized to perform this operation.",
                     count=None)
    run = playbook([task(aws, image_ids=[image_id])])
    res = run.result("tag")
    assert res["failed"] is True
    assert res["msg"].startswith("Tagging stopped with 2 snapshot(s) not fully tagged")
    assert "UnauthorizedOperation: You are not authorized" in res["msg"]
    assert all("error" in entry and entry["changed"] is False for entry in res["snapshots"])


def test_converges_under_throttling_and_server_errors(aws, playbook, fleet):
    images = [fleet.image("app-%d" % i, ["/dev/xvda", "/dev/sdb", "/dev/sdc"], tags={"env": "prod"}) for i in range(5)]
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, seed=7)
    params = {"filters": {"name": "app-*"}, "copy_image_tags": True}
    run = playbook([task(aws, **params)])
    assert sum(aws.faulted_counters().values()) > 0
    aws.clear_faults()  # the checks below read through a plain client
    assert run.rc == 0, run
    assert run.result("tag")["changed"] is True
    for number, (image_id, snaps) in enumerate(images):
        assert fleet.tags(snaps["/dev/sdc"]) == {"Name": "app-%d(003)" % number, IMAGE_ID_TAG: image_id, "env": "prod"}
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, seed=8)
    aws.reset_counters()
    again = playbook([task(aws, **params)])
    assert again.rc == 0, again
    assert again.result("tag")["changed"] is False
    assert "ec2:CreateTags" not in aws.counters()


# ------------------------------------------------------------------------------------ bad input


BAD_INPUT = [
    ({"all_images": True, "name_template": "{imge_name}({index:03d})"},
     "name_template: unknown variable 'imge_name' in template '{imge_name}({index:03d})'; allowed: image_name, image_id, index"),
    ({"all_images": True, "name_template": "{instance_name}"}, "unknown variable 'instance_name'"),
    ({"all_images": True, "name_template": "{index:s}"}, "format spec ':s' does not apply to integer 'index'"),
    ({"all_images": True, "name_template": "x" * 300}, "name_template: template 'xxxx"),
    ({"all_images": True, "name_template": ""}, "name_template must not be empty"),
    ({"all_images": True, "tags": {"Env": "v" * 300}}, "tags.Env: value 'vvvv"),
    ({"all_images": True, "tags": {"Name": "x"}}, "tags: the Name tag is set from name_template"),
    ({"all_images": True, "tags": {"aws:x": "1"}}, "reserved prefix 'aws:'"),
    ({}, "one of the following is required: image_ids, filters, all_images"),
    ({"all_images": False}, "all_images=false selects no image"),
    ({"filters": {}}, "filters is empty, which would select every image; set all_images=true"),
    ({"image_ids": []}, "image_ids must not be empty"),
    ({"all_images": True, "owners": []}, "owners must not be empty"),
    ({"all_images": True, "filters": {"name": "x"}}, "parameters are mutually exclusive: filters|all_images"),
    ({"all_images": True, "purge_tags": "sometimes"}, "purge_tags"),
]


def test_bad_input_fails_before_any_aws_call(aws, playbook, fleet):
    fleet.image("web", ["/dev/xvda"])
    aws.reset_counters()
    # One playbook, one failing task per case (ignore_errors), to keep the test fast.
    run = playbook([task(aws, name="bad%d" % number, **params) for number, (params, dummy) in enumerate(BAD_INPUT)])
    for number, (params, fragment) in enumerate(BAD_INPUT):
        res = run.result("bad%d" % number)
        assert res["failed"] is True, params
        assert fragment in res["msg"], (params, res["msg"])
    assert aws.counters() == {}


def test_rendered_name_too_long_fails_before_any_write(aws, playbook, fleet):
    dummy, short = fleet.image("short", ["/dev/xvda"])
    long_image, long_snaps = fleet.image("n" * 128, ["/dev/xvda", "/dev/sdb"])
    aws.reset_counters()
    res = playbook([task(aws, all_images=True, name_template="{image_name}-{image_name}-{index:03d}")]).result("tag")
    assert res["failed"] is True
    assert "name_template: the Name of snapshot {0} (image {1}, /dev/xvda): value 'nnnn".format(long_snaps["/dev/xvda"], long_image) in res["msg"]
    assert "is 261 characters long; EC2 tag values allow at most 256" in res["msg"]
    assert long_snaps["/dev/sdb"] in res["msg"]
    assert aws.mutating_calls() == {}
    assert fleet.tags(short["/dev/xvda"]) == {}


def test_too_many_tags_fails_before_any_write(aws, playbook, fleet):
    image_id, snaps = fleet.image("web", ["/dev/xvda", "/dev/sdb"])
    fleet.ec2.create_tags(Resources=[snaps["/dev/sdb"]], Tags=[{"Key": "k%02d" % i, "Value": "v"} for i in range(49)])
    aws.reset_counters()
    res = playbook([task(aws, image_ids=[image_id])]).result("tag")
    assert res["failed"] is True
    assert "snapshot {0} (image {1}, /dev/sdb) would have 51 tags; EC2 allows at most 50".format(snaps["/dev/sdb"], image_id) in res["msg"]
    assert aws.mutating_calls() == {}
    res = playbook([task(aws, image_ids=[image_id], purge_tags=True)]).result("tag")
    assert res.get("failed") is not True, res
    assert fleet.tags(snaps["/dev/sdb"]) == {"Name": "web(002)", IMAGE_ID_TAG: image_id}
