# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make bench``: run every ``bench/bench_*.py`` and regenerate ``docs/performance.md``.

Each benchmark runs in its own process (``python bench/bench_X.py --json OUT``), starts its own
local AWS endpoint, measures its comparisons side by side in that one run, prints a table and writes
``{"title", "machine", "rows": [{"metric", "value", "unit", "target", "ok"}], "notes"}``. This script
collects them into one report. The report is generated: never edit it by hand.

Usage: ``python bench/run.py [--quick] [name ...]`` (names without the ``bench_`` prefix; the report keeps the
last results of the benchmarks not named, and where there are none here - ``bench/results`` is not part of
the repository - their sections of the current report).

Every ``bench/bench_*.py`` is a benchmark of ``make bench``: ``bench_ami_tags``, ``bench_blocks``,
``bench_retention`` and ``bench_verify`` (snapshot verification: full vs a bare downloader, 1% sample vs full).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "docs" / "performance.md"


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        memory = 0.0
    return "{0} CPU(s), {1}, {2:.0f} GiB RAM, {3} {4}, Python {5}".format(
        os.cpu_count(), cpu, memory, platform.system(), platform.release(), platform.python_version())


def run_one(script, quick):
    out = RESULTS / (script.stem + ".json")
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(script), "--json", str(out)] + (["--quick"] if quick else [])
    print("\n=== {0} ===".format(script.stem), flush=True)
    started = time.monotonic()
    rc = subprocess.call(cmd, cwd=str(ROOT))
    elapsed = time.monotonic() - started
    if rc != 0 or not out.exists():
        return {"title": script.stem, "rows": [], "notes": ["FAILED with exit code {0}".format(rc)], "elapsed": elapsed, "failed": True}
    data = json.loads(out.read_text())
    data["elapsed"] = elapsed
    return data


def previous(script):
    """The last results of a benchmark that is not rerun now, if any."""
    out = RESULTS / (script.stem + ".json")
    if not out.exists():
        return None
    data = json.loads(out.read_text())
    data.setdefault("elapsed", 0.0)
    return data


def fmt(value):
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return "{0:,.0f}".format(value)
        if abs(value) >= 10:
            return "{0:.1f}".format(value)
        return "{0:.2f}".format(value)
    return str(value)


def report_sections(text):
    """``[(title, text)]`` of the ``## `` sections of an existing report, in order."""
    found = []
    for line in text.splitlines():
        if line.startswith("## "):
            found.append((line[3:].strip(), [line]))
        elif found:
            found[-1][1].append(line)
    return [(title, "\n".join(body).strip("\n")) for title, body in found]


def render_section(data):
    lines = ["## {0}".format(data["title"]), ""]
    if data.get("failed"):
        lines.append("**Benchmark failed**: " + "; ".join(data.get("notes", [])))
        return "\n".join(lines)
    lines += ["| Metric | Value | Unit | Target | Met |", "| --- | ---: | --- | --- | :---: |"]
    for row in data["rows"]:
        met = "" if row.get("ok") is None or not row.get("target") else ("yes" if row["ok"] else "**no**")
        lines.append("| {0} | {1} | {2} | {3} | {4} |".format(row["metric"], fmt(row["value"]), row.get("unit", ""), row.get("target", ""), met))
    for note in data.get("notes", []):
        lines += ["", "- " + note]
    if data["elapsed"]:
        lines += ["", "_Run time: {0:.0f} s._".format(data["elapsed"])]
    return "\n".join(lines)


def merge_sections(results, old_report):
    """The report's sections: those of the current report, replaced by fresh results with the same title, then
    the results that are new. A section without results here (a benchmark not rerun) is kept as it was."""
    fresh = [(data["title"], render_section(data)) for data in results]
    titles = dict(fresh)
    merged, used = [], set()
    for title, text in report_sections(old_report):
        if title in titles:
            merged.append(titles[title])
            used.add(title)
        else:
            merged.append(text)
    merged += [text for title, text in fresh if title not in used]
    return merged, len(merged) > len(fresh)


def render(results, quick, old_report=""):
    sections, kept = merge_sections(results, old_report)
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run.py`) on {0}{1}. Do not edit by hand.".format(
            datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), " with --quick (smaller inputs)" if quick else ""),
        "",
        "Machine: {0}.".format(machine()),
        "",
        "Every figure is measured in one run, side by side with what it is compared to, against the local AWS "
        "endpoint (`tests/localaws`, a Python server on the same machine): absolute MiB/s say little about AWS, "
        "ratios and API-call counts say a lot.",
    ]
    if kept:
        lines += ["", "Sections of benchmarks that were not run this time are kept from the previous report, with "
                      "their own run times."]
    for section in sections:
        lines += ["", section]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (for a smoke run)")
    parser.add_argument("--render", action="store_true", help="only rewrite the report from the last results")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    scripts = sorted((ROOT / "bench").glob("bench_*.py"))
    results = []
    for script in scripts:
        if args.render or (args.names and script.stem[len("bench_"):] not in args.names):
            results.append(previous(script))  # the report keeps the last run of benchmarks not rerun
        else:
            results.append(run_one(script, args.quick))
    results = [r for r in results if r is not None]
    REPORT.write_text(render(results, args.quick, REPORT.read_text() if REPORT.exists() else ""))
    print("\nWrote {0}".format(REPORT.relative_to(ROOT)))
    return 1 if any(r.get("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
