#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_restore_points_info
short_description: The newest restorable snapshot of each volume per policy, and its last verification
version_added: 0.1.0
description:
  - Reads the snapshots of this account in one region (one paginated C(DescribeSnapshots) pass) that carry the
    C(blockwise:policy) tag, and returns per policy and volume the restore point (the newest completed snapshot in the
    standard tier) and the last verification recorded by M(blockwise.ebs.ebs_snapshot_verify) on any snapshot of that
    volume (the C(blockwise:verified), C(blockwise:verified-at) and C(blockwise:verify-mode) tags).
  - "A volume is the snapshot's C(blockwise:lineage) tag when it has one (uploads and copies, whose C(VolumeId) is a
    placeholder or arbitrary), else its C(VolumeId). Copies in a DR region carry the source's policy and lineage, so
    the same call in that region returns the DR restore points."
  - RV(selected) is what a restore drill verifies; the C(blockwise.ebs.restore_drill) role uses it.
  - Only reads. Supports check mode.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  policies:
    description:
      - Only snapshots of these policies (the C(blockwise:policy) tag). Default, every policy.
    type: list
    elements: str
    default: []
  filters:
    description:
      - 'More C(DescribeSnapshots) filters, for example V({"tag:env": "prod"}).'
    type: dict
    default: {}
  sample_volumes:
    description:
      - Select a sample of this many restore points (volumes) instead of all of them. V(0) selects all.
    type: int
    default: 0
  seed:
    description:
      - Seed of the sample. The same seed and snapshots give the same sample. Default, today's date (UTC), so that a
        check-mode plan and the run after it on the same day select the same volumes.
    type: str
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The restore points of the daily policy, and three of them for a drill
  blockwise.ebs.ebs_restore_points_info:
    policies: [daily]
    sample_volumes: 3
  register: points

- name: Show when each policy was last verified
  ansible.builtin.debug:
    var: points.policies
"""

RETURN = r"""
restore_points:
  description: Per policy and volume, sorted by policy then volume.
  returned: always
  type: list
  elements: dict
  contains:
    policy:
      description: "The policy."
      type: str
    volume:
      description: "The volume (or lineage)."
      type: str
    snapshot_id:
      description: "The restore point, null when the volume has no completed standard-tier snapshot."
      type: str
    start_time:
      description: "When the restore point was started (ISO 8601 UTC)."
      type: str
    age_seconds:
      description: "Its age."
      type: int
    volume_size:
      description: "Its volume size in GiB."
      type: int
    source_region:
      description: "The region of the source of a copy (C(blockwise:source-region))."
      type: str
    snapshots:
      description: "How many snapshots of the volume the policy holds."
      type: int
    restorable:
      description: "How many of them are completed and in the standard tier."
      type: int
    last_verification:
      description: The newest verification recorded on any snapshot of the volume (C(snapshot_id), C(result), C(at), C(mode)), or null.
      type: dict
    restore_point_verified:
      description: "Whether that verification is of the restore point itself."
      type: bool
selected:
  description: The restore points a drill verifies (all of them, or the sample of O(sample_volumes)).
  returned: always
  type: list
  elements: dict
policies:
  description:
    - Per policy, the newest verification (C(last_verified_at), C(last_result), C(last_snapshot_id)), C(volumes),
      C(verified), and the volumes C(never_verified) and C(failing) (last result not V(ok)).
  returned: always
  type: dict
seed:
  description: The seed the sample used.
  returned: always
  type: str
"""

from datetime import datetime, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import aws, drill, fleet


def main():
    argument_spec = dict(
        policies=dict(type="list", elements="str", default=[]),
        filters=dict(type="dict", default={}),
        sample_volumes=dict(type="int", default=0),
        seed=dict(type="str"),
    )
    module = aws.build_module(argument_spec)
    params = module.params
    if params["sample_volumes"] < 0:
        module.fail_json(msg="sample_volumes must be 0 (every volume) or more, got {0}".format(params["sample_volumes"]))
    if any(not str(name).strip() for name in params["policies"]):
        module.fail_json(msg="policies: a policy name is empty; give the names of policies (the blockwise:policy tag)")
    problem = fleet.filter_problem(params["filters"])
    if problem:
        module.fail_json(msg=problem)
    now = datetime.now(timezone.utc)
    seed = params["seed"] if params["seed"] is not None else now.strftime("%Y-%m-%d")
    filters = dict(params["filters"])
    if params["policies"]:
        filters["tag:" + drill.POLICY_TAG] = params["policies"]
    else:
        filters["tag-key"] = drill.POLICY_TAG
    try:
        snapshots = fleet.read_snapshots(aws.client(module, "ec2"), filters=filters)
    except aws.AWS_ERRORS as exc:
        module.fail_json_aws(exc, msg="Could not read the snapshots")
    points = drill.restore_points(snapshots, now, params["policies"] or None)
    module.exit_json(changed=False, restore_points=points, selected=drill.pick(points, params["sample_volumes"], seed),
                     policies=drill.policy_verifications(points), seed=seed)


if __name__ == "__main__":
    main()
