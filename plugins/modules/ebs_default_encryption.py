#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_default_encryption
short_description: Keep EBS encryption by default on (or off), with the right KMS key, in one or many regions
version_added: 0.1.0
description:
  - Turns Amazon EBS encryption by default on or off and sets the default KMS key, per region.
  - Reads each region's current setting first and changes only what differs, so a second run reports C(changed=false).
  - "Runs in two phases: it reads and validates every region (including the KMS key, with C(kms:DescribeKey)), and writes
    nothing if any input is wrong; then it applies the changes region by region."
  - A region that cannot be read or changed (access denied, region not enabled for the account) is reported under
    RV(regions) with its C(error). By default the task then fails after every other region has been handled, so the
    result always describes every region; set O(fail_on_region_error=false) to turn those errors into warnings.
  - In check mode nothing is changed; RV(regions) and the diff show what would change.
  - "With diff mode, C(before) is each changed region's state as read and C(after) what happened: after applying, the state EC2
    confirmed in its answers to the changes made; a region whose change failed shows what was done before the failure (C(after)
    equals C(before) when nothing was). Only in check mode is C(after) a prediction."
  - "The AWS managed key is always reported as V(alias/aws/ebs), in check mode and after applying alike, although EC2 may answer
    it by that name or by the key's ARN (C(ec2:ResetEbsDefaultKmsKeyId) answers the ARN); to tell, the module reads that key's
    ARN with C(kms:DescribeKey) in regions where EC2 reports a key ARN. Customer managed keys are reported by their key ARN."
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  state:
    description:
      - V(enabled) turns encryption by default on, V(disabled) turns it off.
    type: str
    choices: [enabled, disabled]
    default: enabled
  kms_key_id:
    description:
      - The KMS key to make the default for EBS encryption, as a key ID, key ARN, alias name (C(alias/...)) or alias ARN.
      - V(alias/aws/ebs) restores the AWS-managed key (same as O(reset_kms_key=true)).
      - A key or alias ARN belongs to one region (C(arn:...:alias/aws/ebs) too); with several O(regions) use an alias name that
        exists in each, or V(alias/aws/ebs).
      - The key must exist, be enabled and be a symmetric encryption key in every region; this is checked before any change.
      - When omitted, the default key is left as it is.
      - Only valid with O(state=enabled).
    type: str
  reset_kms_key:
    description:
      - Restore the AWS-managed key (C(alias/aws/ebs)) as the default key.
      - Only valid with O(state=enabled).
    type: bool
    default: false
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
  - "IAM permissions: C(ec2:GetEbsEncryptionByDefault), C(ec2:GetEbsDefaultKmsKeyId), C(ec2:DescribeRegions),
    C(ec2:EnableEbsEncryptionByDefault), C(ec2:DisableEbsEncryptionByDefault), C(ec2:ModifyEbsDefaultKmsKeyId),
    C(ec2:ResetEbsDefaultKmsKeyId) and C(kms:DescribeKey)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Encryption by default on in the current region, with the AWS-managed key untouched
  blockwise.ebs.ebs_default_encryption:
    state: enabled

- name: Encryption by default on, with our own key, in every enabled region
  blockwise.ebs.ebs_default_encryption:
    regions: [all]
    kms_key_id: alias/ebs-default

- name: Two regions, back to the AWS-managed key
  blockwise.ebs.ebs_default_encryption:
    regions: [eu-west-1, eu-central-1]
    kms_key_id: alias/aws/ebs

- name: Audit only (no change), tolerate regions blocked by an SCP
  blockwise.ebs.ebs_default_encryption:
    regions: [all]
    fail_on_region_error: false
  check_mode: true
  register: encryption

- name: Show regions that are not compliant
  ansible.builtin.debug:
    msg: "{{ encryption.regions | dict2items | selectattr('value.changed') | map(attribute='key') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any region changed (or would change, in check mode).
  returned: always
  type: bool
regions:
  description:
    - One entry per managed region, keyed by region name, describing the state after the run as EC2 confirmed it
      (the predicted state in check mode). For a region whose change failed, the state after what was done before the
      failure.
  returned: always
  type: dict
  contains:
    encryption_by_default:
      description: Whether EBS encryption by default is on.
      type: bool
      sample: true
    kms_key_id:
      description:
        - The default KMS key, V(alias/aws/ebs) for the AWS managed key (whichever form EC2 answers), the key ARN of a customer
          managed key.
      type: str
      sample: arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
    changed:
      description: Whether this region changed (or would change).
      type: bool
    actions:
      description: What was (or would be) done, in order.
      type: list
      elements: str
      sample: [enable, set_kms_key]
    error:
      description: The AWS error for a region that could not be read or changed. The other keys are then absent or describe the last known state.
      type: str
      returned: when the region failed
      sample: "UnauthorizedOperation: You are not authorized to perform this operation."
  sample:
    eu-west-1:
      encryption_by_default: true
      kms_key_id: alias/aws/ebs
      changed: true
      actions: [enable]
failed_regions:
  description: Regions that reported an error.
  returned: always
  type: list
  elements: str
  sample: []
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import encryption as core


def read_known_regions(module, region_hint):
    ec2 = aws.client(module, "ec2", region=region_hint)
    try:
        regions = ec2.describe_regions(AllRegions=True, aws_retry=True)["Regions"]
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not list regions (ec2:DescribeRegions)")
    return {r["RegionName"]: r.get("OptInStatus", "opt-in-not-required") for r in regions}


def read_region(module, region, want, want_aws_managed):
    """Read one region and resolve keys: returns (current, want_key_arn). Raises EncryptionInputError or AWS errors.

    EC2 may report the AWS managed key by its key ARN rather than by ``alias/aws/ebs``: whenever it
    reports a key ARN (or a key is to be set or reset) the managed key's ARN is read from KMS, so that
    the key is reported as ``alias/aws/ebs`` in every case.
    """
    ec2 = aws.client(module, "ec2", region=region)
    key_id = ec2.get_ebs_default_kms_key_id(aws_retry=True).get("KmsKeyId")
    current = {
        "encryption_by_default": ec2.get_ebs_encryption_by_default(aws_retry=True)["EbsEncryptionByDefault"],
        "kms_key_id": key_id,
        "kms_key_arn": key_id if core.is_key_arn(key_id) else None,
        "aws_managed": core.is_aws_managed(key_id),
        "managed_key_arn": None,
    }
    if key_id and not current["aws_managed"] and (want or want_aws_managed or current["kms_key_arn"]):
        kms = aws.client(module, "kms", region=region)
        if current["kms_key_arn"] is None:
            current["kms_key_arn"] = _key_arn_or_none(kms, key_id)
        current["managed_key_arn"] = _key_arn_or_none(kms, core.AWS_MANAGED_ALIAS)
        current["aws_managed"] = current["kms_key_arn"] is not None and current["kms_key_arn"] == current["managed_key_arn"]
    want_key_arn = None
    if want and not want_aws_managed:
        want_key_arn = describe_key(aws.client(module, "kms", region=region), want, region)
    return current, want_key_arn


def describe_key(kms, key_id, region):
    try:
        metadata = kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except botocore.exceptions.ClientError as e:
        if aws.error_code(e) in ("NotFoundException", "InvalidArnException"):
            raise core.EncryptionInputError("kms_key_id={0!r} was not found in {1}".format(key_id, region)) from e
        raise
    core.check_key_metadata(key_id, region, metadata)
    return metadata["Arn"]


def _key_arn_or_none(kms, key_id):
    try:
        return kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]["Arn"]
    except botocore.exceptions.ClientError:
        return None  # e.g. the current default key is gone: any wanted key differs


def apply_plan(module, region, plan, want, managed_key_arn=None):
    """Carry out a region's actions in order; stop at the first error.

    Returns ``(state, done, error)``: the state EC2 reported after the actions that were done (its
    answers to them, the key in the form ``core.reported_key_id`` gives), those actions, and the error
    message of the one that failed (or None). ResetEbsDefaultKmsKeyId answers the AWS managed key's
    ARN: it is reported as ``alias/aws/ebs`` unless KMS named that key differently.
    """
    ec2 = aws.client(module, "ec2", region=region)

    def reset():
        arn = ec2.reset_ebs_default_kms_key_id(aws_retry=True)["KmsKeyId"]
        return core.reported_key_id(arn, managed_key_arn or arn)

    calls = {
        core.ENABLE: ("encryption_by_default", lambda: ec2.enable_ebs_encryption_by_default(aws_retry=True)["EbsEncryptionByDefault"]),
        core.DISABLE: ("encryption_by_default", lambda: ec2.disable_ebs_encryption_by_default(aws_retry=True)["EbsEncryptionByDefault"]),
        core.SET_KEY: ("kms_key_id", lambda: core.reported_key_id(
            ec2.modify_ebs_default_kms_key_id(KmsKeyId=want, aws_retry=True)["KmsKeyId"], managed_key_arn)),
        core.RESET_KEY: ("kms_key_id", reset),
    }
    state = dict(plan["before"])
    done = []
    for action in plan["actions"]:
        key, call = calls[action]
        try:
            state[key] = call()
        except aws.AWS_ERRORS as e:
            return state, done, "{0} failed: {1}".format(action, aws.error_message(e))
        done.append(action)
    return state, done, None


def read_and_plan(module, regions, want, want_aws_managed):
    """Phase 1: read and plan every region; any input error stops the run before a write.

    Returns ``(plans, results, managed_arns)``: the plan of each region that could be read, the
    result of each region that could not (with its ``error``), the AWS managed key ARN of each region
    (None when not read).
    """
    plans, results, managed_arns = {}, {}, {}
    for region in regions:
        try:
            current, want_key_arn = read_region(module, region, want, want_aws_managed)
        except core.EncryptionInputError as e:
            module.fail_json(msg=str(e))
        except aws.AWS_ERRORS as e:
            results[region] = {"changed": False, "actions": [], "error": aws.error_message(e)}
            continue
        managed_arns[region] = current["managed_key_arn"]
        plans[region] = core.plan_region(current, module.params["state"], want_aws_managed=want_aws_managed, want_key_arn=want_key_arn)
    return plans, results, managed_arns


def apply_all(module, plans, results, want, managed_arns):
    """Phase 2: apply each region's plan (in check mode, predict); fill ``results``.

    Returns the state of each region EC2 confirmed after applying (None in check mode), for the diff.
    """
    outcomes = None if module.check_mode else {}
    for region, plan in plans.items():
        result = {"changed": plan["changed"], "actions": list(plan["actions"])}
        if module.check_mode or not plan["changed"]:
            result.update(plan["after"])
        else:
            state, done, error = apply_plan(module, region, plan, want, managed_arns[region])
            result.update(state, changed=bool(done), actions=done)
            outcomes[region] = state
            if error:
                result["error"] = error
        results[region] = result
    return outcomes


def main():
    argument_spec = dict(
        state=dict(type="str", default="enabled", choices=["enabled", "disabled"]),
        kms_key_id=dict(type="str"),
        reset_kms_key=dict(type="bool", default=False),
        regions=dict(type="list", elements="str"),
        fail_on_region_error=dict(type="bool", default=True),
    )
    module = aws.build_module(argument_spec, mutually_exclusive=[("kms_key_id", "reset_kms_key")])
    params = module.params
    try:
        core.validate_options(params["state"], params["kms_key_id"], params["reset_kms_key"], params["regions"])
    except core.EncryptionInputError as e:
        module.fail_json(msg=str(e))

    requested = params["regions"]
    region_hint = module.region or (requested[0] if requested and requested[0] != core.ALL_REGIONS else None) or "us-east-1"
    try:
        regions = core.resolve_regions(requested, module.region, read_known_regions(module, region_hint))
        want = params["kms_key_id"]
        if want:
            core.check_key_region(want, regions)
    except core.EncryptionInputError as e:
        module.fail_json(msg=str(e))
    want_aws_managed = params["reset_kms_key"] or core.is_aws_managed(want)

    plans, results, managed_arns = read_and_plan(module, regions, want, want_aws_managed)
    outcomes = apply_all(module, plans, results, want, managed_arns)

    ordered = {region: results[region] for region in regions}
    failed = [region for region, result in ordered.items() if "error" in result]
    output = dict(
        changed=any(r["changed"] for r in ordered.values()),
        regions=ordered,
        failed_regions=failed,
    )
    if module._diff:
        output["diff"] = core.build_diff(plans, outcomes)
    if failed:
        message = "; ".join("{0}: {1}".format(region, ordered[region]["error"]) for region in failed)
        if params["fail_on_region_error"]:
            module.fail_json(msg="EBS default encryption failed in {0} of {1} regions: {2}".format(len(failed), len(regions), message), **output)
        module.warn("EBS default encryption not managed in " + message)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
