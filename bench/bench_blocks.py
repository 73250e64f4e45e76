# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block streaming benchmark: ebs_block_put against baselines, side by side in one run.

Usage: ``python bench/bench_blocks.py --json OUT.json [--quick]``

Starts its own local AWS endpoint (tests/localaws) in this process. The module is run as a real
module process (``python ebs_block_put.py args.json``, as Ansible would run it, without the
ansible-playbook start-up), so its wall time, CPU time and peak RSS are those of the module process.
Baselines run in their own processes too:

- ``sequential``: one boto3 PutSnapshotBlock after the other (read, hash, put).
- ``bare``: a bare ``ThreadPoolExecutor`` boto3 uploader with the same worker count (read, hash,
  put per block; StartSnapshot and CompleteSnapshot around it) - what a careful script would do,
  without resume, idempotence, sparse handling or progress.
- ``sha256sum`` of the same file: the floor, since every byte must be hashed.

The endpoint is a Python server on the same (2-core) machine, so absolute MiB/s mean little;
ratios and client CPU cost are the figures that carry over.
"""
import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / ".build" / "collections"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

BS = 524288
MIB = 1024 * 1024
GIB = 1024 ** 3
LATENCY = 0.1
SWEEP = (8, 16, 32, 64, 128)


def machine():
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return "{0} CPU(s), {1}, {2} {3}, Python {4}".format(
        os.cpu_count(), cpu, platform.system(), platform.release(), platform.python_version())


# ------------------------------------------------------------------------------------ images

def dense_image(path, size, seed=1):
    """``size`` bytes of pseudo-random data (no zero block)."""
    rnd = random.Random(seed)
    chunk = rnd.randbytes(8 * MIB)
    with open(path, "wb") as handle:
        written = 0
        counter = 0
        while written < size:
            counter += 1
            piece = counter.to_bytes(8, "little") + chunk[8:]
            piece = piece[:size - written]
            # vary every block so no two blocks are equal
            view = bytearray(piece)
            for off in range(0, len(view), BS):
                view[off:off + 8] = (counter * 1000003 + off).to_bytes(8, "little")
            handle.write(view)
            written += len(view)
    return str(path)


def sparse_image(path, size, data_bytes, seed=2):
    """A ``size``-byte sparse file with ``data_bytes`` of data in 1 MiB extents spread evenly."""
    rnd = random.Random(seed)
    piece = MIB
    pieces = max(1, data_bytes // piece)
    stride = size // pieces
    with open(path, "wb") as handle:
        handle.truncate(size)
        for i in range(pieces):
            handle.seek(i * stride)
            handle.write(rnd.randbytes(piece))
    return str(path)


# ------------------------------------------------------------------------------------ processes

def env_for(endpoint):
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT / ".build" / "collections"), str(ROOT)]),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_ENDPOINT": endpoint,
    })
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    return env


def measured(cmd, env=None):
    """Run ``cmd``; -> (wall seconds, CPU seconds (user+sys), peak RSS MiB, stdout) of that process alone.

    The command is started by a small launcher process (``--spawn``) that waits for it with
    ``wait4``: Linux carries a process's peak RSS over ``exec`` from the process that forked it, so
    forking straight from this (large) process would report this process's size.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json") as usage_file:
        launcher = [sys.executable, "-S", str(Path(__file__).resolve()), "--spawn", usage_file.name, "--"]
        started = time.monotonic()
        proc = subprocess.run(launcher + list(cmd), env=env, capture_output=True, cwd=str(ROOT), check=False)
        wall = time.monotonic() - started
        usage = json.loads(usage_file.read() or "{}")
    if proc.returncode != 0 or usage.get("status") != 0:
        raise RuntimeError("{0} failed ({1}):\n{2}\n{3}".format(
            cmd[:3], proc.returncode, proc.stdout.decode()[-3000:], proc.stderr.decode()[-3000:]))
    return wall, usage["cpu"], usage["maxrss_mib"], proc.stdout.decode()


def spawn_main(usage_path, cmd):
    """The launcher: run ``cmd`` as a child of this small process and record its own rusage."""
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)  # pylint: disable=protected-access
    _pid, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(usage_path, "w", encoding="utf-8") as handle:
        json.dump({"status": code, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mib": usage.ru_maxrss / 1024.0},
                  handle)
    return code


def run_module(name, args, endpoint, check=False):
    module = ROOT / ".build" / "collections" / "ansible_collections" / "blockwise" / "ebs" / "plugins" / "modules" / (
        name + ".py")
    margs = dict(args, endpoint_url=endpoint, region="us-east-1")
    if check:
        margs["_ansible_check_mode"] = True
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": margs}, handle)
        argfile = handle.name
    try:
        wall, cpu, rss, out = measured([sys.executable, str(module), argfile], env=env_for(endpoint))
    finally:
        os.unlink(argfile)
    result = json.loads(out[out.index("{"):])
    if result.get("failed"):
        raise RuntimeError("{0} failed: {1}".format(name, result.get("msg")))
    return wall, cpu, rss, result


def run_baseline(kind, path, endpoint, workers=1, max_blocks=None):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline", kind, "--src", path, "--workers", str(workers)]
    if max_blocks:
        cmd += ["--max-blocks", str(max_blocks)]
    wall, cpu, rss, out = measured(cmd, env=env_for(endpoint))
    info = json.loads(out)
    return wall, cpu, rss, info


def run_sha256sum(path):
    wall, cpu, rss, _out = measured(["sha256sum", path])
    return wall, cpu, rss


# ------------------------------------------------------------------------------------ baselines (child side)

def baseline_main(kind, src, workers, max_blocks):
    """Upload ``src`` (all blocks, or the first ``max_blocks``) with plain boto3; print JSON timings."""
    import boto3
    from botocore.config import Config

    endpoint = os.environ["BENCH_ENDPOINT"]
    ebs = boto3.client("ebs", endpoint_url=endpoint, region_name="us-east-1",
                       config=Config(max_pool_connections=max(10, workers + 2)))
    size = os.path.getsize(src)
    nblocks = (size + BS - 1) // BS
    if max_blocks:
        nblocks = min(nblocks, max_blocks)
    fd = os.open(src, os.O_RDONLY)
    started = time.monotonic()
    snap = ebs.start_snapshot(VolumeSize=max(1, -(-size // GIB)))["SnapshotId"]
    digests = [None] * nblocks

    def put(index):
        data = os.pread(fd, BS, index * BS)
        if len(data) < BS:
            data += bytes(BS - len(data))
        digest = hashlib.sha256(data).digest()
        digests[index] = digest
        ebs.put_snapshot_block(SnapshotId=snap, BlockIndex=index, BlockData=data, DataLength=BS,
                               Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256")

    if kind == "sequential":
        for index in range(nblocks):
            put(index)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, range(nblocks)))
    linear = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=nblocks, Checksum=linear, ChecksumAlgorithm="SHA256",
                          ChecksumAggregationMethod="LINEAR")
    elapsed = time.monotonic() - started
    print(json.dumps({"blocks": nblocks, "seconds": elapsed, "snapshot_id": snap}))


# ------------------------------------------------------------------------------------ report

class Report:
    def __init__(self, title):
        self.title = title
        self.rows = []
        self.notes = []

    def row(self, metric, value, unit, target="", ok=True):
        self.rows.append({"metric": metric, "value": round(float(value), 3), "unit": unit, "target": target,
                          "ok": bool(ok)})
        print("  {0:<68} {1:>10.2f} {2:<8} {3:<10} {4}".format(metric, value, unit, target,
                                                               "" if not target else ("ok" if ok else "MISSED")),
              flush=True)

    def note(self, text):
        self.notes.append(text)
        print("  note: " + text, flush=True)

    def as_dict(self):
        return {"title": self.title, "machine": machine(), "rows": self.rows, "notes": self.notes}


def mib_s(nbytes, seconds):
    return nbytes / MIB / seconds if seconds > 0 else 0.0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--spawn"]:
        return spawn_main(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="smaller images (a smoke run, about a minute)")
    parser.add_argument("--baseline", choices=["sequential", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--max-blocks", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.baseline:
        baseline_main(opts.baseline, opts.src, opts.workers, opts.max_blocks)
        return 0

    from tools.collection_link import ensure_collection_link
    from tests.localaws import LocalAWS

    ensure_collection_link()
    from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import DEFAULT_WORKERS as default_workers

    quick = opts.quick
    dense_size = (128 if quick else 512) * MIB
    plan_size = (512 if quick else 2048) * MIB
    seq_blocks = 40 if quick else 200
    sparse_gib = 8 if quick else 64
    sparse_data = (16 if quick else 64) * MIB
    report = Report("Block streaming (ebs_block_put)")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    try:
        with LocalAWS() as aws:
            endpoint = aws.endpoint_url
            dense = dense_image(workdir / "dense.raw", dense_size)

            def put(src, workers=default_workers, check=False, latency=0.0, **extra):
                aws.reset()
                if latency:
                    aws.set_faults(latency=latency, actions=["PutSnapshotBlock"])
                args = dict(src=src, workers=workers, state_dir=str(workdir / "state"), wait=True, **extra)
                return run_module("ebs_block_put", args, endpoint, check=check)

            # 1. throughput at 100 ms per block request, over a range of worker counts (how the default was
            #    chosen), against a sequential loop and a bare thread-pool uploader
            print("Upload of {0} MiB with {1:.0f} ms injected latency per PutSnapshotBlock".format(
                dense_size // MIB, LATENCY * 1000), flush=True)
            rates = {}
            for workers in SWEEP:
                wall, _cpu, _rss, res = put(dense, workers=workers, latency=LATENCY)
                assert res["blocks_written"] == dense_size // BS, res
                rates[workers] = mib_s(dense_size, wall)
                label = " (the default)" if workers == default_workers else ""
                report.row("module, workers={0}{1}, 100 ms latency".format(workers, label), rates[workers], "MiB/s")
            module_rate = rates[default_workers]
            aws.reset()
            aws.set_faults(latency=LATENCY, actions=["PutSnapshotBlock"])
            seq_wall, _c, _r, seq = run_baseline("sequential", dense, endpoint, 1, seq_blocks)
            seq_rate = mib_s(seq["blocks"] * BS, seq_wall)
            aws.reset()
            aws.set_faults(latency=LATENCY, actions=["PutSnapshotBlock"])
            bare_wall, _c, _r, _bare = run_baseline("bare", dense, endpoint, default_workers)
            bare_rate = mib_s(dense_size, bare_wall)
            aws.clear_faults()
            report.row("sequential boto3 loop, 100 ms latency", seq_rate, "MiB/s")
            report.row("bare thread-pool boto3 uploader, {0} workers, 100 ms latency".format(default_workers),
                       bare_rate, "MiB/s")
            report.row("module vs sequential loop (100 ms latency)", module_rate / seq_rate, "x", ">= 10x",
                       module_rate / seq_rate >= 10)
            report.row("module vs bare thread-pool uploader, same workers (100 ms latency)", module_rate / bare_rate,
                       "x", ">= 0.8x", module_rate / bare_rate >= 0.8)
            report.note("module throughput is end to end: process start, reading and hashing the image, StartSnapshot, "
                        "the puts, CompleteSnapshot and the wait for 'completed'; the baselines are timed from process "
                        "start to exit too")
            report.note("sequential loop timed on its first {0} blocks".format(seq["blocks"]))

            # 3. client CPU per GiB, no injected latency
            print("Client CPU per GiB uploaded, no injected latency", flush=True)
            _w, mod_cpu, dense_rss, res = put(dense)
            assert res["blocks_written"] == dense_size // BS
            aws.reset()
            _w, bare_cpu, _r, _b = run_baseline("bare", dense, endpoint, default_workers)
            _w, sum_cpu, _r = run_sha256sum(dense)
            gib = dense_size / GIB
            report.row("module process CPU per GiB uploaded", mod_cpu / gib, "s/GiB")
            report.row("bare thread-pool uploader CPU per GiB uploaded", bare_cpu / gib, "s/GiB")
            report.row("sha256sum CPU per GiB (the floor: every byte is hashed)", sum_cpu / gib, "s/GiB")
            report.row("module CPU vs bare uploader", mod_cpu / bare_cpu, "x", "<= 1.5x", mod_cpu / bare_cpu <= 1.5)
            report.row("module CPU vs sha256sum", mod_cpu / sum_cpu, "x")
            report.row("peak RSS of the {0} MiB dense upload, {1} workers (module process)".format(
                dense_size // MIB, default_workers), dense_rss, "MiB")
            report.note("CPU = user + system seconds of the client process alone (the endpoint runs in the benchmark "
                        "process), interpreter start-up included")

            # 4. check-mode plan (read + hash) vs sha256sum
            print("Check-mode plan of a {0} MiB image vs sha256sum".format(plan_size // MIB), flush=True)
            planfile = dense_image(workdir / "plan.raw", plan_size, seed=4)
            run_sha256sum(planfile)  # warm the page cache for both
            sums, plans = [], []
            for _round in range(3):
                sums.append(run_sha256sum(planfile)[0])
                wall, _cpu, _rss, res = put(planfile, check=True)
                assert res["plan"]["blocks_to_write"] == plan_size // BS, res
                plans.append(wall)
            plan_rate = mib_s(plan_size, statistics.median(plans))
            sum_rate = mib_s(plan_size, statistics.median(sums))
            report.row("check-mode plan (read + SHA256 per block) throughput", plan_rate, "MiB/s")
            report.row("sha256sum throughput, same file", sum_rate, "MiB/s")
            report.row("check-mode plan vs sha256sum", plan_rate / sum_rate, "x", ">= 1.0x", plan_rate / sum_rate >= 1.0)
            os.unlink(planfile)

            # 5. sparse vs dense with the same amount of data
            print("{0} GiB sparse image with {1} MiB of data vs a {1} MiB dense image".format(
                sparse_gib, sparse_data // MIB), flush=True)
            sparse = sparse_image(workdir / "sparse.raw", sparse_gib * GIB, sparse_data)
            small = dense_image(workdir / "small.raw", sparse_data, seed=5)
            sparse_walls, dense_walls, rss = [], [], []
            for _round in range(3):
                wall, _cpu, peak, res = put(sparse)
                assert res["blocks_written"] == sparse_data // BS and res["volume_size"] == sparse_gib, res
                sparse_walls.append(wall)
                rss.append(peak)
                wall, _cpu, _peak, res = put(small)
                dense_walls.append(wall)
            s_wall, d_wall = statistics.median(sparse_walls), statistics.median(dense_walls)
            report.row("{0} GiB sparse image ({1} MiB data): upload time".format(sparse_gib, sparse_data // MIB), s_wall,
                       "s")
            report.row("{0} MiB dense image: upload time".format(sparse_data // MIB), d_wall, "s")
            report.row("sparse vs dense upload time", s_wall / d_wall, "x", "<= 2x", s_wall / d_wall <= 2.0)
            report.row("peak RSS of the {0} GiB sparse upload (module process)".format(sparse_gib), max(rss), "MiB",
                       "<= 300 MiB", max(rss) <= 300)
            report.note("medians of 3 runs for the check-mode and sparse comparisons")
            if quick:
                report.note("--quick: smaller images ({0} MiB dense, {1} GiB sparse, {2} MiB plan) for a smoke run; the "
                            "full run uses 512 MiB, 64 GiB and 2 GiB. At these sizes the module's fixed start-up cost "
                            "(about a second: Ansible module set-up, two boto3 clients) weighs on the throughput ratios, "
                            "so read them from the full run".format(dense_size // MIB, sparse_gib, plan_size // MIB))
    finally:
        for name in os.listdir(workdir):
            path = workdir / name
            if path.is_file():
                path.unlink()
        for sub in ("state",):
            if (workdir / sub).is_dir():
                for name in os.listdir(workdir / sub):
                    (workdir / sub / name).unlink()
                (workdir / sub).rmdir()
        workdir.rmdir()
    report.note("total benchmark time {0:.0f} s".format(time.monotonic() - started))
    if opts.json:
        Path(opts.json).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.json).write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if all(r["ok"] for r in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
