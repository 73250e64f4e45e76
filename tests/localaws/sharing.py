# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshots across accounts: who sees which snapshot, and the ``createVolumePermission`` attribute.

Each account's snapshots live in moto's EC2 backend of that account and region (the account comes from
the access key: moto maps a 12-digit access key id to that account). A snapshot is *restorable by* an
account when the account owns it, when the owner shared it with the account (``UserId``), or when the
owner made it public (group ``all``), as the EC2 API reference describes DescribeSnapshots:

  "The snapshots available to you include public snapshots, private snapshots that you own, and private
  snapshots owned by other Amazon Web Services accounts for which you have explicit create volume
  permissions."

Tags belong to the account that wrote them: another account sees a shared snapshot without its owner's
tags (AMI user guide, "Share an AMI with specific AWS accounts": "User-defined tags that you attach to
a shared AMI are available only to your AWS account and not to the other accounts that the AMI is shared
with"; EC2 tags are per account, which is why Data Lifecycle Manager selects shared snapshots by their
description, never by tag).

ModifySnapshotAttribute follows its API reference: add or remove, never both in one call, at most 500
modifications; "Encrypted snapshots ... cannot be made public" (``UnsupportedOperation``, the code and
text EC2 gives when an image with encrypted snapshots is made public) and "Snapshots encrypted with your
default KMS key cannot be shared with other accounts" (``OperationNotPermitted``, "Encrypted snapshots
with EBS default key cannot be shared", the answer EC2 gives for a snapshot encrypted with the AWS
managed ``aws/ebs`` key). Only the owner reads, changes or resets the attribute, deletes or tags the
snapshot; another account that can see it gets ``UnauthorizedOperation``.
"""

import re

from moto.ec2.models import ec2_backends
from moto.ec2.utils import generic_filter
from moto.kms.models import kms_backends

from . import paging
from .ebs_direct import find_kms_key_arn
from .ec2_common import Ec2Error, filters, moto_answer, numbered, parse_nested, refuse_dry_run

PUBLIC = "all"
UNBLOCKED = "unblocked"
BLOCK_ALL_SHARING = "block-all-sharing"
_BLOCK_PUBLIC_ACCESS_ATTR = "_localaws_snapshot_block_public_access"  # on moto's backend: moto's reset wipes it
MAX_MODIFICATIONS = 500
AWS_MANAGED_EBS_ALIAS = "alias/aws/ebs"
_ACCOUNT_RE = re.compile(r"^\d{12}$")


def region_backends(region):
    """``[(account id, EC2 backend)]`` of every account that already has a backend in ``region``."""
    found = []
    for account_id, per_account in list(dict.items(ec2_backends)):
        backend = dict.get(per_account, region)
        if backend is not None:
            found.append((account_id, backend))
    return found


def find_snapshot(region, snapshot_id):
    """The snapshot with this id in any account of ``region``, or None."""
    for _account, backend in region_backends(region):
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is not None:
            return snapshot
    return None


def block_public_access_state(account_id, region):
    """The account's "block public access for snapshots" state in ``region`` (``unblocked`` until enabled)."""
    return getattr(ec2_backends[account_id][region], _BLOCK_PUBLIC_ACCESS_ATTR, UNBLOCKED)


def set_block_public_access_state(account_id, region, state):
    """Record the account's block public access state in ``region``; returns it."""
    setattr(ec2_backends[account_id][region], _BLOCK_PUBLIC_ACCESS_ATTR, state)
    return state


def publicly_shared(snapshot):
    """True when the group ``all`` makes the snapshot usable by every account.

    ``block-all-sharing`` in the owner's account and region hides it although the attribute still lists ``all``.
    """
    if PUBLIC not in snapshot.create_volume_permission_groups:
        return False
    return block_public_access_state(snapshot.owner_id, snapshot.ec2_backend.region_name) != BLOCK_ALL_SHARING


def restorable_by(snapshot, account_id):
    """True when ``account_id`` may use the snapshot: owner, explicit permission, or public."""
    return (snapshot.owner_id == account_id or account_id in snapshot.create_volume_permission_userids
            or publicly_shared(snapshot))


def visible_snapshot(account_id, region, snapshot_id):
    """The snapshot if ``account_id`` can use it; ``InvalidSnapshot.NotFound`` otherwise (as when it does not exist)."""
    snapshot = find_snapshot(region, snapshot_id)
    if snapshot is None or not restorable_by(snapshot, account_id):
        raise not_found(snapshot_id)
    return snapshot


def owned_snapshot(account_id, region, snapshot_id):
    """The snapshot if ``account_id`` owns it; ``UnauthorizedOperation`` when it only sees it."""
    snapshot = visible_snapshot(account_id, region, snapshot_id)
    if snapshot.owner_id != account_id:
        raise unauthorized(snapshot)
    return snapshot


def not_found(snapshot_id):
    """The error EC2 answers for a snapshot id that the caller cannot see."""
    return Ec2Error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")


def unauthorized(snapshot):
    """The error EC2 answers when an account acts as the owner of a snapshot it does not own."""
    return Ec2Error("UnauthorizedOperation",
                    f"You are not authorized to perform this operation on {snapshot.id}, owned by {snapshot.owner_id}.", 403)


class SharedView:
    """A snapshot as an account that does not own it sees it: no tags (they belong to the owner)."""

    def __init__(self, snapshot):
        self._snapshot = snapshot

    def __getattr__(self, name):
        return getattr(self._snapshot, name)

    @staticmethod
    def get_tags():
        """The viewer has no tags on another account's snapshot."""
        return []

    @property
    def tag_set(self):
        """Tags shown in DescribeSnapshots: none."""
        return []

    tag_list = tag_set

    def get_filter_value(self, filter_name, method_name=None):
        """Filter values of the snapshot, without its owner's tags."""
        if filter_name.startswith("tag:"):
            return None
        if filter_name in ("tag-key", "tag-value"):
            return []
        return self._snapshot.get_filter_value(filter_name, method_name)


def available_snapshots(account_id, region):
    """Every snapshot ``account_id`` can use in ``region``: its own, shared with it, and public ones."""
    available = []
    for owner_account, backend in region_backends(region):
        for snapshot in list(backend.snapshots.values()):
            if owner_account == account_id:
                available.append(snapshot)
            elif restorable_by(snapshot, account_id):
                available.append(SharedView(snapshot))
    return available


def _matches_restorable(snapshot, account_id, users):
    """The ``RestorableByUserIds`` rule of DescribeSnapshots for one snapshot."""
    owner = snapshot.owner_id == account_id
    for user in users:
        if user in ("self", account_id) and (owner or account_id in snapshot.create_volume_permission_userids):
            return True
        if user == PUBLIC and publicly_shared(snapshot):
            return True
        if owner and user in snapshot.create_volume_permission_userids:
            return True
    return False


def describe_snapshots(request, account_id):
    """DescribeSnapshots over every account of the region, as the API reference describes it.

    ``SnapshotIds``: an id that exists nowhere is ``InvalidSnapshot.NotFound``; one the caller cannot use
    is left out; ``MaxResults`` / ``NextToken`` page the answer (``paging.py``). ``OwnerIds`` (``self`` = the caller)
    and ``RestorableByUserIds`` (``self``, ``all`` or
    account ids the caller shared its snapshots with) narrow the list; ``Filters`` as moto applies them.
    """
    refuse_dry_run(request)
    form, region = request.form, request.region
    wanted = numbered(form, "SnapshotId")
    for snapshot_id in wanted:
        if find_snapshot(region, snapshot_id) is None:
            raise not_found(snapshot_id)
    snapshots = available_snapshots(account_id, region)
    if wanted:
        snapshots = [snapshot for snapshot in snapshots if snapshot.id in wanted]
    owners = {account_id if owner == "self" else owner for owner in numbered(form, "Owner")}
    if owners:
        snapshots = [snapshot for snapshot in snapshots if snapshot.owner_id in owners]
    users = numbered(form, "RestorableBy")
    if users:
        snapshots = [snapshot for snapshot in snapshots if _matches_restorable(snapshot, account_id, users)]
    snapshots = generic_filter(filters(form), snapshots)
    paged = paging.page_request("DescribeSnapshots", form)
    if paged is None:
        return moto_answer("DescribeSnapshots", {"Snapshots": snapshots})
    snapshots, token = paging.page(sorted(snapshots, key=lambda snapshot: snapshot.id), "DescribeSnapshots", paged)
    return moto_answer("DescribeSnapshots", dict({"Snapshots": snapshots}, **({"NextToken": token} if token else {})))


def _attribute(request, allowed=("createVolumePermission",)):
    attribute = request.form.get("Attribute")
    if attribute is not None and attribute not in allowed:
        raise Ec2Error("InvalidParameterValue", f"Value ({attribute}) for parameter attribute is invalid. Only createVolumePermission can be changed.")
    return attribute


def describe_snapshot_attribute(request, account_id):
    """``createVolumePermission`` (groups, then account ids in order) or ``productCodes`` (none) of an owned snapshot."""
    refuse_dry_run(request)
    attribute = request.form.get("Attribute")
    if attribute not in ("createVolumePermission", "productCodes"):
        raise Ec2Error("InvalidParameterValue", f"Value ({attribute}) for parameter attribute is invalid.")
    snapshot = owned_snapshot(account_id, request.region, request.form.get("SnapshotId"))
    if attribute == "productCodes":
        return moto_answer("DescribeSnapshotAttribute", {"SnapshotId": snapshot.id, "ProductCodes": []})
    permissions = [{"Group": group} for group in sorted(snapshot.create_volume_permission_groups)]
    permissions += [{"UserId": user} for user in sorted(snapshot.create_volume_permission_userids)]
    return moto_answer("DescribeSnapshotAttribute", {"SnapshotId": snapshot.id, "CreateVolumePermissions": permissions})


def _requested_changes(form):
    """``(operation, user ids, groups)`` from either parameter form of ModifySnapshotAttribute."""
    additions = parse_nested(form, "CreateVolumePermission.Add")
    removals = parse_nested(form, "CreateVolumePermission.Remove")
    users, groups = numbered(form, "UserId"), numbered(form, "UserGroup")
    if additions and removals:
        raise Ec2Error("InvalidParameterCombination", "You can add or remove create volume permissions in one request, not both.")
    if additions or removals:
        operation = "add" if additions else "remove"
        entries = additions or removals
        users += [entry["UserId"] for entry in entries if "UserId" in entry]
        groups += [entry["Group"] for entry in entries if "Group" in entry]
    elif users or groups:
        operation = form.get("OperationType")
        if operation not in ("add", "remove"):
            raise Ec2Error("MissingParameter", "The request must contain the parameter OperationType (add or remove).")
    else:
        raise Ec2Error("MissingParameter", "The request must contain the parameter createVolumePermission.")
    return operation, users, groups


def _check_changes(snapshot, operation, users, groups):
    """Refuse malformed or forbidden changes before any of them is made."""
    if len(users) + len(groups) > MAX_MODIFICATIONS:
        raise Ec2Error("InvalidParameterValue", f"At most {MAX_MODIFICATIONS} modifications can be made to a snapshot in one request.")
    for user in users:
        if not _ACCOUNT_RE.match(user):
            raise Ec2Error("InvalidUserID.Malformed", f"Invalid user id: '{user}'. An AWS account ID has 12 digits.")
    for group in groups:
        if group != PUBLIC:
            raise Ec2Error("InvalidParameterValue", f"Value ({group}) for parameter Group is invalid. The only group is 'all'.")
    state = block_public_access_state(snapshot.owner_id, snapshot.ec2_backend.region_name)
    if operation == "add" and groups and state != UNBLOCKED:
        # The API reference names no error code for this refusal: callers must not rely on it.
        raise Ec2Error("OperationNotPermitted", f"Public sharing of snapshots is blocked in this Region (block public access for snapshots: {state}).")
    if operation != "add" or not snapshot.encrypted:
        return
    if groups:
        raise Ec2Error("UnsupportedOperation", "Encrypted snapshots can't be shared publicly. Specify another snapshot.")
    if any(user != snapshot.owner_id for user in users) and encrypted_with_aws_managed_key(snapshot):
        raise Ec2Error("OperationNotPermitted", "Encrypted snapshots with EBS default key cannot be shared")


def modify_snapshot_attribute(request, account_id):
    """Add or remove account ids and the group ``all`` in ``createVolumePermission`` (all or nothing)."""
    refuse_dry_run(request)
    _attribute(request)
    snapshot = owned_snapshot(account_id, request.region, request.form.get("SnapshotId"))
    operation, users, groups = _requested_changes(request.form)
    _check_changes(snapshot, operation, users, groups)
    if operation == "add":
        snapshot.create_volume_permission_userids.update(users)
        snapshot.create_volume_permission_groups.update(groups)
    else:
        snapshot.create_volume_permission_userids.difference_update(users)
        snapshot.create_volume_permission_groups.difference_update(groups)
    return moto_answer("ModifySnapshotAttribute", {"Return": True})


def reset_snapshot_attribute(request, account_id):
    """Remove every account id and group from ``createVolumePermission``."""
    refuse_dry_run(request)
    if request.form.get("Attribute") != "createVolumePermission":
        raise Ec2Error("InvalidParameterValue", f"Value ({request.form.get('Attribute')}) for parameter attribute is invalid. "
                       "Only createVolumePermission can be reset.")
    snapshot = owned_snapshot(account_id, request.region, request.form.get("SnapshotId"))
    snapshot.create_volume_permission_userids.clear()
    snapshot.create_volume_permission_groups.clear()
    return moto_answer("ResetSnapshotAttribute", {"Return": True})


def aws_managed_ebs_key_arn(account_id, region):
    """The ARN of the account's AWS managed ``aws/ebs`` key in ``region`` (made on first use, as AWS does).

    The region's *default* EBS key may have been changed to a customer managed key; that one is not
    looked at (nor changed) here.
    """
    backend = ec2_backends[account_id][region]
    kms = kms_backends[account_id][region]
    if not kms.alias_exists(AWS_MANAGED_EBS_ALIAS):
        chosen_default = backend.default_kms_key_id
        backend._create_default_encryption_key()  # pylint: disable=protected-access
        backend.default_kms_key_id = chosen_default
    return kms.describe_key(AWS_MANAGED_EBS_ALIAS).arn


def encrypted_with_aws_managed_key(snapshot):
    """True for an encrypted snapshot whose key is its owner's AWS managed ``aws/ebs`` key."""
    if not snapshot.encrypted:
        return False
    if not snapshot.kms_key_id:
        return True
    region = snapshot.ec2_backend.region_name
    key_arn = find_kms_key_arn(snapshot.owner_id, region, snapshot.kms_key_id) or snapshot.kms_key_id
    return key_arn == aws_managed_ebs_key_arn(snapshot.owner_id, region)
