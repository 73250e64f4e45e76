# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions for "block public access for snapshots", per account and region.

The module reads each region's state (GetSnapshotBlockPublicAccessState), this code decides the one
call that brings it to the wanted state, the module applies it. No AWS calls here.
"""
from __future__ import annotations

UNBLOCKED = "unblocked"
BLOCK_ALL = "block-all-sharing"
BLOCK_NEW = "block-new-sharing"
STATES = (BLOCK_ALL, BLOCK_NEW, UNBLOCKED)

# Actions (one per region at most).
ENABLE = "enable"
DISABLE = "disable"


def plan_region(current, wanted):
    """What to do in one region: ``{"actions", "before", "after", "changed"}``.

    ``current``: the state EC2 reports; ``wanted``: one of ``STATES``. A blocking state is set with
    EnableSnapshotBlockPublicAccess (which also switches between the two blocking states),
    ``unblocked`` with DisableSnapshotBlockPublicAccess.
    """
    if wanted not in STATES:
        raise ValueError("state must be one of {0}, got {1!r}".format(", ".join(STATES), wanted))
    before = {"state": current}
    if current == wanted:
        return {"actions": [], "before": before, "after": dict(before), "changed": False}
    action = DISABLE if wanted == UNBLOCKED else ENABLE
    return {"actions": [action], "before": before, "after": {"state": wanted}, "changed": True}


def outcome(plan, answered_state, error=None):
    """A region's result after applying ``plan``: the state EC2 answered (or the state before, on error)."""
    state = plan["before"]["state"] if error else answered_state
    result = {"state": state, "changed": bool(not error and plan["changed"]),
              "actions": [] if error else list(plan["actions"])}
    if error:
        result["error"] = error
    return result


def build_diff(plans, outcomes=None):
    """One diff for the run, keyed by region, for the regions whose state changes.

    ``outcomes``: the state each region reported after applying (None in check mode: the plan's prediction).
    """
    before, after = {}, {}
    for region, plan in plans.items():
        if plan["changed"]:
            before[region] = dict(plan["before"])
            after[region] = dict(plan["after"]) if outcomes is None else {"state": outcomes.get(region, plan["before"]["state"])}
    return {"before": before, "after": after}
