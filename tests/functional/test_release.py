# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release tarball holds what users need and none of the development tooling (issue 16)."""
import subprocess
import sys
import tarfile
from pathlib import Path

from tools.collection_link import ROOT

BIN = Path(sys.executable).parent
LEFT_OUT = ("Makefile", "tools/", "bench/", "requirements-dev.txt", ".ansible-lint", "changelogs/fragments/",
            ".venv", ".build", ".git/", "tests/output", "changelogs/.plugin-cache.yaml")
KEPT = ("galaxy.yml", "README.md", "COPYING", "requirements.txt", "meta/runtime.yml", "changelogs/changelog.yaml",
        "plugins/modules/ebs_snapshot_policy.py", "roles/disk_image/tasks/main.yml", "playbooks/site.yml",
        "tests/unit/__init__.py", "docs/development.md")


def test_tarball_members(tmp_path):
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(tmp_path)],
                   check=True, capture_output=True)
    with tarfile.open(next(tmp_path.glob("blockwise-ebs-*.tar.gz"))) as tar:
        names = tar.getnames()
    leaked = [n for n in names if n.startswith(LEFT_OUT) or n.rstrip("/") + "/" in LEFT_OUT or "__pycache__" in n]
    assert leaked == []
    missing = [n for n in KEPT if n not in names and not (n == "galaxy.yml" and "MANIFEST.json" in names)]
    assert missing == []
