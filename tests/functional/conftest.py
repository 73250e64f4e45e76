# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures that run the real ``ansible-playbook`` against the local AWS endpoint."""
import pytest

from tests.functional.harness import run_playbook


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
