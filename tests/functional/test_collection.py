# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users get it: documentation renders, the built tarball installs and runs."""
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.functional.harness import ansible_env, run_playbook_file
from tools.collection_link import ROOT

BIN = Path(sys.executable).parent
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def test_action_group_lists_every_module_that_calls_aws():
    """``module_defaults: group/blockwise.ebs.aws`` gives every AWS module its connection options; a module that makes
    no AWS call (it takes data read elsewhere) has none of them and must stay out of the group."""
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    calls_aws = [m for m in MODULES if "aws.build_module" in (ROOT / "plugins" / "modules" / (m + ".py")).read_text()]
    assert "ebs_copy_status_info" not in calls_aws and len(calls_aws) >= len(MODULES) - 1
    assert sorted(runtime["action_groups"]["aws"]) == calls_aws


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    proc = subprocess.run([str(BIN / "ansible-doc"), "blockwise.ebs." + module], env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "EXAMPLES:" in proc.stdout and "RETURN VALUES:" in proc.stdout
    assert "[WARNING]" not in proc.stderr, proc.stderr
    data = json.loads(subprocess.run([str(BIN / "ansible-doc"), "-j", "blockwise.ebs." + module], env=ansible_env(),
                                     capture_output=True, text=True, check=True).stdout)
    doc = data["blockwise.ebs." + module]["doc"]
    assert doc["short_description"] and doc["description"]
    for name, option in doc["options"].items():
        assert option.get("description"), "option {0} has no description".format(name)


def test_built_tarball_installs_and_runs(aws, tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(ROOT), "--output-path", str(dist)],
                   check=True, capture_output=True, env=ansible_env())
    tarball = next(dist.glob("blockwise-ebs-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "plugins/modules/ebs_default_encryption.py" in names
    assert not [n for n in names if n.startswith((".venv", ".build", ".git/", "tests/output"))]

    installed = tmp_path / "installed"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(installed), "--no-deps", "--force"],
                   check=True, capture_output=True, env=ansible_env())
    assert (installed / "ansible_collections" / "blockwise" / "ebs" / "MANIFEST.json").is_file()

    env = ansible_env(aws.endpoint_url, extra={"ANSIBLE_COLLECTIONS_PATH": str(installed)})
    play = [{
        "name": "From the installed collection", "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"group/blockwise.ebs.aws": {"endpoint_url": aws.endpoint_url, "region": "us-east-1"}},
        "tasks": [{"name": "enable", "blockwise.ebs.ebs_default_encryption": {"regions": ["us-east-1"]}}],
    }]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    run = run_playbook_file(path, tmp_path, env=env, verbosity=1)
    assert run.rc == 0, run
    assert run.result("enable")["changed"] is True
    listing = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "blockwise.ebs", "--format", "json"],
                             env=env, capture_output=True, text=True, check=True).stdout
    assert list(json.loads(listing)) == [str(installed / "ansible_collections")]
    assert aws.client("ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
