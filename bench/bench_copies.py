# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the disaster-recovery modules: describe calls per plan, and the pure planner.

Usage: ``.venv/bin/python bench/bench_copies.py --json OUT.json [--quick]``

1. Starts its own local AWS endpoint and seeds, directly in moto's in-process backend (the same
   objects the endpoint serves), 2,000 policy snapshots of 200 volumes in the source region and 2,000
   copies in the destination (200 and 200 with ``--quick``): the copies cover all but the newest 100
   sources, plus 100 sources already pruned at home.
2. Runs ``ebs_snapshot_copy`` in check mode through the real ``ansible-playbook`` and counts the describe
   calls at the endpoint (target <= 25, whatever the number of snapshots), then runs it for real and
   counts the CopySnapshot calls (at most ``max_in_flight``), then again (target: none).
3. Runs ``ebs_snapshot_share`` in check mode for the same 2,000 snapshots and three accounts (target <= 25
   describe calls: one per account, not one per snapshot).
4. Times ``copies.select_sources`` + ``copies.plan`` on the same data in process.

Prints a table and writes ``{"title", "machine", "rows": [{"metric", "value", "unit", "target", "ok"}], "notes"}``.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.collection_link import COLLECTIONS_ROOT, ensure_collection_link  # noqa: E402  pylint: disable=wrong-import-position

ensure_collection_link()
sys.path.insert(0, str(COLLECTIONS_ROOT))

from ansible_collections.blockwise.ebs.plugins.module_utils import copies  # noqa: E402  pylint: disable=wrong-import-position
from tests.functional.harness import run_playbook  # noqa: E402  pylint: disable=wrong-import-position
from tests.functional.test_snapshot_copy import NEW_SOURCES, seed_many  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

SOURCE, DEST = "us-east-1", "eu-west-1"
POLICY = "bench"
ACCOUNTS = ["111111111111", "222222222222", "333333333333"]
DESCRIBE_TARGET = 25
UTC = timezone.utc


def describe_calls(counts):
    return sum(value for key, value in counts.items() if ":Describe" in key)


def run_task(aws, workdir, task, name, check):
    """One task through ansible-playbook: (result, counters, seconds)."""
    aws.reset_counters()
    started = time.perf_counter()
    run = run_playbook(aws.endpoint_url, [dict(task, name=name)], workdir, check=check, region=DEST)
    elapsed = time.perf_counter() - started
    if run.rc != 0:
        raise SystemExit("%s failed: %r %s" % (name, run, run.results[-1].get("msg") if run.results else ""))
    return run.result(name), aws.counters(), elapsed


class Retrying:
    """Makes a plain boto3 client accept ``aws_retry=True`` like the modules' clients."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(aws_retry=False, **kwargs):  # pylint: disable=unused-argument
            return method(**kwargs)

        return call


def time_planner(aws):
    """Read both sides once (plain boto3), then time select + plan in process."""
    from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_reads  # pylint: disable=import-outside-toplevel
    items = snapshot_reads.read_snapshots(Retrying(aws.client("ec2", region=SOURCE)), filters={"tag:" + copies.POLICY_TAG: POLICY})
    existing = snapshot_reads.read_copies(Retrying(aws.client("ec2", region=DEST)))
    options = copies.options_from_params({"source_region": SOURCE, "policy": POLICY}, DEST, {SOURCE, DEST})
    started = time.perf_counter()
    sources, dummy = copies.select_sources(items, options, {item["SnapshotId"] for item in existing})
    the_plan = copies.plan(sources, existing, options)
    return time.perf_counter() - started, len(items), len(existing), len(the_plan.to_copy)


def row(metric, value, unit, target="", ok=True):
    return {"metric": metric, "value": round(float(value), 4), "unit": unit, "target": target, "ok": bool(ok)}


def machine():
    return "%s, Python %s, %d CPU(s)" % (platform.platform(terse=True), platform.python_version(), os.cpu_count() or 0)


def measure(aws, workdir, sources, rows, notes):
    copy_task = {"blockwise.ebs.ebs_snapshot_copy": {"source_region": SOURCE, "policy": POLICY}}
    result, counts, seconds = run_task(aws, Path(tempfile.mkdtemp(dir=workdir)), copy_task, "plan", check=True)
    calls = describe_calls(counts)
    rows.append(row("ebs_snapshot_copy plan: describe calls for %d sources and %d copies (check mode)" % (sources, sources),
                    calls, "calls", "<= %d" % DESCRIBE_TARGET, calls <= DESCRIBE_TARGET))
    rows.append(row("ebs_snapshot_copy plan: module run, wall time", seconds, "s"))
    notes.append("copy plan: %s; %d present, %d to start now, %d queued." % (
        {k: v for k, v in counts.items() if ":Describe" in k}, result["summary"]["present"], len(result["copies"]), len(result["queued"])))

    result, counts, seconds = run_task(aws, Path(tempfile.mkdtemp(dir=workdir)), copy_task, "copy", check=False)
    started = counts.get("ec2:CopySnapshot", 0)
    rows.append(row("ebs_snapshot_copy run: CopySnapshot calls (max_in_flight 20, %d new sources)" % NEW_SOURCES, started, "calls",
                    "<= 20", 0 < started <= 20))
    rows.append(row("ebs_snapshot_copy run: describe calls", describe_calls(counts), "calls", "<= %d" % DESCRIBE_TARGET,
                    describe_calls(counts) <= DESCRIBE_TARGET))

    share_task = {"blockwise.ebs.ebs_snapshot_share": {"region": SOURCE, "policy": POLICY, "account_ids": ACCOUNTS}}
    result, counts, seconds = run_task(aws, Path(tempfile.mkdtemp(dir=workdir)), share_task, "share", check=True)
    calls = describe_calls(counts)
    rows.append(row("ebs_snapshot_share plan: describe calls for %d snapshots and %d accounts (check mode)" % (sources, len(ACCOUNTS)),
                    calls, "calls", "<= %d" % DESCRIBE_TARGET, calls <= DESCRIBE_TARGET))
    notes.append("share plan: %s; %d snapshots to change." % ({k: v for k, v in counts.items() if ":Describe" in k}, result["summary"]["changed"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the JSON report")
    parser.add_argument("--quick", action="store_true", help="200 sources and 200 copies (smoke run)")
    args = parser.parse_args(argv)
    sources, volumes = (200, 20) if args.quick else (2000, 200)
    rows, notes = [], []
    with LocalAWS() as aws, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        seed_many(sources, volumes, datetime.now(UTC) - timedelta(hours=1), SOURCE, DEST, POLICY)
        notes.append("Seeded %d source snapshots (%d volumes) in %s and %d copies in %s in %.1f s, directly in moto's backend."
                     % (sources, volumes, SOURCE, sources, DEST, time.perf_counter() - started))
        seconds, read_sources, read_copies, to_copy = time_planner(aws)
        rows.append(row("copies.select_sources + copies.plan: %d sources x %d copies" % (read_sources, read_copies), seconds, "s"))
        notes.append("planner: %d sources to copy out of %d." % (to_copy, read_sources))
        measure(aws, workdir, sources, rows, notes)
    notes.append("Describe calls are counted at the endpoint, which pages DescribeSnapshots at MaxResults as AWS does; the modules "
                 "ask for pages of 1,000, so the copy plan for 2,000 sources and 2,000 copies reads 2 pages of each (4 calls).")
    report = {"title": "Disaster-recovery copies and shares (%s)" % ("quick" if args.quick else "full"), "machine": machine(),
              "rows": rows, "notes": notes}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    width = max(len(r["metric"]) for r in rows)
    print(report["title"])
    print(report["machine"])
    for r in rows:
        print("%-*s  %14.3f  %-6s  %-9s  %s" % (width, r["metric"], r["value"], r["unit"], r["target"], "yes" if r["ok"] else "NO"))
    for note in notes:
        print("- " + note)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
