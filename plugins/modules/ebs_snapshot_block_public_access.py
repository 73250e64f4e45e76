#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_block_public_access
short_description: Keep "block public access for snapshots" in the wanted state, in one or many regions
version_added: 0.1.0
description:
  - Sets the account's Amazon EBS I(block public access for snapshots) setting, which exists per account and region.
  - V(block-all-sharing) refuses any new public sharing of snapshots and makes snapshots that are already public private in
    effect (their C(createVolumePermission) still lists the group C(all), but no other account can see or use them).
  - V(block-new-sharing) refuses new public sharing; snapshots that are already public stay public.
  - V(unblocked) allows public sharing.
  - Reads each region's current setting first and changes only what differs, so a second run reports C(changed=false).
  - "Runs in two phases: it reads every region first and writes nothing if any input is wrong; then it changes the regions
    that differ, one call per region."
  - A region that cannot be read or changed (access denied, region not enabled for the account) is reported under
    RV(regions) with its C(error). By default the task then fails after every other region has been handled; set
    O(fail_on_region_error=false) to turn those errors into warnings.
  - In check mode nothing is changed; RV(regions) and the diff show what would change.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  state:
    description:
      - The wanted setting.
    type: str
    choices: [block-all-sharing, block-new-sharing, unblocked]
    default: block-all-sharing
  regions:
    description:
      - The regions to manage.
      - The single value V(all) means every region enabled for the account (from C(ec2:DescribeRegions)).
      - When omitted, the module's O(region) is managed.
    type: list
    elements: str
  fail_on_region_error:
    description:
      - When V(true), the task fails if any region reports an error (after all other regions have been handled).
      - When V(false), region errors are reported in RV(regions) and as warnings, and the task succeeds.
    type: bool
    default: true
notes:
  - "IAM permissions: C(ec2:GetSnapshotBlockPublicAccessState), C(ec2:EnableSnapshotBlockPublicAccess),
    C(ec2:DisableSnapshotBlockPublicAccess) and C(ec2:DescribeRegions)."
  - Corresponds to the AWS Foundational Security Best Practices control EC2.182 (block public access for snapshots);
    see the Security and cost guide of the collection.
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Block all public sharing of snapshots in every enabled region
  blockwise.ebs.ebs_snapshot_block_public_access:
    state: block-all-sharing
    regions: [all]

- name: Audit only (no change)
  blockwise.ebs.ebs_snapshot_block_public_access:
    regions: [us-east-1, eu-west-1]
  check_mode: true
  register: bpa
"""

RETURN = r"""
changed:
  description: Whether any region changed (or would change, in check mode).
  returned: always
  type: bool
regions:
  description:
    - One entry per managed region, keyed by region name, with the state EC2 answered after the change (the predicted state
      in check mode; the state before for a region whose change failed).
  returned: always
  type: dict
  contains:
    state:
      description: The block public access state.
      type: str
      sample: block-all-sharing
    changed:
      description: Whether this region changed (or would change).
      type: bool
    actions:
      description: What was (or would be) done, V(enable) or V(disable).
      type: list
      elements: str
    error:
      description: The AWS error for a region that could not be read or changed.
      type: str
      returned: when the region failed
  sample:
    us-east-1: {state: block-all-sharing, changed: true, actions: [enable]}
failed_regions:
  description: Regions that reported an error.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import encryption
from ansible_collections.blockwise.ebs.plugins.module_utils import public_access as core


def resolve_regions(module):
    """The ordered regions to manage; bad input fails naming ``regions`` before any call that writes."""
    requested = module.params["regions"]
    try:
        encryption.validate_options("enabled", None, False, requested)
    except encryption.EncryptionInputError as e:
        module.fail_json(msg=str(e))
    hint = module.region or (requested[0] if requested and requested[0] != encryption.ALL_REGIONS else None) or "us-east-1"
    try:
        known = aws.client(module, "ec2", region=hint).describe_regions(AllRegions=True, aws_retry=True)["Regions"]
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not list regions (ec2:DescribeRegions)")
    try:
        return encryption.resolve_regions(requested, module.region, {r["RegionName"]: r.get("OptInStatus", "opt-in-not-required") for r in known})
    except encryption.EncryptionInputError as e:
        module.fail_json(msg=str(e))


def read_and_plan(module, regions):
    """Phase 1: each region's plan, or its read error."""
    plans, results = {}, {}
    for region in regions:
        try:
            current = aws.client(module, "ec2", region=region).get_snapshot_block_public_access_state(aws_retry=True)["State"]
        except aws.AWS_ERRORS as e:
            results[region] = {"changed": False, "actions": [], "error": aws.error_message(e)}
            continue
        plans[region] = core.plan_region(current, module.params["state"])
    return plans, results


def apply_region(module, region, plan):
    """Phase 2 for one region: returns ``(result, answered state or None)``."""
    if module.check_mode or not plan["changed"]:
        return dict(plan["after"], changed=plan["changed"], actions=list(plan["actions"])), None
    ec2 = aws.client(module, "ec2", region=region)
    try:
        if plan["actions"] == [core.DISABLE]:
            answered = ec2.disable_snapshot_block_public_access(aws_retry=True)["State"]
        else:
            answered = ec2.enable_snapshot_block_public_access(State=plan["after"]["state"], aws_retry=True)["State"]
    except aws.AWS_ERRORS as e:
        return core.outcome(plan, None, "{0} failed: {1}".format(plan["actions"][0], aws.error_message(e))), None
    return core.outcome(plan, answered), answered


def main():
    argument_spec = dict(
        state=dict(type="str", default=core.BLOCK_ALL, choices=list(core.STATES)),
        regions=dict(type="list", elements="str"),
        fail_on_region_error=dict(type="bool", default=True),
    )
    module = aws.build_module(argument_spec)
    regions = resolve_regions(module)
    plans, results = read_and_plan(module, regions)
    outcomes = None if module.check_mode else {}
    for region, plan in plans.items():
        results[region], answered = apply_region(module, region, plan)
        if outcomes is not None and answered is not None:
            outcomes[region] = answered
    ordered = {region: results[region] for region in regions}
    failed = [region for region, result in ordered.items() if "error" in result]
    output = dict(changed=any(r["changed"] for r in ordered.values()), regions=ordered, failed_regions=failed)
    if module._diff:
        output["diff"] = core.build_diff(plans, outcomes)
    if failed:
        message = "; ".join("{0}: {1}".format(region, ordered[region]["error"]) for region in failed)
        if module.params["fail_on_region_error"]:
            module.fail_json(msg="Block public access for snapshots failed in {0} of {1} regions: {2}".format(
                len(failed), len(regions), message), **output)
        module.warn("Block public access for snapshots not managed in " + message)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
