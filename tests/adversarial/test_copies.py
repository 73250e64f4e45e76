# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on ebs_snapshot_copy and ebs_snapshot_share through ansible-playbook.

Each test tries to make a module copy something twice, lose or forge a copy's identity or lineage,
report something AWS does not hold, share more than asked, or write when it must not, and then checks
the result against AWS's state read with plain boto3:

- sources whose tags try to set the collection's ``blockwise:`` keys of their copies (any case);
- a chain of copies (home -> DR -> a third region): identity per hop, lineage of the original disk;
- a copy into the source's own region (re-encryption) run again and again: never a copy of a copy;
- a description template fed with braces from the source's own description;
- a source whose tags cannot fit on its copy, next to good sources: nothing is written at all;
- account ids that try to spell ``all``;
- two runs at once on the same policy: neither lies about what it made, the quota holds, and a later run
  reports any duplicate the race made instead of hiding it.
"""
import threading

import pytest

from tests.functional.conftest import playbook  # noqa: F401  pylint: disable=unused-import
from tests.functional.test_snapshot_copy import (ACCOUNT, DR, HOME, POLICY, PendingSampler, copies_in, copy_task, sources, tag_list,
                                                 tags_of)

THIRD = "eu-central-1"
SHARE = "blockwise.ebs.ebs_snapshot_share"


def policy_snapshots(aws, region):
    ec2 = aws.client("ec2", region=region)
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:blockwise:policy", "Values": [POLICY]}])["Snapshots"]


def test_source_tags_never_set_a_copys_identity_or_lineage(aws, playbook):
    hostile = {"BlockWise:Lineage": "stolen", "blockwise:source-region": "ap-south-1", "BLOCKWISE:SOURCE-SNAPSHOT": "snap-0",
               "blockwise:protect": "", "blockwise:source-account": "999999999999", "team": "web",
               "blockwise:source-start-time": "1999-01-01T00:00:00+00:00"}
    made = sources(aws, volumes=1, per_volume=2, tags=hostile)
    volume_id = next(iter(made))
    res = playbook([copy_task(tags={"owner": "dr"})]).result("copy")
    assert not res.get("failed"), res
    for source_id, copy in copies_in(aws).items():
        tags = tags_of(copy)
        own = {key: value for key, value in tags.items() if key.lower().startswith("blockwise:")}
        started = own.pop("blockwise:source-start-time")  # the source's own start time, never a source tag's
        assert started.startswith("20") and started != "1999-01-01T00:00:00+00:00"
        assert own == {"blockwise:source-snapshot": source_id, "blockwise:source-region": HOME, "blockwise:source-account": ACCOUNT,
                       "blockwise:lineage": volume_id, "blockwise:policy": POLICY}
        assert tags["team"] == "web" and tags["owner"] == "dr"


def test_a_chain_of_copies_keeps_the_original_lineage_and_each_hops_identity(aws, playbook):
    made = sources(aws, volumes=2, per_volume=1)
    # Hop 2 only takes completed copies: hop 1 waits for them.
    run = playbook([copy_task("hop 1", wait=True, wait_timeout=120), copy_task("hop 2", region=THIRD, source_region=DR)])
    assert not run.result("hop 1").get("failed") and not run.result("hop 2").get("failed"), run
    first_hop = copies_in(aws, DR)
    second_hop = copies_in(aws, THIRD)
    assert sorted(second_hop) == sorted(copy["SnapshotId"] for copy in first_hop.values())
    for source_id, copy in first_hop.items():
        tags = tags_of(second_hop[copy["SnapshotId"]])
        assert tags["blockwise:source-region"] == DR and tags["blockwise:source-snapshot"] == copy["SnapshotId"]
        volume_id = [volume for volume, snaps in made.items() if source_id in snaps][0]
        assert tags["blockwise:lineage"] == volume_id  # the original disk, whatever volume id AWS gave the copies
    again = playbook([copy_task("hop 1"), copy_task("hop 2", region=THIRD, source_region=DR)])
    assert not again.result("hop 1")["changed"] and not again.result("hop 2")["changed"], again


def test_a_copy_into_the_same_region_never_copies_its_own_copies(aws, playbook):
    made = sources(aws, volumes=2, per_volume=2)
    for attempt in range(3):
        res = playbook([copy_task(region=HOME, encrypted=True)]).result("copy")
        assert not res.get("failed"), res
        assert len(res["copies"]) == (4 if attempt == 0 else 0)
        assert sorted(item["reason"] for item in res["excluded"]) == (["copy-in-destination"] * 4 if attempt else [])
    originals = {snap for snaps in made.values() for snap in snaps}
    everything = policy_snapshots(aws, HOME)
    assert len(everything) == 8
    assert sorted(copies_in(aws, HOME)) == sorted(originals)


def test_braces_in_a_source_description_are_text_not_template(aws, playbook):
    ec2 = aws.client("ec2", region=HOME)
    volume_id = ec2.create_volume(Size=1, AvailabilityZone=HOME + "a")["VolumeId"]
    tricky = "{policy} {{ {0} {snapshot_id!r} {__class__}"
    source = ec2.create_snapshot(VolumeId=volume_id, Description=tricky,
                                 TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list({"blockwise:policy": POLICY})}])["SnapshotId"]
    res = playbook([copy_task(description="[{source_region}] {source_description}")]).result("copy")
    assert not res.get("failed"), res
    assert copies_in(aws)[source]["Description"] == "[us-east-1] " + tricky


def test_one_source_whose_tags_cannot_fit_stops_the_run_before_any_write(aws, playbook):
    sources(aws, volumes=2, per_volume=1)
    sources(aws, volumes=1, per_volume=1, tags={"k%02d" % number: "v" for number in range(47)})
    aws.reset_counters()
    res = playbook([copy_task()]).result("copy")
    assert res.get("failed") and "tags of the copy of" in res["msg"], res
    assert aws.mutating_calls() == {} and copies_in(aws) == {}


@pytest.mark.parametrize("spelling", ["all", " ALL", "All ", "aLL"])
def test_no_spelling_of_all_makes_a_snapshot_public(aws, playbook, spelling):
    sources(aws, volumes=1, per_volume=1)
    aws.reset_counters()
    res = playbook([{"name": "share", SHARE: {"region": HOME, "policy": POLICY, "account_ids": ["210987654321", spelling]},
                     "ignore_errors": True}]).result("share")
    assert res.get("failed") and "'all'" in res["msg"] and "public" in res["msg"], res
    assert aws.mutating_calls() == {}


def all_copies(aws):
    ec2 = aws.client("ec2", region=DR)
    return ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": ["blockwise:source-snapshot"]}])["Snapshots"]


def test_two_runs_at_once_never_lie_nor_pass_the_quota(aws, playbook):
    made = {snap for snaps in sources(aws, volumes=10, per_volume=3).values() for snap in snaps}
    aws.set_copy_duration(600)
    results = [None, None]

    def run(position):
        results[position] = playbook([copy_task()]).result("copy")

    with PendingSampler(aws) as sampler:
        threads = [threading.Thread(target=run, args=(position,)) for position in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert max(sampler.samples) <= 20
    existing = {copy["SnapshotId"]: tags_of(copy)["blockwise:source-snapshot"] for copy in all_copies(aws)}
    for res in results:
        assert not res.get("failed"), res
        for item in res["copies"]:  # every copy a run reports exists, as a copy of the source it names
            assert existing[item["snapshot_id"]] == item["source_snapshot_id"]
    assert len(existing) <= 20 + 20 and len(existing) == sum(len(res["copies"]) for res in results)

    aws.advance_clock(601)
    aws.set_copy_duration(1)
    final = playbook([copy_task(wait=True, wait_timeout=120)]).result("copy")
    assert not final.get("failed") and final["queued"] == [], final
    by_source = {}
    for copy in all_copies(aws):
        by_source.setdefault(tags_of(copy)["blockwise:source-snapshot"], []).append(copy["SnapshotId"])
    assert set(by_source) == made  # nothing lost
    reported = {item["source_snapshot_id"]: sorted(item["copies"]) for item in final["duplicates"]}
    assert reported == {source: sorted(ids) for source, ids in by_source.items() if len(ids) > 1}  # nothing hidden
