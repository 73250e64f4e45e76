# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write and check the execution environment's build context (no container engine, no network).

    python tools/ee_check.py [--context .build/ee]

1. builds the collection tarball from this checkout (``ansible-galaxy collection build``) and puts it
   where ``execution-environment.yml`` takes it from (``.build/ee-collection/blockwise-ebs.tar.gz``);
2. runs ``ansible-builder create`` into a fresh context directory;
3. checks the context: the Containerfile, the Python requirements (every line of ``requirements.txt``),
   the Galaxy requirements (amazon.aws and this collection) and the collection tarball itself, and
   that the Containerfile installs them.

Prints the command that builds the image and exits non-zero on the first problem.
"""
import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EE_FILE = ROOT / "execution-environment.yml"
REQUIREMENTS = ROOT / "requirements.txt"
COLLECTION_DIR = ROOT / ".build" / "ee-collection"
COLLECTION_TARBALL = COLLECTION_DIR / "blockwise-ebs.tar.gz"
DEFAULT_CONTEXT = ROOT / ".build" / "ee"


class CheckError(Exception):
    """The build context is not what the execution environment needs."""


def run(cmd):
    print("+ " + " ".join(str(part) for part in cmd), flush=True)
    proc = subprocess.run([str(part) for part in cmd], cwd=str(ROOT), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CheckError("{0} failed ({1}):\n{2}{3}".format(Path(str(cmd[0])).name, proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


def galaxy_metadata():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())


def build_collection():
    """The collection tarball, under the fixed name execution-environment.yml refers to."""
    with tempfile.TemporaryDirectory(prefix="blockwise-ee-") as scratch:
        run([BIN / "ansible-galaxy", "collection", "build", ROOT, "--output-path", scratch, "--force"])
        built = sorted(Path(scratch).glob("*.tar.gz"))
        if len(built) != 1:
            raise CheckError("expected one collection tarball, got {0}".format([p.name for p in built]))
        COLLECTION_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], COLLECTION_TARBALL)
    return COLLECTION_TARBALL


def requirement_lines(path):
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def check_context(context):
    """Every check of the generated context; returns a list of what was checked."""
    checked = []
    containerfile = context / "Containerfile"
    if not containerfile.is_file():
        raise CheckError("no Containerfile in {0}".format(context))
    text = containerfile.read_text()
    for needle in ("COPY _build /build", "ansible-galaxy collection install", "-r requirements.yml",
                   "--user-pip=requirements.txt", "/output/scripts/assemble"):
        if needle not in text:
            raise CheckError("the Containerfile does not contain {0!r}".format(needle))
    checked.append("Containerfile installs the Galaxy and Python requirements")

    build = context / "_build"
    python_requirements = build / "requirements.txt"
    if not python_requirements.is_file():
        raise CheckError("no _build/requirements.txt")
    missing = sorted(set(requirement_lines(REQUIREMENTS)) - set(requirement_lines(python_requirements)))
    if missing:
        raise CheckError("_build/requirements.txt lacks {0}".format(", ".join(missing)))
    checked.append("Python requirements: {0}".format(", ".join(requirement_lines(python_requirements))))

    galaxy_requirements = build / "requirements.yml"
    if not galaxy_requirements.is_file():
        raise CheckError("no _build/requirements.yml")
    collections = {item["name"]: item for item in yaml.safe_load(galaxy_requirements.read_text()).get("collections", [])}
    if "amazon.aws" not in collections:
        raise CheckError("_build/requirements.yml does not install amazon.aws")
    local = [item for item in collections.values() if item.get("type") == "file"]
    if len(local) != 1:
        raise CheckError("_build/requirements.yml should install one collection tarball, got {0}".format(local))
    tarball = build / local[0]["name"]
    if not tarball.is_file():
        raise CheckError("{0} is not in the build context".format(local[0]["name"]))
    meta = galaxy_metadata()
    with tarfile.open(tarball) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        names = set(tar.getnames())
    if (manifest["namespace"], manifest["name"], manifest["version"]) != (meta["namespace"], meta["name"], meta["version"]):
        raise CheckError("the tarball holds {namespace}.{name} {version}, not this checkout".format(**manifest))
    for needed in ("meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt", "roles/encryption_baseline/tasks/main.yml",
                   "playbooks/encryption.yml"):
        if needed not in names:
            raise CheckError("the collection tarball lacks {0}".format(needed))
    checked.append("Galaxy requirements: amazon.aws {0}, {1}.{2} {3} from {4}".format(
        collections["amazon.aws"].get("version", "(any)"), meta["namespace"], meta["name"], meta["version"], local[0]["name"]))
    return checked


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=Path, default=DEFAULT_CONTEXT, help="build context directory (default: .build/ee)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    context = args.context.resolve()
    try:
        build_collection()
        if context.exists():
            shutil.rmtree(context)
        run([BIN / "ansible-builder", "create", "--file", EE_FILE, "--context", context, "--output-filename", "Containerfile", "-v", "1"])
        checked = check_context(context)
    except CheckError as error:
        print("Execution environment check FAILED: {0}".format(error), file=sys.stderr)
        return 1
    for line in checked:
        print("  ok  " + line)
    print("Execution environment build context: {0}\nBuild it with: podman build -t blockwise-ebs-ee:latest {0}".format(context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
