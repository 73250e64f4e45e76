#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_audit_controls_info
short_description: Evaluate the EBS security and backup controls of one or many regions, with the offending resources
version_added: 0.1.0
description:
  - Reads each region once, in batches (volumes, owned snapshots, public snapshots, images, block public access for
    snapshots, encryption by default) and evaluates the controls below. Nothing is changed.
  - "Each control is a row with a stable C(control) id, the AWS Foundational Security Best Practices control it corresponds
    to (C(fsbp)), C(status) (C(pass), C(fail), or C(not-checked) when the data was not read), the offending resource ids,
    their count and total size in GiB."
  - "Controls: C(snapshot-public) (EC2.1), C(snapshot-shared-outside) (none), C(snapshot-block-public-access) (EC2.182),
    C(encryption-by-default) (EC2.7), C(volume-unencrypted) (EC2.3), C(snapshot-unencrypted) (none),
    C(volume-without-policy) (EC2.28), C(volume-rpo-exceeded) (EC2.28), C(snapshot-orphan) (none)."
  - A region that cannot be read is reported with its C(error) and no rows; the other regions are still evaluated.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  regions:
    description:
      - The regions to audit; the single value V(all) means every region enabled for the account.
      - When omitted, the module's O(region) is audited.
    type: list
    elements: str
  policies:
    description:
      - The backup policies whose coverage and recovery point objective are checked.
      - "Each is a dictionary with C(name) and any of C(target_tags) (volume tags that select a volume), C(volume_ids),
        C(all_volumes), C(frequency) (as for M(blockwise.ebs.ebs_snapshot_policy)), C(grace) and C(timezone); other keys are
        ignored, so the policies of the C(snapshot_schedule) role can be passed as they are."
      - A volume that no policy selects and that has no snapshot newer than O(recent_snapshot_age) is a finding of
        C(volume-without-policy); a selected volume whose newest completed snapshot is older than the smallest frequency
        plus grace of its policies is a finding of C(volume-rpo-exceeded).
      - A snapshot tagged C(blockwise:policy) with one of these names is in a policy's scope (never an orphan).
    type: list
    elements: dict
    default: []
  allowed_share_accounts:
    description:
      - Account ids that snapshots may be shared with; a snapshot shared with any other account is a finding of
        C(snapshot-shared-outside).
    type: list
    elements: str
    default: []
  check_account_shares:
    description:
      - "Read each owned snapshot's C(createVolumePermission) (one C(ec2:DescribeSnapshotAttribute) per snapshot: EC2 has
        no batched read of it) to evaluate C(snapshot-shared-outside)."
      - It also finds snapshots whose permission still lists the group C(all) while block public access
        (C(block-all-sharing)) hides them; C(snapshot-public) lists them under C(detail.hidden_by_block_public_access).
      - When V(false), that control is reported as C(not-checked), never as a pass, and the audit stays within a fixed
        number of describe calls per region.
    type: bool
    default: false
  recent_snapshot_age:
    description:
      - How new a snapshot must be for a volume in no policy to count as backed up, e.g. V(7d), V(36 hours).
    type: str
    default: 7d
  cost:
    description:
      - "Also price each policy of O(policies) (RV(costs)) as M(blockwise.ebs.ebs_snapshot_cost_info) prices one chain: for
        each disk, the snapshots tagged C(blockwise:policy) with the policy's name, oldest first, with one
        C(ebs:ListChangedBlocks) per consecutive pair (C(ebs:ListSnapshotBlocks) for the oldest)."
      - The numbers are upper bounds of the billed incremental sizes (changed 512 KiB blocks), not the bill.
      - These EBS direct reads are outside the describe-call budget of the controls.
    type: bool
    default: false
  standard_price:
    description: Price of the standard snapshot tier per GiB-month used with O(cost) (AWS list price in us-east-1).
    type: float
    default: 0.05
  workers:
    description: Concurrent attribute reads when O(check_account_shares=true), and concurrent block listings with O(cost).
    type: int
    default: 4
notes:
  - "IAM permissions: C(ec2:DescribeVolumes), C(ec2:DescribeSnapshots), C(ec2:DescribeImages), C(ec2:DescribeRegions),
    C(ec2:GetSnapshotBlockPublicAccessState), C(ec2:GetEbsEncryptionByDefault), C(ec2:DescribeSnapshotAttribute)
    with O(check_account_shares=true), C(ebs:ListChangedBlocks) and C(ebs:ListSnapshotBlocks) with O(cost=true)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults). Supports check mode (it only reads).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Evaluate the controls in two regions
  blockwise.ebs.ebs_audit_controls_info:
    regions: [eu-west-1, eu-central-1]
    policies:
      - name: daily
        target_tags: {backup: daily}
        frequency: 1d
    allowed_share_accounts: ["210987654321"]
    check_account_shares: true
  register: controls

- name: Failing controls
  ansible.builtin.debug:
    msg: "{{ controls.findings | selectattr('status', 'equalto', 'fail') | map(attribute='control') | list }}"
"""

RETURN = r"""
findings:
  description: One row per control and region.
  returned: always
  type: list
  elements: dict
  contains:
    control: {description: The stable control id., type: str, sample: snapshot-public}
    fsbp: {description: "The corresponding AWS Foundational Security Best Practices control, or null.", type: str, sample: EC2.1}
    description: {description: What a finding of this control is., type: str}
    region: {description: The region., type: str}
    status: {description: "V(pass), V(fail) or V(not-checked).", type: str}
    count: {description: Number of offending resources., type: int}
    resource_ids: {description: The offending resource ids (the region name for a region setting)., type: list, elements: str}
    total_gib: {description: Total size of the offending volumes or snapshots in GiB., type: int, returned: for volume and snapshot controls}
    detail: {description: Control-specific detail (the block public access state; the accounts of each shared snapshot)., type: raw, returned: when relevant}
regions:
  description: Per region, C(failed) and C(not_checked) control ids and C(compliant), or C(error).
  returned: always
  type: dict
  sample: {eu-west-1: {failed: [snapshot-public], not_checked: [snapshot-shared-outside], compliant: false}}
costs:
  description:
    - With O(cost), one row per region and policy, C(region), C(policy), C(chains) (disks), C(snapshots), C(stored_gib)
      and C(standard_monthly_cost); C(errors) lists the chains that could not be read (for example one holding an archived
      snapshot), which are then not counted.
  returned: always
  type: list
  elements: dict
failed_regions:
  description: Regions that could not be read.
  returned: always
  type: list
  elements: str
"""

from datetime import datetime, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import audit_controls as core
from ansible_collections.blockwise.ebs.plugins.module_utils import audit_reads
from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import cost_reads
from ansible_collections.blockwise.ebs.plugins.module_utils import encryption
from ansible_collections.blockwise.ebs.plugins.module_utils import schedule
from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_cost


def checked_inputs(module, now):
    """``(policies, recent)``; bad input fails naming the option (before any AWS call)."""
    params = module.params
    try:
        recent = schedule.parse_duration(params["recent_snapshot_age"])
    except ValueError as e:
        module.fail_json(msg="recent_snapshot_age: {0}".format(e))
    try:
        policies = core.audit_policies(params["policies"], now)
        core.check_accounts(params["allowed_share_accounts"])
        encryption.validate_options("enabled", None, False, params["regions"])
    except (ValueError, encryption.EncryptionInputError) as e:
        module.fail_json(msg=str(e))
    if params["standard_price"] < 0:
        module.fail_json(msg="standard_price must not be negative, got {0}".format(params["standard_price"]))
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1, got {0}".format(params["workers"]))
    return policies, recent


def resolve_regions(module):
    requested = module.params["regions"]
    hint = module.region or (requested[0] if requested and requested[0] != encryption.ALL_REGIONS else None) or "us-east-1"
    try:
        known = aws.client(module, "ec2", region=hint).describe_regions(AllRegions=True, aws_retry=True)["Regions"]
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not list regions (ec2:DescribeRegions)")
    try:
        return encryption.resolve_regions(requested, module.region, {r["RegionName"]: r.get("OptInStatus", "opt-in-not-required") for r in known})
    except encryption.EncryptionInputError as e:
        module.fail_json(msg=str(e))


def policy_costs(module, region, snapshots, policies):
    """The cost rows of ``region``'s policies (``cost: true``)."""
    ebs = aws.client(module, "ebs", region=region, workers=module.params["workers"])
    rows = []
    for name, disks in snapshot_cost.policy_chains(snapshots, [p["name"] for p in policies]).items():
        totals, errors = [], []
        for chain in disks.values():
            try:
                changes = cost_reads.read_changes(ebs, chain, module.params["workers"])
            except cost_reads.ChainReadError as e:
                errors.append(str(e))
                continue
            totals.append(snapshot_cost.chain_cost(chain, changes, module.params["standard_price"])[1])
        rows.append(snapshot_cost.policy_total(region, name, totals, errors))
    return rows


def main():
    argument_spec = dict(
        regions=dict(type="list", elements="str"),
        policies=dict(type="list", elements="dict", default=[]),
        allowed_share_accounts=dict(type="list", elements="str", default=[]),
        check_account_shares=dict(type="bool", default=False),
        recent_snapshot_age=dict(type="str", default="7d"),
        cost=dict(type="bool", default=False),
        standard_price=dict(type="float", default=snapshot_cost.STANDARD_PRICE),
        workers=dict(type="int", default=4),
    )
    module = aws.build_module(argument_spec)
    now = datetime.now(timezone.utc)
    policies, recent = checked_inputs(module, now)
    findings, regions, costs = [], {}, []
    for region in resolve_regions(module):
        ec2 = aws.client(module, "ec2", region=region, workers=module.params["workers"])
        try:
            data = audit_reads.read_region(ec2, module.params["check_account_shares"], module.params["workers"])
        except aws.AWS_ERRORS as e:
            regions[region] = {"error": aws.error_message(e)}
            continue
        rows = core.evaluate(region, data, policies, now, module.params["allowed_share_accounts"], recent)
        findings.extend(rows)
        regions[region] = core.summary(rows)
        if module.params["cost"]:
            costs.extend(policy_costs(module, region, data["snapshots"], policies))
    failed = [region for region, result in regions.items() if "error" in result]
    module.exit_json(changed=False, findings=findings, regions=regions, costs=costs, failed_regions=failed)


if __name__ == "__main__":
    main()
