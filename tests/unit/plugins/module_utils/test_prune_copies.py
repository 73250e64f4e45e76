# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_snapshot_prune protects sources whose copy is pending in another region or shared with a copy account."""
from __future__ import annotations

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import prune, retention
from tests.unit.plugins.module_utils.test_prune import ACCOUNT, NOW, item, options, params

REGIONS = {"us-east-1", "eu-west-1", "eu-central-1"}


def copy(source_id, state="pending", region="us-east-1"):
    return {"SnapshotId": "snap-copy-" + source_id, "State": state,
            "tags": {"blockwise:source-snapshot": source_id, "blockwise:source-region": region, "blockwise:source-account": ACCOUNT}}


def test_copy_targets_are_validated_naming_the_option():
    opts = prune.options_from_params(params(copy_regions=["eu-west-1", "eu-west-1"], copy_accounts=["210987654321"]), REGIONS)
    assert opts.copy_regions == ("eu-west-1",) and opts.copy_accounts == ("210987654321",)
    assert options().copy_regions == () and options().copy_accounts == ()
    with pytest.raises(prune.PruneError, match="copy_regions: unknown region 'xx-north-9'"):
        prune.options_from_params(params(copy_regions=["xx-north-9"]), REGIONS)
    with pytest.raises(prune.PruneError, match="copy_accounts: 'all' is not a 12-digit AWS account id"):
        prune.options_from_params(params(copy_accounts=["all"]), REGIONS)


def test_sources_of_pending_copies_and_shared_sources_are_protected():
    snaps = [item("snap-%d" % day, "vol-1", day) for day in range(1, 6)]
    protections = prune.copy_protections(
        pending_copies={"eu-west-1": [copy("snap-4"), copy("snap-5", state="completed"), copy("snap-9")]},
        shared={"210987654321": {"snap-3", "snap-4"}},
        region="us-east-1",
    )
    assert protections == {"snap-4": ["copy-pending:eu-west-1", "copy-shared:210987654321"], "snap-9": ["copy-pending:eu-west-1"],
                           "snap-3": ["copy-shared:210987654321"]}
    the_plan = prune.plan(snaps, [], {}, options(retention={"keep_last": 1}), NOW, ACCOUNT, extra_protections=protections)
    actions = {d.snapshot_id: (d.action, d.reasons) for d in the_plan.decisions}
    assert actions["snap-4"] == (retention.PROTECT, ("copy-pending:eu-west-1", "copy-shared:210987654321"))
    assert actions["snap-3"][0] == retention.PROTECT and actions["snap-1"][0] == retention.KEEP
    assert {d.snapshot_id for d in the_plan.deletions} == {"snap-2", "snap-5"}


def test_a_pending_copy_from_another_region_protects_nothing_here():
    protections = prune.copy_protections(pending_copies={"eu-west-1": [copy("snap-1", region="eu-central-1")]}, shared={},
                                         region="us-east-1")
    assert protections == {}
