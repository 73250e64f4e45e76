#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_snapshot_policy
short_description: Take the EBS snapshots that a schedule says are due, idempotently
version_added: 0.1.0
description:
  - Selects EBS volumes (by volume filters, by instance filters, by id), finds out which of them are due according to
    O(frequency), and snapshots exactly those. Run it as often as you like (cron, AWX schedule, CI); a second run right
    after the first creates nothing and reports C(changed=false).
  - Every snapshot it makes carries the tag C(blockwise:policy=<name>), which is how the next run finds the newest snapshot
    of each volume and how M(blockwise.ebs.ebs_snapshot_prune) finds what to prune.
  - "A volume is due when the policy has no completed or pending snapshot of it newer than the last scheduled point.
    A pending snapshot of the policy counts as in flight, however old: the volume is not due until it completes, so a
    large snapshot that takes longer than O(frequency) is never duplicated by the next runs."
  - "Not due is only ever answered from a snapshot read in the same run that exists and counts: state C(completed) or
    C(pending), and taken of that volume. Snapshots in state C(error), C(recoverable) (deleted, in the Recycle Bin) or
    C(recovering) do not count, nor do copies and snapshots with a C(blockwise:lineage) tag (their start time is when
    the copy began, not when the data was taken)."
  - "The region is read once per run: the selected volumes, their instances and this policy's snapshots, each in one
    paginated pass with server-side filters (never one call per volume). Snapshots are then created with bounded
    concurrency (O(max_concurrency)); throttling and server errors are retried with jittered backoff. A run that
    created snapshots reads the policy's snapshots of those volumes once more (in batches of 200 volumes), see below."
  - "Runs that overlap (two schedulers, a job started by hand while the scheduled one runs, AWX jobs with concurrent
    runs enabled) leave at most one snapshot per volume and due period. Each run that created snapshots waits a few
    seconds, reads the policy's snapshots of those volumes again and removes its own new snapshot when another run's
    older snapshot of the same due period exists; the oldest one stays. The run lists what it removed under
    RV(superseded) and reports only the snapshots it leaves under RV(created)."
  - "That check is a fast path: EC2 may list a new snapshot late and a run may be killed before its check. Every
    snapshot carries C(blockwise:run) (the run) and C(blockwise:due-after) (the due period it fills), and every run
    also removes the extra snapshots of one selected volume with the same C(blockwise:due-after) that earlier runs
    left, keeping the oldest (RV(superseded), reason V(leftover)). A retried request whose first answer was lost is
    found by C(blockwise:run): the run keeps its first snapshot, removes the retry's and reports the first as created."
  - In check mode nothing is created; RV(created) lists exactly what would be created (volume, name, description and
    tags) and RV(not_due) when each other volume is next due. With C(--diff), the newest snapshot of each volume
    before and after.
requirements:
  - croniter >= 2.0.0 (cron expressions in O(frequency))
  - pytimeparse >= 1.1.8 (durations such as V(12 hours))
  - tzdata (IANA time zones, where the system has no zone database)
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  name:
    description:
      - The policy name. Every snapshot the policy makes is tagged C(blockwise:policy=<name>).
      - Use one name per schedule; two policies with different names never see each other's snapshots.
    type: str
    required: true
  volume_filters:
    description:
      - 'EC2 C(DescribeVolumes) filters (ANDed), for example C({"tag:backup": "yes"}) or C({"tag-key": "Daily_Gens"}).'
      - Adds the matching volumes to the selection.
      - 'A filter without a value (C({"tag-key": []}), C(null)) is refused: EC2 would ignore it and select every volume.'
    type: dict
  instance_filters:
    description:
      - 'EC2 C(DescribeInstances) filters (ANDed), for example C({"tag:Environment": "prod"}).'
      - Adds every volume attached to a matching instance in state pending, running, stopping or stopped.
      - Required with O(crash_consistent=true).
      - A filter without a value is refused, as for O(volume_filters).
    type: dict
  volume_ids:
    description:
      - Volume ids to add to the selection. An id that does not exist fails the task before anything is created.
    type: list
    elements: str
  exclude:
    description:
      - Volume ids (C(vol-...)) and instance ids (C(i-...)) to leave out. Excluding an instance leaves out all its volumes.
    type: list
    elements: str
    default: []
  all_volumes:
    description:
      - The selection is the union of what O(volume_filters), O(instance_filters) and O(volume_ids) select. An empty
        selection is refused, so that a typo never snapshots a whole region.
      - Set V(true) (and none of those three options) to snapshot every volume of the region on purpose.
    type: bool
    default: false
  frequency:
    description:
      - How often each volume is snapshotted.
      - A duration (an interval) such as V(12 hours), V(1d), V(30m), V(2w) or V(1h30m); a volume is due when its newest
        policy snapshot is older than that. A unit is required; months and years are refused (their length varies), and
        so is anything longer than 36500 days.
      - Or a 5-field cron expression (C(minute hour day-of-month month day-of-week)) such as V(0 2 * * *), or a macro
        (V(@hourly), V(@daily), V(@weekly), V(@monthly), V(@yearly)), evaluated in O(timezone); a volume is due when it
        has no policy snapshot since the last time the expression fired.
      - Use an interval when the job runs at irregular times; use cron to pin snapshots to calendar times (nightly at 02:00
        local time, Sundays only, ...). See the collection's C(docs/scheduling.md).
    type: str
    required: true
  timezone:
    description:
      - IANA time zone name (for example V(Europe/Berlin)) in which a cron O(frequency) is evaluated.
    type: str
    default: UTC
  grace:
    description:
      - How early a run may start and still take the snapshot of the coming scheduled point, as a duration (V(10m)), or
        V(0) for none.
      - "Without it, a job scheduled every 12 hours with O(frequency=12 hours) that starts a few seconds earlier than last
        time would find the last snapshot 11:59:55 old, skip, and snapshot only every other run."
      - "Interval: a volume is due when its newest snapshot is at least O(frequency) minus O(grace) old. Cron: a run up
        to O(grace) before a fire time takes that fire time's snapshot."
      - Default 5 minutes, or a tenth of the time between two scheduled points when that is shorter (3 minutes for
        V(30m)). Keep it well below the time between two runs of the job. Must be shorter than an interval O(frequency),
        and at most 36500 days.
    type: str
  crash_consistent:
    description:
      - With V(true), the volumes of each instance matched by O(instance_filters) are snapshotted together, as one
        crash-consistent multi-volume set (EC2 C(CreateSnapshots)), when any of them is due. Volumes selected otherwise
        get one snapshot each.
      - The snapshots of a set share one description and one set of tags, so O(name_template) and
        O(description_template) may only use C(policy), C(instance_id), C(instance_name), C(date) and C(timestamp), and
        O(copy_tags) copies the instance's tags only.
    type: bool
    default: false
  exclude_boot_volume:
    description:
      - Leave out each instance's root volume (the volume attached as the instance's root device).
    type: bool
    default: false
  name_template:
    description:
      - Template of the C(Name) tag of each snapshot, in Python C(str.format) syntax. An empty string sets no C(Name) tag.
      - "Variables: C(policy), C(volume_id), C(volume_name) (the volume's C(Name) tag), C(instance_id), C(instance_name),
        C(device) (empty for unattached volumes), C(date) (UTC C(YYYY-MM-DD)) and C(timestamp) (UTC C(YYYYMMDDTHHMMSSZ)).
        Format specs work (C({volume_name:.20})); literal braces are written C({{) and C(}})."
      - An unknown variable fails the task before anything is created.
      - Default V({policy}-{volume_id}-{timestamp}), or V({policy}-{instance_id}-{timestamp}) with O(crash_consistent=true).
    type: str
  description_template:
    description:
      - Template of the snapshot description, with the variables of O(name_template). At most 255 characters once rendered.
      - "Default V(blockwise.ebs policy {policy}: {volume_id} {volume_name}), or
        V(blockwise.ebs policy {policy}: crash-consistent set of {instance_id} {instance_name}) with O(crash_consistent=true)."
    type: str
  copy_tags:
    description:
      - Copy the volume's tags to its snapshot and, for volumes selected through O(instance_filters), the instance's tags
        (the volume's win). Keys starting with C(aws:) or C(blockwise:) are never copied.
    type: bool
    default: false
  tags:
    description:
      - Extra tags for every snapshot. They win over copied tags; C(Name) and C(blockwise:policy) are set by the module and
        cannot be given here, nor can C(blockwise:lineage) and C(blockwise:source-snapshot) (they mark uploads and copies,
        whose snapshots never count for a volume, so the volume would be due at every run).
    type: dict
    default: {}
  wait:
    description:
      - Wait until every created snapshot is C(completed) (one C(DescribeSnapshots) pass per poll for all of them).
      - The task fails if a snapshot ends in state C(error) or O(wait_timeout) passes first.
      - "The task also fails if a created snapshot no longer exists (deleted by someone else while the task waited):
        EC2's answer is what counts, so such a snapshot gets the state C(missing) and is never reported as completed.
        A snapshot that is not listed is polled again a few times first (EC2 may list a new snapshot late)."
    type: bool
    default: false
  wait_timeout:
    description:
      - How many seconds to wait with O(wait=true).
    type: int
    default: 900
  max_concurrency:
    description:
      - How many snapshot requests are in flight at once (between 1 and 64).
    type: int
    default: 4
notes:
  - "IAM permissions: C(ec2:DescribeVolumes), C(ec2:DescribeInstances), C(ec2:DescribeSnapshots), C(ec2:CreateSnapshot),
    C(ec2:CreateSnapshots) (with O(crash_consistent)), C(ec2:CreateTags) on snapshots (tags are set in the create call)
    and C(ec2:DeleteSnapshot) on snapshots tagged C(blockwise:policy) (to remove this run's duplicate when a simultaneous
    run of the policy was first)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode and diff mode.
seealso:
  - module: blockwise.ebs.ebs_snapshot_prune
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Every volume tagged backup=yes, twice a day (run this task every 12 hours, or more often)
  blockwise.ebs.ebs_snapshot_policy:
    name: twice-daily
    volume_filters:
      "tag:backup": "yes"
    frequency: 12 hours
    name_template: "{volume_name} Snap"

- name: Nightly at 02:00 Berlin time, all volumes of the production web servers, one crash-consistent set per instance
  blockwise.ebs.ebs_snapshot_policy:
    name: nightly-web
    instance_filters:
      "tag:Environment": prod
      "tag:Role": web
    crash_consistent: true
    exclude_boot_volume: true
    frequency: "0 2 * * *"
    timezone: Europe/Berlin
    name_template: "{instance_name}_{date}_nightly"
    copy_tags: true
    tags:
      CostCenter: platform

- name: Volumes that carry a generations tag (prune them with retention_tag=Daily_Gens)
  blockwise.ebs.ebs_snapshot_policy:
    name: daily-gens
    volume_filters:
      "tag-key": Daily_Gens
    frequency: 1d
    name_template: "{instance_name}_{volume_id}_daily"

- name: What would be snapshotted now (audit; nothing is created)
  blockwise.ebs.ebs_snapshot_policy:
    name: twice-daily
    volume_filters:
      "tag:backup": "yes"
    frequency: 12 hours
  check_mode: true
  register: due

- name: Show the volumes that are due
  ansible.builtin.debug:
    msg: "{{ due.created | map(attribute='volume_id') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any snapshot was (or, in check mode, would be) created.
  returned: always
  type: bool
created:
  description:
    - One item per snapshot created (or, in check mode, to be created; C(snapshot_id) is then null), not counting the
      ones listed under RV(superseded).
  returned: always
  type: list
  elements: dict
  contains:
    volume_id:
      description: The volume.
      type: str
      sample: vol-0123456789abcdef0
    snapshot_id:
      description: The new snapshot (null in check mode).
      type: str
      sample: snap-0123456789abcdef0
    instance_id:
      description: The instance the volume is attached to, or null.
      type: str
      sample: i-0123456789abcdef0
    device:
      description: The volume's device name on that instance, or null.
      type: str
      sample: /dev/xvdf
    name:
      description: The C(Name) tag.
      type: str
      sample: twice-daily-vol-0123456789abcdef0-20240131T020000Z
    description:
      description: The snapshot description.
      type: str
    tags:
      description: Every tag of the snapshot.
      type: dict
      sample: {"Name": "web-1_vol-0123456789abcdef0_daily", "blockwise:policy": "daily"}
    state:
      description:
        - The snapshot state reported by EC2 (C(pending), or C(completed) with O(wait=true)); null in check mode.
        - V(missing) with O(wait=true) when the snapshot no longer exists (the task then fails).
      type: str
    start_time:
      description: The snapshot start time (ISO 8601, UTC); null in check mode.
      type: str
    kind:
      description: V(volume) for a single-volume snapshot, V(instance) for a member of a crash-consistent set.
      type: str
superseded:
  description:
    - Snapshots this run created and removed again because another run of the same policy, running at the same time,
      had already taken an older snapshot of the same volume in the same due period (which stays; RV(superseded[].reason)
      V(overlap)), or because a retried request made a second snapshot (V(retry)); and duplicates of one due period that
      earlier runs left, removed by this run (V(leftover); V(planned) in check mode). Empty unless runs overlapped.
  returned: always
  type: list
  elements: dict
  contains:
    volume_ids:
      description: The volumes (several for a crash-consistent set).
      type: list
      elements: str
    instance_id:
      description: The instance of a crash-consistent set, or null.
      type: str
    kind:
      description: V(volume) or V(instance).
      type: str
    snapshot_ids:
      description: The snapshots that were removed (this run's, or an earlier run's for V(leftover)).
      type: list
      elements: str
    kept_snapshot_id:
      description: The oldest snapshot of the same period, which stays.
      type: str
    kept_start_time:
      description: Its start time (ISO 8601, UTC).
      type: str
    status:
      description:
        - V(removed), V(planned) (check mode), or V(failed) when the removal failed (then RV(errors) says why and the task
          fails).
      type: str
    reason:
      description: V(overlap), V(retry) or V(leftover) (see above).
      type: str
not_due:
  description: The selected volumes that are not due, with their newest policy snapshot and when they are next due.
  returned: always
  type: list
  elements: dict
  contains:
    volume_id:
      description: The volume.
      type: str
    instance_id:
      description: The instance the volume is attached to, or null.
      type: str
    latest_snapshot_id:
      description: The newest completed or pending snapshot the policy took of the volume (read in this run).
      type: str
    latest_start_time:
      description: Its start time (ISO 8601, UTC).
      type: str
    latest_state:
      description: Its state (C(completed) or C(pending)).
      type: str
    in_flight:
      description:
        - True when the policy has a pending snapshot of the volume. The volume is not due until it completes, however
          long it takes.
      type: bool
    next_due:
      description:
        - The next scheduled point (ISO 8601, UTC); a run up to O(grace) earlier already takes the snapshot.
        - For a volume in flight whose schedule has passed, the time of this run (due as soon as the snapshot completes).
      type: str
matched:
  description: The ids of the selected volumes (after O(exclude) and O(exclude_boot_volume)).
  returned: always
  type: list
  elements: str
excluded:
  description: Volumes read for the selection but left out, with the reason (C(exclude), C(exclude:<instance id>), C(boot-volume)).
  returned: always
  type: list
  elements: dict
errors:
  description:
    - Create requests that failed (after retries), with the EC2 error, and duplicates of a simultaneous run that could
      not be removed or checked. The task then fails.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "volume", "volume_ids": ["vol-0123456789abcdef0"], "instance_id": null, "name": "x", "error": "InvalidVolume.NotFound: ..."}]
summary:
  description: Counts of the run.
  returned: always
  type: dict
  sample: {"matched": 12, "created": 3, "superseded": 0, "not_due": 9, "errors": 0, "requests": 3}
"""

import time
import uuid
from datetime import datetime, timezone

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils import policy as core
from ansible_collections.blockwise.ebs.plugins.module_utils import schedule

POLL_SECONDS = 15
# A created snapshot that a poll does not list is polled this many more times (MISSING_POLL_SECONDS apart) before it
# counts as gone: EC2 may list a new snapshot late, and a deleted one is never listed again.
MISSING_POLLS = 3
MISSING_POLL_SECONDS = 5


class InputError(Exception):
    """Bad input found while reading (e.g. unknown volume ids)."""


def read_region(ec2, options):
    """Read the selection once: volumes, the instances they belong to, and the policy's snapshots."""
    volumes = []
    if options.all_volumes:
        volumes.extend(fleet.read_volumes(ec2))
    if options.volume_filters:
        volumes.extend(fleet.read_volumes(ec2, filters=options.volume_filters))
    if options.volume_ids:
        found = fleet.read_volumes(ec2, volume_ids=options.volume_ids)
        missing = core.missing_ids(options.volume_ids, [v["VolumeId"] for v in found])
        if missing:
            raise InputError("volume_ids: no such volume in this region: %s" % ", ".join(missing))
        volumes.extend(found)
    instances, selected_ids = [], []
    if options.instance_filters:
        instances = fleet.read_instances(ec2, filters=options.instance_filters)
        selected_ids = [i["InstanceId"] for i in instances if i["InstanceId"] not in options.exclude]
        volumes.extend(fleet.read_attached_volumes(ec2, selected_ids))
    others = core.unknown_instance_ids(volumes, instances)
    if others:
        instances = instances + fleet.read_instances(ec2, instance_ids=others)
    snapshots = fleet.read_snapshots(ec2, filters=options.snapshot_filters) if volumes else []
    return volumes, instances, selected_ids, snapshots


def create(ec2, action):
    method, kwargs = core.create_request(action, boto3_tag_specifications)
    return getattr(ec2, method)(aws_retry=True, **kwargs)


def read_policy_snapshots_of(ec2, options, volume_ids):
    """This policy's snapshots of ``volume_ids``, read now (batches of ``fleet.ID_BATCH`` volumes)."""
    volume_ids = sorted(set(volume_ids))
    snapshots = []
    for start in range(0, len(volume_ids), fleet.ID_BATCH):
        filters = dict(options.snapshot_filters, **{"volume-id": volume_ids[start:start + fleet.ID_BATCH]})
        snapshots.extend(fleet.read_snapshots(ec2, filters=filters))
    return snapshots


NOT_FOUND_CODES = ("InvalidSnapshot.NotFound",)


def delete_snapshots(ec2, snapshot_ids):
    """Delete ``snapshot_ids``: the errors (``"id: message"``); one already gone (another run removed it) is no error."""
    errors = []
    for snapshot_id in snapshot_ids:
        try:
            ec2.delete_snapshot(SnapshotId=snapshot_id, aws_retry=True)
        except aws.AWS_ERRORS as e:
            if aws.error_code(e) not in NOT_FOUND_CODES:
                errors.append("{0}: {1}".format(snapshot_id, aws.error_message(e)))
    return errors


def keep_first_of_ours(ec2, action, response, fresh, run_id, policy_name):
    """A CreateSnapshot retried after a lost answer made two snapshots: keep this run's oldest, remove the others.

    Returns ``(response, superseded_items, failed_items)``; ``response`` describes the snapshot kept (a crash-consistent
    set is kept as answered: its members cannot be told apart from another attempt's, nothing is removed)."""
    if action["kind"] != core.VOLUME:
        return response, [], []
    ours = core.ours_by_run(action, fresh, run_id, policy_name)
    answered = [response] if response and response.get("SnapshotId") else []
    ours = sorted({snap["SnapshotId"]: snap for snap in ours + answered}.values(), key=core.snapshot_key) if ours else answered
    if len(ours) < 2:
        return (ours[0] if ours else response), [], []
    first, extra = ours[0], ours[1:]
    errors = delete_snapshots(ec2, [snap["SnapshotId"] for snap in extra])
    item = core.superseded_item(action, extra, first, "failed" if errors else "removed", "; ".join(errors) or None, reason="retry")
    failed = [core.failed_item(action, "could not remove the snapshot of a retried request (kept): " + "; ".join(errors))] if errors else []
    return first, [item], failed


def remove_duplicates(ec2, options, done, lost, run_id):
    """After creating: keep one snapshot per request of this run, and remove those that another run's older snapshot of
    the same period makes redundant. ``done``: ``[(action, response)]``; ``lost``: actions whose request failed (its
    answer may have been lost after EC2 made the snapshot). Returns ``(kept, superseded, failed, found)``: ``kept`` like
    ``done``, ``found`` the ``lost`` actions whose snapshot was found after all."""
    if not done and not lost:
        return [], [], [], []
    time.sleep(core.DUPLICATE_CHECK_SECONDS)
    fresh = read_policy_snapshots_of(ec2, options, [v for action in [a for a, dummy in done] + lost for v in action["volume_ids"]])
    found = [action for action in lost if action["kind"] == core.VOLUME and core.ours_by_run(action, fresh, run_id, options.name)]
    kept, superseded, failed = [], [], []
    for action, response in done + [(action, None) for action in found]:
        response, retried, problems = keep_first_of_ours(ec2, action, response, fresh, run_id, options.name)
        superseded.extend(retried)
        failed.extend(problems)
        ours = response.get("Snapshots") if action["kind"] == core.INSTANCE else [response]
        ours = [snap for snap in ours or [] if snap.get("SnapshotId")]
        rival = core.rival_of(action, ours, fresh, options.name, run_id)
        if rival is None:
            kept.append((action, response))
            continue
        errors = delete_snapshots(ec2, [snap["SnapshotId"] for snap in ours])
        if errors:
            kept.append((action, response))
            failed.append(core.failed_item(action, "could not remove this run's duplicate of {0} (kept): {1}".format(
                rival["SnapshotId"], "; ".join(errors))))
        superseded.append(core.superseded_item(action, ours, rival, "failed" if errors else "removed", "; ".join(errors) or None))
    return kept, superseded, failed, found


def remove_leftovers(module, ec2, options, snapshots, the_plan):
    """Duplicates of one period that earlier runs left (a run killed before its check, EC2 listing a snapshot late):
    removed (planned in check mode), the oldest staying. Returns ``(superseded_items, failed_items)``."""
    duplicates = core.period_duplicates(snapshots, options.name, volume_ids=set(the_plan.matched))
    if module.check_mode or not duplicates:
        return core.leftover_items(duplicates, "planned"), []
    items, failed = [], []
    for item in core.leftover_items(duplicates, "removed"):
        errors = delete_snapshots(ec2, item["snapshot_ids"])
        if errors:
            item.update(status="failed", error="; ".join(errors))
            failed.append({"kind": core.VOLUME, "volume_ids": item["volume_ids"], "instance_id": None, "name": "",
                           "error": "could not remove a duplicate of {0}: {1}".format(item["kept_snapshot_id"], item["error"])})
        items.append(item)
    return items, failed


def carry_out(module, ec2, options, the_plan, workers, run_id):
    """Create what the plan says, then remove what a simultaneous run (or a retried request) made redundant.

    Returns ``(created, superseded, failed)``; in check mode ``created`` lists what would be created.
    """
    if module.check_mode:
        return [item for action in the_plan.actions for item in core.created_items(action)], [], []
    done, failed, lost = [], [], []
    for action, response, error in fleet.run_bounded(lambda a: create(ec2, a), the_plan.actions, workers):
        if error is not None:
            failed.append(core.failed_item(action, aws.exception_text(error)))
            lost.append(action)
        else:
            done.append((action, response))
    try:
        kept, superseded, problems, found = remove_duplicates(ec2, options, done, lost, run_id)
    except aws.AWS_ERRORS as e:
        kept, superseded, found = done, [], []
        problems = [core.failed_item(action, "created, but could not check for a simultaneous run's snapshot: {0}".format(
            aws.error_message(e))) for action, dummy in done]
    failed = [item for item, action in zip(failed, lost) if action not in found]
    created = [item for action, response in kept for item in core.created_items(action, response)]
    return created, superseded, failed + problems


def wait_until_completed(ec2, snapshot_ids, timeout):
    """Poll the new snapshots (one batched pass per poll): ``(items, pending_ids, error_ids, missing_ids)``."""
    deadline = time.monotonic() + timeout
    misses = 0
    while True:
        items = fleet.read_snapshots(ec2, snapshot_ids=snapshot_ids)
        pending, errors = core.snapshot_states(items)
        missing = core.missing_ids(snapshot_ids, [item["SnapshotId"] for item in items])
        misses = misses + 1 if missing else 0
        remaining = deadline - time.monotonic()
        if (not pending and (not missing or misses > MISSING_POLLS)) or remaining <= 0:
            return items, pending, errors, missing
        time.sleep(min(MISSING_POLL_SECONDS if missing else POLL_SECONDS, remaining))


def wait_for(ec2, params, created):
    """With ``wait``: poll the created snapshots and update their state; the problem to fail with, or None."""
    ids = [item["snapshot_id"] for item in created if item["snapshot_id"]]
    try:
        items, pending, errors, missing = wait_until_completed(ec2, ids, params["wait_timeout"])
    except aws.AWS_ERRORS as e:
        return "Could not poll the new snapshots: {0}".format(aws.exception_text(e))
    states = {item["SnapshotId"]: item.get("State") for item in items}
    for item in created:
        # EC2's answer is what counts: a snapshot it no longer lists is missing, never completed.
        item["state"] = states.get(item["snapshot_id"], core.MISSING_STATE if item["snapshot_id"] in missing else item["state"])
    if missing:
        return "{0} new snapshot(s) no longer exist (deleted while the task waited): {1}".format(len(missing), ", ".join(missing))
    if errors:
        return "{0} new snapshot(s) ended in state error: {1}".format(len(errors), ", ".join(errors))
    if pending:
        return "wait_timeout={0}: {1} snapshot(s) still pending: {2}".format(params["wait_timeout"], len(pending), ", ".join(pending))
    return None


def argument_spec():
    """The module's options (validated further by ``policy.options_from_params``)."""
    return dict(
        name=dict(type="str", required=True),
        volume_filters=dict(type="dict"),
        instance_filters=dict(type="dict"),
        volume_ids=dict(type="list", elements="str"),
        exclude=dict(type="list", elements="str", default=[]),
        all_volumes=dict(type="bool", default=False),
        frequency=dict(type="str", required=True),
        timezone=dict(type="str", default="UTC"),
        grace=dict(type="str"),
        crash_consistent=dict(type="bool", default=False),
        exclude_boot_volume=dict(type="bool", default=False),
        name_template=dict(type="str"),
        description_template=dict(type="str"),
        copy_tags=dict(type="bool", default=False),
        tags=dict(type="dict", default={}),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=900),
        max_concurrency=dict(type="int", default=4),
    )


def main():
    module = aws.build_module(argument_spec(), required_if=[("crash_consistent", True, ("instance_filters",))])
    params = module.params
    try:
        options = core.options_from_params(params)
    except core.PolicyError as e:
        module.fail_json(msg=str(e))
    except schedule.MissingLibraryError as e:
        error = schedule.CRONITER_IMPORT_ERROR if e.library == "croniter" else schedule.PYTIMEPARSE_IMPORT_ERROR
        module.fail_json(msg=missing_required_lib(e.library), exception=error)

    workers = params["max_concurrency"]
    ec2 = aws.client(module, "ec2", workers=workers)
    now = datetime.now(timezone.utc)
    run_id = uuid.uuid4().hex
    try:
        volumes, instances, selected_ids, snapshots = read_region(ec2, options)
        plan = core.plan(options, volumes, instances, snapshots, now, selected_ids, run_id=run_id)
    except (InputError, core.PolicyError) as e:
        module.fail_json(msg=str(e))
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the volumes, instances and snapshots of policy {0}".format(options.name))
    leftovers, leftover_problems = remove_leftovers(module, ec2, options, snapshots, plan)
    created, superseded, failed = carry_out(module, ec2, options, plan, workers, run_id)
    superseded, failed = leftovers + superseded, leftover_problems + failed

    wait_problem = None
    if params["wait"] and created and not module.check_mode:
        wait_problem = wait_for(ec2, params, created)

    result = core.build_result(plan, created, superseded, failed)
    if module._diff:
        result["diff"] = core.build_diff(plan, created)
    if failed:
        details = "; ".join("{0}: {1}".format(item["instance_id"] if item["kind"] == core.INSTANCE else item["volume_ids"][0], item["error"])
                            for item in failed[:10])
        module.fail_json(msg="{0} of {1} snapshot requests failed: {2}".format(len(failed), len(plan.actions), details), **result)
    if wait_problem:
        module.fail_json(msg=wait_problem, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
