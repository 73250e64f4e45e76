# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot verification benchmark: ebs_snapshot_verify against a bare downloader, full against sampled.

Usage: ``python bench/bench_verify.py --json OUT.json [--quick]``

Starts its own local AWS endpoint (tests/localaws) in this process and uploads one snapshot of a 64 GiB
volume whose data (4 GiB, one block in 16) is spread over the whole volume. Every GetSnapshotBlock gets
100 ms of injected latency, the figure bench_blocks.py reasons with.

- ``ebs_snapshot_verify`` runs as a real module process (as Ansible runs it, without the ansible-playbook
  start-up), full and with ``sample: 1%``.
- The baseline runs in its own process: a bare ``ThreadPoolExecutor`` boto3 downloader with the same
  worker count that lists the snapshot and gets every block, checking its SHA256 - what a careful script
  would do, without references, bad-block records, sampling or tags.

Both sides are timed from process start to exit. The sample's time is the module's own
``elapsed_seconds`` (the verification, without the interpreter and Ansible start-up, which a 1% sample
of a real volume would not notice); the wall times are reported too.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / ".build" / "collections"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_blocks import Report, env_for, measured, mib_s, run_module, spawn_main  # noqa: E402  pylint: disable=wrong-import-position

BS = 524288
MIB = 1024 * 1024
GIB = 1024 ** 3
LATENCY = 0.1
STRIDE = 16  # one data block in 16: 4 GiB of data spread over 64 GiB


def upload_spread(aws, volume_gib, stride, workers=16, seed=7):
    """A snapshot of ``volume_gib`` GiB with one random block every ``stride`` blocks; -> (id, data blocks)."""
    ebs = aws.client("ebs")
    rnd = random.Random(seed)
    indexes = list(range(0, volume_gib * 2048, stride))
    chunk = rnd.randbytes(BS + 4096)
    snap = ebs.start_snapshot(VolumeSize=volume_gib, Timeout=4320)["SnapshotId"]
    digests = {}

    def put(index):
        offset = index % 4096
        data = index.to_bytes(8, "little") + chunk[offset + 8:offset + BS]
        digest = hashlib.sha256(data).digest()
        digests[index] = digest
        ebs.put_snapshot_block(SnapshotId=snap, BlockIndex=index, BlockData=data, DataLength=BS,
                               Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, indexes))
    linear = base64.b64encode(hashlib.sha256(b"".join(digests[i] for i in indexes)).digest()).decode()
    status = ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=len(indexes), Checksum=linear,
                                   ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")["Status"]
    assert status == "completed", status
    return snap, len(indexes)


def baseline_main(snapshot_id, workers):
    """List the snapshot and get every block with a bare thread pool, checking checksums; print JSON timings."""
    import boto3
    from botocore.config import Config

    ebs = boto3.client("ebs", endpoint_url=os.environ["BENCH_ENDPOINT"], region_name="us-east-1",
                       config=Config(max_pool_connections=max(10, workers + 2)))
    started = time.monotonic()
    blocks, kwargs = [], {"SnapshotId": snapshot_id, "MaxResults": 10000}
    while True:
        page = ebs.list_snapshot_blocks(**kwargs)
        blocks += [(b["BlockIndex"], b["BlockToken"]) for b in page["Blocks"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]

    def get(item):
        resp = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=item[0], BlockToken=item[1])
        data = resp["BlockData"].read()
        if base64.b64encode(hashlib.sha256(data).digest()).decode() != resp["Checksum"]:
            raise RuntimeError("bad checksum for block {0}".format(item[0]))
        return len(data)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        nbytes = sum(pool.map(get, blocks))
    print(json.dumps({"blocks": len(blocks), "bytes": nbytes, "seconds": time.monotonic() - started}))


def run_baseline(snapshot_id, endpoint, workers):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline", snapshot_id, "--workers", str(workers)]
    wall, cpu, rss, out = measured(cmd, env=env_for(endpoint))
    return wall, cpu, rss, json.loads(out)


def measure(endpoint, snap, data_blocks, workers):
    """Full verifications alternating with the bare downloader, then sampled verifications."""
    verify = {"snapshot_id": snap, "workers": workers, "record": False}
    runs = {"full": [], "bare": [], "sample": []}
    for _round in range(2):
        wall, _cpu, rss, res = run_module("ebs_snapshot_verify", verify, endpoint)
        assert res["result"] == "ok" and res["mode"] == "full" and res["blocks_read"] == data_blocks, res
        runs["full"].append((wall, res, rss))
        wall, _cpu, _rss, info = run_baseline(snap, endpoint, workers)
        assert info["blocks"] == data_blocks, info
        runs["bare"].append((wall, info))
    for _round in range(3):
        wall, _cpu, _rss, res = run_module("ebs_snapshot_verify", dict(verify, sample="1%"), endpoint)
        assert res["result"] == "ok" and res["mode"] == "sample", res
        runs["sample"].append((wall, res))
    return runs


def rows(report, runs, data_bytes):
    full_wall = statistics.median(w for w, _r, _m in runs["full"])
    bare_wall = statistics.median(w for w, _i in runs["bare"])
    full = [r for _w, r, _m in runs["full"]]
    sample = [r for _w, r in runs["sample"]]
    full_elapsed = statistics.median(r["elapsed_seconds"] for r in full)
    sample_elapsed = statistics.median(r["elapsed_seconds"] for r in sample)
    sample_wall = statistics.median(w for w, _r in runs["sample"])
    report.row("full verification (module, end to end)", mib_s(data_bytes, full_wall), "MiB/s")
    report.row("bare thread-pool downloader, same workers (end to end)", mib_s(data_bytes, bare_wall), "MiB/s")
    report.row("full verification vs bare downloader", bare_wall / full_wall, "x", ">= 0.9x", bare_wall / full_wall >= 0.9)
    report.row("full verification: the module's read rate (its throughput_mib_s)",
               statistics.median(r["throughput_mib_s"] for r in full), "MiB/s")
    report.row("bare downloader: its own list + get rate",
               statistics.median(mib_s(i["bytes"], i["seconds"]) for _w, i in runs["bare"]), "MiB/s")
    report.row("full verification time (module elapsed_seconds)", full_elapsed, "s")
    report.row("1% sample time (module elapsed_seconds)", sample_elapsed, "s")
    report.row("1% sample vs full verification", 100.0 * sample_elapsed / full_elapsed, "%", "< 3%",
               sample_elapsed / full_elapsed < 0.03)
    report.row("1% sample vs full verification, wall time of the module process", 100.0 * sample_wall / full_wall, "%")
    report.row("restore estimate from the 1% sample vs the full read time",
               statistics.median(r["restore_estimate_seconds"] for r in sample) /
               statistics.median(r["read_seconds"] for r in full), "x")
    report.row("peak RSS of the full verification (module process)", max(m for _w, _r, m in runs["full"]), "MiB")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--spawn"]:
        return spawn_main(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="an 8 GiB volume (a smoke run)")
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=64, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.baseline:
        baseline_main(opts.baseline, opts.workers)
        return 0

    from tools.collection_link import ensure_collection_link
    from tests.localaws import LocalAWS

    ensure_collection_link()
    from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import DEFAULT_WORKERS as workers

    volume_gib = 8 if opts.quick else 64
    report = Report("Snapshot verification (ebs_snapshot_verify)")
    started = time.monotonic()
    with LocalAWS() as aws:
        print("Uploading a {0} GiB volume with one data block in {1}".format(volume_gib, STRIDE), flush=True)
        snap, data_blocks = upload_spread(aws, volume_gib, STRIDE)
        aws.set_faults(latency=LATENCY, actions=["GetSnapshotBlock"])
        runs = measure(aws.endpoint_url, snap, data_blocks, workers)
        aws.clear_faults()
    label = "{0} GiB volume, {1} MiB of data, {2} workers, 100 ms per GetSnapshotBlock".format(
        volume_gib, data_blocks * BS // MIB, workers)
    print(label, flush=True)
    rows(report, runs, data_blocks * BS)
    report.note(label + "; medians of 2 full runs, 2 baseline runs and 3 sampled runs")
    report.note("the sample's wall time is mostly the module's start-up (Python, Ansible's module set-up, two boto3 "
                "clients), the same for any task; elapsed_seconds is the verification itself")
    if opts.quick:
        report.note("--quick: an 8 GiB volume (512 MiB of data); the full run uses 64 GiB (4 GiB of data)")
    report.note("total benchmark time {0:.0f} s".format(time.monotonic() - started))
    if opts.json:
        Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.json).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if all(r["ok"] for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
