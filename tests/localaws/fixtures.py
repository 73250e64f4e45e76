# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures of the local AWS endpoint (register with ``pytest_plugins = ["tests.localaws.fixtures"]``).

- ``localaws`` (session): one running ``LocalAWS`` per test process (so one per xdist worker).
- ``aws`` (function): the same endpoint, reset (no moto state, counters or faults) before the test.
"""

import pytest

from tests.localaws import LocalAWS


@pytest.fixture(scope="session")
def localaws():
    """A ``LocalAWS`` endpoint shared by the whole test session of this process."""
    with LocalAWS() as endpoint:
        yield endpoint


@pytest.fixture
def aws(localaws):  # pylint: disable=redefined-outer-name
    """The shared endpoint, wiped clean for this test."""
    localaws.reset()
    localaws.clear_faults()
    yield localaws
