# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reads of one region that ``audit_controls.evaluate`` needs, batched to a fixed number of describe calls.

Pages are requested at the largest size EC2 allows (DescribeVolumes 500, DescribeSnapshots 1000), so a region
with 2,000 volumes and 30,000 snapshots costs 4 + 30 + 1 (public snapshots) + 1 (images) describe calls and two
Get calls. Account shares (``createVolumePermission`` user ids) have no batched read in EC2: they are read with one
DescribeSnapshotAttribute per owned snapshot only when asked (``read_shares``), with bounded concurrency.
"""
from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import paginate

VOLUME_PAGE = 500
SNAPSHOT_PAGE = 1000


def _tagged(items):
    for item in items:
        item["tags"] = boto3_tag_list_to_ansible_dict(item.get("Tags") or [])
    return items


def read_region(ec2, read_shares=False, workers=4):
    """Everything ``audit_controls.evaluate`` needs of the region of ``ec2`` (AWS errors propagate)."""
    volumes = _tagged(paginate(ec2, "describe_volumes", "Volumes", MaxResults=VOLUME_PAGE))
    snapshots = _tagged(paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], MaxResults=SNAPSHOT_PAGE))
    public = paginate(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"], RestorableByUserIds=["all"], MaxResults=SNAPSHOT_PAGE)
    images = paginate(ec2, "describe_images", "Images", Owners=["self"], IncludeDisabled=True, IncludeDeprecated=True)
    data = {
        "volumes": volumes,
        "snapshots": snapshots,
        "public_snapshot_ids": [snap["SnapshotId"] for snap in public],
        "image_snapshot_ids": set(fleet.image_snapshot_ids(images)),
        "block_public_access": ec2.get_snapshot_block_public_access_state(aws_retry=True)["State"],
        "encryption_by_default": ec2.get_ebs_encryption_by_default(aws_retry=True)["EbsEncryptionByDefault"],
        "shares": None,
    }
    if read_shares:
        data["shares"], data["permission_public_ids"] = read_account_shares(ec2, [snap["SnapshotId"] for snap in snapshots], workers)
    return data


def read_account_shares(ec2, snapshot_ids, workers):
    """``({snapshot id: [account ids]}, [ids whose permission lists the group all])``, one attribute read per snapshot.

    The group ``all`` stays in the permission while block public access (``block-all-sharing``) hides the snapshot
    from other accounts: such snapshots turn public again when the block is lifted.
    """
    def attribute(snapshot_id):
        answer = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", aws_retry=True)
        return answer.get("CreateVolumePermissions") or []

    shares, public = {}, []
    for snapshot_id, permissions, error in fleet.run_bounded(attribute, snapshot_ids, workers):
        if error is not None:
            raise error
        accounts = [p["UserId"] for p in permissions if "UserId" in p]
        if accounts:
            shares[snapshot_id] = accounts
        if any(p.get("Group") == "all" for p in permissions):
            public.append(snapshot_id)
    return shares, public
