# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions for EBS encryption by default: which regions, what to change in each.

No AWS calls here: the module reads the current state, this code decides, the module applies.

The AWS managed EBS key is always reported as ``alias/aws/ebs`` (``reported_key_id``): EC2 may answer
it by that name or by the key's ARN (ResetEbsDefaultKmsKeyId answers the ARN), and the plan, the
result and the diff must name it the same way in check mode and after applying. Customer managed
keys are reported as EC2 reports them (key ARNs).
"""
from __future__ import annotations

import re

AWS_MANAGED_ALIAS = "alias/aws/ebs"
ALL_REGIONS = "all"

# Actions, in the order they are applied within a region.
ENABLE = "enable"
DISABLE = "disable"
SET_KEY = "set_kms_key"
RESET_KEY = "reset_kms_key"

_ARN_RE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<resource>(key|alias)/.+)$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class EncryptionInputError(ValueError):
    """Bad module input; the message names the option."""


def is_aws_managed(key_id):
    """True when ``key_id`` designates the AWS-managed EBS key (``alias/aws/ebs``, by name or ARN)."""
    if not key_id:
        return False
    return key_id == AWS_MANAGED_ALIAS or key_id.endswith(":" + AWS_MANAGED_ALIAS)


def arn_region(key_id):
    """The region of a KMS key or alias ARN, or None when ``key_id`` is not an ARN."""
    match = _ARN_RE.match(key_id or "")
    return match.group("region") if match else None


def is_key_arn(key_id):
    match = _ARN_RE.match(key_id or "")
    return bool(match and match.group("resource").startswith("key/"))


def validate_options(state, kms_key_id, reset_kms_key, regions):
    """Check option combinations that argument_spec cannot express; raise EncryptionInputError."""
    if state == "disabled" and kms_key_id:
        raise EncryptionInputError(
            "kms_key_id={0!r} cannot be used with state=disabled: the default key only matters while "
            "encryption by default is enabled".format(kms_key_id))
    if state == "disabled" and reset_kms_key:
        raise EncryptionInputError("reset_kms_key=true cannot be used with state=disabled")
    if kms_key_id is not None and not kms_key_id.strip():
        raise EncryptionInputError("kms_key_id must not be empty")
    if regions is not None:
        if not regions:
            raise EncryptionInputError("regions must not be empty; omit it to use the module's region, or use [all]")
        if ALL_REGIONS in regions and len(regions) > 1:
            raise EncryptionInputError("regions: 'all' must be the only item, got {0}".format(list(regions)))
        bad = [r for r in regions if r != ALL_REGIONS and not _REGION_RE.match(r or "")]
        if bad:
            raise EncryptionInputError("regions: {0!r} is not a region name (e.g. us-east-1)".format(bad[0]))


def resolve_regions(requested, module_region, known_regions):
    """The ordered list of regions to manage.

    ``requested``: the ``regions`` option (None, ``['all']`` or names); ``module_region``: the
    module's ``region``; ``known_regions``: mapping region name -> OptInStatus from
    DescribeRegions(AllRegions=True). ``all`` means every region enabled for the account.
    """
    if requested is None:
        if not module_region:
            raise EncryptionInputError("no region: set regions, or the module's region (or AWS_REGION)")
        requested = [module_region]
    if list(requested) == [ALL_REGIONS]:
        return sorted(name for name, status in known_regions.items() if status != "not-opted-in")
    resolved = []
    for name in requested:
        if name not in known_regions:
            raise EncryptionInputError("regions: unknown region {0!r}; known regions: {1}".format(name, ", ".join(sorted(known_regions))))
        if name not in resolved:
            resolved.append(name)
    return resolved


def check_key_region(kms_key_id, regions):
    """A key or alias ARN names one region: it cannot be the default key of another.

    That holds for ``arn:...:alias/aws/ebs`` too: each region has its own AWS managed key.
    """
    key_region = arn_region(kms_key_id)
    if key_region is None:
        return
    others = [r for r in regions if r != key_region]
    if others:
        hint = AWS_MANAGED_ALIAS if is_aws_managed(kms_key_id) else "an alias name (alias/...) that exists in every region"
        raise EncryptionInputError(
            "kms_key_id={0!r} is a key in {1} and cannot be the default key of {2}; use {3} instead".format(
                kms_key_id, key_region, ", ".join(others), hint))


def reported_key_id(key_id, managed_key_arn=None):
    """The default key as the module reports it: ``alias/aws/ebs`` for the AWS managed key (named, or
    by its key ARN ``managed_key_arn`` when known), ``key_id`` unchanged otherwise."""
    if is_aws_managed(key_id) or (managed_key_arn and key_id == managed_key_arn):
        return AWS_MANAGED_ALIAS
    return key_id


def check_key_metadata(kms_key_id, region, metadata):
    """Validate KMS DescribeKey metadata for use as the EBS default key; raise EncryptionInputError."""
    state = metadata.get("KeyState")
    if state != "Enabled":
        raise EncryptionInputError("kms_key_id={0!r} in {1} is {2}, not Enabled".format(kms_key_id, region, state))
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec != "SYMMETRIC_DEFAULT" or metadata.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        raise EncryptionInputError(
            "kms_key_id={0!r} in {1} is a {2} key for {3}; EBS needs a symmetric ENCRYPT_DECRYPT key".format(
                kms_key_id, region, spec, metadata.get("KeyUsage")))


def plan_region(current, state, want_aws_managed=False, want_key_arn=None):
    """Decide what to change in one region.

    ``current``: ``{"encryption_by_default": bool, "kms_key_id": str, "kms_key_arn": str|None,
    "aws_managed": bool}`` where ``kms_key_arn`` is the current default key resolved to a key ARN
    (None if unknown) and ``aws_managed`` says whether it is the AWS-managed key (EC2 may report
    that key as ``alias/aws/ebs`` or as its key ARN; defaults to :func:`is_aws_managed` of the id).
    ``want_aws_managed``: restore the AWS-managed key. ``want_key_arn``: the key ARN that must become
    the default (already resolved and validated). Returns
    ``{"actions": [...], "before": {...}, "after": {...}, "changed": bool}``.
    """
    aws_managed = current.get("aws_managed", is_aws_managed(current.get("kms_key_id")))
    before = {
        "encryption_by_default": bool(current["encryption_by_default"]),
        "kms_key_id": AWS_MANAGED_ALIAS if aws_managed else current.get("kms_key_id"),
    }
    after = dict(before)
    actions = []
    enabled = state == "enabled"
    if before["encryption_by_default"] != enabled:
        actions.append(ENABLE if enabled else DISABLE)
        after["encryption_by_default"] = enabled
    if want_aws_managed and not aws_managed:
        actions.append(RESET_KEY)
        after["kms_key_id"] = AWS_MANAGED_ALIAS
    elif want_key_arn and current.get("kms_key_arn") != want_key_arn:
        actions.append(SET_KEY)
        after["kms_key_id"] = want_key_arn
    return {"actions": actions, "before": before, "after": after, "changed": bool(actions)}


def build_diff(region_plans, outcomes=None):
    """One ``diff`` for the whole run: before/after keyed by region, for the regions the plan changes.

    ``outcomes`` maps a region to its state after applying (``encryption_by_default``, ``kms_key_id``
    as confirmed by EC2's answers; for a region whose apply failed, what was done before the failure,
    else its state before). Without ``outcomes`` (check mode) ``after`` is the plan's prediction. A
    region the plan changes but whose apply changed nothing shows ``after`` equal to ``before``.
    """
    before = {}
    after = {}
    for region, plan in region_plans.items():
        if plan.get("changed"):
            before[region] = dict(plan["before"])
            state = plan["after"] if outcomes is None else outcomes.get(region, plan["before"])
            after[region] = {key: state.get(key, plan["before"][key]) for key in plan["before"]}
    return {"before": before, "after": after}
