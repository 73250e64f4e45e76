#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_prune
short_description: Delete the EBS snapshots that a retention policy no longer keeps, with a reason for every decision
version_added: 0.1.0
description:
  - Reads the snapshots in scope (made by an M(blockwise.ebs.ebs_snapshot_policy) policy, or matched by EC2 filters to
    adopt snapshots made by older tools), groups them per disk, and decides for each one whether it is kept, deleted
    or protected, with the reasons (C(keep_daily), C(minimum), C(ami:ami-...), ...).
  - "Grouping: a snapshot with a C(blockwise:lineage) tag (written by M(blockwise.ebs.ebs_block_put) and by copies)
    belongs to the group C(lineage:<value>), never to a volume's group; any other snapshot belongs to its source
    volume. Snapshots made through the EBS direct APIs all carry the placeholder volume id C(vol-ffffffff), and a
    copy's volume id is arbitrary: such a snapshot without a lineage is held (protected as C(no-lineage)), never
    grouped with others and never deleted, because which disk it belongs to is unknown."
  - "Never deleted, whatever the rules: snapshots backing an AMI of the account (including disabled and deprecated
    ones), snapshots that are not C(completed) (pending, error), snapshots tagged C(blockwise:protect) or O(protect_tag), snapshots of
    another account, and snapshots outside the scope. These are checked before deleting, from the data read, not
    inferred from API errors."
  - "Copies in flight (M(blockwise.ebs.ebs_snapshot_copy)): with O(copy_regions), a snapshot whose copy is still
    C(pending) in one of those regions is protected as C(copy-pending:<region>); with O(copy_accounts), a snapshot
    still shared with one of those accounts is protected as C(copy-shared:<account>) (a cross-account copy may be in
    flight: unshare after the copy completed). Deleting the source of a pending copy makes the copy fail."
  - "Duplicates of one due period (two overlapping policy runs, a run killed before its own check; they carry the same
    C(blockwise:due-after) marker) are one generation: the oldest is counted, the others are protected as
    C(duplicate-of:<snapshot id>) and never counted, because the next run of the policy removes them."
  - "Overdue volumes: with O(frequency) (the policy's schedule), a volume whose newest snapshot of the policy (completed or
    pending, read from AWS) is due or overdue is never pruned by age - C(keep_within) counts back from its newest
    snapshot instead of now, so a prune-only job (C(steps: [prune])) never deletes the last good backups of a volume
    whose snapshots have stopped. RV(volumes) shows C(overdue_last_snapshot) for such a volume, and the task warns."
  - "Circuit breaker: when the plan would delete more than O(max_deletions) snapshots, the task fails without deleting
    anything and says how many and why; the planned deletions are listed under RV(blocked)."
  - "The region is read once: the snapshots in scope (server-side filtered), the account's images, and, with
    O(retention_tag), the snapshots' volumes, each in one paginated pass. Deletions run with bounded concurrency
    (O(max_concurrency)); throttling and server errors are retried with jittered backoff."
  - "Each deletion is reported: a snapshot that was already gone (C(InvalidSnapshot.NotFound)) is listed under
    RV(already_gone), not RV(deleted), and changes nothing (a run whose deletions were all already gone reports
    C(changed=false)); any other error (for example C(InvalidSnapshot.InUse) when an AMI was registered in the meantime)
    is listed under RV(errors) and, unless O(fail_on_deletion_error=false), fails the task after every other deletion
    was attempted."
  - In check mode nothing is deleted and the result is the whole plan (an audit); with C(--diff), each affected
    group's (volume's or lineage's) snapshot ids before and after. A second run deletes nothing.
requirements:
  - pytimeparse >= 1.1.8 (durations such as V(4 days))
  - tzdata (IANA time zones, where the system has no zone database)
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  policy:
    description:
      - Prune the snapshots tagged C(blockwise:policy=<policy>) (made by M(blockwise.ebs.ebs_snapshot_policy) with that
        O(blockwise.ebs.ebs_snapshot_policy#module:name)).
      - At least one of O(policy) and O(filters) is required; with both, a snapshot must match both.
    type: str
  filters:
    description:
      - 'EC2 C(DescribeSnapshots) filters (ANDed) that define the scope, for example C({"tag:Daily_Gens": "*"}) or
        C({"description": "Created by ebs_snapper*"}) to adopt snapshots made by another tool.'
      - Only the account's own snapshots are ever read (C(OwnerIds=self)); owner filters are refused.
      - 'A filter without a value (C({"tag-key": []}), C(null)) is refused: EC2 would ignore it and widen the scope.'
    type: dict
  max_deletions:
    description:
      - The circuit breaker, at least 1. When the plan would delete more snapshots than this, the task fails and deletes
        nothing.
      - The default suits a daily run over a fleet of a few dozen volumes; raise it for larger fleets or for the first
        run that adopts an existing backlog (audit that run in check mode first).
    type: int
    default: 50
  max_concurrency:
    description:
      - How many deletions are in flight at once (between 1 and 64; V(0) is refused).
    type: int
    default: 4
  copy_regions:
    description:
      - Regions that M(blockwise.ebs.ebs_snapshot_copy) copies this region's snapshots into. For each, one
        C(DescribeSnapshots) there (filters C(tag:blockwise:source-region=<this region>) and C(status=pending)) finds the
        copies still in flight; their sources are protected as C(copy-pending:<region>).
      - A region that cannot be read fails the task before any deletion.
    type: list
    elements: str
    default: []
  copy_accounts:
    description:
      - Accounts that copy this account's snapshots (12-digit ids). For each, one
        C(DescribeSnapshots(OwnerIds=[self], RestorableByUserIds=[account])) finds the snapshots still shared with it;
        they are protected as C(copy-shared:<account>).
    type: list
    elements: str
    default: []
  frequency:
    description:
      - The schedule of the policy whose snapshots are pruned (as O(blockwise.ebs.ebs_snapshot_policy#module:frequency)),
        to hold the volumes that are overdue (see above). Without it, the age rule counts from now for every volume.
      - Requires O(policy).
    type: str
  grace:
    description:
      - The grace of that schedule (as O(blockwise.ebs.ebs_snapshot_policy#module:grace)). Requires O(frequency).
    type: str
  frequency_timezone:
    description:
      - The time zone of a cron O(frequency) (as O(blockwise.ebs.ebs_snapshot_policy#module:timezone)).
    type: str
    default: UTC
  planned_snapshots:
    description:
      - Check mode only (ignored otherwise) - the volumes of which the same run takes a snapshot of O(policy) before this
        prune (the C(created) items of M(blockwise.ebs.ebs_snapshot_policy) in check mode). Each is counted as a completed
        snapshot started now (listed as V((new snapshot of vol-...))), so that an audit predicts what the real run
        deletes. A new snapshot still pending when the real prune runs is protected and not counted, so the real run
        then deletes less, never more.
    type: list
    elements: str
    default: []
  fail_on_deletion_error:
    description:
      - When V(true), the task fails if any deletion failed (after all other deletions were attempted); RV(errors) says
        which and why.
      - When V(false), failed deletions are reported in RV(errors) and as a warning, and the task succeeds; they are
        retried by the next run.
    type: bool
    default: true
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots), C(ec2:DescribeImages), C(ec2:DescribeVolumes) (with O(retention_tag)),
    and C(ec2:DeleteSnapshot); C(ec2:DescribeSnapshots) in each of O(copy_regions). The account id (to protect
    snapshots of other owners even if one slipped through the C(OwnerIds=self) read) comes from C(sts:GetCallerIdentity), which needs no permission."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
seealso:
  - module: blockwise.ebs.ebs_snapshot_policy
extends_documentation_fragment:
  - blockwise.ebs.retention
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Grandfather-father-son for the nightly policy
  blockwise.ebs.ebs_snapshot_prune:
    policy: nightly-web
    retention:
      keep_daily: 7
      keep_weekly: 5
      keep_monthly: 12
      keep_yearly: 2
      minimum: 3
      timezone: Europe/Berlin

- name: Keep 4 days, but never fewer than 5 snapshots per volume
  blockwise.ebs.ebs_snapshot_prune:
    policy: twice-daily
    retention:
      keep_within: 4 days
      minimum: 5

- name: Adopt snapshots of an older tool; each volume's Daily_Gens tag says how many to keep
  blockwise.ebs.ebs_snapshot_prune:
    filters:
      "description": "Created by ebs_snapper*"
    retention:
      keep_last: 7
    retention_tag: Daily_Gens
    max_deletions: 500

- name: Never delete a snapshot whose copy to eu-central-1 or to the backup account is still in flight
  blockwise.ebs.ebs_snapshot_prune:
    policy: nightly-web
    retention:
      keep_daily: 7
    copy_regions: [eu-central-1]
    copy_accounts: ["210987654321"]

- name: Audit - what would be deleted, and why everything else is kept
  blockwise.ebs.ebs_snapshot_prune:
    policy: nightly-web
    retention:
      keep_daily: 7
  check_mode: true
  diff: true
  register: audit

- name: Show the planned deletions
  ansible.builtin.debug:
    msg: "{{ audit.deleted | map(attribute='snapshot_id') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any snapshot was (or, in check mode, would be) deleted by this run. Snapshots that were already gone do
    not count.
  returned: always
  type: bool
deleted:
  description:
    - The snapshots deleted (in check mode, to be deleted), per volume, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot.
      type: str
      sample: snap-0123456789abcdef0
    volume_id:
      description: The volume it was taken from (V(vol-ffffffff) for snapshots made through the EBS direct APIs).
      type: str
      sample: vol-0123456789abcdef0
    group:
      description:
        - The retention group the rules counted it in - its volume id, or V(lineage:<value>) for a snapshot with a
          C(blockwise:lineage) tag. The items of RV(kept), RV(protected), RV(already_gone), RV(errors) and RV(blocked)
          have it too.
      type: str
      sample: lineage:db-image
    start_time:
      description: Its start time (ISO 8601, UTC).
      type: str
      sample: "2024-01-31T02:00:04+00:00"
    reasons:
      description: Why it is deleted.
      type: list
      elements: str
      sample: [no rule keeps it]
    status:
      description: V(deleted), or V(planned) in check mode.
      type: str
already_gone:
  description:
    - The snapshots the plan deleted but that were already gone when the request was made (C(InvalidSnapshot.NotFound)),
      with C(status=already-gone). This run did not delete them; they do not make the task changed.
  returned: always
  type: list
  elements: dict
kept:
  description: The snapshots kept by the rules, with every rule that keeps each (C(keep_last), C(keep_daily), C(keep_within), C(minimum), ...).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0", "start_time": "2024-01-31T02:00:04+00:00",
            "reasons": ["keep_daily", "keep_weekly", "minimum"]}]
protected:
  description:
    - The snapshots that are never deleted, with why (C(pending), C(ami:<image id>), C(protect-tag), C(owner:<account>),
      C(out-of-scope), C(retention-tag-invalid), C(no-lineage), C(copy-pending:<region>), C(copy-shared:<account>)).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0", "start_time": "2024-01-31T02:00:04+00:00",
            "reasons": ["ami:ami-0123456789abcdef0"]}]
errors:
  description: Deletions that failed, with the EC2 error (C(error)).
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0", "start_time": "2024-01-31T02:00:04+00:00",
            "reasons": ["no rule keeps it"], "status": "failed", "error": "InvalidSnapshot.InUse: The snapshot is currently in use by ami-1"}]
blocked:
  description: The deletions the circuit breaker stopped (none of them was deleted).
  returned: when the plan exceeds O(max_deletions)
  type: list
  elements: dict
volumes:
  description:
    - Per retention group (a volume id, or V(lineage:<value>)), how many snapshots are kept, deleted and protected;
      C(keep_last) when O(retention_tag) set it, C(held) with the message when the tag value was invalid,
      C(overdue_last_snapshot) (the newest snapshot's start time) when the volume is overdue (O(frequency)). Held
      snapshots without a lineage are counted under their placeholder volume id V(vol-ffffffff).
  returned: always
  type: dict
  sample: {"vol-0123456789abcdef0": {"keep": 7, "delete": 2, "protect": 1, "keep_last": 7}}
summary:
  description: Counts of the run.
  returned: always
  type: dict
  sample: {"snapshots": 40, "volumes": 4, "deleted": 8, "kept": 30, "protected": 2, "errors": 0, "already_gone": 0, "planned_deletions": 8}
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils import prune as core
from ansible_collections.blockwise.ebs.plugins.module_utils import retention
from ansible_collections.blockwise.ebs.plugins.module_utils import schedule
from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_reads

MAX_WARNINGS = 20


def caller_identity(module):
    """``(account_id, aws_date, warning)``: the caller's account and AWS's clock (the answer's HTTP Date), or
    ``(None, None, warning)`` when STS cannot tell."""
    try:
        answer = aws.client(module, "sts").get_caller_identity(aws_retry=True)
    except aws.AWS_ERRORS as e:
        return None, None, "could not read the account id (sts:GetCallerIdentity: {0}); relying on OwnerIds=self alone".format(
            aws.error_message(e))
    headers = (answer.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    return answer["Account"], headers.get("date"), None


def read_region(ec2, options):
    """One pass each: snapshots in scope, the account's images, and (for retention_tag) the snapshots' volumes."""
    snapshots = fleet.read_snapshots(ec2, filters=options.snapshot_filters)
    if not snapshots:
        return snapshots, [], {}
    images = fleet.read_images(ec2, include_hidden=True)
    volume_tags = {}
    if options.retention_tag:
        volumes = fleet.read_volumes(ec2, volume_ids=core.volume_ids_of(snapshots))
        volume_tags = {volume["VolumeId"]: volume["tags"] for volume in volumes}
    return snapshots, images, volume_tags


def read_copies_in_flight(module, ec2, options):
    """Protections of sources whose copy is not finished: one read per copy region and per copy account."""
    pending = {}
    for region in options.copy_regions:
        filters = {"tag:" + core.COPY_REGION_TAG: module.region, "status": "pending"}
        pending[region] = fleet.read_snapshots(aws.client(module, "ec2", region=region), filters=filters)
    shared = {account: snapshot_reads.shared_ids(ec2, account, options.snapshot_filters) for account in options.copy_accounts}
    return core.copy_protections(pending, shared, module.region)


def delete_all(ec2, decisions, workers):
    """Delete with bounded concurrency: snapshot_id -> (status, error)."""
    def delete(decision):
        ec2.delete_snapshot(SnapshotId=decision.snapshot_id, aws_retry=True)

    outcomes = {}
    for decision, dummy, error in fleet.run_bounded(delete, decisions, workers):
        if error is None:
            outcomes[decision.snapshot_id] = (core.DELETED, None)
        else:
            status = core.deletion_outcome(aws.error_code(error)) if isinstance(error, aws.AWS_ERRORS) else core.FAILED
            outcomes[decision.snapshot_id] = (status, aws.exception_text(error))
    return outcomes


def argument_spec():
    """The module's options (validated further by ``prune.options_from_params``)."""
    return dict(
        policy=dict(type="str"),
        filters=dict(type="dict"),
        retention=dict(
            type="dict",
            required=True,
            options=dict(
                keep_last=dict(type="int"),
                keep_hourly=dict(type="int"),
                keep_daily=dict(type="int"),
                keep_weekly=dict(type="int"),
                keep_monthly=dict(type="int"),
                keep_yearly=dict(type="int"),
                keep_within=dict(type="str"),
                minimum=dict(type="int", default=0),
                timezone=dict(type="str", default="UTC"),
            ),
        ),
        retention_tag=dict(type="str"),
        protect_tag=dict(type="str", default=retention.PROTECT_TAG),
        max_deletions=dict(type="int", default=core.DEFAULT_MAX_DELETIONS),
        max_concurrency=dict(type="int", default=4),
        fail_on_deletion_error=dict(type="bool", default=True),
        copy_regions=dict(type="list", elements="str", default=[]),
        copy_accounts=dict(type="list", elements="str", default=[]),
        frequency=dict(type="str"),
        grace=dict(type="str"),
        frequency_timezone=dict(type="str", default="UTC"),
        planned_snapshots=dict(type="list", elements="str", default=[]),
    )


def main():
    module = aws.build_module(argument_spec(), required_one_of=[("policy", "filters")], required_by={"frequency": "policy"})
    params = dict(module.params)
    if not module.check_mode:
        params["planned_snapshots"] = []  # a real run reads its new snapshots from AWS
    try:
        options = core.options_from_params(params, aws.known_regions())
    except (core.PruneError, retention.RetentionError) as e:
        module.fail_json(msg=str(e))
    except schedule.MissingLibraryError as e:
        error = schedule.CRONITER_IMPORT_ERROR if e.library == "croniter" else schedule.PYTIMEPARSE_IMPORT_ERROR
        module.fail_json(msg=missing_required_lib(e.library), exception=error)

    ec2 = aws.client(module, "ec2", workers=options.max_concurrency)
    account_id, aws_date, warning = caller_identity(module)
    now, clock_warning = core.reference_time(datetime.now(timezone.utc), aws_date)
    for message in (warning, clock_warning):
        if message:
            module.warn(message)
    try:
        snapshots, images, volume_tags = read_region(ec2, options)
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the snapshots in scope, the account's images or the volumes")
    try:
        in_flight = read_copies_in_flight(module, ec2, options) if snapshots else {}
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the copies in flight (copy_regions, copy_accounts); nothing was deleted")
    plan = core.plan(snapshots, images, volume_tags, options, now, account_id, extra_protections=in_flight)
    overdue = ["{0} (newest snapshot {1})".format(volume_id, start) for volume_id, start in sorted((plan.overdue or {}).items())]
    for message in list(plan.held.values())[:MAX_WARNINGS] + (
            ["{0} volume(s) overdue for a snapshot of policy {1}: keep_within counts back from their newest snapshot: {2}".format(
                len(overdue), options.policy, ", ".join(overdue[:MAX_WARNINGS]))] if overdue else []):
        module.warn(message)

    stop = core.circuit_breaker(plan, options.max_deletions)
    if stop:
        result = core.build_result(plan, blocked=True)
    elif module.check_mode:
        result = core.build_result(plan, check_mode=True)
    else:
        result = core.build_result(plan, delete_all(ec2, plan.deletions, options.max_concurrency))
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    if stop:
        module.fail_json(msg=stop, **result)
    failed = result["errors"]
    if failed:
        message = "{0} of {1} deletions failed: {2}".format(
            len(failed), len(plan.deletions), "; ".join("{0}: {1}".format(item["snapshot_id"], item["error"]) for item in failed[:10]))
        if options.fail_on_deletion_error:
            module.fail_json(msg=message, **result)
        module.warn(message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
