#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_cost_info
short_description: What each snapshot of a volume adds, what deleting it would free, and what the chain costs a month
version_added: 0.1.0
description:
  - For a chain of snapshots of one volume (oldest first), lists the blocks each snapshot changed over its predecessor with
    C(ebs:ListChangedBlocks) (C(ebs:ListSnapshotBlocks) for the oldest), fully paginated, with at most O(workers) listings
    at a time.
  - "Reports per snapshot the blocks it adds (C(added_gib)), the blocks that deleting it would free (C(freed_if_deleted_gib):
    those the next snapshot no longer refers to; for the newest, all it adds), its full size (C(full_gib), what it would
    occupy in the archive tier, where a snapshot is stored in full) and the monthly cost in the standard and archive tiers."
  - "What the numbers are: counts of 512 KiB blocks that EBS lists as changed. EBS tracks writes, not content (a block
    rewritten with the same bytes is changed), so they are upper bounds of the incremental sizes AWS bills, not the bill.
    Snapshots of the volume outside the chain, compression and regional prices are not taken into account."
  - Only completed snapshots are part of the chain; others are listed in RV(not_completed). Nothing is changed.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  volume_id:
    description: The volume whose owned, completed snapshots form the chain (ordered by start time).
    type: str
  snapshot_ids:
    description:
      - The snapshots of the chain, in any order (they are ordered by start time), e.g. the snapshots of a disk uploaded
        with M(blockwise.ebs.ebs_block_put). They must be related (of the same volume or lineage).
    type: list
    elements: str
  standard_price:
    description: Price of the standard snapshot tier per GiB-month (default the AWS list price in us-east-1).
    type: float
    default: 0.05
  archive_price:
    description: Price of the archive tier per GiB-month (default the AWS list price in us-east-1); archived snapshots are billed for at least 90 days.
    type: float
    default: 0.0125
  workers:
    description: Block listings read at the same time.
    type: int
    default: 4
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots), C(ebs:ListChangedBlocks), C(ebs:ListSnapshotBlocks)."
  - Archived snapshots cannot be read by the EBS direct APIs; a chain that holds one fails naming it.
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults). Supports check mode (it only reads).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: What the snapshots of a volume cost
  blockwise.ebs.ebs_snapshot_cost_info:
    volume_id: vol-0123456789abcdef0
  register: cost

- name: Snapshots whose deletion would free more than 10 GiB
  ansible.builtin.debug:
    msg: "{{ cost.snapshots | selectattr('freed_if_deleted_gib', 'gt', 10) | map(attribute='snapshot_id') | list }}"
"""

RETURN = r"""
snapshots:
  description: The chain, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id: {description: The snapshot., type: str}
    changed_blocks: {description: Blocks listed as changed from the predecessor (all blocks for the oldest)., type: int}
    added_blocks: {description: Changed blocks that hold data in this snapshot., type: int}
    added_gib: {description: C(added_blocks) in GiB., type: float}
    freed_if_deleted_blocks: {description: Blocks that deleting this snapshot would free (at most)., type: int}
    freed_if_deleted_gib: {description: The same in GiB., type: float}
    full_blocks: {description: Every block with data in the snapshot., type: int}
    full_gib: {description: The same in GiB (its size in the archive tier)., type: float}
    standard_monthly_cost: {description: C(added_gib) times O(standard_price)., type: float}
    archive_monthly_cost: {description: "C(full_gib) times O(archive_price), if it alone were archived.", type: float}
total:
  description: The chain's stored blocks, GiB and monthly cost in the standard tier, with the prices used.
  returned: always
  type: dict
not_completed:
  description: Snapshots left out of the chain because they are not completed.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import cost_reads
from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_cost as core


def read_chain(module):
    """The owned snapshots named by ``volume_id`` or ``snapshot_ids``."""
    ec2 = aws.client(module, "ec2")
    params = module.params
    try:
        if params["volume_id"]:
            return fleet.read_snapshots(ec2, filters={"volume-id": params["volume_id"]})
        snapshots = fleet.read_snapshots(ec2, snapshot_ids=params["snapshot_ids"])
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the snapshots (ec2:DescribeSnapshots)")
    missing = sorted(set(params["snapshot_ids"]) - {s["SnapshotId"] for s in snapshots})
    if missing:
        module.fail_json(msg="snapshot_ids: not found among the account's snapshots: {0}".format(", ".join(missing)))
    return snapshots


def main():
    argument_spec = dict(
        volume_id=dict(type="str"),
        snapshot_ids=dict(type="list", elements="str"),
        standard_price=dict(type="float", default=core.STANDARD_PRICE),
        archive_price=dict(type="float", default=core.ARCHIVE_PRICE),
        workers=dict(type="int", default=4),
    )
    module = aws.build_module(argument_spec, mutually_exclusive=[("volume_id", "snapshot_ids")],
                              required_one_of=[("volume_id", "snapshot_ids")])
    params = module.params
    for option in ("standard_price", "archive_price"):
        if params[option] < 0:
            module.fail_json(msg="{0} must not be negative, got {1}".format(option, params[option]))
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1, got {0}".format(params["workers"]))
    chain, not_completed = core.order_chain(read_chain(module))
    ebs = aws.client(module, "ebs", workers=params["workers"])
    try:
        changes = cost_reads.read_changes(ebs, chain, params["workers"])
    except cost_reads.ChainReadError as e:
        module.fail_json(msg=str(e))
    rows, total = core.chain_cost(chain, changes, params["standard_price"], params["archive_price"])
    module.exit_json(changed=False, snapshots=rows, total=total, not_completed=not_completed)


if __name__ == "__main__":
    main()
