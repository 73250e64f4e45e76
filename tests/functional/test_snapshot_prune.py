# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_prune through ansible-playbook against the local endpoint, with back-dated snapshots."""
from datetime import datetime, timedelta, timezone

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

MODULE = "blockwise.ebs.ebs_snapshot_prune"
POLICY_TAG = "blockwise:policy"
AZ = "us-east-1a"
DESCRIBE = ("ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:DescribeImages")


def task(title="prune", check_mode=None, **params):
    params.setdefault("policy", "daily")
    result = {"name": title, MODULE: params, "register": "out", "ignore_errors": True}
    if check_mode is not None:
        result["check_mode"] = check_mode
    return result


def now():
    return datetime.now(timezone.utc)


def backend():
    return ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


def volume(ec2, tags=None):
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=spec)["VolumeId"]


def snapshot(aws, ec2, volume_id, age, policy="daily", tags=None):
    all_tags = dict(tags or {})
    if policy:
        all_tags[POLICY_TAG] = policy
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}] if all_tags else []
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"]
    aws.backdate_snapshot(snapshot_id, now() - age)
    return snapshot_id


def daily(aws, ec2, volume_id, days, policy="daily", hour_offset=0):
    """One snapshot a day for ``days`` days, newest first (ids[0] is 1 day + hour_offset old)."""
    return [snapshot(aws, ec2, volume_id, timedelta(days=day, hours=hour_offset), policy) for day in range(1, days + 1)]


def existing(ec2):
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def ids(items):
    return {item["snapshot_id"] for item in items}


def describe_calls(aws):
    counts = aws.counters()
    return {key: counts[key] for key in DESCRIBE if key in counts}


def test_deletes_exactly_the_expected_snapshots_and_never_a_protected_one(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    snaps = daily(aws, ec2, vol, 10)  # newest first
    ami_backed, protect_tagged, pending = snaps[9], snaps[8], snaps[7]
    image_id = ec2.register_image(Name="from-snapshot", RootDeviceName="/dev/xvda",
                                  BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": ami_backed}}])["ImageId"]
    ec2.create_tags(Resources=[protect_tagged], Tags=[{"Key": "blockwise:protect", "Value": ""}])
    backend().snapshots[pending].status = "pending"
    # shared by another account, with our policy tag: never read (OwnerIds=self), never deleted
    foreign = aws.add_foreign_snapshot(owner_id="999999999999", tags={POLICY_TAG: "daily"})
    other_policy = snapshot(aws, ec2, vol, timedelta(days=30), policy="weekly")
    untagged = snapshot(aws, ec2, vol, timedelta(days=31), policy=None)

    aws.reset_counters()
    run = playbook([task(retention={"keep_last": 3})], diff=True)
    res = run.result("prune")
    assert run.rc == 0, run
    assert res["changed"] is True
    assert ids(res["deleted"]) == set(snaps[3:7])
    assert all(item["status"] == "deleted" and item["reasons"] == ["no rule keeps it"] for item in res["deleted"])
    assert ids(res["kept"]) == set(snaps[:3])
    assert all(item["reasons"] == ["keep_last"] for item in res["kept"])
    protected = {item["snapshot_id"]: item["reasons"] for item in res["protected"]}
    assert protected == {ami_backed: ["ami:" + image_id], protect_tagged: ["protect-tag"], pending: ["pending"]}
    assert res["volumes"] == {vol: {"keep": 3, "delete": 4, "protect": 3}}
    assert res["errors"] == []
    assert res["diff"]["before"][vol] == snaps
    assert res["diff"]["after"][vol] == snaps[:3] + snaps[7:]
    assert aws.mutating_calls() == {"ec2:DeleteSnapshot": 4}
    assert existing(ec2) == set(snaps[:3]) | set(snaps[7:]) | {other_policy, untagged}
    assert foreign in {item["SnapshotId"] for item in ec2.describe_snapshots()["Snapshots"]}
    first = res["deleted"][0]
    assert first["volume_id"] == vol and datetime.fromisoformat(first["start_time"]) < now() - timedelta(days=3)

    aws.reset_counters()
    again = playbook([task(retention={"keep_last": 3})])
    res = again.result("prune")
    assert again.rc == 0, again
    assert res["changed"] is False and res["deleted"] == []
    assert aws.mutating_calls() == {}


def test_check_mode_is_the_whole_plan_without_a_write(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    snaps = daily(aws, ec2, vol, 9, hour_offset=1)
    aws.reset_counters()
    retention = {"keep_last": 1, "keep_within": "4 days", "minimum": 2}
    run = playbook([task(retention=retention)], check=True, diff=True)
    res = run.result("prune")
    assert run.rc == 0, run
    assert res["changed"] is True
    kept = {item["snapshot_id"]: item["reasons"] for item in res["kept"]}
    assert kept == {
        snaps[0]: ["keep_last", "keep_within", "minimum"],
        snaps[1]: ["keep_within", "minimum"],
        snaps[2]: ["keep_within"],
    }
    assert [item["snapshot_id"] for item in res["deleted"]] == snaps[3:]
    assert all(item["status"] == "planned" for item in res["deleted"])
    assert res["diff"]["after"][vol] == [sid for sid in snaps if sid in kept]
    assert aws.mutating_calls() == {}
    assert existing(ec2) == set(snaps)


def test_circuit_breaker_stops_the_run_before_any_deletion(aws, playbook):
    ec2 = aws.client("ec2")
    volumes = [volume(ec2) for dummy in range(3)]
    for vol in volumes:
        daily(aws, ec2, vol, 4)
    before = existing(ec2)
    aws.reset_counters()
    run = playbook([
        task("real", retention={"keep_last": 1}, max_deletions=8),
        task("check", retention={"keep_last": 1}, max_deletions=8, check_mode=True),
    ])
    for name in ("real", "check"):
        res = run.result(name)
        assert res["failed"] is True
        assert "the plan deletes 9 snapshots of 3 volumes, more than max_deletions=8; nothing was deleted" in res["msg"]
        assert res["deleted"] == [] and len(res["blocked"]) == 9
        assert res["changed"] is False
    assert aws.mutating_calls() == {}
    assert existing(ec2) == before
    run = playbook([task(retention={"keep_last": 1}, max_deletions=9)])
    assert run.result("prune")["summary"]["deleted"] == 9


def test_retention_tag_sets_keep_last_per_volume(aws, playbook):
    ec2 = aws.client("ec2")
    two = volume(ec2, {"Daily_Gens": "2"})
    bad = volume(ec2, {"Daily_Gens": "seven"})
    plain = volume(ec2)
    snaps = {vol: daily(aws, ec2, vol, 5) for vol in (two, bad, plain)}
    gone = volume(ec2, {"Daily_Gens": "1"})
    snaps[gone] = daily(aws, ec2, gone, 3)
    ec2.delete_volume(VolumeId=gone)  # snapshots of a deleted volume follow the base policy
    aws.reset_counters()
    run = playbook([task(retention={"keep_last": 4}, retention_tag="Daily_Gens")])
    res = run.result("prune")
    assert run.rc == 0, run
    assert ids(res["deleted"]) == set(snaps[two][2:]) | {snaps[plain][4]}
    assert res["volumes"][two]["keep_last"] == 2
    assert "held" in res["volumes"][bad] and res["volumes"][bad]["protect"] == 5
    assert any("Daily_Gens='seven'" in warning for warning in res["warnings"])
    assert {item["reasons"][0] for item in res["protected"]} == {"retention-tag-invalid"}
    assert describe_calls(aws) == {"ec2:DescribeSnapshots": 1, "ec2:DescribeImages": 1, "ec2:DescribeVolumes": 1}


def test_adopt_snapshots_of_an_older_tool_with_filters(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    legacy = [snapshot(aws, ec2, vol, timedelta(days=day), policy=None, tags={"Daily_Gens": "x", "made-by": "snapper"})
              for day in range(1, 5)]
    mine = daily(aws, ec2, vol, 2)
    run = playbook([task(policy=None, filters={"tag:made-by": "snapper"}, retention={"keep_within": "2 days 1 hour"})])
    res = run.result("prune")
    assert run.rc == 0, run
    assert ids(res["deleted"]) == set(legacy[2:])
    assert existing(ec2) == set(legacy[:2]) | set(mine)


def test_deletion_errors_are_reported_per_snapshot(aws, playbook):
    ec2 = aws.client("ec2")
    vol = volume(ec2)
    daily(aws, ec2, vol, 5)
    aws.inject_error("DeleteSnapshot", status=400, code="InvalidSnapshot.InUse",
                     message="The snapshot is currently in use by ami-12345678", count=1)
    aws.inject_error("DeleteSnapshot", status=400, code="InvalidSnapshot.NotFound", message="The snapshot does not exist.", count=1)
    run = playbook([task(retention={"keep_last": 2}, max_concurrency=1)])
    res = run.result("prune")
    assert res["failed"] is True
    assert "1 of 3 deletions failed" in res["msg"] and "InvalidSnapshot.InUse" in res["msg"]
    [error] = res["errors"]
    assert error["status"] == "failed" and "InvalidSnapshot.InUse" in error["error"]
    assert [item["status"] for item in res["deleted"]] == ["deleted"]
    assert [item["status"] for item in res["already_gone"]] == ["already-gone"]
    assert res["summary"]["already_gone"] == 1 and res["summary"]["deleted"] == 1

    aws.inject_error("DeleteSnapshot", status=400, code="InvalidSnapshot.InUse", message="in use", count=1)
    run = playbook([task(retention={"keep_last": 2}, fail_on_deletion_error=False)])
    res = run.result("prune")
    assert run.rc == 0, run
    assert len(res["errors"]) == 1 and any("deletions failed" in w for w in res["warnings"])


def test_one_region_pass_whatever_the_number_of_volumes(aws, playbook):
    ec2 = aws.client("ec2")
    for dummy in range(40):
        daily(aws, ec2, volume(ec2), 5)
    aws.reset_counters()
    run = playbook([task(retention={"keep_last": 3}, max_deletions=100)], check=True)
    res = run.result("prune")
    assert run.rc == 0, run
    assert res["summary"] == {"snapshots": 200, "volumes": 40, "deleted": 80, "kept": 120, "protected": 0, "errors": 0,
                              "already_gone": 0, "planned_deletions": 80}
    assert describe_calls(aws) == {"ec2:DescribeSnapshots": 1, "ec2:DescribeImages": 1}


def test_converges_under_throttling_and_5xx(aws, playbook):
    ec2 = aws.client("ec2")
    expected_kept = set()
    for dummy in range(4):
        snaps = daily(aws, ec2, volume(ec2), 5)
        expected_kept.update(snaps[:2])
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, seed=5)
    run = playbook([task(retention={"keep_last": 2}, max_concurrency=8)])
    aws.clear_faults()
    assert run.rc == 0, run
    assert len(run.result("prune")["deleted"]) == 12
    assert existing(ec2) == expected_kept
    again = playbook([task(retention={"keep_last": 2})])
    assert again.result("prune")["changed"] is False


BAD_INPUT = [
    ({"policy": None, "retention": {"keep_last": 3}}, "no scope: set policy"),
    ({"retention": {"minimum": 3}}, "retention: at least one rule is required"),
    ({"retention": {"keep_last": 0}}, "retention.keep_last must be >= 1, got 0"),
    ({"retention": {"keep_daily": -1}}, "retention.keep_daily must be >= 1, got -1"),
    ({"retention": {"keep_within": "7"}}, "retention.keep_within: duration '7' has no unit"),
    ({"retention": {"keep_within": "3 fortnights and a bit"}}, "retention.keep_within: cannot parse duration"),
    ({"retention": {"keep_daily": 7, "timezone": "Europe/Atlantis"}}, "retention.timezone: unknown time zone 'Europe/Atlantis'"),
    ({"retention": {"keep_last": "lots"}}, "keep_last"),
    ({"retention": {"keep_last": 3}, "max_deletions": 0}, "max_deletions must be an integer >= 1, got 0"),
    ({"retention": {"keep_last": 3}, "filters": {"owner-id": "111111111111"}}, "owner filters are not allowed"),
    ({"retention": {"keep_last": 3}, "protect_tag": ""}, "protect_tag must be a non-empty tag key"),
    ({"retention": {"keep_last": 3}, "retention_tag": "aws:gens"}, "retention_tag: tag key 'aws:gens' uses the reserved prefix"),
]


def test_bad_input_fails_naming_the_option_without_writes(aws, playbook):
    ec2 = aws.client("ec2")
    before = set(daily(aws, ec2, volume(ec2), 3))
    aws.reset_counters()
    run = playbook([task("bad %d" % index, **params) for index, (params, dummy) in enumerate(BAD_INPUT)])
    for index, (params, fragment) in enumerate(BAD_INPUT):
        res = run.result("bad %d" % index)
        assert res.get("failed") is True, (params, res)
        assert fragment in res["msg"], (params, res["msg"])
    assert aws.mutating_calls() == {}
    assert existing(ec2) == before
