#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_copy
short_description: Copy the EBS snapshots of a policy into this region (and account), idempotently, within the copy quota
version_added: 0.1.0
description:
  - Copies the snapshots selected by O(policy) (the C(blockwise:policy) tag), O(filters) and/or O(snapshot_ids) from
    O(source_region) into the module's region (the destination), for disaster recovery. With O(source_owner_id), the
    sources are snapshots another account shared with this one (see M(blockwise.ebs.ebs_snapshot_share)).
  - "Every copy carries C(blockwise:source-snapshot), C(blockwise:source-region) and C(blockwise:source-account). A
    source that already has a copy in the destination, in any state, is never copied again: a second run copies
    nothing and reports C(changed=false)."
  - "Every copy also carries C(blockwise:lineage): the source's C(blockwise:lineage) tag, else the source's volume id
    when it is a real volume, else the source snapshot id; and the source's C(blockwise:policy). So
    M(blockwise.ebs.ebs_snapshot_prune) in the destination applies its own retention to the copies, grouped per source
    volume (a copy's own volume id is arbitrary and never used)."
  - "A copy in state C(error) is deleted and the source copied again by the run that finds it (RV(copies[].replaced)
    names the deleted copy). A copy that this run made and saw end in C(error) (with O(wait=true)) is reported under
    RV(failed_copies), the task fails, and the next run retries it."
  - "At most O(max_in_flight) copies of the collection are C(pending) in the destination at once (AWS allows 20
    concurrent copies per destination region). Sources beyond that, and copies AWS refuses with
    C(ResourceLimitExceeded) or throttling, are reported under RV(queued): this is not a failure, the next run (or,
    with O(wait=true), this run as copies complete) continues. Newest sources are copied first."
  - "Reads are batched: one paginated C(DescribeSnapshots) of the sources (server-side filters, 1000 per page), one of
    the collection's copies in the destination (tag-key filter), and with O(kms_key_id) one C(kms:DescribeKey) in the
    destination. For 2,000 sources and 2,000 existing copies the plan reads 2 pages of each."
  - Bad input fails before any write, naming the option. In check mode nothing is written and the result is the plan.
    With C(--diff), per lineage (source volume), the source snapshots with a copy in the destination before and after.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  source_region:
    description:
      - The region the source snapshots are in.
      - It may be the destination region only with a key change (O(encrypted) or O(kms_key_id)), or with
        O(source_owner_id) (a copy of another account's snapshots into this account).
    type: str
    required: true
  source_owner_id:
    description:
      - The 12-digit account id that owns the source snapshots, for a cross-account copy. Default is this account.
      - "The owner must have shared the snapshots with this account (M(blockwise.ebs.ebs_snapshot_share)) and, for
        encrypted snapshots, allowed this account to use the key (see the collection's C(docs/disaster-recovery.md))."
      - Another account's tags are not visible to this one, so O(policy) then selects by O(source_tags).
    type: str
  policy:
    description:
      - Copy the snapshots tagged C(blockwise:policy=<policy>). At least one of O(policy), O(filters) and
        O(snapshot_ids) is required; with several, a snapshot must match all.
      - A policy that no source snapshot carries fails the task (a typo must not look like a successful backup).
    type: str
  filters:
    description:
      - 'EC2 C(DescribeSnapshots) filters (ANDed) of the sources in O(source_region), for example C({"tag:team": "db"}).'
      - Owner filters are refused (O(source_owner_id) says whose snapshots are read).
    type: dict
  snapshot_ids:
    description:
      - Source snapshot ids. An id that is not found (in O(source_region), for the owner) fails the task before any copy.
    type: list
    elements: str
  source_tags:
    description:
      - For O(source_owner_id) only in practice. Snapshot id -> the tags its owner sees (RV(blockwise.ebs.ebs_snapshot_share#module:source_tags)
        of M(blockwise.ebs.ebs_snapshot_share)).
      - Used for O(policy), lineage, C(blockwise:policy) and O(copy_tags), under the tags visible to this account.
    type: dict
  latest_only:
    description:
      - Copy only the newest completed snapshot of each lineage (source volume) among the selection. Default is every
        selected snapshot that has no copy yet.
    type: bool
    default: false
  kms_key_id:
    description:
      - KMS key (id, alias or ARN) of the destination region that encrypts the copies. It must exist there (checked with
        C(kms:DescribeKey) before any copy) and be an enabled symmetric key. Implies O(encrypted=true).
      - Without it, an encrypted source is copied with the destination's default EBS key.
    type: str
  encrypted:
    description:
      - Encrypt copies of unencrypted sources (with O(kms_key_id), or the destination's default EBS key). Copies of
        encrypted sources are always encrypted.
    type: bool
    default: false
  copy_tags:
    description:
      - Copy the source's tags to its copy (never C(aws:) keys nor the collection's C(blockwise:) keys; the copy's
        C(blockwise:) keys are set by the module).
    type: bool
    default: true
  tags:
    description:
      - Extra tags for every copy; they win over copied tags. C(blockwise:) keys are refused.
    type: dict
    default: {}
  description:
    description:
      - Template of the copy's description, in Python C(str.format) syntax, at most 255 characters once rendered.
      - "Variables: C(snapshot_id) (the source), C(volume_id) (the source's), C(lineage), C(policy), C(source_region),
        C(source_account), C(source_name) (the source's C(Name) tag), C(source_description), and C(date)/C(timestamp)
        (the source's start time, UTC)."
    type: str
    default: "blockwise.ebs copy of {snapshot_id} from {source_region}"
  wait:
    description:
      - Wait within O(wait_timeout) for the copies to complete, starting queued copies as slots free up. What is still
        queued at the end is reported under RV(queued); the task does not fail for it.
    type: bool
    default: false
  wait_timeout:
    description:
      - How many seconds to wait with O(wait=true).
    type: int
    default: 900
  max_in_flight:
    description:
      - The most copies of the collection C(pending) in the destination at once, counting those of earlier runs
        (1 to 100; AWS allows 20 concurrent copies per destination region unless your quota was raised).
    type: int
    default: 20
  completion_duration_minutes:
    description:
      - Request a time-based copy that completes within this many minutes (15 to 2880, in steps of 15; AWS charges for
        it). Default is a standard copy.
    type: int
notes:
  - "IAM permissions: C(ec2:DescribeSnapshots) (both regions), C(ec2:CopySnapshot), C(ec2:CreateTags) on snapshots
    (tags are set in the copy call), C(ec2:DeleteSnapshot) (failed copies only), C(kms:DescribeKey) (with
    O(kms_key_id)), and for encrypted sources the KMS permissions a copy needs on the source and destination keys
    (C(kms:CreateGrant), C(kms:Decrypt), C(kms:GenerateDataKeyWithoutPlaintext), C(kms:ReEncrypt*), C(kms:DescribeKey))."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
seealso:
  - module: blockwise.ebs.ebs_snapshot_share
  - module: blockwise.ebs.ebs_snapshot_prune
  - module: blockwise.ebs.ebs_snapshot_policy
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Copy the nightly snapshots from eu-west-1 into eu-central-1, encrypted with a key of eu-central-1
  blockwise.ebs.ebs_snapshot_copy:
    region: eu-central-1
    source_region: eu-west-1
    policy: nightly-web
    kms_key_id: alias/dr-backups

- name: Only the newest snapshot of each volume, and wait for the copies (at most 20 at a time)
  blockwise.ebs.ebs_snapshot_copy:
    region: us-west-2
    source_region: us-east-1
    policy: nightly-web
    latest_only: true
    wait: true
    wait_timeout: 3600

- name: Keep 12 monthly copies in the DR region
  blockwise.ebs.ebs_snapshot_prune:
    region: us-west-2
    policy: nightly-web
    retention:
      keep_monthly: 12

- name: Cross-account - share in the source account (its credentials)
  blockwise.ebs.ebs_snapshot_share:
    region: eu-west-1
    policy: nightly-web
    account_ids: ["210987654321"]
  register: shared

- name: Cross-account - copy with the backup account's credentials, then unshare
  blockwise.ebs.ebs_snapshot_copy:
    region: eu-west-1
    profile: backup-account
    source_region: eu-west-1
    source_owner_id: "123456789012"
    policy: nightly-web
    source_tags: "{{ shared.source_tags }}"
    kms_key_id: alias/backup-account-key
    wait: true
"""

RETURN = r"""
changed:
  description: Whether any copy was started (in check mode, would be started now).
  returned: always
  type: bool
copies:
  description: The copies started by this run (in check mode, to be started now; C(snapshot_id) is then null).
  returned: always
  type: list
  elements: dict
  contains:
    source_snapshot_id:
      description: The source snapshot.
      type: str
    source_region:
      description: Its region.
      type: str
    source_account:
      description: Its owner.
      type: str
    source_start_time:
      description: Its start time (ISO 8601, UTC).
      type: str
    lineage:
      description: The C(blockwise:lineage) of the copy (the source volume, or the source's own lineage).
      type: str
    snapshot_id:
      description: The copy (null in check mode).
      type: str
    state:
      description: The copy's state as the destination last reported it (C(pending), C(completed), C(error)), or null if not yet visible.
      type: str
    progress:
      description: The copy's progress as last reported (for example C(40%)).
      type: str
    encrypted:
      description: Whether the copy is encrypted (as reported, else as requested; null when encryption by default decides).
      type: bool
    kms_key_id:
      description: The copy's KMS key (as reported, else O(kms_key_id) resolved to an ARN).
      type: str
    description:
      description: The copy's description.
      type: str
    tags:
      description: The copy's tags.
      type: dict
    replaced:
      description: Failed copies (state C(error)) of the same source deleted before this copy was started.
      type: list
      elements: str
present:
  description: Sources that already had a copy in the destination before this run, with that copy's C(snapshot_id), C(state) and C(progress).
  returned: always
  type: list
  elements: dict
queued:
  description:
    - Sources left to copy by a later run (or later in this run with O(wait=true)), newest first, with the C(reason)
      (C(max_in_flight), the AWS error that refused the copy such as C(ResourceLimitExceeded), or why this run holds it).
  returned: always
  type: list
  elements: dict
  sample: [{"source_snapshot_id": "snap-0123456789abcdef0", "lineage": "vol-0123456789abcdef0", "source_start_time": "2024-01-31T02:00:04+00:00",
            "reason": "max_in_flight"}]
failed_copies:
  description: Copies made by this run that ended in state C(error) (the task fails; the next run deletes them and copies again).
  returned: always
  type: list
  elements: dict
duplicates:
  description: Sources with more than one live copy in the destination (for example after a request AWS answered with an error but carried out).
  returned: always
  type: list
  elements: dict
excluded:
  description:
    - Selected sources that are not copied, with the C(reason) (C(source-pending), C(source-error), C(latest_only),
      C(copy-in-destination) for a snapshot that is itself a copy made in this region).
  returned: always
  type: list
  elements: dict
errors:
  description: Copy or delete requests that failed (the task fails after every other copy was attempted).
  returned: always
  type: list
  elements: dict
summary:
  description: Counts of the run (C(in_flight) is the number of the collection's copies pending in the destination at the end).
  returned: always
  type: dict
  sample: {"sources": 60, "present": 0, "copies": 20, "queued": 40, "in_flight": 20, "failed_copies": 0, "errors": 0, "excluded": 0,
           "replaced": 0}
"""

import dataclasses
import time

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import copies as core
from ansible_collections.blockwise.ebs.plugins.module_utils import encryption
from ansible_collections.blockwise.ebs.plugins.module_utils import snapshot_reads as reads

MAX_WARNINGS = 20


def resolve_key(module, options):
    """``options`` with ``kms_key_id`` resolved to the key ARN of the destination region (``CopyError`` if unusable)."""
    if not options.kms_key_id:
        return options
    metadata = reads.key_metadata(aws.client(module, "kms"), options.kms_key_id)
    if metadata is None:
        raise core.CopyError("kms_key_id={0!r} was not found in the destination region {1}".format(options.kms_key_id, options.region))
    try:
        encryption.check_key_metadata(options.kms_key_id, options.region, metadata)
    except encryption.EncryptionInputError as e:
        raise core.CopyError(str(e)) from e
    return dataclasses.replace(options, kms_key_id=metadata["Arn"])


class CopyRun:
    """Carries out the plan round by round; every decision comes from ``core.plan`` over a fresh read."""

    def __init__(self, dest, options, sources):
        self.dest, self.options, self.sources = dest, options, sources
        self.started = {}          # source key -> copy id
        self.actions = []          # started actions, with their snapshot_id
        self.hold = {}             # source key -> why this run does not copy it again
        self.requeued = {}         # source id -> the AWS error that refused it for now
        self.errors = []
        self.writes = 0
        self.copies = []           # the destination's copies as last read
        self.read_error = None     # why the destination could not be read after copies started

    def read(self):
        """Read the destination's copies again; on an AWS error keep the last read and remember why."""
        try:
            self.copies = reads.read_copies(self.dest)
            return True
        except aws.AWS_ERRORS as e:
            self.read_error = "could not read the copies in the destination after starting copies: {0}".format(aws.exception_text(e))
            return False

    def plan(self, copies):
        return core.plan(self.sources, copies, self.options, self.started, self.hold)

    def _delete_failed(self, action, key):
        for copy_id in action["replaces"]:
            try:
                self.dest.delete_snapshot(SnapshotId=copy_id, aws_retry=True)
                self.writes += 1
            except aws.AWS_ERRORS as e:
                if aws.error_code(e) in core.NOT_FOUND_CODES:
                    continue
                self.errors.append({"source_snapshot_id": action["source_snapshot_id"], "snapshot_id": copy_id,
                                    "request": "DeleteSnapshot", "error": aws.exception_text(e)})
                self.hold[key] = "its failed copy {0} could not be deleted".format(copy_id)
                return False
        return True

    def start(self, action):
        """Start one copy; returns False when AWS says the queue is full (stop starting in this round)."""
        key = (action["source_snapshot_id"], action["source_region"], action["source_account"])
        if not self._delete_failed(action, key):
            return True
        try:
            answer = self.dest.copy_snapshot(**core.copy_request(action, self.options, boto3_tag_specifications))
        except aws.AWS_ERRORS as e:
            kind = core.classify_error(aws.error_code(e), aws.http_status(e))
            if kind == core.REQUEUE:
                self.requeued[action["source_snapshot_id"]] = aws.error_message(e)
                return False
            if kind == core.UNCERTAIN:
                self.hold[key] = "outcome unknown ({0}); the next run finds the copy by its tags or copies again".format(aws.exception_text(e))
            else:
                self.hold[key] = "copy request failed: {0}".format(aws.exception_text(e))
                self.errors.append({"source_snapshot_id": action["source_snapshot_id"], "request": "CopySnapshot",
                                    "error": aws.exception_text(e)})
            return True
        self.writes += 1
        self.started[key] = answer["SnapshotId"]
        self.actions.append(dict(action, snapshot_id=answer["SnapshotId"]))
        self.requeued.pop(action["source_snapshot_id"], None)
        return True

    def start_round(self, the_plan):
        """Start the round's copies in order until AWS says the queue is full; returns how many started."""
        before = len(self.actions)
        for action in the_plan.start:
            if not self.start(action):
                break
        return len(self.actions) - before

    def busy(self, the_plan):
        """True while something is left to copy or a copy this run made is still pending."""
        mine = set(self.started.values())
        pending_mine = [item for item in the_plan.present if item["snapshot_id"] in mine and item["state"] == core.PENDING]
        return bool(the_plan.to_copy or pending_mine)

    def run(self, first, copies):
        """Start what the first plan allows; with ``wait``, poll and continue until done or the timeout.

        Returns the plan of the last read (what the destination holds at the end). A read that fails
        after copies started ends the run with ``read_error`` set; the copies started are still reported.
        """
        deadline = time.monotonic() + self.options.wait_timeout
        the_plan, polls, fresh, self.copies = first, 0, True, copies
        while True:
            if self.start_round(the_plan):
                polls, fresh = 0, False
            remaining = deadline - time.monotonic()
            if not self.options.wait or remaining <= 0 or (fresh and not self.busy(the_plan)):
                break
            time.sleep(min(core.poll_delay(polls), remaining))
            polls += 1
            if not self.read():
                return self.plan(self.copies)
            the_plan, fresh = self.plan(self.copies), True
        if self.writes and not fresh:
            self.read()
        return self.plan(self.copies)


def read_and_plan(module, options):
    """Read the sources and the destination's copies once, select and plan: ``(sources, excluded, plan, dest client, copies)``."""
    dest = aws.client(module, "ec2")
    source_ec2 = aws.client(module, "ec2", region=options.source_region)
    items = reads.read_snapshots(source_ec2, owner=options.owner, filters=options.source_filters, snapshot_ids=options.snapshot_ids or None)
    copies = reads.read_copies(dest)
    sources, excluded = core.select_sources(items, options, {copy["SnapshotId"] for copy in copies})
    return sources, excluded, core.plan(sources, copies, options), dest, copies


def warnings_of(result, options, check_mode):
    """Warnings for what the user should know although the task did not fail."""
    messages = []
    if result["queued"]:
        messages.append("{0} source snapshot(s) queued (max_in_flight={1}, or refused by AWS for now): a later run copies them".format(
            len(result["queued"]), options.max_in_flight))
    for item in result["copies"]:
        for copy_id in item["replaced"]:
            messages.append("copy {0} of {1} was in state error: deleted and copied again".format(copy_id, item["source_snapshot_id"]))
    for item in result["duplicates"]:
        messages.append("{0} has several copies in the destination: {1}".format(item["source_snapshot_id"], ", ".join(item["copies"])))
    if options.wait and not check_mode:
        pending = [item["snapshot_id"] or item["source_snapshot_id"] for item in result["copies"] if item["state"] != core.COMPLETED]
        if pending:
            messages.append("wait_timeout={0}: {1} copies not completed yet: {2}".format(options.wait_timeout, len(pending), ", ".join(pending[:10])))
    return messages[:MAX_WARNINGS]


def main():
    argument_spec = dict(
        source_region=dict(type="str", required=True),
        source_owner_id=dict(type="str"),
        policy=dict(type="str"),
        filters=dict(type="dict"),
        snapshot_ids=dict(type="list", elements="str"),
        source_tags=dict(type="dict"),
        latest_only=dict(type="bool", default=False),
        kms_key_id=dict(type="str", no_log=False),
        encrypted=dict(type="bool", default=False),
        copy_tags=dict(type="bool", default=True),
        tags=dict(type="dict", default={}),
        description=dict(type="str", default=core.DEFAULT_DESCRIPTION),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=900),
        max_in_flight=dict(type="int", default=core.DEFAULT_MAX_IN_FLIGHT),
        completion_duration_minutes=dict(type="int"),
    )
    module = aws.build_module(argument_spec, required_one_of=[("policy", "filters", "snapshot_ids")])
    try:
        options = core.options_from_params(module.params, module.region, aws.known_regions())
        options = resolve_key(module, options)
        sources, excluded, first, dest, copies = read_and_plan(module, options)
    except core.CopyError as e:
        module.fail_json(msg=str(e))
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the source snapshots, the copies in the destination or the KMS key")

    runner = None
    if module.check_mode:
        result = core.build_result(first, first, [], excluded, check_mode=True)
    else:
        runner = CopyRun(dest, options, sources)
        final = runner.run(first, copies)
        result = core.build_result(first, final, runner.actions, excluded, runner.requeued, runner.errors)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    for message in warnings_of(result, options, module.check_mode):
        module.warn(message)
    problems = ["{0} {1}: {2}".format(item["request"], item["source_snapshot_id"], item["error"]) for item in result["errors"]]
    problems += ["copy {0} of {1} ended in state error".format(item["snapshot_id"], item["source_snapshot_id"]) for item in result["failed_copies"]]
    if runner is not None and runner.read_error:
        problems.append(runner.read_error)
    if problems:
        module.fail_json(msg="{0} copy problem(s): {1}".format(len(problems), "; ".join(problems[:10])), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
