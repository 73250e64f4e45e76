#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ami_snapshot_tag
short_description: Name and tag the EBS snapshots behind AMIs, and keep them in step with their images
version_added: 0.1.0
description:
  - "Gives every EBS snapshot of the selected AMIs a C(Name) tag (by default the image name followed by the snapshot's
    index in parentheses: V(front-web-2024(001\\)), V(front-web-2024(002\\)), ...), so that the snapshots can be told apart in
    the console, and a C(blockwise:image-id) tag holding the image id."
  - Optionally copies the image's own tags to its snapshots (O(copy_image_tags)) and adds fixed O(tags), and keeps them
    in step when the image's tags change later.
  - "The snapshot index counts the image's EBS mappings that have a snapshot, from 1, in block-device order: the root
    device first, then the other devices sorted by name, where C(/dev/xvdX) sorts as C(/dev/sdX) and numbers compare as
    numbers (C(/dev/sdb2) before C(/dev/sdb10)). Instance-store (ephemeral) mappings, C(NoDevice) mappings and EBS mappings
    without a snapshot are not counted. EC2 returns the mappings in no documented order; sorting keeps each index on the
    same device from one run to the next."
  - "A snapshot mapped by several images is named after one of them: the image recorded in its C(blockwise:image-id) tag
    as long as that image still maps it (even when it is not in this run's selection), otherwise the oldest image of the
    selection (by C(CreationDate), then image id). The other images' mappings are reported in RV(skipped_snapshots) with
    reason C(shared), and the named snapshot lists them in C(also_used_by). Runs over different selections therefore
    never rename a snapshot back and forth."
  - Disabled and deprecated images are selected too (they still hold their snapshots); deregistered ones are ignored.
  - Snapshots this account does not own (for example those of images shared by another account) cannot be tagged; they are
    reported in RV(skipped_snapshots) with reason C(not_owned).
  - A snapshot deleted between the read and the write (its image deregistered meanwhile) is reported in RV(skipped_snapshots) with
    reason C(vanished) and a warning; the other snapshots are still tagged.
  - Reads the images once (paginated) and their snapshots in batches, and batches C(ec2:CreateTags) (and C(ec2:DeleteTags))
    over every snapshot that needs the same tags. Snapshots already right are not written to, so a second run reports
    C(changed=false) and makes no write.
  - "Whether a snapshot is already right is decided from the snapshot's own tags as C(ec2:DescribeSnapshots) returns them, never
    from the image's tags. When the run wrote anything, it reads every snapshot of the run again afterwards (one more batched
    C(ec2:DescribeSnapshots)), so that what it reports is what AWS holds at the end: a snapshot deleted meanwhile, even one that
    needed no write, is reported C(vanished); a snapshot whose tags someone else changed meanwhile so that they contradict this
    run (a different C(Name), a wanted tag missing or different, a removed tag back) gets an C(error) and the task fails naming it,
    with the diff showing the tags read back. A rerun converges. A mismatch is read again after 1, 2 and 4 seconds before it is
    reported, as EC2 tags are eventually consistent."
  - "Keys starting with C(blockwise:) are the collection's own control tags (C(blockwise:protect) keeps a snapshot from being pruned,
    C(blockwise:policy) puts it in a prune scope, ...). This module writes only C(blockwise:image-id): image tags never set, change or
    remove a snapshot's C(blockwise:) tags, O(tags) cannot hold them, and O(purge_tags) never removes them."
  - Every template and tag is checked before any AWS call, and every rendered Name before any write.
author:
  - blockwise.ebs maintainers (@blockwise)
options:
  image_ids:
    description:
      - The images whose snapshots to name, by image id.
      - Ids that are not found (under O(owners)) are listed in RV(missing_image_ids) with a warning.
      - May be combined with O(filters); an image must then match both.
      - Blank ids are refused.
    type: list
    elements: str
  filters:
    description:
      - "C(ec2:DescribeImages) filters selecting the images, for example C(name: front-web-*) or C(tag:Team: web).
        See U(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html) for the filter names."
      - An empty dictionary is refused; use O(all_images=true) to select every image of O(owners).
      - A filter without a value (V(null), V([]) or a list holding V(null)) is refused before any call, since EC2 may ignore it and
        select every image.
    type: dict
  owners:
    description:
      - Owners of the images to select, as accepted by C(ec2:DescribeImages) (C(self), account ids, C(amazon), ...).
      - Snapshots owned by another account are skipped whatever the image's owner.
      - Must not be empty (DescribeImages without owners lists every public image too), nor hold a blank owner.
    type: list
    elements: str
    default: [self]
  all_images:
    description:
      - Select every image of O(owners). Required to mean "all images" when neither O(image_ids) nor O(filters) is given.
    type: bool
  name_template:
    description:
      - Template of the C(Name) tag, in Python C(str.format) syntax.
      - "Variables: C(image_name) (the image's name), C(image_id), C(index) (the snapshot's position, an integer),
        C(device) (for example C(/dev/sda1)), C(snapshot_id), C(volume_id) (the volume the snapshot was taken from),
        C(date) and C(timestamp) (the image's creation date, C(YYYY-MM-DD), and time, C(YYYYMMDDTHHMMSSZ), in UTC)."
      - C(index) takes integer format specs (C({index:03d}) gives C(001)); the others take string specs (C({image_name:.40})).
      - An unknown variable, or fixed text too long for a tag value, fails the task before any AWS call; a rendered Name
        over 256 characters fails it before any write, naming the snapshot and image.
    type: str
    default: "{image_name}({index:03d})"
  copy_image_tags:
    description:
      - "Copy the image's tags to its snapshots, except keys starting with C(aws:) (reserved by AWS), C(Name) (set from
        O(name_template)) and keys starting with C(blockwise:) (the collection's control tags, in any case: an image's
        C(blockwise:protect) or C(blockwise:policy) never reaches, changes or removes a snapshot's)."
      - A tag changed on the image is changed on its snapshots at the next run; a tag removed from the image is removed from
        its snapshots only with O(purge_tags=true).
    type: bool
    default: false
  tags:
    description:
      - Tags to set on every snapshot, on top of the copied image tags (these win over copied tags of the same key).
      - "C(Name) and C(blockwise:image-id) cannot be given here. Keys starting with C(aws:) are refused, and so are keys starting
        with C(blockwise:) (any case): they are the collection's control tags (for example C(blockwise:policy) would put the
        snapshots in a prune scope once their image is deregistered). Set C(blockwise:protect) by hand if you want it."
    type: dict
  purge_tags:
    description:
      - When V(true), remove from each snapshot the tags that are not wanted (the C(Name), C(blockwise:image-id), copied and
        O(tags) tags), except keys starting with C(aws:) and the collection's own control tags (keys starting with
        C(blockwise:), such as C(blockwise:protect)).
      - When V(false) (the default), no tag is ever removed, so tags set elsewhere are kept.
    type: bool
    default: false
notes:
  - "IAM permissions: C(ec2:DescribeImages), C(ec2:DescribeSnapshots), C(ec2:CreateTags) and, with O(purge_tags=true),
    C(ec2:DeleteTags)."
  - Part of the C(group/blockwise.ebs.aws) action group for C(module_defaults).
  - Supports check mode (no write is made) and diff mode (the tags of each changed snapshot before and after; after a real run,
    C(after) is the tags read back from EC2).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Name the snapshots of the front-web images front-web-2024(001), front-web-2024(002), ...
  blockwise.ebs.ami_snapshot_tag:
    filters:
      name: front-web-*

- name: Every image of this account, with the image's tags copied and a fixed tag added
  blockwise.ebs.ami_snapshot_tag:
    all_images: true
    copy_image_tags: true
    tags:
      backup-source: ami

- name: Device names in the Name, e.g. "golden-base /dev/xvda"
  blockwise.ebs.ami_snapshot_tag:
    image_ids: [ami-0123456789abcdef0]
    name_template: "{image_name} {device}"

- name: Keep snapshot tags exactly in step with the image tags (removals included)
  blockwise.ebs.ami_snapshot_tag:
    filters:
      tag:Team: web
    copy_image_tags: true
    purge_tags: true

- name: Report what would change, without changing anything
  blockwise.ebs.ami_snapshot_tag:
    all_images: true
  check_mode: true
  diff: true
  register: ami_names

- name: Show the snapshots that would be renamed
  ansible.builtin.debug:
    msg: "{{ ami_names.snapshots | selectattr('changed') | map(attribute='name') | list }}"
"""

RETURN = r"""
changed:
  description: Whether any snapshot's tags changed (or would change, in check mode).
  returned: always
  type: bool
snapshots:
  description: The snapshots the module names, one per snapshot, in image id then index order.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id.
      type: str
      sample: snap-0123456789abcdef0
    image_id:
      description: The image the snapshot is named after.
      type: str
      sample: ami-0123456789abcdef0
    device:
      description: The device name of the snapshot's mapping in that image.
      type: str
      sample: /dev/xvda
    index:
      description: The 1-based position of the mapping in block-device order.
      type: int
      sample: 1
    name:
      description: The snapshot's C(Name) tag (after the run).
      type: str
      sample: front-web-2024(001)
    changed:
      description: Whether this snapshot's tags changed (or would change).
      type: bool
    tags_added:
      description: Tags set (added, or given a new value), with their new values.
      type: dict
      sample: {"Name": "front-web-2024(001)", "blockwise:image-id": "ami-0123456789abcdef0"}
    tags_removed:
      description: Tags removed (with O(purge_tags=true)), with their old values.
      type: dict
      sample: {}
    also_used_by:
      description: Other selected images that map the same snapshot.
      type: list
      elements: str
      sample: []
    error:
      description:
        - The error that stopped the run before this snapshot's tags were all written, or how someone else changed its tags
          during the run (read back after the writes) so that they contradict this run.
      type: str
      returned: when a write failed, or the snapshot's tags were changed by another writer during the run
      sample: "tags changed by another writer during the run: Name is 'hand-made' (this run wants 'web(001)')"
skipped_snapshots:
  description: Mapped snapshots the module left alone.
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id.
      type: str
    image_id:
      description: The image whose mapping uses it.
      type: str
    device:
      description: The device name of the mapping.
      type: str
    index:
      description: The 1-based position of the mapping in block-device order.
      type: int
    reason:
      description:
        - C(not_owned) (not among this account's snapshots), C(shared) (named after another image that maps it) or
          C(vanished) (deleted after the first read, found missing by a write or by the read that confirms the writes).
      type: str
      sample: shared
    msg:
      description: A sentence explaining the reason.
      type: str
  sample:
    - snapshot_id: snap-0123456789abcdef0
      image_id: ami-0fedcba9876543210
      device: /dev/xvda
      index: 1
      reason: shared
      msg: snapshot snap-0123456789abcdef0 is also mapped by image ami-0123456789abcdef0 (/dev/xvda) and is named after it
images:
  description: Counts of the selected images.
  returned: always
  type: dict
  contains:
    total:
      description: Images selected.
      type: int
      sample: 12
    changed:
      description: Images with at least one snapshot changed (or that would change).
      type: int
      sample: 3
    unchanged:
      description: Images whose snapshots were already right (or skipped).
      type: int
      sample: 9
    without_snapshots:
      description: Images with no EBS mapping that has a snapshot (for example instance-store images).
      type: int
      sample: 0
missing_image_ids:
  description: Ids from O(image_ids) that were not found.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.blockwise.ebs.plugins.module_utils import ami_tags as core
from ansible_collections.blockwise.ebs.plugins.module_utils import aws
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import TemplateError


def main():
    argument_spec = dict(
        image_ids=dict(type="list", elements="str"),
        filters=dict(type="dict"),
        owners=dict(type="list", elements="str", default=["self"]),
        all_images=dict(type="bool"),
        name_template=dict(type="str", default=core.DEFAULT_NAME_TEMPLATE),
        copy_image_tags=dict(type="bool", default=False),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=False),
    )
    module = aws.build_module(
        argument_spec,
        mutually_exclusive=[("image_ids", "all_images"), ("filters", "all_images")],
        required_one_of=[("image_ids", "filters", "all_images")],
    )
    params = module.params
    try:
        core.check_selection(params["image_ids"], params["filters"], params["all_images"], params["owners"])
        options = core.check_options(params["name_template"], params["tags"], params["copy_image_tags"], params["purge_tags"])
    except TemplateError as e:
        module.fail_json(msg=str(e))

    ec2 = aws.client(module, "ec2")
    try:
        images, missing = core.read_images(ec2, params["image_ids"], params["filters"], params["owners"])
        snapshots = core.read_snapshots(ec2, core.referenced_snapshot_ids(images))
        others = core.read_other_images(ec2, core.owner_lookups(images, snapshots))
    except aws.AWS_ERRORS as e:
        module.fail_json_aws(e, msg="Could not read the images and their snapshots")

    try:
        plan = core.plan(images, snapshots, options, others)
    except (core.PlanError, TemplateError) as e:
        module.fail_json(msg=str(e))

    outcome = None
    if not module.check_mode:
        outcome = core.apply(ec2, core.write_calls(plan["items"]))
        if (outcome["written"] or outcome["vanished"]) and not outcome["error"]:
            try:
                outcome["confirmed"] = core.confirm(ec2, plan["items"])
            except aws.AWS_ERRORS as e:
                module.fail_json_aws(e, msg="Tags were written but could not be read back to confirm them",
                                     **core.result(plan, outcome, missing, with_diff=module._diff))
    output = core.result(plan, outcome, missing, with_diff=module._diff)
    report(module, plan, outcome, output)


def report(module, plan, outcome, output):
    """Warn about missing images and vanished snapshots; fail on write errors and conflicts; else exit."""
    if output["missing_image_ids"]:
        module.warn("Images not found: " + ", ".join(output["missing_image_ids"]))
    vanished = [entry["snapshot_id"] for entry in output["skipped_snapshots"] if entry["reason"] == core.VANISHED]
    if vanished:
        module.warn("Snapshots deleted while being tagged (their images were probably deregistered): " + ", ".join(vanished))
    if outcome and outcome["error"]:
        module.fail_json(msg="Tagging stopped with %d snapshot(s) not fully tagged (%s): %s"
                         % (len(outcome["unfinished"]), _some(outcome["unfinished"]), outcome["error"]), **output)
    drifted = core.conflicts(plan, outcome)
    if drifted:
        module.fail_json(msg="%d snapshot(s) changed by another writer during the run (%s): %s; rerun to converge"
                         % (len(drifted), _some(drifted), "; ".join("%s: %s" % item for item in sorted(drifted.items())[:10])),
                         **output)
    module.exit_json(**output)


def _some(ids):
    ids = sorted(ids)
    return ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")


if __name__ == "__main__":
    main()
