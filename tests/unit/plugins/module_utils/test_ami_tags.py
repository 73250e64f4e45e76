# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the AMI snapshot naming planner (pure functions, no AWS)."""
from __future__ import annotations

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import ami_tags as core
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import TemplateError


def image(image_id, name, devices, root=None, tags=None, created="2024-01-31T02:00:00.000Z", state="available"):
    """An image as fleet.read_images gives it; ``devices`` maps device -> snapshot id, 'ephemeralN', None (EBS, no snapshot)."""
    mappings = []
    for device, target in devices.items():
        if target is None:
            mappings.append({"DeviceName": device, "Ebs": {"VolumeSize": 8}})
        elif target.startswith("ephemeral"):
            mappings.append({"DeviceName": device, "VirtualName": target})
        elif target == "nodevice":
            mappings.append({"DeviceName": device, "NoDevice": ""})
        else:
            mappings.append({"DeviceName": device, "Ebs": {"SnapshotId": target, "VolumeSize": 8}})
    return {
        "ImageId": image_id, "Name": name, "RootDeviceName": root or next(iter(devices), None), "BlockDeviceMappings": mappings,
        "CreationDate": created, "State": state, "tags": dict(tags or {}),
    }


def snapshot(snapshot_id, tags=None, volume_id="vol-0001"):
    return {"SnapshotId": snapshot_id, "VolumeId": volume_id, "OwnerId": "123456789012", "tags": dict(tags or {})}


def options(**kwargs):
    return core.check_options(**kwargs)


def by_id(result_items):
    return {item["snapshot_id"]: item for item in result_items}


# ----------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("image_ids, filters, all_images, message", [
    ([], None, None, "image_ids must not be empty"),
    (None, {}, None, "filters is empty, which would select every image; set all_images=true"),
    (None, None, False, "all_images=false selects no image"),
    (None, None, None, "all_images=false selects no image"),
])
def test_check_selection_refuses_implicit_all(image_ids, filters, all_images, message):
    with pytest.raises(TemplateError, match=message):
        core.check_selection(image_ids, filters, all_images)


def test_check_selection_refuses_empty_owners():
    with pytest.raises(TemplateError, match=r"owners must not be empty \(it would select every public image too\)"):
        core.check_selection(None, None, True, [])
    core.check_selection(None, None, True, ["self", "123456789012"])


@pytest.mark.parametrize("image_ids, filters, owners, message", [
    (None, {"tag-key": []}, ("self",), r"filters\['tag-key'\] must be a value or a non-empty list of values"),
    (None, {"name": "web", "tag:Team": None}, ("self",), r"filters\['tag:Team'\]"),
    (None, {"name": [None]}, ("self",), r"filters\['name'\]"),
    ([""], None, ("self",), "image_ids: '' is not an id"),
    (["ami-1", "  "], None, ("self",), "image_ids: '  ' is not an id"),
    (["ami-1"], None, ("self", ""), "owners: '' is not an id"),
])
def test_check_selection_refuses_what_would_widen_or_be_ignored(image_ids, filters, owners, message):
    with pytest.raises(TemplateError, match=message):
        core.check_selection(image_ids, filters, None, owners)


@pytest.mark.parametrize("image_ids, filters, all_images", [
    (["ami-1"], None, None), (None, {"name": "web-*"}, None), (None, None, True), (["ami-1"], {"name": "x"}, None),
])
def test_check_selection_accepts(image_ids, filters, all_images):
    core.check_selection(image_ids, filters, all_images)


def test_check_options_defaults():
    assert options() == {"name_template": "{image_name}({index:03d})", "tags": {}, "copy_image_tags": False, "purge_tags": False}


@pytest.mark.parametrize("kwargs, message", [
    ({"name_template": "{image_nme}"}, "name_template: unknown variable 'image_nme'"),
    ({"name_template": "{instance_name}"}, "allowed: image_name, image_id, index, device, snapshot_id, volume_id, date, timestamp"),
    ({"name_template": "x" * 257}, "name_template: template 'x{40}...' renders at least 257 characters"),
    ({"name_template": "x" * 250 + "-{index:08d}"}, "renders at least 259 characters"),
    ({"name_template": ""}, "name_template must not be empty"),
    ({"name_template": "{index:s}"}, "does not apply to integer 'index'"),
    ({"tags": {"Name": "x"}}, "tags: the Name tag is set from name_template"),
    ({"tags": {"blockwise:image-id": "x"}}, "tags: blockwise:image-id is set by the module"),
    ({"tags": {"blockwise:protect": "yes"}}, "tags: blockwise:protect: keys starting with 'blockwise:' are the collection's control tags"),
    ({"tags": {"team": "a", "Blockwise:Policy": "daily", "blockwise:lineage": "x"}}, "tags: Blockwise:Policy, blockwise:lineage: keys"),
    ({"tags": {"aws:x": "1"}}, "reserved prefix 'aws:'"),
    ({"tags": {"Env": "v" * 257}}, "tags.Env: value"),
    ({"tags": {"k%d" % i: "v" for i in range(49)}}, "tags: 49 tags; EC2 allows at most 48"),
])
def test_check_options_errors(kwargs, message):
    with pytest.raises(TemplateError, match=message):
        options(**kwargs)


# ------------------------------------------------------------------------------ order and index


def test_device_order_root_first_then_natural_sort():
    img = image("ami-1", "web", {
        "/dev/sdc": "snap-c", "/dev/xvdb": "snap-b", "/dev/sdb10": "snap-b10", "/dev/sdb2": "snap-b2",
        "/dev/sda1": "snap-root", "/dev/sdd": "ephemeral0", "/dev/sde": None, "/dev/sdf": "nodevice",
    }, root="/dev/sda1")
    assert [(m["index"], m["device"], m["snapshot_id"]) for m in core.snapshot_mappings(img)] == [
        (1, "/dev/sda1", "snap-root"), (2, "/dev/xvdb", "snap-b"), (3, "/dev/sdb2", "snap-b2"),
        (4, "/dev/sdb10", "snap-b10"), (5, "/dev/sdc", "snap-c"),
    ]


def test_order_does_not_depend_on_api_order():
    devices = {"/dev/xvda": "snap-a", "/dev/sdb": "snap-b", "/dev/sdc": "snap-c"}
    forward = image("ami-1", "web", devices, root="/dev/xvda")
    backward = dict(forward, BlockDeviceMappings=list(reversed(forward["BlockDeviceMappings"])))
    assert core.snapshot_mappings(forward) == core.snapshot_mappings(backward)
    assert [m["snapshot_id"] for m in core.snapshot_mappings(forward)] == ["snap-a", "snap-b", "snap-c"]


def test_root_device_on_instance_store_is_not_counted():
    img = image("ami-1", "web", {"/dev/sda1": "ephemeral0", "/dev/sdb": "snap-b"}, root="/dev/sda1")
    assert [(m["index"], m["device"]) for m in core.snapshot_mappings(img)] == [(1, "/dev/sdb")]


def test_images_without_snapshots():
    imgs = [image("ami-1", "store", {"/dev/sda1": "ephemeral0"}), image("ami-2", "empty", {})]
    result = core.plan(imgs, [], options())
    assert result == {"items": [], "skipped": [], "images": ["ami-1", "ami-2"], "without_snapshots": ["ami-1", "ami-2"]}


def test_deregistered_and_duplicate_images_are_ignored():
    a = image("ami-1", "web", {"/dev/sda1": "snap-1"})
    gone = image("ami-0", "old", {"/dev/sda1": "snap-1"}, state="deregistered")
    assert [i["ImageId"] for i in core.live_images([a, gone, a])] == ["ami-1"]
    assert core.referenced_snapshot_ids([a, gone]) == ["snap-1"]


# ----------------------------------------------------------------------------------------- names


def test_plan_names_tags_and_changes():
    img = image("ami-1", "front-web-2024", {"/dev/xvda": "snap-1", "/dev/sdb": "snap-2"}, tags={"env": "prod", "Name": "image tag"})
    snaps = [snapshot("snap-1"), snapshot("snap-2", {"Name": "front-web-2024(002)", "blockwise:image-id": "ami-1", "keep": "me"})]
    result = core.plan([img], snaps, options())
    items = by_id(result["items"])
    assert items["snap-1"]["name"] == "front-web-2024(001)"
    assert items["snap-1"]["to_set"] == {"Name": "front-web-2024(001)", "blockwise:image-id": "ami-1"}
    assert items["snap-1"]["before"] == {}
    assert items["snap-1"]["after"] == {"Name": "front-web-2024(001)", "blockwise:image-id": "ami-1"}
    assert items["snap-2"]["to_set"] == {} and items["snap-2"]["to_unset"] == {}
    assert items["snap-2"]["after"]["keep"] == "me"
    assert (items["snap-2"]["index"], items["snap-2"]["device"]) == (2, "/dev/sdb")


def test_every_variable():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"}, created="2024-01-31T02:03:04.000Z")
    template = "{image_name}|{image_id}|{index:02d}|{device}|{snapshot_id}|{volume_id}|{date}|{timestamp}"
    result = core.plan([img], [snapshot("snap-1", volume_id="vol-9")], options(name_template=template))
    assert result["items"][0]["name"] == "web|ami-1|01|/dev/xvda|snap-1|vol-9|2024-01-31|20240131T020304Z"


def test_missing_creation_date_renders_empty():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"}, created=None)
    result = core.plan([img], [snapshot("snap-1")], options(name_template="{image_name}-{date}"))
    assert result["items"][0]["name"] == "web-"
    assert core.creation_variables({"CreationDate": "garbage"}) == {"date": None, "timestamp": None}
    assert core.creation_variables({"CreationDate": "2024-01-31T02:03:04"}) == {"date": None, "timestamp": None}


def test_copy_image_tags_and_extra_tags():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"}, tags={
        "env": "prod", "team": "web", "Name": "image-name-tag", "aws:cloudformation:stack-name": "s",
        "blockwise:image-id": "forged",
    })
    opts = options(copy_image_tags=True, tags={"team": "storage", "backup": "ami"})
    result = core.plan([img], [snapshot("snap-1")], opts)
    assert result["items"][0]["to_set"] == {
        "env": "prod", "team": "storage", "backup": "ami", "Name": "web(001)", "blockwise:image-id": "ami-1",
    }
    # Without copy_image_tags, the image's tags stay on the image.
    assert "env" not in core.plan([img], [snapshot("snap-1")], options())["items"][0]["to_set"]


def test_without_purge_nothing_is_removed():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"})
    snap = snapshot("snap-1", {"Name": "old name", "owner": "ops", "blockwise:image-id": "ami-1"})
    item = core.plan([img], [snap], options())["items"][0]
    assert item["to_set"] == {"Name": "web(001)"}
    assert item["to_unset"] == {}
    assert item["after"] == {"Name": "web(001)", "owner": "ops", "blockwise:image-id": "ami-1"}


def test_purge_keeps_aws_and_collection_keys():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"}, tags={"env": "prod"})
    snap = snapshot("snap-1", {
        "Name": "web(001)", "blockwise:image-id": "ami-1", "env": "prod", "owner": "ops", "stale": "1",
        "aws:backup:source-resource": "x", "blockwise:protect": "yes", "blockwise:policy": "daily",
    })
    item = core.plan([img], [snap], options(copy_image_tags=True, purge_tags=True))["items"][0]
    assert item["to_set"] == {}
    assert item["to_unset"] == {"owner": "ops", "stale": "1"}
    assert set(item["after"]) == {"Name", "blockwise:image-id", "env", "aws:backup:source-resource", "blockwise:protect", "blockwise:policy"}


def test_tag_changes_helper():
    assert core.tag_changes({"a": "1", "b": "2"}, {"a": "1", "c": "3"}, False) == ({"c": "3"}, {})
    assert core.tag_changes({"a": "1", "b": "2"}, {"a": "9"}, True) == ({"a": "9"}, {"b": "2"})
    assert core.tag_changes({"AWS:x": "1", "Blockwise:protect": ""}, {}, True) == ({}, {})


def test_name_over_256_is_an_error_naming_snapshot_and_image():
    long_name = "n" * 128  # the longest image name EC2 allows
    imgs = [image("ami-%02d" % i, long_name, {"/dev/xvda": "snap-%02d" % i}) for i in range(12)]
    snaps = [snapshot("snap-%02d" % i) for i in range(12)]
    with pytest.raises(core.PlanError) as info:
        core.plan(imgs, snaps, options(name_template="{image_name}-{image_name}-{index:03d}"))
    message = str(info.value)
    assert message.startswith("name_template: the Name of snapshot snap-00 (image ami-00, /dev/xvda): value 'nnnn")
    assert "is 261 characters long; EC2 tag values allow at most 256" in message
    assert message.endswith("; and 2 more")
    assert len(info.value.problems) == 12
    # The same template fits shorter names.
    short = [image("ami-1", "web", {"/dev/xvda": "snap-1"})]
    assert core.plan(short, [snapshot("snap-1")], options(name_template="{image_name}-{image_name}-{index:03d}"))["items"]


def test_tag_limit_is_checked_before_any_write():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"})
    crowded = snapshot("snap-1", {"k%02d" % i: "v" for i in range(49)})
    with pytest.raises(core.PlanError, match=r"snapshot snap-1 \(image ami-1, /dev/xvda\) would have 51 tags; EC2 allows at most 50"):
        core.plan([img], [crowded], options())
    # aws: keys do not count, and purge makes room.
    fine = snapshot("snap-1", dict({"k%02d" % i: "v" for i in range(48)}, **{"aws:a": "1", "aws:b": "2"}))
    assert core.plan([img], [fine], options())["items"][0]["to_set"]
    assert core.plan([img], [crowded], options(purge_tags=True))["items"][0]["to_unset"]


# -------------------------------------------------------------------------- ownership and sharing


def test_snapshot_not_owned_is_skipped():
    img = image("ami-1", "web", {"/dev/xvda": "snap-mine", "/dev/sdb": "snap-theirs"})
    result = core.plan([img], [snapshot("snap-mine")], options())
    assert [i["snapshot_id"] for i in result["items"]] == ["snap-mine"]
    assert result["skipped"] == [{
        "snapshot_id": "snap-theirs", "image_id": "ami-1", "device": "/dev/sdb", "index": 2, "reason": "not_owned",
        "msg": "snapshot snap-theirs is not among this account's snapshots (owned by another account, or deleted)",
    }]


def shared_images():
    old = image("ami-b", "old", {"/dev/xvda": "snap-s", "/dev/sdb": "snap-old"}, created="2024-01-01T00:00:00.000Z")
    new = image("ami-a", "new", {"/dev/xvda": "snap-s", "/dev/sdb": "snap-new"}, created="2024-06-01T00:00:00.000Z")
    return old, new


def test_shared_snapshot_goes_to_the_oldest_image():
    old, new = shared_images()
    snaps = [snapshot("snap-s"), snapshot("snap-old"), snapshot("snap-new")]
    result = core.plan([new, old], snaps, options())
    items = by_id(result["items"])
    assert items["snap-s"]["image_id"] == "ami-b" and items["snap-s"]["name"] == "old(001)"
    assert items["snap-s"]["also_used_by"] == ["ami-a"]
    assert [(s["snapshot_id"], s["image_id"], s["reason"]) for s in result["skipped"]] == [("snap-s", "ami-a", "shared")]
    assert "is also mapped by image ami-b (/dev/xvda) and is named after it" in result["skipped"][0]["msg"]


def test_same_creation_date_tie_breaks_on_image_id():
    a = image("ami-2", "two", {"/dev/xvda": "snap-s"})
    b = image("ami-1", "one", {"/dev/xvda": "snap-s"})
    assert core.plan([a, b], [snapshot("snap-s")], options())["items"][0]["image_id"] == "ami-1"


def test_recorded_owner_in_selection_wins_over_age():
    old, new = shared_images()
    snaps = [snapshot("snap-s", {"blockwise:image-id": "ami-a"}), snapshot("snap-old"), snapshot("snap-new")]
    result = core.plan([old, new], snaps, options())
    assert by_id(result["items"])["snap-s"]["image_id"] == "ami-a"
    assert core.owner_lookups([old, new], snaps) == []


def test_recorded_owner_outside_selection_that_still_maps_it_keeps_it():
    old, new = shared_images()
    snaps = [snapshot("snap-s", {"blockwise:image-id": "ami-b", "Name": "old(001)"}), snapshot("snap-new")]
    assert core.owner_lookups([new], snaps) == ["ami-b"]
    result = core.plan([new], snaps, options(), other_images=[old])
    assert [i["snapshot_id"] for i in result["items"]] == ["snap-new"]
    assert result["skipped"][0]["reason"] == "shared"
    assert "named after image ami-b (its blockwise:image-id tag), which still maps it" in result["skipped"][0]["msg"]


def test_recorded_owner_gone_or_no_longer_mapping_releases_it():
    old, new = shared_images()
    snaps = [snapshot("snap-s", {"blockwise:image-id": "ami-b"}), snapshot("snap-new")]
    for others in ([], [dict(old, State="deregistered")], [image("ami-b", "old", {"/dev/xvda": "snap-other"})]):
        result = core.plan([new], snaps, options(), other_images=others)
        item = by_id(result["items"])["snap-s"]
        assert item["image_id"] == "ami-a" and item["to_set"] == {"Name": "new(001)", "blockwise:image-id": "ami-a"}


def test_same_snapshot_twice_in_one_image():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1", "/dev/sdb": "snap-1"})
    result = core.plan([img], [snapshot("snap-1")], options())
    assert [(i["snapshot_id"], i["device"]) for i in result["items"]] == [("snap-1", "/dev/xvda")]
    assert [(s["device"], s["reason"]) for s in result["skipped"]] == [("/dev/sdb", "shared")]


def test_plan_is_deterministic_whatever_the_input_order():
    old, new = shared_images()
    snaps = [snapshot("snap-s"), snapshot("snap-old"), snapshot("snap-new")]
    first = core.plan([old, new], snaps, options())
    second = core.plan([new, old], list(reversed(snaps)), options())
    assert first == second


# ------------------------------------------------------------------------------ collection keys


def test_image_tags_never_set_change_or_remove_collection_keys():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1", "/dev/sdb": "snap-2"},
                tags={"blockwise:protect": "no", "blockwise:policy": "daily", "BlockWise:Lineage": "x", "team": "web", "aws:x": "1"})
    snaps = [snapshot("snap-1", {"blockwise:protect": "yes", "blockwise:lineage": "mine", "stale": "1"}), snapshot("snap-2")]
    items = by_id(core.plan([img], snaps, options(copy_image_tags=True, purge_tags=True))["items"])
    assert items["snap-1"]["to_set"] == {"Name": "web(001)", "blockwise:image-id": "ami-1", "team": "web"}
    assert items["snap-1"]["to_unset"] == {"stale": "1"}
    assert items["snap-1"]["after"] == {
        "Name": "web(001)", "blockwise:image-id": "ami-1", "team": "web", "blockwise:protect": "yes", "blockwise:lineage": "mine",
    }
    assert items["snap-2"]["after"] == {"Name": "web(002)", "blockwise:image-id": "ami-1", "team": "web"}


# --------------------------------------------------------------------------- confirmation (drift)


def planned_item(tags_before, **option_kwargs):
    img = image("ami-1", "web", {"/dev/xvda": "snap-1"}, tags={"env": "prod"})
    return core.plan([img], [snapshot("snap-1", tags_before)], options(**option_kwargs))


def test_drift_is_what_contradicts_the_run_not_what_others_added():
    the_plan = planned_item({"old": "1"}, copy_image_tags=True, purge_tags=True)
    item = the_plan["items"][0]
    right = {"Name": "web(001)", "blockwise:image-id": "ami-1", "env": "prod"}
    assert core.drift(item, right) is None
    assert core.drift(item, dict(right, other="added meanwhile")) is None
    assert core.drift(item, dict(right, Name="x")) == "Name is 'x' (this run wants 'web(001)')"
    assert core.drift(item, {"Name": "web(001)", "blockwise:image-id": "ami-1", "old": "1"}) == (
        "env is missing (this run wants 'prod'); old is back (this run removed it)")


def test_result_reports_what_was_read_back_after_the_writes():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1", "/dev/sdb": "snap-2", "/dev/sdc": "snap-3"})
    right = {"Name": "web(002)", "blockwise:image-id": "ami-1"}
    the_plan = core.plan([img], [snapshot("snap-1"), snapshot("snap-2", right), snapshot("snap-3", {"Name": "web(003)", "blockwise:image-id": "ami-1"})],
                         options())
    outcome = {"written": {"snap-1"}, "vanished": {}, "error": None, "unfinished": set(), "confirmed": {
        "snap-1": {"Name": "web(001)", "blockwise:image-id": "ami-1", "cost": "7"},  # someone added a tag: fine
        "snap-2": None,  # already right when read, deleted while the run wrote
        "snap-3": {"Name": "hand-made", "blockwise:image-id": "ami-1"},  # already right when read, renamed meanwhile
    }}
    assert core.conflicts(the_plan, outcome) == {"snap-3": "Name is 'hand-made' (this run wants 'web(003)')"}
    done = core.result(the_plan, outcome, with_diff=True)
    entries = by_id(done["snapshots"])
    assert set(entries) == {"snap-1", "snap-3"}
    assert entries["snap-1"]["changed"] is True and "error" not in entries["snap-1"]
    assert entries["snap-3"]["error"] == "tags changed by another writer during the run: Name is 'hand-made' (this run wants 'web(003)')"
    assert [(s["snapshot_id"], s["reason"]) for s in done["skipped_snapshots"]] == [("snap-2", "vanished")]
    assert "read again after the writes" in done["skipped_snapshots"][0]["msg"]
    assert done["diff"]["after"] == {
        "snap-1": {"Name": "web(001)", "blockwise:image-id": "ami-1", "cost": "7"},
        "snap-3": {"Name": "hand-made", "blockwise:image-id": "ami-1"},
    }
    assert done["diff"]["before"]["snap-3"] == {"Name": "web(003)", "blockwise:image-id": "ami-1"}


# ----------------------------------------------------------------------------------------- result


def test_result_in_check_mode_and_after_apply():
    img = image("ami-1", "web", {"/dev/xvda": "snap-1", "/dev/sdb": "snap-2", "/dev/sdc": "snap-3"})
    snaps = [snapshot("snap-1"), snapshot("snap-2", {"Name": "web(002)", "blockwise:image-id": "ami-1"}), snapshot("snap-3")]
    the_plan = core.plan([img, image("ami-2", "store", {"/dev/sda1": "ephemeral0"})], snaps, options())
    predicted = core.result(the_plan, None, ["ami-404"], with_diff=True)
    assert predicted["changed"] is True
    assert [s["changed"] for s in predicted["snapshots"]] == [True, False, True]
    assert predicted["images"] == {"total": 2, "changed": 1, "unchanged": 1, "without_snapshots": 1}
    assert predicted["missing_image_ids"] == ["ami-404"]
    assert predicted["diff"]["before"] == {"snap-1": {}, "snap-3": {}}
    assert predicted["diff"]["after"]["snap-3"] == {"Name": "web(003)", "blockwise:image-id": "ami-1"}

    outcome = {"written": {"snap-1"}, "vanished": {"snap-3": "InvalidSnapshot.NotFound: gone"}, "error": None, "unfinished": set()}
    done = core.result(the_plan, outcome)
    assert "diff" not in done
    assert [(s["snapshot_id"], s["changed"]) for s in done["snapshots"]] == [("snap-1", True), ("snap-2", False)]
    assert done["skipped_snapshots"][0]["reason"] == "vanished" and done["skipped_snapshots"][0]["snapshot_id"] == "snap-3"
    assert done["skipped_snapshots"][0]["msg"].startswith("snapshot snap-3 no longer exists (deleted after it was read)")

    failed = core.result(the_plan, {"written": set(), "vanished": {}, "error": "CreateTags failed: x", "unfinished": {"snap-1", "snap-3"}})
    assert failed["changed"] is False
    assert [s.get("error") for s in failed["snapshots"]] == ["CreateTags failed: x", None, "CreateTags failed: x"]
