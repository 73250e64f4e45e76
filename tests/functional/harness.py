# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ``ansible-playbook`` in a subprocess and return every task's result as data.

Used by the functional tests and by the demo/benchmark scripts: the playbook runs exactly as a
user's would (real ansible-playbook, real module subprocesses, real HTTP to the endpoint), and
the ``ansible.posix.json`` stdout callback gives the results back as JSON.
"""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools.collection_link import COLLECTIONS_ROOT, ensure_collection_link

DEFAULT_REGION = "us-east-1"


def ansible_env(endpoint_url=None, region=DEFAULT_REGION, extra=None):
    """Environment for ansible-playbook/ansible-doc runs against the local endpoint."""
    ensure_collection_link()
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update({
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    })
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "ANSIBLE_CONFIG"):
        env.pop(key, None)
    if endpoint_url:
        env["BLOCKWISE_TEST_ENDPOINT"] = endpoint_url
    env.update(extra or {})
    return env


@dataclass
class PlaybookRun:
    """What one ``ansible-playbook`` run did."""

    rc: int
    stdout: str
    stderr: str
    results: list = field(default_factory=list)
    names: list = field(default_factory=list)

    def result(self, name):
        """The result of the (last) task called ``name``."""
        for task_name, res in reversed(list(zip(self.names, self.results))):
            if task_name == name:
                return res
        raise KeyError("no task named {0!r}; tasks: {1}".format(name, self.names))

    @property
    def last(self):
        return self.results[-1]

    def __repr__(self):
        return "PlaybookRun(rc={0}, tasks={1}, stderr={2!r})".format(self.rc, self.names, self.stderr[-2000:])


def play(endpoint_url, tasks, region=DEFAULT_REGION, play_vars=None):
    defaults = {"endpoint_url": endpoint_url, "region": region}
    return {
        "name": "blockwise.ebs functional test",
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {"group/blockwise.ebs.aws": defaults, "group/amazon.aws.aws": defaults},
        "vars": play_vars or {},
        "tasks": tasks,
    }


def run_playbook(endpoint_url, tasks, workdir, check=False, diff=False, extra_vars=None, env=None,
                 region=DEFAULT_REGION, play_vars=None, timeout=600, verbosity=0):
    """Write ``tasks`` as a one-play playbook in ``workdir`` and run it; never raises on failure."""
    workdir = Path(workdir)
    path = workdir / "playbook.yml"
    path.write_text(json.dumps([play(endpoint_url, tasks, region, play_vars)], indent=2, default=str))
    return run_playbook_file(path, workdir, check=check, diff=diff, extra_vars=extra_vars,
                             env=ansible_env(endpoint_url, region, env), timeout=timeout, verbosity=verbosity)


def run_playbook_file(path, workdir, check=False, diff=False, extra_vars=None, env=None, timeout=600,
                      verbosity=0, inventory=None, json_output=True):
    """Run an existing playbook file (or FQCN) with the JSON callback and collect task results."""
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(path)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars, default=str)]
    run_env = dict(env or ansible_env())
    if json_output:
        run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    proc = subprocess.run(cmd, cwd=str(workdir), env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    run = PlaybookRun(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
    if json_output:
        _collect(run)
    return run


def _collect(run):
    start = run.stdout.find("{")
    if start < 0:
        return
    try:
        data = json.loads(run.stdout[start:])
    except ValueError:
        return
    for play_data in data.get("plays", []):
        for task in play_data.get("tasks", []):
            for host_result in task.get("hosts", {}).values():
                run.names.append(task["task"]["name"])
                run.results.append(host_result)
