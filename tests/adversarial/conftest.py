# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The adversarial suite uses the functional tests' fixtures (real ansible-playbook against the endpoint)."""
from tests.functional.conftest import fleet, playbook, playbook_file  # noqa: F401  pylint: disable=unused-import
from tests.functional.test_block_races import small_fs  # noqa: F401  pylint: disable=unused-import
