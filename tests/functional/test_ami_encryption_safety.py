# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Regression tests of the data-safety review for ami_snapshot_tag and ebs_default_encryption.

Through ansible-playbook against the local endpoint:

- "already right" answers of ami_snapshot_tag come from the snapshots' own tags as AWS holds them at
  the end of the run, including snapshots deleted or retagged while the run was writing;
- ``blockwise:`` keys are the collection's own: image tags never set, change or remove them, and the
  ``tags`` option cannot set them;
- empty filter values and blank ids or owners are refused before any call;
- ``ebs_default_encryption --diff`` shows what happened, and names the AWS managed key in one form.
"""
import threading
import time

from tests.functional.test_ami_snapshot_tag import IMAGE_ID_TAG, Fleet, by_snapshot, task

PROTECT = "blockwise:protect"
ENCRYPTION = "blockwise.ebs.ebs_default_encryption"
REGIONS = ["us-east-1", "eu-west-1"]


def fleet_of(aws):
    return Fleet(aws)


def when_tagging_starts(aws, action):
    """Run ``action`` in a thread as soon as the module's first CreateTags reaches the endpoint."""
    def wait_then_act():
        deadline = time.monotonic() + 60
        while aws.counters().get("ec2:CreateTags", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    worker = threading.Thread(target=wait_then_act, daemon=True)
    worker.start()
    return worker


# -------------------------------------------------- item 3: "already right" is AWS's current state


def test_already_right_comes_from_the_snapshot_tags_not_the_image(aws, playbook):
    fleet = fleet_of(aws)
    image_id, snaps = fleet.image("web", ["/dev/xvda"], tags={"env": "prod"})
    params = {"image_ids": [image_id], "copy_image_tags": True}
    assert playbook([task(aws, **params)]).rc == 0
    # The snapshot alone drifts; the image still says the same.
    fleet.ec2.create_tags(Resources=[snaps["/dev/xvda"]], Tags=[{"Key": "Name", "Value": "renamed"}, {"Key": "env", "Value": "dev"}])
    res = playbook([task(aws, **params)], diff=True).result("tag")
    assert res["changed"] is True
    assert res["snapshots"][0]["tags_added"] == {"Name": "web(001)", "env": "prod"}
    assert res["diff"]["before"][snaps["/dev/xvda"]]["Name"] == "renamed"
    assert fleet.tags(snaps["/dev/xvda"]) == {"Name": "web(001)", IMAGE_ID_TAG: image_id, "env": "prod"}


def test_an_already_right_snapshot_deleted_during_the_run_is_not_reported_as_named(aws, playbook):
    fleet = fleet_of(aws)
    named, named_snaps = fleet.image("named", ["/dev/xvda"])
    assert playbook([task(aws, image_ids=[named])]).rc == 0
    others = [fleet.image("app-%d" % number, ["/dev/xvda"]) for number in range(3)]
    doomed = named_snaps["/dev/xvda"]
    aws.set_faults(latency=0.4, actions=["CreateTags"])
    aws.reset_counters()

    def delete():
        fleet.ec2.deregister_image(ImageId=named)
        fleet.ec2.delete_snapshot(SnapshotId=doomed)

    worker = when_tagging_starts(aws, delete)
    run = playbook([task(aws, image_ids=[named] + [image_id for image_id, dummy in others])])
    worker.join()
    res = run.result("tag")
    assert run.rc == 0, run
    assert doomed not in by_snapshot(res)  # it needed no write, but it is gone: not "already right"
    vanished = [entry for entry in res["skipped_snapshots"] if entry["snapshot_id"] == doomed]
    assert [entry["reason"] for entry in vanished] == ["vanished"]
    assert "Snapshots deleted while being tagged" in run.stdout + run.stderr
    assert all(fleet.name(snaps["/dev/xvda"]) == "app-%d(001)" % number for number, (dummy, snaps) in enumerate(others))


def test_an_already_right_snapshot_retagged_during_the_run_fails_the_task(aws, playbook):
    fleet = fleet_of(aws)
    named, named_snaps = fleet.image("named", ["/dev/xvda"])
    assert playbook([task(aws, image_ids=[named])]).rc == 0
    others = [fleet.image("app-%d" % number, ["/dev/xvda"]) for number in range(3)]
    victim = named_snaps["/dev/xvda"]
    aws.set_faults(latency=0.4, actions=["CreateTags"])
    aws.reset_counters()
    worker = when_tagging_starts(aws, lambda: fleet.ec2.create_tags(Resources=[victim], Tags=[{"Key": "Name", "Value": "someone-else"}]))
    run = playbook([task(aws, image_ids=[named] + [image_id for image_id, dummy in others])], diff=True)
    worker.join()
    res = run.result("tag")
    assert res["failed"] is True
    assert victim in res["msg"] and "changed by another writer during the run" in res["msg"]
    assert "Name is 'someone-else'" in by_snapshot(res)[victim]["error"]
    assert res["diff"]["after"].get(victim, {}).get("Name", "someone-else") == "someone-else"
    assert fleet.name(victim) == "someone-else"
    # The next run converges.
    aws.clear_faults()
    again = playbook([task(aws, image_ids=[named])]).result("tag")
    assert again.get("failed") is not True and again["changed"] is True
    assert fleet.name(victim) == "named(001)"


# -------------------------------------------------- item 20: blockwise: keys are the collection's own


def test_image_tags_never_set_change_or_remove_blockwise_keys(aws, playbook):
    fleet = fleet_of(aws)
    image_id, snaps = fleet.image("web", ["/dev/xvda", "/dev/sdb"], tags={
        PROTECT: "no", "blockwise:policy": "daily", "Blockwise:Lineage": "disk-a", "team": "web",
    })
    root, data = snaps["/dev/xvda"], snaps["/dev/sdb"]
    fleet.ec2.create_tags(Resources=[root], Tags=[{"Key": PROTECT, "Value": "yes"}])
    for purge in (False, True):
        run = playbook([task(aws, image_ids=[image_id], copy_image_tags=True, purge_tags=purge)])
        assert run.rc == 0, run
    assert fleet.tags(root) == {"Name": "web(001)", IMAGE_ID_TAG: image_id, PROTECT: "yes", "team": "web"}
    assert fleet.tags(data) == {"Name": "web(002)", IMAGE_ID_TAG: image_id, "team": "web"}


def test_tags_option_cannot_set_collection_keys(aws, playbook):
    fleet = fleet_of(aws)
    image_id, dummy = fleet.image("web", ["/dev/xvda"])
    aws.reset_counters()
    cases = [{PROTECT: "yes"}, {"blockwise:policy": "daily"}, {"BlockWise:Lineage": "x"}, {IMAGE_ID_TAG: "ami-1"}]
    run = playbook([task(aws, name="bad%d" % number, image_ids=[image_id], tags=tags) for number, tags in enumerate(cases)])
    for number, tags in enumerate(cases):
        res = run.result("bad%d" % number)
        assert res["failed"] is True, tags
        assert res["msg"].startswith("tags: ") and next(iter(tags)) in res["msg"], res["msg"]
    assert aws.counters() == {}


# -------------------------------------------------- item 12: nothing silently widened or ignored


def test_empty_filter_values_and_blank_ids_are_refused_before_any_call(aws, playbook):
    fleet = fleet_of(aws)
    fleet.image("web", ["/dev/xvda"])
    aws.reset_counters()
    cases = [
        ({"filters": {"tag-key": []}}, "filters['tag-key'] must be a value or a non-empty list of values"),
        ({"filters": {"name": "web", "tag:Team": None}}, "filters['tag:Team']"),
        ({"image_ids": [""]}, "image_ids: "),
        ({"image_ids": ["ami-1", " "]}, "image_ids: "),
        ({"all_images": True, "owners": ["self", ""]}, "owners: "),
    ]
    run = playbook([task(aws, name="bad%d" % number, **params) for number, (params, dummy) in enumerate(cases)])
    for number, (params, fragment) in enumerate(cases):
        res = run.result("bad%d" % number)
        assert res["failed"] is True, params
        assert fragment in res["msg"], (params, res["msg"])
    assert aws.counters() == {}
    assert fleet.tags(fleet.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"][0]["SnapshotId"]) == {}


# -------------------------------------------------- item 19: the diff shows what happened


def encryption_task(name="encryption", **params):
    return {"name": name, ENCRYPTION: params, "register": "out", "ignore_errors": True}


def test_diff_shows_a_failed_region_as_it_is_not_as_planned(aws, playbook):
    aws.inject_error("EnableEbsEncryptionByDefault", status=403, code="UnauthorizedOperation",
                     message="You are not authorized to perform this operation.", count=1)
    run = playbook([encryption_task(regions=REGIONS)], diff=True)
    res = run.result("encryption")
    assert res["failed"] is True and res["failed_regions"] == ["us-east-1"]
    assert aws.client("ec2", region="us-east-1").get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert res["diff"]["after"]["us-east-1"]["encryption_by_default"] is False
    assert res["diff"]["after"]["eu-west-1"]["encryption_by_default"] is True
    assert res["regions"]["us-east-1"]["encryption_by_default"] is False


def test_diff_after_a_failure_midway_shows_what_was_done(aws, playbook):
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/team-ebs", TargetKeyId=key["KeyId"])
    before_key = aws.client("ec2").get_ebs_default_kms_key_id()["KmsKeyId"]
    aws.inject_error("ModifyEbsDefaultKmsKeyId", status=403, code="UnauthorizedOperation", message="denied", count=1)
    res = playbook([encryption_task(regions=["us-east-1"], kms_key_id="alias/team-ebs")], diff=True).result("encryption")
    assert res["diff"]["after"]["us-east-1"]["encryption_by_default"] is True
    assert res["diff"]["after"]["us-east-1"]["kms_key_id"] != key["Arn"]
    assert res["diff"]["after"]["us-east-1"]["kms_key_id"] == res["diff"]["before"]["us-east-1"]["kms_key_id"]
    assert aws.client("ec2").get_ebs_default_kms_key_id()["KmsKeyId"] == before_key


def test_reset_kms_key_names_the_aws_managed_key_in_one_form(aws, playbook):
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/team-ebs", TargetKeyId=key["KeyId"])
    assert playbook([encryption_task(regions=["us-east-1"], kms_key_id="alias/team-ebs")]).rc == 0
    predicted = playbook([encryption_task(regions=["us-east-1"], reset_kms_key=True)], check=True, diff=True).result("encryption")
    done = playbook([encryption_task(regions=["us-east-1"], reset_kms_key=True)], diff=True).result("encryption")
    again = playbook([encryption_task(regions=["us-east-1"])], check=True).result("encryption")
    for res in (predicted, done):
        assert res["regions"]["us-east-1"]["actions"] == ["reset_kms_key"]
        assert res["regions"]["us-east-1"]["kms_key_id"] == "alias/aws/ebs"
        assert res["diff"]["before"]["us-east-1"]["kms_key_id"] == key["Arn"]
        assert res["diff"]["after"]["us-east-1"]["kms_key_id"] == "alias/aws/ebs"
    assert again["regions"]["us-east-1"]["kms_key_id"] == "alias/aws/ebs"  # EC2 answers the managed key's ARN
    managed = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    assert aws.client("ec2").get_ebs_default_kms_key_id()["KmsKeyId"] == managed
