# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import public_access as core


@pytest.mark.parametrize("current, wanted, actions", [
    ("unblocked", "block-all-sharing", ["enable"]),
    ("block-new-sharing", "block-all-sharing", ["enable"]),
    ("block-all-sharing", "block-new-sharing", ["enable"]),
    ("block-all-sharing", "unblocked", ["disable"]),
    ("block-all-sharing", "block-all-sharing", []),
    ("unblocked", "unblocked", []),
])
def test_plan_region(current, wanted, actions):
    plan = core.plan_region(current, wanted)
    assert plan["actions"] == actions
    assert plan["changed"] is bool(actions)
    assert plan["before"] == {"state": current}
    assert plan["after"] == {"state": wanted}


def test_plan_refuses_unknown_state():
    with pytest.raises(ValueError, match="state"):
        core.plan_region("unblocked", "blocked")


def test_outcome_of_a_failed_change_is_the_state_before():
    plan = core.plan_region("unblocked", "block-new-sharing")
    assert core.outcome(plan, None, "enable failed: denied") == {
        "state": "unblocked", "changed": False, "actions": [], "error": "enable failed: denied"}
    assert core.outcome(plan, "block-new-sharing") == {"state": "block-new-sharing", "changed": True, "actions": ["enable"]}


def test_diff_lists_changed_regions_only_and_uses_answers_when_applied():
    plans = {"us-east-1": core.plan_region("unblocked", "block-all-sharing"),
             "eu-west-1": core.plan_region("block-all-sharing", "block-all-sharing")}
    assert core.build_diff(plans) == {"before": {"us-east-1": {"state": "unblocked"}},
                                      "after": {"us-east-1": {"state": "block-all-sharing"}}}
    assert core.build_diff(plans, {})["after"] == {"us-east-1": {"state": "unblocked"}}
