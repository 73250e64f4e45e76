# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk reads of a region's volumes, instances, snapshots and images.

Each reader makes one paginated pass with server-side filters (following NextToken; no
``MaxResults`` unless asked, so EC2 returns as much as it will per page) — never one describe call
per item. Explicit id lists are read in batches. The results are plain dicts with ``Tags`` turned
into a ``tags`` dict, ready for the pure cores.

``run_bounded`` is the matching write side: it applies one call to many items with a small, fixed
number of threads and returns every outcome (result or exception) instead of stopping at the first.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.module_utils.transformation import ansible_dict_to_boto3_filter_list

from ansible_collections.blockwise.ebs.plugins.module_utils.aws import paginate

ID_BATCH = 200
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


def _with_tags(items):
    for item in items:
        item["tags"] = boto3_tag_list_to_ansible_dict(item.get("Tags") or [])
    return items


def filter_problem(filters, option="filters"):
    """Why ``filters`` (a dict of EC2 describe filters) cannot be used, naming ``option``; None when it can.

    A filter with no value (``None``, ``[]`` or a list holding ``None``) is refused: EC2 answers some
    of them by ignoring the filter, which would widen the selection to every resource.
    """
    if filters is None:
        return None
    if not isinstance(filters, dict):
        return "{0} must be a dictionary of EC2 filters, got {1!r}".format(option, filters)
    for name, value in filters.items():
        if not isinstance(name, str) or not name.strip():
            return "{0}: a filter name must be a non-empty string, got {1!r}".format(option, name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or any(v is None or isinstance(v, (dict, list, tuple)) for v in values):
            return "{0}[{1!r}] must be a value or a non-empty list of values, got {2!r}".format(option, name, value)
    return None


def _filters(filters):
    return ansible_dict_to_boto3_filter_list(filters) if filters else []


def _batched(ids):
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), ID_BATCH):
        yield ids[start:start + ID_BATCH]


def _read(ec2, method, result_key, id_filter, filters, ids, **params):
    """One paginated pass, or one pass per batch of ids (as a filter, so unknown ids are no error)."""
    base = _filters(filters)
    if ids is None:
        return paginate(ec2, method, result_key, Filters=base, **params)
    items = []
    for batch in _batched(ids):
        items.extend(paginate(ec2, method, result_key, Filters=base + [{"Name": id_filter, "Values": batch}], **params))
    return items


def read_volumes(ec2, filters=None, volume_ids=None):
    """Volumes matching ``filters`` (a dict of DescribeVolumes filters) and/or ``volume_ids``."""
    return _with_tags(_read(ec2, "describe_volumes", "Volumes", "volume-id", filters, volume_ids))


def read_attached_volumes(ec2, instance_ids):
    """Volumes attached to any of ``instance_ids``, read in batches of instance ids (not one call per instance)."""
    if not instance_ids:
        return []
    return _with_tags(_read(ec2, "describe_volumes", "Volumes", "attachment.instance-id", None, instance_ids))


def read_instances(ec2, filters=None, instance_ids=None, states=LIVE_INSTANCE_STATES):
    """Instances (flattened from reservations) in ``states``, matching ``filters``/``instance_ids``."""
    merged = dict(filters or {})
    merged.setdefault("instance-state-name", list(states))
    reservations = _read(ec2, "describe_instances", "Reservations", "instance-id", merged, instance_ids)
    return _with_tags([instance for reservation in reservations for instance in reservation.get("Instances", [])])


def read_snapshots(ec2, filters=None, snapshot_ids=None, owner_ids=("self",)):
    """Snapshots owned by ``owner_ids`` matching ``filters`` and/or ``snapshot_ids``."""
    params = {"OwnerIds": list(owner_ids)} if owner_ids else {}
    return _with_tags(_read(ec2, "describe_snapshots", "Snapshots", "snapshot-id", filters, snapshot_ids, **params))


def read_images(ec2, filters=None, image_ids=None, owners=("self",), include_hidden=False):
    """Images of ``owners`` matching ``filters`` and/or ``image_ids``.

    ``include_hidden`` also lists disabled and deprecated images (they still hold their snapshots).
    """
    params = {"Owners": list(owners)} if owners else {}
    if include_hidden:
        params.update(IncludeDisabled=True, IncludeDeprecated=True)
    return _with_tags(_read(ec2, "describe_images", "Images", "image-id", filters, image_ids, **params))


def image_snapshot_ids(images):
    """Map snapshot id -> sorted ids of the images whose EBS block-device mappings use it (pure)."""
    used = {}
    for image in images:
        for mapping in image.get("BlockDeviceMappings") or []:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id:
                used.setdefault(snapshot_id, set()).add(image["ImageId"])
    return {snapshot_id: sorted(ids) for snapshot_id, ids in used.items()}


def name_of(resource):
    """The ``Name`` tag of a resource read by this module, or ''."""
    return (resource.get("tags") or {}).get("Name", "")


def run_bounded(call, items, workers):
    """Apply ``call`` to every item with at most ``workers`` threads.

    Returns ``[(item, result, error)]`` in the order of ``items``: ``error`` is the exception ``call``
    raised (then ``result`` is ``None``). Every item is attempted; nothing is cancelled on an error.
    """
    items = list(items)
    if not items:
        return []

    def attempt(item):
        try:
            return item, call(item), None
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return item, None, exc

    if workers <= 1 or len(items) == 1:
        return [attempt(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(int(workers), len(items))) as pool:
        return list(pool.map(attempt, items))
