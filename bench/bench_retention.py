# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the scheduled-snapshot modules: EC2 describe calls per run, and the pure retention engine.

Usage: ``.venv/bin/python bench/bench_retention.py --json OUT.json [--quick]``

1. Starts its own local AWS endpoint and seeds one region with 2,000 volumes x 15 snapshots (200 x 15 with
   ``--quick``) directly in moto's in-process backend (the same objects the endpoint serves; going through
   the API would take minutes and measure nothing of ours).
2. Runs ``ebs_snapshot_policy`` and ``ebs_snapshot_prune`` in check mode through the real
   ``ansible-playbook`` and counts the EC2 describe calls each makes (target <= 30 each, whatever the
   number of volumes).
3. Times the module's region pass (the same ``fleet.py`` reads, in process) against a naive loop that
   makes one DescribeSnapshots call per volume, in the same run against the same endpoint.
4. Decides 100,000 snapshots (20,000 with ``--quick``) with ``retention.decide`` and reports the rate.

Prints a table and writes ``{"title", "machine", "rows": [{"metric", "value", "unit", "target", "ok"}], "notes"}``.
"""
import argparse
import json
import os
import platform
import random
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

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402  pylint: disable=wrong-import-position
from moto.ec2.models import ec2_backends  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet, retention  # noqa: E402  pylint: disable=wrong-import-position
from tests.functional.harness import run_playbook  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

REGION = "us-east-1"
POLICY = "bench"
POLICY_TAG = "blockwise:policy"
DESCRIBE_PREFIX = "ec2:Describe"
DESCRIBE_TARGET = 30
UTC = timezone.utc


def seed(volumes, per_volume, now):
    """Volumes tagged backup=yes, each with ``per_volume`` daily policy snapshots; about half are due."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    volume_ids = []
    for index in range(volumes):
        volume = backend.create_volume(size=1, zone_name=REGION + "a")
        backend.create_tags([volume.id], {"backup": "yes", "Name": "bench-%04d" % index})
        newest = timedelta(hours=(index % 48) + 0.5)
        for day in range(per_volume):
            snapshot = backend.create_snapshot(volume.id, "bench")
            snapshot.start_time = (now - newest - timedelta(days=day)).astimezone(UTC).replace(tzinfo=None)
            backend.create_tags([snapshot.id], {POLICY_TAG: POLICY})
        volume_ids.append(volume.id)
    return volume_ids


def describe_calls(counts):
    return {key: value for key, value in counts.items() if key.startswith(DESCRIBE_PREFIX)}


def run_module(aws, workdir, task, name):
    """One check-mode task through ansible-playbook: (result, describe calls, seconds)."""
    aws.reset_counters()
    started = time.perf_counter()
    run = run_playbook(aws.endpoint_url, [dict(task, name=name)], workdir, check=True, env={"AWS_URL": aws.endpoint_url})
    elapsed = time.perf_counter() - started
    if run.rc != 0:
        raise SystemExit("%s failed: %r" % (name, run))
    return run.result(name), describe_calls(aws.counters()), elapsed


class Retrying:
    """Makes a plain boto3 client accept ``aws_retry=True`` like the modules' clients, for fleet.py."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(aws_retry=False, **kwargs):  # pylint: disable=unused-argument
            return method(**kwargs)

        return call


def time_region_pass(ec2):
    started = time.perf_counter()
    volumes = fleet.read_volumes(Retrying(ec2), filters={"tag:backup": "yes"})
    snapshots = fleet.read_snapshots(Retrying(ec2), filters={"tag:" + POLICY_TAG: POLICY})
    return time.perf_counter() - started, len(volumes), len(snapshots)


def time_naive_loop(ec2, volume_ids, sample):
    """One DescribeSnapshots per volume (on ``sample`` volumes when set), extrapolated to all volumes."""
    chosen = volume_ids if not sample or sample >= len(volume_ids) else random.Random(1).sample(volume_ids, sample)
    started = time.perf_counter()
    ec2.describe_volumes(Filters=[{"Name": "tag:backup", "Values": ["yes"]}])
    for volume_id in chosen:
        ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]},
                                                           {"Name": "tag:" + POLICY_TAG, "Values": [POLICY]}])
    elapsed = time.perf_counter() - started
    return elapsed * len(volume_ids) / len(chosen), len(chosen)


def engine_timeline(count, now):
    """``count`` snapshots: 1,000 volumes (or fewer) with hourly-to-daily spaced snapshots over two years."""
    rnd = random.Random(42)
    volumes = max(1, min(1000, count // 100))
    per_volume = count // volumes
    snaps = []
    for v in range(volumes):
        when = now - timedelta(minutes=rnd.randint(1, 600))
        for s in range(per_volume):
            snaps.append(retention.Snapshot("snap-%06d-%04d" % (v, s), "vol-%05d" % v, when))
            when -= timedelta(hours=rnd.choice((1, 6, 12, 24, 24, 24)))
    return snaps


def time_engine(count, now):
    snaps = engine_timeline(count, now)
    policy = retention.RetentionPolicy(keep_last=3, keep_hourly=24, keep_daily=7, keep_weekly=5, keep_monthly=12,
                                       keep_yearly=2, keep_within=timedelta(days=2), minimum=2, timezone="Europe/Berlin")
    started = time.perf_counter()
    decisions = retention.decide(snaps, policy, now)
    elapsed = time.perf_counter() - started
    deleted = sum(1 for decision in decisions if decision.action == retention.DELETE)
    return elapsed, len(decisions), deleted


def row(metric, value, unit, target="", ok=True):
    return {"metric": metric, "value": round(float(value), 4), "unit": unit, "target": target, "ok": bool(ok)}


def machine():
    return "%s, Python %s, %d CPU(s)" % (platform.platform(terse=True), platform.python_version(), os.cpu_count() or 0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="where to write the JSON report")
    parser.add_argument("--quick", action="store_true", help="200 volumes and 20,000 engine snapshots (smoke run)")
    parser.add_argument("--naive-sample", type=int, default=400,
                        help="volumes the naive per-volume loop really calls (extrapolated to all); 0 = all")
    args = parser.parse_args(argv)

    volumes, per_volume = (200, 15) if args.quick else (2000, 15)
    engine_count = 20000 if args.quick else 100000
    now = datetime.now(UTC)
    rows, notes = [], []

    notes.append("moto's per-resource tag lookup scans every tag of the region (quadratic in the number of resources); "
                 "the local endpoint indexes that one lookup (tests/localaws/moto_speedups.py), answers are unchanged.")
    with LocalAWS() as aws, tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        volume_ids = seed(volumes, per_volume, now)
        seed_seconds = time.perf_counter() - started
        notes.append("Seeded %d volumes x %d snapshots in %.1f s directly in moto's in-process EC2 backend "
                     "(create_volume/create_snapshot/create_tags, StartTime back-dated on the objects)." % (volumes, per_volume, seed_seconds))

        policy_task = {"blockwise.ebs.ebs_snapshot_policy": {"name": POLICY, "volume_filters": {"tag:backup": "yes"}, "frequency": "1d"}}
        result, calls, policy_seconds = run_module(aws, Path(tempfile.mkdtemp(dir=workdir)), policy_task, "policy")
        total = sum(calls.values())
        rows.append(row("ebs_snapshot_policy: EC2 describe calls (check mode)", total, "calls", "<= %d" % DESCRIBE_TARGET, total <= DESCRIBE_TARGET))
        rows.append(row("ebs_snapshot_policy: module run, wall time", policy_seconds, "s"))
        notes.append("policy run: %s; %d volumes matched, %d due." % (calls, len(result["matched"]), len(result["created"])))

        prune_task = {"blockwise.ebs.ebs_snapshot_prune": {
            "policy": POLICY, "retention": {"keep_daily": 7, "keep_weekly": 2, "minimum": 3}, "max_deletions": volumes * per_volume}}
        result, calls, prune_seconds = run_module(aws, Path(tempfile.mkdtemp(dir=workdir)), prune_task, "prune")
        total = sum(calls.values())
        rows.append(row("ebs_snapshot_prune: EC2 describe calls (check mode)", total, "calls", "<= %d" % DESCRIBE_TARGET, total <= DESCRIBE_TARGET))
        rows.append(row("ebs_snapshot_prune: module run, wall time", prune_seconds, "s"))
        notes.append("prune run: %s; %d snapshots decided, %d to delete." % (calls, result["summary"]["snapshots"], result["summary"]["deleted"]))

        ec2 = aws.client("ec2", region=REGION)
        pass_seconds, seen_volumes, seen_snapshots = time_region_pass(ec2)
        naive_seconds, sampled = time_naive_loop(ec2, volume_ids, args.naive_sample)
        rows.append(row("region pass (fleet.py: volumes + snapshots, %d + %d items)" % (seen_volumes, seen_snapshots), pass_seconds, "s"))
        rows.append(row("naive loop: 1 DescribeSnapshots per volume (%d calls)" % (volumes + 1), naive_seconds, "s"))
        rows.append(row("speed-up of the region pass over the naive loop", naive_seconds / pass_seconds, "x", "> 1", naive_seconds > pass_seconds))
        rows.append(row("speed-up of the policy module run (incl. ansible-playbook start) over the naive loop",
                        naive_seconds / policy_seconds, "x"))
        if sampled < len(volume_ids):
            notes.append("The naive loop called %d of the %d volumes (random sample) and its time was scaled to all of them; "
                         "--naive-sample 0 calls every volume." % (sampled, len(volume_ids)))

    elapsed, decided, deleted = time_engine(engine_count, now)
    rows.append(row("retention.decide: %d snapshots" % decided, elapsed, "s"))
    rows.append(row("retention.decide: rate", decided / elapsed, "snapshots/s", ">= 50000", decided / elapsed >= 50000))
    notes.append("Engine: %d snapshots of %d volumes, GFS + keep_last + keep_within + minimum in Europe/Berlin; %d to delete."
                 % (decided, max(1, min(1000, engine_count // 100)), deleted))

    report = {"title": "Scheduled snapshots and retention (%s)" % ("quick" if args.quick else "full"), "machine": machine(),
              "rows": rows, "notes": notes}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    width = max(len(r["metric"]) for r in rows)
    print(report["title"])
    print(report["machine"])
    print("%-*s  %14s  %-12s  %-9s  %s" % (width, "metric", "value", "unit", "target", "ok"))
    for r in rows:
        print("%-*s  %14.3f  %-12s  %-9s  %s" % (width, r["metric"], r["value"], r["unit"], r["target"], "yes" if r["ok"] else "NO"))
    for note in notes:
        print("- " + note)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
