#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ebs_copy_status_info
short_description: Recovery point age (RPO) of a policy's disaster-recovery copies, and what still has to be shared
version_added: 0.1.0
description:
  - Decides, from snapshot lists read elsewhere (for example with M(amazon.aws.ec2_snapshot_info), each side with its own
    credentials), the status of the copies made by M(blockwise.ebs.ebs_snapshot_copy). It makes no AWS call itself, so
    the home account and each destination account can be read with their own credentials.
  - "Per lineage (source volume): the newest completed snapshot at home, and in each destination the completed copy with
    the newest recovery point - the start time of its I(source), since a copy restores its source's point in time. When
    the source is no longer at home, the copy's own start time is used and the age is marked C(approximate)."
  - "A destination is compliant when, for every lineage, its newest completed copy is at most the policy's frequency gap
    plus O(grace) old. A lineage with no completed copy yet is not late while its first home snapshot is younger than that."
  - Per destination, RV(destinations) also lists the completed home snapshots that have no copy there yet (C(to_share)),
    which is what a cross-account copy needs shared, and nothing more (with C(latest_only), only the newest of each lineage).
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  home_snapshots:
    description:
      - The policy's snapshots in the home region, as the owner reads them (RV(amazon.aws.ec2_snapshot_info#module:snapshots)
        or boto3 C(DescribeSnapshots) items), with their tags.
    type: list
    elements: dict
    required: true
  destinations:
    description:
      - The destinations, each with a C(name) (for example C(eu-central-1) or C(eu-central-1/210987654321)), the C(copies)
        read there (snapshots carrying C(blockwise:source-snapshot)), and C(latest_only) (the copy's setting).
    type: list
    elements: dict
    default: []
  frequency:
    description:
      - The policy's frequency (a duration such as V(1d) or a cron expression); the copy age limit is the gap between two
        scheduled points plus O(grace).
    type: str
    required: true
  timezone:
    description:
      - IANA time zone of a cron O(frequency).
    type: str
    default: UTC
  grace:
    description:
      - How much older than the frequency gap a copy may be before its destination is not compliant (the time a
        snapshot and its copy take).
    type: str
    default: 2h
notes:
  - Makes no AWS call; supports check mode.
seealso:
  - module: blockwise.ebs.ebs_snapshot_copy
  - module: amazon.aws.ec2_snapshot_info
"""

EXAMPLES = r"""
- name: Home snapshots of the policy (production account)
  amazon.aws.ec2_snapshot_info:
    region: eu-west-1
    owner_ids: [self]
    filters:
      "tag:blockwise:policy": nightly
  register: home

- name: Copies in the DR region (backup account)
  amazon.aws.ec2_snapshot_info:
    region: eu-central-1
    profile: backup-account
    owner_ids: [self]
    filters:
      "tag:blockwise:source-region": eu-west-1
      "tag:blockwise:policy": nightly
  register: dr

- name: RPO of the copies
  blockwise.ebs.ebs_copy_status_info:
    home_snapshots: "{{ home.snapshots }}"
    destinations:
      - name: eu-central-1/backup
        copies: "{{ dr.snapshots }}"
    frequency: "0 2 * * *"
    grace: 3h
  register: status
"""

RETURN = r"""
rpo:
  description: The recovery point of each lineage at home and in each destination.
  returned: always
  type: dict
  contains:
    limit_seconds:
      description: The largest age a copy may have (frequency gap plus grace), in seconds.
      type: int
    compliant:
      description: Whether every destination is compliant.
      type: bool
    volumes:
      description:
        - One item per lineage - C(lineage), C(home) (C(snapshot_id), C(start_time), C(age_seconds) of the newest completed
          home snapshot, or null), and C(destinations) (name -> C(snapshot_id), C(source_snapshot_id), C(recovery_point),
          C(age_seconds), C(approximate), C(compliant), C(reason)).
        - "C(reason): V(ok), V(copy-older-than-limit), V(no-completed-copy), V(first-copy-not-due), V(no-home-snapshot)."
      type: list
      elements: dict
destinations:
  description: Name -> C(compliant), C(late) (lineages), C(oldest_age_seconds) (the oldest newest-copy age) and C(to_share).
  returned: always
  type: dict
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.blockwise.ebs.plugins.module_utils import copy_status as core
from ansible_collections.blockwise.ebs.plugins.module_utils import schedule


def copy_limit(params, now):
    """The copy age limit in seconds; ``ValueError`` naming the option."""
    try:
        schedule.get_zone(params["timezone"])
    except ValueError as e:
        raise ValueError("timezone: {0}".format(e)) from e
    try:
        freq = schedule.parse_frequency(params["frequency"], params["timezone"])
    except ValueError as e:
        raise ValueError("frequency: {0}".format(e)) from e
    try:
        grace = schedule.parse_duration(params["grace"])
    except ValueError as e:
        raise ValueError("grace: {0}".format(e)) from e
    return int((schedule.schedule_gap(freq, now) + grace).total_seconds())


def check_destinations(destinations):
    names = [dest.get("name") for dest in destinations]
    if any(not isinstance(name, str) or not name for name in names) or len(set(names)) != len(names):
        raise ValueError("destinations: each needs a unique, non-empty name, got {0}".format(names))
    for dest in destinations:
        if not isinstance(dest.get("copies") or [], list):
            raise ValueError("destinations: copies of {0} must be a list".format(dest["name"]))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            home_snapshots=dict(type="list", elements="dict", required=True),
            destinations=dict(type="list", elements="dict", default=[]),
            frequency=dict(type="str", required=True),
            timezone=dict(type="str", default="UTC"),
            grace=dict(type="str", default="2h"),
        ),
        supports_check_mode=True,
    )
    now = datetime.now(timezone.utc)
    destinations = module.params["destinations"]
    try:
        check_destinations(destinations)
        limit = copy_limit(module.params, now)
    except (ValueError, RuntimeError) as e:
        module.fail_json(msg=str(e))
    home = module.params["home_snapshots"]
    rpo = core.assess(home, destinations, limit, now)
    for dest in destinations:
        copied = [core.tags_of(item).get(core.SOURCE_SNAPSHOT_TAG) for item in dest.get("copies") or []]
        rpo["destinations"][dest["name"]]["to_share"] = core.to_share(home, copied, module.boolean(dest.get("latest_only", False)))
    module.exit_json(changed=False, rpo=dict((k, v) for k, v in rpo.items() if k != "destinations"), destinations=rpo["destinations"])


if __name__ == "__main__":
    main()
