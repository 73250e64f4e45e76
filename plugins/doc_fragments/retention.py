# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Retention rules, shared by the modules that decide which snapshots to keep.
    DOCUMENTATION = r"""
options:
  retention:
    description:
      - Which snapshots of each volume to keep. Rules are a union, restic-style; a snapshot kept by any rule is kept, and
        the result lists every rule that keeps it. At least one rule (a C(keep_*) option) is required.
      - The rules count only the snapshots that could be deleted (completed, in scope, unprotected); protected snapshots
        are kept and never use up a slot.
    type: dict
    required: true
    suboptions:
      keep_last:
        description:
          - Keep the N newest snapshots of each volume. At least 1.
        type: int
      keep_hourly:
        description:
          - For the N most recent hours that have snapshots, keep the newest snapshot of each hour. At least 1.
          - The hour that repeats when summer time ends counts as two hours (it is two real hours).
        type: int
      keep_daily:
        description:
          - For the N most recent days that have snapshots, keep the newest snapshot of each day (in O(retention.timezone)).
          - Days without a snapshot are skipped, not counted.
        type: int
      keep_weekly:
        description:
          - Same per ISO week (Monday to Sunday). At least 1.
        type: int
      keep_monthly:
        description:
          - Same per calendar month. At least 1.
        type: int
      keep_yearly:
        description:
          - Same per calendar year. At least 1.
        type: int
      keep_within:
        description:
          - Keep every snapshot younger than this duration, counted back from now (V(30 days), V(36h), V(2w)).
          - "Now is AWS's time when the clock of the node that runs the module is more than 5 minutes off it (the task
            then warns): a clock days ahead would otherwise make every snapshot look too old to keep."
          - Months and years are refused (their length varies); use days or weeks. At most 36500 days.
          - An empty value is refused (leave the option out to turn the rule off).
        type: str
      minimum:
        description:
          - A floor, not a rule - the N newest snapshots of each volume are always kept, whatever the rules say.
        type: int
        default: 0
      timezone:
        description:
          - IANA time zone name in which the hourly, daily, weekly, monthly and yearly buckets are placed.
          - "A snapshot at 23:30 UTC falls on the next day in V(Europe/Berlin): the zone decides which one is the newest
            of a day."
        type: str
        default: UTC
  retention_tag:
    description:
      - A volume tag (for example V(Daily_Gens)) whose integer value replaces O(retention.keep_last) for that volume's
        snapshots; the other rules still apply.
      - A value that is not an integer of at least 1 (V(seven), V(0)) holds the volume - none of its snapshots is deleted,
        and the task warns - because deleting on a misread intent cannot be undone.
      - Volumes without the tag, or that no longer exist, follow O(retention).
    type: str
  protect_tag:
    description:
      - Snapshots that carry this tag key (any value) are never deleted.
      - It adds to C(blockwise:protect), never replaces it - a snapshot tagged C(blockwise:protect) by hand is never deleted,
        whatever O(protect_tag) says (for example V(DoNotDelete), to adopt an older tool's protect tag).
    type: str
    default: blockwise:protect
"""
