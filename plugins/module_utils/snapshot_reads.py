# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Batched reads of ``ebs_snapshot_copy`` and ``ebs_snapshot_share``: snapshots, copies, shares, keys.

Every read is one paginated pass with server-side filters and ``MaxResults`` 1000 (the largest page
DescribeSnapshots gives), never one call per snapshot; explicit id lists go in batches of 200 as a
``snapshot-id`` filter (unknown ids are then no error). The one exception is
``read_permissions``: EC2 has no batched form of DescribeSnapshotAttribute, so it costs one call per
snapshot, made with bounded concurrency. Items come back with ``Tags`` turned into a ``tags`` dict.
"""
from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import error_code, paginate

PAGE_SIZE = 1000
ID_BATCH = 200
SOURCE_SNAPSHOT_TAG = "blockwise:source-snapshot"
AWS_MANAGED_EBS_ALIAS = "alias/aws/ebs"
KEY_NOT_FOUND_CODES = ("NotFoundException", "InvalidArnException")


def _with_tags(items):
    for item in items:
        item["tags"] = boto3_tag_list_to_ansible_dict(item.get("Tags") or [])
    return items


def _pages(ec2, filters, **params):
    return paginate(ec2, "describe_snapshots", "Snapshots", MaxResults=PAGE_SIZE,
                    Filters=ansible_dict_to_boto3_filter_list(filters) if filters else [], **params)


def read_snapshots(ec2, owner="self", filters=None, snapshot_ids=None, restorable_by=None):
    """Snapshots of ``owner`` matching ``filters`` and, when given, ``snapshot_ids`` (one pass per 200 ids)."""
    params = {"OwnerIds": [owner]}
    if restorable_by:
        params["RestorableByUserIds"] = [restorable_by]
    if not snapshot_ids:
        return _with_tags(_pages(ec2, filters, **params))
    ids = list(dict.fromkeys(snapshot_ids))
    items = []
    for start in range(0, len(ids), ID_BATCH):
        batch = dict(filters or {}, **{"snapshot-id": ids[start:start + ID_BATCH]})
        items.extend(_pages(ec2, batch, **params))
    return _with_tags(items)


def read_copies(ec2, snapshot_ids=None):
    """Every copy the collection made in this region and account (tag key ``blockwise:source-snapshot``)."""
    return read_snapshots(ec2, filters={"tag-key": SOURCE_SNAPSHOT_TAG}, snapshot_ids=snapshot_ids)


def shared_ids(ec2, account_id, filters=None, snapshot_ids=None):
    """Ids of the account's own snapshots (matching ``filters``/``snapshot_ids``) that ``account_id`` may create volumes from."""
    return {item["SnapshotId"] for item in read_snapshots(ec2, filters=filters, snapshot_ids=snapshot_ids, restorable_by=account_id)}


def read_permissions(ec2, snapshot_ids, workers):
    """snapshot id -> ``{"user_ids": [...], "groups": [...]}`` (createVolumePermission), one call per snapshot.

    Returns ``(permissions, errors)``: ``errors`` maps a snapshot id to the exception its read raised.
    """
    def read(snapshot_id):
        answer = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission", aws_retry=True)
        entries = answer.get("CreateVolumePermissions") or []
        return {"user_ids": sorted({e["UserId"] for e in entries if e.get("UserId")}),
                "groups": sorted({e["Group"] for e in entries if e.get("Group")})}

    permissions, errors = {}, {}
    for snapshot_id, result, error in fleet.run_bounded(read, snapshot_ids, workers):
        if error is None:
            permissions[snapshot_id] = result
        else:
            errors[snapshot_id] = error
    return permissions, errors


def key_metadata(kms, key_id):
    """KMS DescribeKey metadata of ``key_id`` (id, alias or ARN), or None when the key does not exist."""
    try:
        return kms.describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in KEY_NOT_FOUND_CODES:
            return None
        raise


def aws_managed_key_arn(kms):
    """The ARN of the region's AWS managed EBS key (``alias/aws/ebs``), or None when it does not exist yet."""
    metadata = key_metadata(kms, AWS_MANAGED_EBS_ALIAS)
    return metadata["Arn"] if metadata else None
