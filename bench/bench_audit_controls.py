# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: EC2 describe calls of the audit's security controls for 2,000 volumes and 30,000 snapshots in one region.

Usage: ``.venv/bin/python bench/bench_audit_controls.py --json OUT.json [--quick]``

Starts its own local AWS endpoint (which pages DescribeVolumes / DescribeSnapshots at MaxResults as EC2 does),
seeds one region with 2,000 volumes x 15 snapshots (200 x 15 with ``--quick``) directly in moto's in-process
backend, makes a few snapshots public, then runs ``ebs_audit_controls_info`` in check mode through the real
``ansible-playbook`` and counts its EC2 describe calls (target: at most 40 per region, issue 13) and its writes
(target: none).

Prints a table and writes ``{"title", "machine", "rows": [{"metric", "value", "unit", "target", "ok"}], "notes"}``.
"""
import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_retention import machine, row, seed  # noqa: E402  pylint: disable=wrong-import-position
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402  pylint: disable=wrong-import-position
from moto.ec2.models import ec2_backends  # noqa: E402  pylint: disable=wrong-import-position

from tests.functional.harness import run_playbook  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

REGION = "us-east-1"
DESCRIBE_TARGET = 40
TASK = {"blockwise.ebs.ebs_audit_controls_info": {
    "regions": [REGION], "policies": [{"name": "bench", "target_tags": {"backup": "yes"}, "frequency": "1d"}]}}


def make_public(count):
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    for snapshot in list(backend.snapshots.values())[:count]:
        snapshot.create_volume_permission_groups.add("all")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the JSON report")
    parser.add_argument("--quick", action="store_true", help="200 volumes x 15 snapshots (smoke run)")
    args = parser.parse_args(argv)
    volumes, per_volume = (200, 15) if args.quick else (2000, 15)
    rows, notes = [], []
    with LocalAWS() as aws, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        seed(volumes, per_volume, datetime.now(timezone.utc))
        make_public(3)
        notes.append("Seeded %d volumes x %d snapshots in %.1f s in moto's in-process backend; 3 snapshots public."
                     % (volumes, per_volume, time.perf_counter() - started))
        aws.reset_counters()
        started = time.perf_counter()
        run = run_playbook(aws.endpoint_url, [dict(TASK, name="controls")], Path(workdir), check=True)
        elapsed = time.perf_counter() - started
        if run.rc != 0:
            raise SystemExit("the audit failed: %r" % (run,))
        counts = aws.counters()
        describes = {k: v for k, v in counts.items() if k.startswith("ec2:Describe") and k != "ec2:DescribeRegions"}
        total = sum(describes.values())
        rows.append(row("describe calls per region (%d volumes, %d snapshots)" % (volumes, volumes * per_volume), total, "calls",
                        "<= %d" % DESCRIBE_TARGET, total <= DESCRIBE_TARGET))
        writes = sum(aws.mutating_calls().values())
        rows.append(row("mutating calls", writes, "calls", "0", writes == 0))
        rows.append(row("module run, wall time (incl. ansible-playbook start)", elapsed, "s"))
        public = [r for r in run.result("controls")["findings"] if r["control"] == "snapshot-public"][0]
        rows.append(row("public snapshots found", public["count"], "snapshots", "3", public["count"] == 3))
        notes.append("Calls: %s (plus one DescribeRegions for the whole run)." % describes)
    report = {"title": "Audit security controls (%s)" % ("quick" if args.quick else "full"), "machine": machine(), "rows": rows, "notes": notes}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    for r in rows:
        print("%-70s %12.3f %-10s %-6s %s" % (r["metric"], r["value"], r["unit"], r["target"], "yes" if r["ok"] else "NO"))
    for note in notes:
        print("- " + note)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
