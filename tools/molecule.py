# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the molecule scenarios of ``extensions/molecule/`` against one local AWS endpoint.

    python tools/molecule.py                      # every scenario
    python tools/molecule.py encryption_baseline  # the named ones

Starts one ``LocalAWS`` endpoint, exports it as ``BLOCKWISE_ENDPOINT_URL`` with dummy credentials,
and runs ``molecule test -s <scenario>`` for each scenario with a fresh molecule state directory,
resetting the endpoint in between. A scenario passes only when molecule exits with 0 (its summary
line is not trusted: a failed idempotence step can still print "Successful"). Prints a summary,
stops the endpoint and exits non-zero if any scenario failed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position
from tools.collection_link import COLLECTIONS_ROOT, ensure_collection_link  # noqa: E402  pylint: disable=wrong-import-position

SCENARIOS_DIR = ROOT / "extensions" / "molecule"
BASE_CONFIG = SCENARIOS_DIR / "config.yml"
BIN = Path(sys.executable).parent
ENDPOINT_VAR = "BLOCKWISE_ENDPOINT_URL"
REGION = "us-east-1"


def available_scenarios():
    """Scenario names: the directories of ``extensions/molecule`` that hold a ``molecule.yml``."""
    return sorted(path.parent.name for path in SCENARIOS_DIR.glob("*/molecule.yml"))


def molecule_env(endpoint_url):
    """The environment of every molecule run: venv tools, the live collection, the endpoint."""
    env = dict(os.environ)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "ANSIBLE_CONFIG", "MOLECULE_GLOB"):
        env.pop(key, None)
    env.update({
        "PATH": str(BIN) + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_NOCOLOR": "1",
        ENDPOINT_VAR: endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "NO_COLOR": "1",
    })
    return env


def run_scenario(name, env):
    """``molecule test`` for one scenario in a fresh state directory; returns molecule's exit code."""
    with tempfile.TemporaryDirectory(prefix="blockwise-molecule-{0}-".format(name)) as state_dir:
        run_env = dict(env, MOLECULE_EPHEMERAL_DIRECTORY=state_dir)
        cmd = [str(BIN / "molecule"), "--base-config", str(BASE_CONFIG), "test", "--scenario-name", name]
        print("+ " + " ".join(cmd), flush=True)
        return subprocess.call(cmd, cwd=str(ROOT), env=run_env)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: every scenario in extensions/molecule)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    known = available_scenarios()
    if args.list:
        print("\n".join(known))
        return 0
    unknown = sorted(set(args.scenarios) - set(known))
    if unknown:
        print("Unknown scenario(s): {0}; known: {1}".format(", ".join(unknown), ", ".join(known) or "none"), file=sys.stderr)
        return 2
    selected = args.scenarios or known
    if not selected:
        print("No scenarios under {0}".format(SCENARIOS_DIR), file=sys.stderr)
        return 2

    ensure_collection_link()
    results = []
    started = time.monotonic()
    with LocalAWS() as aws:
        print("Local AWS endpoint: {0}".format(aws.endpoint_url), flush=True)
        env = molecule_env(aws.endpoint_url)
        for name in selected:
            aws.reset()
            aws.clear_faults()
            scenario_started = time.monotonic()
            rc = run_scenario(name, env)
            results.append((name, rc, time.monotonic() - scenario_started))

    print("\nMolecule scenarios (local AWS endpoint stopped):")
    for name, rc, seconds in results:
        print("  {0:<30} {1:<6} {2:5.0f} s{3}".format(name, "passed" if rc == 0 else "FAILED", seconds, "" if rc == 0 else "  (exit code {0})".format(rc)))
    failed = [name for name, rc, _seconds in results if rc != 0]
    print("{0} of {1} passed in {2:.0f} s".format(len(results) - len(failed), len(results), time.monotonic() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
