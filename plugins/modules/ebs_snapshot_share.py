#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_share
short_description: Share the EBS snapshots of a policy with other AWS accounts (never publicly), idempotently
version_added: 0.1.0
description:
  - Adds (O(state=present)) or removes (O(state=absent)) the C(createVolumePermission) of O(account_ids) on the
    snapshots selected by O(policy) (the C(blockwise:policy) tag), O(filters) and/or O(snapshot_ids), so that those
    accounts can copy them (M(blockwise.ebs.ebs_snapshot_copy) with O(blockwise.ebs.ebs_snapshot_copy#module:source_owner_id)).
    A second run changes nothing and reports C(changed=false).
  - "Never public: V(all) in O(account_ids) is refused before any call, and the module never adds a group."
  - "Snapshots encrypted with the AWS managed key C(aws/ebs) cannot be used by any other account, so AWS cannot share
    them: asking to share one fails before any write, naming the snapshots (copy them with a customer managed key
    first). The AWS managed key's ARN is read with one C(kms:DescribeKey) of C(alias/aws/ebs)."
  - "Without O(purge), what is already shared is read with one C(DescribeSnapshots) per listed account
    (C(RestorableByUserIds)), whatever the number of snapshots. With O(purge=true), each selected snapshot's whole
    C(createVolumePermission) attribute is read: EC2 has no batched form, so that costs one C(DescribeSnapshotAttribute)
    per snapshot (O(max_concurrency) at a time); accounts not listed and a public permission found there are removed."
  - Snapshots that are not C(completed) are not shared (they are listed with status C(unchanged)).
  - In check mode nothing is written and the result is the plan. With C(--diff), each changed snapshot's accounts
    before and after (only the listed accounts without O(purge)).
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  account_ids:
    description:
      - The 12-digit ids of the accounts to share with (or, with O(state=absent), to stop sharing with).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) shares with O(account_ids); V(absent) stops sharing with them.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - With V(true) (and O(state=present)), also remove every other account, and a public permission, from the
        selected snapshots.
    type: bool
    default: false
  policy:
    description:
      - Share the account's snapshots tagged C(blockwise:policy=<policy>). At least one of O(policy), O(filters) and
        O(snapshot_ids) is required; with several, a snapshot must match all.
      - A policy that no snapshot carries fails the task.
    type: str
  filters:
    description:
      - 'EC2 C(DescribeSnapshots) filters (ANDed), for example C({"tag:team": "db"}). Only the account''s own
        snapshots are ever read; owner filters are refused.'
    type: dict
  snapshot_ids:
    description:
      - Snapshot ids. An id that is not one of the account's snapshots in the region fails the task before any write.
    type: list
    elements: str
  max_concurrency:
    description:
      - How many snapshot attribute reads and writes are in flight at once (between 1 and 64).
    type: int
    default: 4
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots), C(ec2:ModifySnapshotAttribute), C(ec2:DescribeSnapshotAttribute)
    (with O(purge)), and C(kms:DescribeKey) on C(alias/aws/ebs) when an encrypted snapshot is to be shared."
  - "Sharing an encrypted snapshot is not enough: the other account must also be allowed to use its customer managed
    key (C(kms:DescribeKey), C(kms:CreateGrant), C(kms:Decrypt), C(kms:GenerateDataKeyWithoutPlaintext),
    C(kms:ReEncrypt*)), through the key policy or a grant. See the collection's C(docs/disaster-recovery.md)."
  - Tags are not shared with the other account; RV(source_tags) carries them to M(blockwise.ebs.ebs_snapshot_copy).
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
seealso:
  - module: blockwise.ebs.ebs_snapshot_copy
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Share the nightly snapshots with the backup account
  blockwise.ebs.ebs_snapshot_share:
    policy: nightly-web
    account_ids: ["210987654321"]
  register: shared

- name: The backup account copies them (its own credentials)
  blockwise.ebs.ebs_snapshot_copy:
    profile: backup-account
    source_region: "{{ aws_region }}"
    source_owner_id: "123456789012"
    policy: nightly-web
    source_tags: "{{ shared.source_tags }}"
    kms_key_id: alias/backup-account-key
    wait: true

- name: Stop sharing once the copies completed
  blockwise.ebs.ebs_snapshot_share:
    policy: nightly-web
    account_ids: ["210987654321"]
    state: absent

- name: Only the audit account may use these snapshots, whoever else they were shared with
  blockwise.ebs.ebs_snapshot_share:
    filters:
      "tag:team": db
    account_ids: ["111122223333"]
    purge: true
"""

RETURN = r"""
changed:
  description: Whether any permission was (or, in check mode, would be) added or removed.
  returned: always
  type: bool
snapshots:
  description: One item per selected snapshot.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot.
      type: str
    volume_id:
      description: Its volume.
      type: str
    lineage:
      description: Its lineage (its C(blockwise:lineage) tag, else its real volume id, else its own id).
      type: str
    state:
      description: Its state.
      type: str
    encrypted:
      description: Whether it is encrypted.
      type: bool
    kms_key_id:
      description: Its KMS key.
      type: str
    start_time:
      description: Its start time (ISO 8601, UTC).
      type: str
    added:
      description: Accounts given permission by this run.
      type: list
      elements: str
    removed:
      description: Accounts (and C(group:all)) whose permission this run removed.
      type: list
      elements: str
    accounts:
      description: The accounts that may use it after the run (only the listed ones without O(purge)).
      type: list
      elements: str
    status:
      description: V(changed), V(unchanged), V(planned) (check mode) or V(failed) (then C(error) says why).
      type: str
source_tags:
  description:
    - Snapshot id -> its tags, for every selected snapshot. Another account cannot see them; pass this to
      O(blockwise.ebs.ebs_snapshot_copy#module:source_tags) so that its copies keep lineage and policy.
  returned: always
  type: dict
errors:
  description: Snapshots whose permission change failed, with the EC2 error (the task fails after every other change).
  returned: always
  type: list
  elements: dict
summary:
  description: Counts of the run.
  returned: always
  type: dict
  sample: {"snapshots": 12, "changed": 3, "unchanged": 9, "errors": 0, "accounts_added": 3, "accounts_removed": 0}
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils import sharing as core
from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_reads as reads


def read_state(ec2, options, snapshots):
    """What is shared already: ``(shared, permissions)`` (one of them, depending on ``purge``)."""
    if options.purge:
        permissions, errors = reads.read_permissions(ec2, [item["SnapshotId"] for item in snapshots], options.max_concurrency)
        if errors:
            snapshot_id, error = sorted(errors.items())[0]
            raise error if isinstance(error, aws.AWS_ERRORS) else core.ShareError(
                "could not read the permissions of {0}: {1}".format(snapshot_id, aws.exception_text(error)))
        return None, permissions
    ids = options.snapshot_ids or None
    return {account: reads.shared_ids(ec2, account, options.snapshot_filters, ids) for account in options.account_ids}, None


def read_and_plan(module, ec2, options):
    """Read the selection and its shares, check the managed key, plan: ``(snapshots, changes)``."""
    items = reads.read_snapshots(ec2, filters=options.snapshot_filters, snapshot_ids=options.snapshot_ids or None)
    snapshots = core.select(items, options)
    if core.needs_managed_key(snapshots, options):
        core.check_managed_key(snapshots, options, reads.aws_managed_key_arn(aws.client(module, "kms")))
    shared, permissions = read_state(ec2, options, snapshots)
    return snapshots, core.plan(snapshots, options, shared, permissions)


def apply(ec2, changes, workers):
    """Make each change's calls (bounded concurrency): snapshot id -> error text or None."""
    def modify(change):
        for kwargs in core.requests(change):
            ec2.modify_snapshot_attribute(aws_retry=True, **kwargs)

    return {change["snapshot_id"]: (None if error is None else aws.exception_text(error))
            for change, dummy, error in fleet.run_bounded(modify, changes, workers)}


def main():
    argument_spec = dict(
        account_ids=dict(type="list", elements="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        purge=dict(type="bool", default=False),
        policy=dict(type="str"),
        filters=dict(type="dict"),
        snapshot_ids=dict(type="list", elements="str"),
        max_concurrency=dict(type="int", default=4),
    )
    module = aws.build_module(argument_spec, required_one_of=[("policy", "filters", "snapshot_ids")])
    try:
        options = core.options_from_params(module.params)
    except core.ShareError as e:
        module.fail_json(msg=str(e))
    ec2 = aws.client(module, "ec2", workers=options.max_concurrency)
    try:
        snapshots, changes = read_and_plan(module, ec2, options)
    except core.ShareError as e:
        module.fail_json(msg=str(e))
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the snapshots, their permissions or the AWS managed key")

    todo = [change for change in changes if core.is_change(change)]
    outcomes = None if module.check_mode else apply(ec2, todo, options.max_concurrency)
    result = core.build_result(snapshots, changes, outcomes, check_mode=module.check_mode)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    if result["errors"]:
        details = "; ".join("{0}: {1}".format(item["snapshot_id"], item["error"]) for item in result["errors"][:10])
        module.fail_json(msg="{0} of {1} permission changes failed: {2}".format(len(result["errors"]), len(todo), details), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
