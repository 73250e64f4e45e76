# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block streaming benchmark: ebs_block_put and ebs_block_get against baselines, side by side in one run.

Usage: ``python bench/bench_blocks.py --json OUT.json [--quick]``

Starts its own local AWS endpoint (tests/localaws) in this process. The module is run as a real
module process (``python ebs_block_put.py args.json``, as Ansible would run it, without the
ansible-playbook start-up), so its wall time, CPU time and peak RSS are those of the module process.
Baselines run in their own processes too:

- ``sequential``: one boto3 PutSnapshotBlock after the other (read, hash, put).
- ``bare``: a bare ``ThreadPoolExecutor`` boto3 uploader with the same worker count (read, hash,
  put per block; StartSnapshot and CompleteSnapshot around it) - what a careful script would do,
  without resume, idempotence, sparse handling or progress.
- ``bare download``: a bare ``ThreadPoolExecutor`` boto3 downloader (ListSnapshotBlocks, then
  GetSnapshotBlock, SHA256 check and ``pwrite`` per block) with the same worker count.
- ``hashlib``: SHA-256 of every 512 KiB block of the same file with Python's ``hashlib`` (OpenSSL, with
  the CPU's SHA extensions where it has them), in a process of its own: the true floor, since every
  byte must be hashed. ``sha256sum`` (coreutils, no SHA extensions) is shown for comparison only.

The endpoint serves HTTPS (a test CA, keep-alive connections), as AWS does: botocore does not sign
the payload of PutSnapshotBlock over HTTPS, TLS costs instead. It is a Python server on the same
(2-core) machine, so absolute MiB/s mean little; ratios and client CPU cost are the figures that
carry over.
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

CA_BUNDLE = {}  # the endpoint's test CA, set once it started


def env_for(endpoint):
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT / ".build" / "collections"), str(ROOT)]),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_ENDPOINT": endpoint,
    })
    if CA_BUNDLE.get("path"):
        env["AWS_CA_BUNDLE"] = CA_BUNDLE["path"]
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
    if CA_BUNDLE.get("path"):
        margs["aws_ca_bundle"] = CA_BUNDLE["path"]
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


def run_hashlib(path):
    """CPU seconds of a process that SHA-256es every 512 KiB block of ``path`` with hashlib (the floor)."""
    script = ("import hashlib, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\noffset = 0\nwhile True:\n"
              "    data = os.pread(fd, {0}, offset)\n    if not data:\n        break\n"
              "    hashlib.sha256(data).digest()\n    offset += len(data)\n").format(BS)
    _wall, cpu, _rss, _out = measured([sys.executable, "-S", "-c", script, path])
    _wall, idle, _rss, _out = measured([sys.executable, "-S", "-c", "pass"])
    return max(cpu - idle, 1e-6)


def download_main(snapshot_id, dest, workers):
    """Restore ``snapshot_id`` into ``dest`` with plain boto3 (list, get, check SHA256, pwrite); print JSON."""
    import boto3
    from botocore.config import Config

    ebs = boto3.client("ebs", endpoint_url=os.environ["BENCH_ENDPOINT"], region_name="us-east-1",
                       config=Config(max_pool_connections=max(10, workers + 2)))
    started = time.monotonic()
    blocks, token, size = [], None, 0
    while True:
        page = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, **({"NextToken": token} if token else {}))
        size = page["VolumeSize"] * GIB
        blocks += [(b["BlockIndex"], b["BlockToken"]) for b in page.get("Blocks", [])]
        token = page.get("NextToken")
        if not token:
            break
    fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)

    def get(item):
        answer = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=item[0], BlockToken=item[1])
        data = answer["BlockData"].read()
        if base64.b64encode(hashlib.sha256(data).digest()).decode() != answer["Checksum"]:
            raise RuntimeError("checksum mismatch at block {0}".format(item[0]))
        os.pwrite(fd, data, item[0] * BS)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, blocks))
    os.close(fd)
    print(json.dumps({"blocks": len(blocks), "seconds": time.monotonic() - started}))


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


def connections_section(report, aws, put, dense, workers):
    """Connections the module opens per 1,000 requests: about its worker count when they are kept alive."""
    opened = aws.connections_opened
    put(dense)  # put() resets the counters first
    requests = sum(aws.counters().values())
    connections = aws.connections_opened - opened
    report.row("upload: connections opened for {0} requests ({1} workers)".format(requests, workers), connections,
               "conns", "<= workers + 8", connections <= workers + 8)
    report.row("upload: connections per 1,000 requests", 1000.0 * connections / max(requests, 1), "conns")


def run_get(snapshot_id, dest, workers, endpoint, workdir):
    args = dict(snapshot_id=snapshot_id, dest=str(dest), workers=workers, state_dir=str(workdir / "state"))
    return run_module("ebs_block_get", args, endpoint)


def run_bare_download(snapshot_id, dest, workers, endpoint):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline", "download", "--snapshot-id", snapshot_id,
           "--dest", str(dest), "--workers", str(workers)]
    wall, cpu, rss, out = measured(cmd, env=env_for(endpoint))
    return wall, cpu, rss, json.loads(out)


def download_section(report, aws, put, dense, workdir, workers, floor_per_gib, quick):
    """ebs_block_get vs a bare thread-pool downloader: throughput at 100 ms latency, CPU per GiB."""
    print("Download of the dense image: ebs_block_get vs a bare downloader", flush=True)
    _w, _c, _r, res = put(dense)
    snap, size = res["snapshot_id"], os.path.getsize(dense)
    gib = size / GIB
    aws.set_faults(latency=LATENCY, actions=["GetSnapshotBlock"])
    mod_wall, _c, _r, got = run_get(snap, workdir / "restored.raw", workers, aws.endpoint_url, workdir)
    assert got["blocks_fetched"] == size // BS, got
    bare_wall, _c, _r, _b = run_bare_download(snap, workdir / "bare.raw", workers, aws.endpoint_url)
    aws.clear_faults()
    report.row("download: module, {0} workers, 100 ms latency".format(workers), mib_s(size, mod_wall), "MiB/s")
    report.row("download: bare thread-pool downloader, 100 ms latency", mib_s(size, bare_wall), "MiB/s")
    report.row("download: module vs bare downloader (100 ms latency)", bare_wall / mod_wall, "x", ">= 0.9x",
               bare_wall / mod_wall >= 0.9)
    for name in ("restored.raw", "bare.raw"):
        os.unlink(str(workdir / name))
    _w, mod_cpu, _r, _g = run_get(snap, workdir / "restored.raw", workers, aws.endpoint_url, workdir)
    _w, bare_cpu, _r, _b = run_bare_download(snap, workdir / "bare.raw", workers, aws.endpoint_url)
    report.row("download: module process CPU per GiB", mod_cpu / gib, "s/GiB")
    report.row("download: bare downloader CPU per GiB", bare_cpu / gib, "s/GiB")
    report.row("download: module CPU vs hashlib floor", mod_cpu / gib / floor_per_gib, "x", "<= 3x",
               mod_cpu / gib / floor_per_gib <= 3)
    for name in ("restored.raw", "bare.raw"):
        os.unlink(str(workdir / name))
    if quick:
        report.note("--quick: the download rows carry the module's start-up cost over a small image")


def sparse_download_section(report, aws, put, sparse, workdir, workers):
    """Peak RSS and time of restoring the big sparse snapshot (only its data blocks are fetched)."""
    snapshot_id = put(sparse)[3]["snapshot_id"]
    wall, _cpu, rss, got = run_get(snapshot_id, workdir / "sparse-restored.raw", workers, aws.endpoint_url, workdir)
    report.row("download of the sparse snapshot: time", wall, "s")
    report.row("peak RSS of the sparse download (module process)", rss, "MiB", "<= 150 MiB", rss <= 150)
    report.note("sparse download fetched {0} blocks of a {1} GiB volume".format(
        got["blocks_fetched"], got["volume_size"]))
    os.unlink(str(workdir / "sparse-restored.raw"))


def mib_s(nbytes, seconds):
    return nbytes / MIB / seconds if seconds > 0 else 0.0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--spawn"]:
        return spawn_main(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="smaller images (a smoke run, about a minute)")
    parser.add_argument("--baseline", choices=["sequential", "bare", "download"], help=argparse.SUPPRESS)
    parser.add_argument("--snapshot-id", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--max-blocks", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.baseline == "download":
        download_main(opts.snapshot_id, opts.dest, opts.workers)
        return 0
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
    report = Report("Block streaming (ebs_block_put, ebs_block_get), over HTTPS")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="bench-blocks-"))
    try:
        with LocalAWS(tls=True) as aws:
            endpoint = aws.endpoint_url
            CA_BUNDLE["path"] = aws.ca_bundle
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
                       "x", ">= 0.9x", module_rate / bare_rate >= 0.9)
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
            floor_cpu = run_hashlib(dense)
            gib = dense_size / GIB
            report.row("module process CPU per GiB uploaded", mod_cpu / gib, "s/GiB")
            report.row("bare thread-pool uploader CPU per GiB uploaded", bare_cpu / gib, "s/GiB")
            report.row("hashlib SHA-256 CPU per GiB (the floor: every byte is hashed)", floor_cpu / gib, "s/GiB")
            report.row("sha256sum (coreutils) CPU per GiB, for comparison", sum_cpu / gib, "s/GiB")
            report.row("module CPU vs bare uploader", mod_cpu / bare_cpu, "x", "<= 1.5x", mod_cpu / bare_cpu <= 1.5)
            report.row("upload: module CPU vs hashlib floor", mod_cpu / floor_cpu, "x", "<= 3x", mod_cpu / floor_cpu <= 3)
            report.row("bare uploader CPU vs hashlib floor", bare_cpu / floor_cpu, "x")
            report.note("the CPU targets of 3x the hashlib floor are missed by the bare boto3 uploader and downloader "
                        "as much as by the modules: what costs is botocore's per-request pipeline (building, "
                        "validating and signing each request, HTTP and header parsing, TLS), not the modules' own work; "
                        "see 'Where a block's client CPU goes'")
            connections_section(report, aws, put, dense, default_workers)
            download_section(report, aws, put, dense, workdir, default_workers, floor_cpu / gib, quick)
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
                       "<= 150 MiB", max(rss) <= 150)
            sparse_download_section(report, aws, put, sparse, workdir, default_workers)
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
