# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: API calls made by ami_snapshot_tag on 500 images x 3 EBS mappings, against a naive script.

Usage: ``.venv/bin/python bench/bench_ami_tags.py [--json OUT.json] [--quick]``

It starts its own local AWS endpoint, registers the images (each with tags, from snapshots of one
volume), then:

1. runs a naive per-snapshot script with plain boto3 (the shape of the one-off scripts this module
   replaces): one DescribeImages per image, then one CreateTags per snapshot for the Name and one
   for the copied image tags; run twice, as such scripts cannot tell that nothing changed;
2. removes the naive script's tags, and runs the module through ``ansible-playbook`` three times:
   the first naming, the idempotent second run, and a run after one tag changed on every image.

It counts the requests per action at the endpoint for each run, prints a table and writes JSON
(``{"title", "machine", "rows": [{"metric", "value", "unit", "target", "ok"}], "notes"}``).
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.functional.harness import run_playbook  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

MODULE = "blockwise.ebs.ami_snapshot_tag"
MAPPINGS = ("/dev/xvda", "/dev/sdb", "/dev/sdc")
SNAPSHOT_ID_BATCH = 200  # ids per DescribeSnapshots (fleet.read_snapshots)
RESOURCES_PER_CALL = 500  # snapshots per CreateTags (ami_tags.MAX_RESOURCES_PER_CALL)
IMAGE_ID_TAG = "blockwise:image-id"


def build_fleet(ec2, images):
    """Register ``images`` images of three EBS mappings each; return {image_id: [snapshot ids]}."""
    volume_id = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    fleet = {}
    for number in range(images):
        snapshots = [ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"] for dummy in MAPPINGS]
        mappings = [{"DeviceName": device, "Ebs": {"SnapshotId": snap}} for device, snap in zip(MAPPINGS, snapshots)]
        tags = [{"Key": "env", "Value": "prod"}, {"Key": "app", "Value": "app-%d" % (number % 10)}]
        image_id = ec2.register_image(
            Name="bench-%04d" % number, RootDeviceName=MAPPINGS[0], BlockDeviceMappings=mappings,
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )["ImageId"]
        fleet[image_id] = snapshots
    return fleet


def naive_run(ec2):
    """Per image: describe it; per snapshot: CreateTags(Name), CreateTags(copied tags + image id)."""
    images = ec2.describe_images(Owners=["self"])["Images"]
    for listed in images:
        image = ec2.describe_images(ImageIds=[listed["ImageId"]])["Images"][0]
        shared = [tag for tag in image.get("Tags", []) if not tag["Key"].startswith("aws:") and tag["Key"] != "Name"]
        shared.append({"Key": IMAGE_ID_TAG, "Value": image["ImageId"]})
        ebs = [m for m in image["BlockDeviceMappings"] if (m.get("Ebs") or {}).get("SnapshotId")]
        for index, mapping in enumerate(ebs, 1):
            snapshot_id = mapping["Ebs"]["SnapshotId"]
            ec2.create_tags(Resources=[snapshot_id], Tags=[{"Key": "Name", "Value": "%s(%03d)" % (image["Name"], index)}])
            ec2.create_tags(Resources=[snapshot_id], Tags=shared)


def strip_tags(ec2, snapshot_ids):
    """Remove the naive script's tags, so that the module starts from unnamed snapshots."""
    keys = [{"Key": key} for key in ("Name", "env", "app", IMAGE_ID_TAG)]
    for start in range(0, len(snapshot_ids), 500):
        ec2.delete_tags(Resources=snapshot_ids[start:start + 500], Tags=keys)


def counted(aws, action):
    """Run ``action()``; return (counters, seconds)."""
    aws.reset_counters()
    started = time.monotonic()
    outcome = action()
    elapsed = time.monotonic() - started
    return aws.counters(), elapsed, outcome


def module_run(aws, workdir, label):
    task = {
        "name": "tag", MODULE: {"all_images": True, "copy_image_tags": True, "endpoint_url": aws.endpoint_url},
        "register": "out",
    }
    path = Path(workdir) / label
    path.mkdir()
    run = run_playbook(aws.endpoint_url, [task], path, timeout=900)
    if run.rc != 0:
        raise SystemExit("module run {0} failed: {1!r}".format(label, run))
    return run.result("tag")


def describes(counts):
    return sum(count for key, count in counts.items() if key.split(":")[-1].startswith("Describe"))


def writes(counts):
    return sum(count for key, count in counts.items() if key.split(":")[-1].startswith(("Create", "Delete")))


def machine():
    return "{0} {1}, {2} CPUs, Python {3}".format(platform.system(), platform.machine(), os.cpu_count(), platform.python_version())


def row(rows, metric, value, unit, target, ok):
    rows.append({"metric": metric, "value": float(value), "unit": unit, "target": target, "ok": bool(ok)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--quick", action="store_true", help="50 images instead of 500")
    args = parser.parse_args(argv)
    images = 50 if args.quick else 500
    snapshots = images * len(MAPPINGS)
    rows, notes = [], []

    with LocalAWS() as aws, tempfile.TemporaryDirectory() as workdir:
        ec2 = aws.client("ec2")
        started = time.monotonic()
        fleet = build_fleet(ec2, images)
        all_snapshots = [snap for snaps in fleet.values() for snap in snaps]
        notes.append("{0} images x {1} EBS mappings = {2} snapshots registered in {3:.1f} s".format(
            images, len(MAPPINGS), snapshots, time.monotonic() - started))

        naive_first, naive_seconds, dummy = counted(aws, lambda: naive_run(ec2))
        naive_second, dummy, dummy = counted(aws, lambda: naive_run(ec2))
        strip_tags(ec2, all_snapshots)

        first, first_seconds, first_result = counted(aws, lambda: module_run(aws, workdir, "first"))
        second, second_seconds, second_result = counted(aws, lambda: module_run(aws, workdir, "second"))
        for image_id in fleet:
            ec2.create_tags(Resources=[image_id], Tags=[{"Key": "env", "Value": "staging"}])
        third, third_seconds, third_result = counted(aws, lambda: module_run(aws, workdir, "third"))

        named = sum(1 for entry in first_result["snapshots"] if entry["changed"])
        check = ec2.describe_snapshots(SnapshotIds=[fleet[next(iter(fleet))][2]])["Snapshots"][0]
        notes.append("sample snapshot tags after the runs: {0}".format(sorted((t["Key"], t["Value"]) for t in check["Tags"])))

    read_budget = 1 + math.ceil(snapshots / SNAPSHOT_ID_BATCH)
    shared_budget = math.ceil(snapshots / RESOURCES_PER_CALL)
    row(rows, "first run: DescribeImages calls", first.get("ec2:DescribeImages", 0), "calls", "1", first.get("ec2:DescribeImages", 0) == 1)
    # One read of every snapshot before tagging, and one read after it that confirms the tags AWS now holds.
    confirm_budget = 2 * (read_budget - 1)
    row(rows, "first run: DescribeSnapshots calls", first.get("ec2:DescribeSnapshots", 0), "calls",
        "<= {0} (2 x {1} ids / {2} per call: read, then confirm)".format(confirm_budget, snapshots, SNAPSHOT_ID_BATCH),
        first.get("ec2:DescribeSnapshots", 0) <= confirm_budget)
    row(rows, "first run: CreateTags calls", first.get("ec2:CreateTags", 0), "calls",
        "<= {0} (one per snapshot named)".format(snapshots), first.get("ec2:CreateTags", 0) <= snapshots)
    row(rows, "first run: snapshots named", named, "snapshots", "= {0}".format(snapshots), named == snapshots)
    row(rows, "first run: wall time", first_seconds, "s", "info", True)
    row(rows, "second run: describe calls", describes(second), "calls", "<= {0}".format(read_budget), describes(second) <= read_budget)
    row(rows, "second run: write calls", writes(second), "calls", "0", writes(second) == 0)
    row(rows, "second run: changed", int(bool(second_result["changed"])), "bool", "0 (false)", not second_result["changed"])
    row(rows, "second run: wall time", second_seconds, "s", "info", True)
    row(rows, "one tag changed on every image: CreateTags calls", third.get("ec2:CreateTags", 0), "calls",
        "<= {0} ({1} snapshots / {2} per call)".format(shared_budget, snapshots, RESOURCES_PER_CALL),
        0 < third.get("ec2:CreateTags", 0) <= shared_budget and third_result["changed"])
    row(rows, "one tag changed on every image: wall time", third_seconds, "s", "info", True)
    row(rows, "naive script, first run: API calls", sum(naive_first.values()), "calls", "info", True)
    row(rows, "naive script, second run: API calls", sum(naive_second.values()), "calls", "info", True)
    row(rows, "naive script: first run wall time", naive_seconds, "s", "info", True)
    module_total = sum(first.values())
    ratio = sum(naive_first.values()) / module_total if module_total else 0.0
    row(rows, "first run: naive calls / module calls", ratio, "x", ">= 1.5", ratio >= 1.5)
    second_ratio = sum(naive_second.values()) / max(1, sum(second.values()))
    row(rows, "second run: naive calls / module calls", second_ratio, "x", ">= 100", second_ratio >= 100)
    notes.append("module counts per action, first run: {0}".format(first))
    notes.append("module counts per action, second run: {0}".format(second))
    notes.append("module counts per action, after one tag changed on every image: {0}".format(third))
    notes.append("naive counts per action (each run): {0}".format(naive_first))
    notes.append("The Name differs per snapshot, so a first run needs one CreateTags per snapshot; the module puts every "
                 "other tag of a snapshot in that same call, where the naive script makes a second call per snapshot.")

    report = {"title": "ami_snapshot_tag: API calls for {0} images x {1} mappings".format(images, len(MAPPINGS)),
              "machine": machine(), "rows": rows, "notes": notes}
    print_table(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


def print_table(report):
    print(report["title"])
    print(report["machine"])
    width = max(len(r["metric"]) for r in report["rows"])
    for r in report["rows"]:
        value = "{0:.0f}".format(r["value"]) if r["unit"] in ("calls", "snapshots", "bool") else "{0:.2f}".format(r["value"])
        verdict = "ok" if r["ok"] else "MISSED"
        print("  {0:<{w}}  {1:>9} {2:<9}  target {3:<40} {4}".format(r["metric"], value, r["unit"], r["target"], verdict, w=width))
    for note in report["notes"]:
        print("  - " + note)


if __name__ == "__main__":
    sys.exit(main())
