# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures that run the real ``ansible-playbook`` against the local AWS endpoint."""
from datetime import datetime, timedelta, timezone

import pytest

from tests.functional.harness import ansible_env, run_playbook, run_playbook_file
from tests.localaws.seed import seed_fleet

FLEET_REGION = "us-east-1"


@pytest.fixture
def playbook(aws, tmp_path):
    """``playbook(tasks, check=False, diff=False, ...)`` runs ``tasks`` in a localhost play.

    The play gets ``module_defaults`` pointing every AWS module (this collection's and
    amazon.aws's) at the local endpoint, and dummy credentials in the environment.
    """
    counter = {"n": 0}

    def _run(tasks, **kwargs):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        return run_playbook(aws.endpoint_url, tasks, workdir, **kwargs)

    return _run


@pytest.fixture
def fleet(aws):
    """The seeded fleet of one region (``FLEET_REGION``): 20 days of history ending two days ago."""
    return seed_fleet(aws, regions=(FLEET_REGION,), days=20, now=datetime.now(timezone.utc) - timedelta(days=2))[FLEET_REGION]


@pytest.fixture
def playbook_file(aws, tmp_path):
    """``playbook_file(name, extra_vars, check=False, diff=False, inventory=None, env=None)`` runs a
    collection playbook (``backup`` or ``blockwise.ebs.backup``) against the endpoint, in a fresh
    working directory, with ``endpoint_url`` added to the extra vars."""
    counter = {"n": 0}

    def _run(name, extra_vars, check=False, diff=False, inventory=None, env=None):
        counter["n"] += 1
        workdir = tmp_path / "playbook{0}".format(counter["n"])
        workdir.mkdir()
        name = name if name.startswith("blockwise.ebs.") else "blockwise.ebs." + name
        extra_vars = dict({"endpoint_url": aws.endpoint_url}, **extra_vars)
        return run_playbook_file(name, workdir, check=check, diff=diff, extra_vars=extra_vars, inventory=inventory,
                                 env=env or ansible_env(aws.endpoint_url))

    return _run
