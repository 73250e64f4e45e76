# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Block public access for snapshots, and the snapshot archive tier, as the EC2 API reference describes them.

Block public access (EC2 API reference, EnableSnapshotBlockPublicAccess / DisableSnapshotBlockPublicAccess /
GetSnapshotBlockPublicAccessState; EBS user guide, "Block public access for snapshots"):

- one setting per account and Region: ``unblocked`` (the default), ``block-new-sharing`` or ``block-all-sharing``;
- ``EnableSnapshotBlockPublicAccess`` takes only the two blocking states ("unblocked is not a valid value for
  EnableSnapshotBlockPublicAccess"; EC2 answers ``InvalidRequest``); ``DisableSnapshotBlockPublicAccess`` answers
  ``unblocked``;
- while either blocking state is on, "users can no longer request public sharing for snapshots in that Region":
  ModifySnapshotAttribute adding the group ``all`` is refused. The reference names no error code for that
  refusal; the endpoint answers ``OperationNotPermitted`` (callers must not rely on the code) (``sharing.py``);
- ``block-all-sharing`` "does not change the permissions for snapshots that are already publicly shared. Instead,
  it prevents these snapshots from be publicly visible and publicly accessible. Therefore, the attributes for
  these snapshots still indicate that they are publicly shared": DescribeSnapshotAttribute still lists ``all``,
  and another account no longer sees the snapshot through the group ``all`` (``sharing.restorable_by``).

Archive tier (EC2 API reference, ModifySnapshotTier / RestoreSnapshotTier / DescribeSnapshotTierStatus; EBS user
guide, "Archive Amazon EBS snapshots"):

- ModifySnapshotTier takes only ``archive`` and only a ``completed`` snapshot the caller owns ("You can archive
  snapshots that are in the completed state only"); an archived snapshot (or one being archived or restored)
  cannot be archived again: ``IncorrectState``;
- archiving here completes at once (AWS takes hours); ``StorageTier`` becomes ``archive`` and
  ``ArchivalCompleteTime`` is the endpoint's time. Archived snapshots are billed for at least 90 days;
- an archived snapshot cannot be used to create a volume nor be read through the EBS direct APIs until it is
  restored ("You can't ... create volumes from archived snapshots ... you must first restore it");
  RestoreSnapshotTier of a snapshot that is not archived is ``IncorrectState``; a temporary restore makes it
  usable until ``RestoreExpiryTime``, a permanent one moves it back to ``standard``.
"""

from datetime import timedelta

from . import sharing
from .ec2_common import Ec2Error, flag, moto_answer, refuse_dry_run

BLOCKING_STATES = ("block-all-sharing", "block-new-sharing")
ARCHIVE = "archive"


def get_state(request, account_id):
    """GetSnapshotBlockPublicAccessState."""
    refuse_dry_run(request)
    return moto_answer(request.action, {"State": sharing.block_public_access_state(account_id, request.region)})


def enable(request, account_id):
    """EnableSnapshotBlockPublicAccess: one of the two blocking states."""
    refuse_dry_run(request)
    state = request.form.get("State")
    if state not in BLOCKING_STATES:
        raise Ec2Error("InvalidRequest", f"Value '{state}' for State is not valid. Valid values are 'block-all-sharing' and 'block-new-sharing'.")
    return moto_answer(request.action, {"State": sharing.set_block_public_access_state(account_id, request.region, state)})


def disable(request, account_id):
    """DisableSnapshotBlockPublicAccess."""
    refuse_dry_run(request)
    return moto_answer(request.action, {"State": sharing.set_block_public_access_state(account_id, request.region, sharing.UNBLOCKED)})


# -- archive tier ------------------------------------------------------------------------------------
def restored(snapshot, now):
    """True while an archived snapshot is temporarily restored."""
    expiry = getattr(snapshot, "restore_expiry_time", None)
    return expiry is not None and expiry > now


def usable(snapshot, now):
    """False for an archived snapshot that is not (temporarily) restored."""
    return getattr(snapshot, "storage_tier", "standard") != ARCHIVE or restored(snapshot, now)


def modify_tier(request, account_id, now):
    """ModifySnapshotTier: archive a completed, owned, standard snapshot."""
    refuse_dry_run(request)
    tier = request.form.get("StorageTier", ARCHIVE)
    if tier != ARCHIVE:
        raise Ec2Error("InvalidParameterValue", f"Value ({tier}) for parameter StorageTier is invalid. You must specify archive.")
    snapshot = sharing.owned_snapshot(account_id, request.region, request.form.get("SnapshotId"))
    if snapshot.status != "completed":
        raise Ec2Error("IncorrectState", f"The snapshot '{snapshot.id}' is {snapshot.status}; only completed snapshots can be archived.")
    if snapshot.storage_tier == ARCHIVE:
        raise Ec2Error("IncorrectState", f"The snapshot '{snapshot.id}' is already in the archive tier.")
    snapshot.storage_tier = ARCHIVE
    snapshot.last_tiering_start_time = now
    snapshot.last_tiering_progress = 100
    snapshot.last_tiering_operation_status = "archival-completed"
    snapshot.last_tiering_operation_status_detail = "Archival completed successfully"
    snapshot.archival_complete_time = now
    snapshot.restore_expiry_time = None
    return moto_answer(request.action, {"SnapshotId": snapshot.id, "TieringStartTime": now})


def restore_tier(request, account_id, now):
    """RestoreSnapshotTier: temporary (``TemporaryRestoreDays``) or permanent restore of an archived snapshot."""
    refuse_dry_run(request)
    snapshot = sharing.owned_snapshot(account_id, request.region, request.form.get("SnapshotId"))
    if snapshot.storage_tier != ARCHIVE:
        raise Ec2Error("IncorrectState", f"The snapshot '{snapshot.id}' is not in the archive tier.")
    permanent = bool(flag(request.form, "PermanentRestore"))
    days = request.form.get("TemporaryRestoreDays")
    if not permanent and not days:
        raise Ec2Error("MissingParameter", "Specify TemporaryRestoreDays or PermanentRestore.")
    snapshot.restore_start_time = now
    if permanent:
        snapshot.storage_tier = "standard"
        snapshot.restore_expiry_time = None
        snapshot.archival_complete_time = None
        snapshot.last_tiering_operation_status = "permanent-restore-completed"
    else:
        snapshot.restore_expiry_time = now + timedelta(days=int(days))
        snapshot.last_tiering_operation_status = "temporary-restore-completed"
    result = {"SnapshotId": snapshot.id, "RestoreStartTime": now, "IsPermanentRestore": permanent}
    if not permanent:
        result["RestoreDuration"] = int(days)
    return moto_answer(request.action, result)


def refuse_archived_volume_source(request, account_id, now):
    """CreateVolume from an archived snapshot that is not restored: ``IncorrectState``; otherwise None (moto answers)."""
    snapshot_id = request.form.get("SnapshotId")
    if not snapshot_id:
        return
    snapshot = sharing.find_snapshot(request.region, snapshot_id)
    if snapshot is not None and sharing.restorable_by(snapshot, account_id) and not usable(snapshot, now):
        raise Ec2Error("IncorrectState", f"The snapshot '{snapshot_id}' is in the archive tier; restore it before creating a volume.")
