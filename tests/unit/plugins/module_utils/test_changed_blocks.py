# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which option an ebs_changed_blocks_info failure names (issue 16, section 4)."""
import pytest
from botocore.exceptions import ClientError

from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.changed import changed_blocks_info
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier

FIRST = "snap-0aaaaaaaaaaaaaaa1"
SECOND = "snap-0bbbbbbbbbbbbbbb2"


class FailingEbs:
    """ListChangedBlocks answering a fail-fast ValidationException with the given message."""

    def __init__(self, message):
        self.message = message
        self.calls = 0

    def list_changed_blocks(self, **kwargs):
        self.calls += 1
        raise ClientError({"Error": {"Code": "ValidationException", "Message": self.message}}, "ListChangedBlocks")


def fail(message):
    ebs = FailingEbs(message)
    with pytest.raises(InputError) as caught:
        changed_blocks_info(ebs, SECOND, FIRST, retry=Retrier(attempts=1, sleep=lambda s: None))
    return caught.value


def test_unrelated_snapshots_name_both_suspects():
    """AWS's message names neither snapshot: both options are suspects, not the second alone."""
    exc = fail("The snapshots must be from the same volume lineage.")
    assert exc.msg.startswith("first_snapshot_id or second_snapshot_id:")
    assert exc.option == "first_snapshot_id or second_snapshot_id"


@pytest.mark.parametrize("snapshot, option", [(FIRST, "first_snapshot_id"), (SECOND, "second_snapshot_id")])
def test_snapshot_named_by_aws_is_the_one_reported(snapshot, option):
    exc = fail("The snapshot '{0}' does not exist.".format(snapshot))
    assert exc.msg.startswith(option + ":")
    assert exc.option == option
