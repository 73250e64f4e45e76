#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_changed_blocks_info
short_description: Count the blocks that changed between two EBS snapshots (EBS direct APIs)
version_added: 0.1.0
description:
  - With O(first_snapshot_id), lists the blocks that differ between two snapshots of the same lineage
    (C(ListChangedBlocks)); without it, lists the blocks that hold data in O(second_snapshot_id)
    (C(ListSnapshotBlocks)).
  - Follows every page (up to 10000 blocks per request), so the counts cover the whole volume.
  - Useful to size an incremental copy or restore before starting it. Reads only; never changes anything.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  first_snapshot_id:
    description:
      - The older snapshot. When omitted, every block that holds data in O(second_snapshot_id) counts as changed.
      - Both snapshots must be of the same lineage (one an ancestor of the other); AWS rejects unrelated snapshots.
      - An empty string is refused, not taken as omitted (it would count every block as changed).
    type: str
  second_snapshot_id:
    description:
      - The newer snapshot.
    type: str
    required: true
  return_block_indexes:
    description:
      - Also return the list of changed block indexes (can be long for big volumes).
    type: bool
    default: false
notes:
  - "IAM permissions: C(ebs:ListChangedBlocks), C(ebs:ListSnapshotBlocks)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode (it only reads).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: How much changed since last week's snapshot?
  blockwise.ebs.ebs_changed_blocks_info:
    first_snapshot_id: snap-0123456789abcdef0
    second_snapshot_id: snap-0fedcba9876543210
  register: delta

- name: Report it
  ansible.builtin.debug:
    msg: "{{ delta.changed_blocks }} blocks ({{ (delta.changed_bytes / 1048576) | round(1) }} MiB) changed"

- name: Which blocks hold data in a snapshot
  blockwise.ebs.ebs_changed_blocks_info:
    second_snapshot_id: snap-0fedcba9876543210
    return_block_indexes: true
"""

RETURN = r"""
first_snapshot_id:
  description: The older snapshot, or null.
  returned: always
  type: str
  sample: snap-0123456789abcdef0
second_snapshot_id:
  description: The newer snapshot.
  returned: always
  type: str
  sample: snap-0fedcba9876543210
changed_blocks:
  description: Number of changed blocks (blocks with data, without O(first_snapshot_id)).
  returned: always
  type: int
  sample: 1210
changed_bytes:
  description: changed_blocks x block_size.
  returned: always
  type: int
  sample: 634388480
blocks_only_in_first:
  description: Changed blocks that the second snapshot no longer holds (they read as zeros there).
  returned: always
  type: int
  sample: 2
volume_size:
  description: Volume size of the second snapshot in GiB.
  returned: always
  type: int
  sample: 8
block_size:
  description: Block size in bytes (524288).
  returned: always
  type: int
  sample: 524288
pages:
  description: API pages read.
  returned: always
  type: int
  sample: 1
block_indexes:
  description: The changed block indexes, ascending.
  returned: when O(return_block_indexes=true)
  type: list
  elements: int
  sample: [0, 1, 17, 4096]
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import blocks


def main():
    argument_spec = dict(
        first_snapshot_id=dict(type="str"),
        second_snapshot_id=dict(type="str", required=True),
        return_block_indexes=dict(type="bool", default=False),
    )
    module = aws.build_module(argument_spec)
    params = module.params
    if params.get("first_snapshot_id") and params["first_snapshot_id"] == params["second_snapshot_id"]:
        module.fail_json(msg="first_snapshot_id must differ from second_snapshot_id ({0})".format(
            params["second_snapshot_id"]))
    try:
        ebs = aws.client(module, "ebs")
        result = blocks.changed_blocks_info(ebs, params["second_snapshot_id"], params.get("first_snapshot_id"),
                                            params["return_block_indexes"])
    except blocks.BlockError as exc:
        module.fail_json(msg=str(exc), **exc.details())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
