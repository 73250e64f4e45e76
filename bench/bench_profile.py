# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a block's client CPU goes: PutSnapshotBlock and GetSnapshotBlock through boto3 over HTTPS, profiled.

Usage: ``python bench/bench_profile.py --json OUT.json [--quick]``

One thread puts (then gets) every 512 KiB block of an image through a boto3 ``ebs`` client, as each worker of
``ebs_block_put`` / ``ebs_block_get`` does, against the local endpoint over HTTPS. ``cProfile`` runs with the
thread's own CPU clock (``time.thread_time``), so the endpoint's threads in the same process and the time spent
waiting for answers are not counted. Functions are grouped by where they live: hashing (``hashlib``), TLS
(``ssl``), the HTTP connection (``http.client``, ``urllib3``), request signing (``botocore.auth``, credentials),
the rest of botocore (serialising, validating, parsing, event hooks, retries), and everything else.
"""
import argparse
import base64
import cProfile
import hashlib
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BS = 524288
GIB = 1024 ** 3
GROUPS = (
    ("hashing (hashlib SHA-256)", ("_hashlib", "hashlib")),
    ("TLS (ssl)", ("ssl.py", "_ssl")),
    ("HTTP connection (http.client, urllib3, socket)", ("http/client.py", "urllib3", "socket.py", "_socket",
                                                        "email/")),
    ("request signing (botocore.auth, credentials)", ("botocore/auth.py", "botocore/credentials.py", "botocore/signers.py")),
    ("rest of botocore (serialise, validate, parse, hooks, retries)", ("botocore", "boto3")),
)


def group_of(filename, funcname):
    where = "{0}:{1}".format(filename, funcname)
    for name, markers in GROUPS:
        if any(marker in where for marker in markers):
            return name
    return "other (the loop, reading the file, the interpreter)"


def self_times(profile):
    """Exclusive CPU seconds per group (each function's own time, not its callees'). Built-ins (``str.join``,
    ``isinstance``...) count for the group of whoever called them, in proportion to the calls' time."""
    stats = pstats.Stats(profile)
    totals = {}
    for (filename, _line, funcname), (_cc, _nc, tottime, _ct, callers) in stats.stats.items():  # pylint: disable=no-member
        if filename == "~" and callers and not funcname.startswith("<built-in method _hashlib"):
            weights = {key: value[2] for key, value in callers.items()}
            whole = sum(weights.values()) or 1.0
            for (cfile, _cline, cfunc), weight in weights.items():
                group = group_of(cfile, cfunc)
                totals[group] = totals.get(group, 0.0) + tottime * weight / whole
            continue
        group = group_of(filename, funcname)
        totals[group] = totals.get(group, 0.0) + tottime
    return totals


def image(path, nblocks):
    with open(path, "wb") as handle:
        for index in range(nblocks):
            handle.write(hashlib.sha256(str(index).encode()).digest() * (BS // 32))
    return path


def profile_put_get(aws, path, nblocks):
    """Put then get every block on this thread under cProfile -> (put group times, get group times)."""
    ebs = aws.client("ebs")
    fd = os.open(path, os.O_RDONLY)
    snap = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    digests = []
    put = cProfile.Profile(time.thread_time)
    put.enable()
    for index in range(nblocks):
        data = os.pread(fd, BS, index * BS)
        digest = hashlib.sha256(data).digest()
        digests.append(digest)
        ebs.put_snapshot_block(SnapshotId=snap, BlockIndex=index, BlockData=data, DataLength=BS,
                               Checksum=base64.b64encode(digest).decode(), ChecksumAlgorithm="SHA256")
    put.disable()
    os.close(fd)
    ebs.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=nblocks, ChecksumAlgorithm="SHA256",
                          ChecksumAggregationMethod="LINEAR",
                          Checksum=base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode())
    blocks = ebs.list_snapshot_blocks(SnapshotId=snap)["Blocks"]
    get = cProfile.Profile(time.thread_time)
    get.enable()
    for block in blocks:
        answer = ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=block["BlockIndex"], BlockToken=block["BlockToken"])
        data = answer["BlockData"].read()
        if base64.b64encode(hashlib.sha256(data).digest()).decode() != answer["Checksum"]:
            raise RuntimeError("checksum mismatch")
    get.disable()
    return self_times(put), self_times(get)


def report_rows(direction, totals, gib, rows):
    total = sum(totals.values())
    for name, _markers in GROUPS + (("other (the loop, reading the file, the interpreter)", ()),):
        seconds = totals.get(name, 0.0)
        rows.append({"metric": "{0}: {1}".format(direction, name), "value": round(seconds / gib, 3),
                     "unit": "s/GiB ({0:.0f}%)".format(100.0 * seconds / total if total else 0), "target": "info",
                     "ok": True})
    rows.append({"metric": "{0}: total client CPU of the thread".format(direction), "value": round(total / gib, 3),
                 "unit": "s/GiB", "target": "info", "ok": True})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="fewer blocks")
    opts = parser.parse_args(argv)
    from tests.localaws import LocalAWS  # pylint: disable=import-outside-toplevel

    nblocks = 64 if opts.quick else 512
    rows = []
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-profile-{0}".format(os.getpid())
    workdir.mkdir()
    try:
        with LocalAWS(tls=True) as aws:
            path = image(str(workdir / "img.raw"), nblocks)
            put, get = profile_put_get(aws, path, nblocks)
    finally:
        for name in os.listdir(str(workdir)):
            os.unlink(str(workdir / name))
        workdir.rmdir()
    gib = nblocks * BS / GIB
    report_rows("upload", put, gib, rows)
    report_rows("download", get, gib, rows)
    notes = ["{0} blocks of 512 KiB put then got by one thread over HTTPS (keep-alive), cProfile with the thread's "
             "own CPU clock; exclusive time per function, grouped by module".format(nblocks),
             "hashing is the floor (every byte is hashed once each way); what is not hashing is the cost of one "
             "botocore request per block: building, validating and signing it, urllib3/http.client sending it and "
             "parsing the answer's headers, and TLS",
             "cProfile's own overhead inflates Python-heavy parts (botocore, header parsing) more than C parts "
             "(hashing, TLS): read the shares, and the unprofiled CPU per GiB in the block streaming section",
             "so the upload and download targets of 3x the hashlib floor (about 2 s/GiB, under 1 ms of CPU per 512 KiB "
             "block) are out of reach through botocore's per-call pipeline, whose request building and HTTP handling "
             "alone cost several times the hashing of the block; a leaner request path (botocore's signer and "
             "credentials, a pre-built request per block) is what would close the gap"]
    for row in rows:
        print("  {0:<80} {1:>8} {2}".format(row["metric"], row["value"], row["unit"]))
    if opts.json:
        title = "Where a block's client CPU goes (boto3 over HTTPS, one thread)"
        Path(opts.json).write_text(json.dumps({"title": title, "rows": rows, "notes": notes}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
