# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ``ansible-test sanity`` on a copy of the collection, offline-friendly.

ansible-test needs the collection at ``.../ansible_collections/blockwise/ebs`` (a symlink is
rejected), its dependencies in the same root, and it bootstraps pip in each test venv with a
script it downloads. This copies the tracked (and new, not ignored) files to
``$TMPDIR/blockwise-ebs-sanity-*/ansible_collections/blockwise/ebs``, links amazon.aws beside it, and gives
ansible-test a pip bootstrap script that uses the interpreter's own ``ensurepip`` instead of the
download. ``HOME`` points into that scratch directory so nothing is written to the user's home.
"""
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ansible_test

ROOT = Path(__file__).resolve().parents[1]
# Outside the checkout: inside it, ansible-test would list files through the checkout's git.
SCRATCH = Path(tempfile.gettempdir()) / "blockwise-ebs-sanity-{0}".format(hashlib.sha256(str(ROOT).encode()).hexdigest()[:12])
SANITY_ROOT = SCRATCH / "ansible_collections"
HOME = SCRATCH / "home"
PYTHON_VERSION = "{0}.{1}".format(*sys.version_info[:2])

PIP_BOOTSTRAP = '''\
"""Stand-in for get-pip.py: bootstrap pip from the interpreter's bundled wheel, then install."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
'''


def collection_files():
    """Files of the collection: tracked and untracked-but-not-ignored, as git sees them."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def copy_collection():
    target = SANITY_ROOT / "blockwise" / "ebs"
    if target.exists():
        shutil.rmtree(target)
    for name in collection_files():
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest)
    return target


def link_dependencies():
    import ansible_collections.amazon.aws as amazon_aws  # pylint: disable=import-outside-toplevel

    source = Path(list(amazon_aws.__path__)[0])
    link = SANITY_ROOT / "amazon" / "aws"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(source, link)


def pip_bootstrap_stand_in():
    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    versions = set(re.findall(r"pip='([0-9.]+)'", source.read_text())) or {"24.2"}
    cache = HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for version in versions:
        (cache / "get_pip_{0}.py".format(version.replace(".", "_"))).write_text(PIP_BOOTSTRAP)


def main(argv):
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with open(SCRATCH / ".lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent runs share the scratch copy: one at a time
        target = copy_collection()
        link_dependencies()
        pip_bootstrap_stand_in()
        env = dict(os.environ, HOME=str(HOME), ANSIBLE_COLLECTIONS_PATH=str(SANITY_ROOT.parent))
        cmd = [str(Path(sys.executable).parent / "ansible-test"), "sanity", "--venv", "--python", PYTHON_VERSION, "--color", "no"] + argv
        print("+ " + " ".join(cmd), flush=True)
        return subprocess.call(cmd, cwd=target, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
