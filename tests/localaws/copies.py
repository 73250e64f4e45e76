# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CopySnapshot across regions and accounts, as the EC2 API reference and the EBS user guide describe it.

The request goes to the destination region; the copy belongs to the caller's account there.

- Source: ``SourceSnapshotId`` in ``SourceRegion``, owned by the caller or shared with it (privately or
  publicly); otherwise ``InvalidSnapshot.NotFound``, as DescribeSnapshots leaves out a snapshot the caller
  cannot use. It must be ``completed`` ("After you create a snapshot, and it has reached the completed
  state, you can create a copy of it", user guide), else ``IncorrectState``.
- The copy: ``VolumeId`` ``vol-ffffffff`` ("Snapshots created by a snapshot copy operation have an
  arbitrary volume ID, such as vol-ffff or vol-ffffffff"), the source's ``VolumeSize``, the given
  ``Description``, only the tags of ``TagSpecifications`` ("User-defined tags are not copied from the
  source snapshot"); it starts ``pending`` at ``0%`` and completes after the copy duration on the
  endpoint's clock (``advance_clock`` moves it), its ``Progress`` rising in between. The duration is a
  setting of the endpoint (default 2 s) unless ``CompletionDurationMinutes`` asks for a time-based copy
  ("in 15 minute increments", 15 to 2880 minutes): then it takes that long, with ``TransferType``
  ``time-based``. The copy holds the blocks the source showed when the copy started (EBS direct reads).
- Encryption follows the user guide's "Encryption outcomes for snapshot copies": a copy of an encrypted
  source is encrypted; ``Encrypted=true`` or encryption by default in the destination encrypts a copy of an
  unencrypted source. Key: ``KmsKeyId`` if given (it needs ``Encrypted=true``: "If KmsKeyId is specified,
  the encrypted state must be true", else ``InvalidParameterDependency``); otherwise the destination's
  default EBS key, except for an encrypted source without encryption by default, which gets the AWS
  managed key ``aws/ebs``. "Amazon Web Services authenticates the KMS key asynchronously. Therefore, if
  you specify an ID, alias, or ARN that is not valid, the action can appear to complete, but eventually
  fails": a key that the caller's account does not have in the destination region leaves the copy
  ``pending`` and then ``error`` with ``StateMessage`` "Given key ID is not accessible" (the status the
  user guide names). A cross-account copy of an encrypted source fails the same way unless the source's
  key policy (or a grant) names the caller's account ("To copy an encrypted snapshot that is shared from
  another AWS account, you must have permissions to use customer managed key that was used to encrypt
  that snapshot").
- Quota: "There is a limit of 20 concurrent snapshot copy requests per destination. If you exceed this
  quota, you receive a ResourceLimitExceeded error"; the text is EC2's: "Too many snapshot copies in
  progress. The limit is 20 for this destination region." Pending copies of the caller's account in the
  destination region count; the limit is a setting of the endpoint.
- Deleting the source while a copy is pending succeeds, and the pending copy ends in ``error`` (see
  ``docs/localaws.md``: the user guide says only that data already transferred is charged).
"""

import json
import re
import threading
from datetime import timedelta

from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id
from moto.kms.exceptions import NotFoundException
from moto.kms.models import kms_backends

from .ebs_direct import DetachedVolume, default_kms_key_arn, find_kms_key_arn, visible_blocks
from .ec2_common import Ec2Error, aws_regions, flag, moto_answer, refuse_dry_run, tag_specifications
from .sharing import aws_managed_ebs_key_arn, find_snapshot, visible_snapshot

DEFAULT_COPY_SECONDS = 2.0
DEFAULT_CONCURRENT_COPIES = 20
MIN_DURATION_MINUTES, MAX_DURATION_MINUTES, DURATION_STEP_MINUTES = 15, 2880, 15
KEY_NOT_ACCESSIBLE = "Given key ID is not accessible"
SOURCE_DELETED = "The source snapshot was deleted before the copy completed."


class CopiedSnapshot(Snapshot):
    """A snapshot made by CopySnapshot: pending for ``duration`` seconds of the endpoint's clock."""

    def __init__(self, backend, *, source, plan, clock, duration):
        super().__init__(backend, random_snapshot_id(), DetachedVolume(source.volume_size), plan["description"],
                         encrypted=plan["encrypted"], kms_key_id=plan["kms_key_id"])
        self.source = source
        self.blocks = {index: entry[1] for index, entry in visible_blocks(source).items()}
        self.duration = duration
        self.failure = plan["failure"]
        self.transfer_type = "time-based" if plan["minutes"] else "standard"
        self.completion_duration_minutes = plan["minutes"]
        self._completion_time = None
        self._state_message = None
        self._clock = clock
        self.copy_started = clock()
        self._state = "pending"

    @property
    def status(self):
        """pending until the copy duration has passed, then completed (or error)."""
        if self._state == "pending" and self._clock() - self.copy_started >= self.duration:
            if self.failure:
                self.fail(self.failure)
            else:
                self._state = "completed"
                self._completion_time = self.start_time + timedelta(seconds=self.duration)
        return self._state

    @status.setter
    def status(self, value):
        self._state = value

    @property
    def completion_time(self):
        """When the copy completed (None before)."""
        return self._completion_time if self.status == "completed" else None

    @property
    def state_message(self):
        """Why a copy failed (None otherwise)."""
        return self._state_message if self.status == "error" else None

    @property
    def progress(self):
        """Rises with the time spent; 100% once completed, 0% for a failed copy."""
        status = self.status
        if status == "completed":
            return "100%"
        if status == "error":
            return "0%"
        elapsed = self._clock() - self.copy_started
        return f"{min(99, int(100 * elapsed / self.duration)) if self.duration else 0}%"

    def fail(self, message):
        """End the copy in ``error`` with ``message`` as its StateMessage."""
        self._state = "error"
        self._state_message = message


def copy_encryption(source_encrypted, encrypted_param, kms_key_param, by_default):
    """``(encrypted, key choice)`` of a copy; the choice is ``given``, ``managed``, ``default`` or None.

    The user guide's table "Encryption outcomes for snapshot copies", and "If KmsKeyId is specified,
    the encrypted state must be true" (CopySnapshot API reference).
    """
    if kms_key_param and encrypted_param is not True:
        raise Ec2Error("InvalidParameterDependency", "The parameter [KmsKeyId] requires the parameter Encrypted to be set.")
    encrypted = bool(source_encrypted or encrypted_param or by_default)
    if not encrypted:
        return False, None
    if kms_key_param:
        return True, "given"
    if source_encrypted and not by_default:
        return True, "managed"
    return True, "default"


def _names_account(principal, account_id):
    principals = principal if isinstance(principal, list) else [principal]
    return any(item == "*" or item == account_id or re.match(rf"^arn:aws[\w-]*:iam::{account_id}:", str(item)) for item in principals)


def key_usable_by(key, account_id):
    """True when a KMS key's policy (an Allow statement) or one of its grants names ``account_id``."""
    if key.account_id == account_id:
        return True
    try:
        statements = json.loads(key.policy or "{}").get("Statement", [])
    except ValueError:
        statements = []
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal")
        if statement.get("Effect") != "Allow" or principal is None:
            continue
        if principal == "*" or _names_account(principal.get("AWS", []) if isinstance(principal, dict) else principal, account_id):
            return True
    return any(_names_account(grant.grantee_principal, account_id) for grant in key.grants.values())


def source_key_usable(source, account_id, source_region):
    """True when ``account_id`` may use the key of an encrypted ``source`` (always for its owner)."""
    if not source.encrypted or source.owner_id == account_id:
        return True
    kms = kms_backends[source.owner_id][source_region]
    try:
        key = kms.describe_key(source.kms_key_id or "alias/aws/ebs")
    except (KeyError, NotFoundException):
        return False
    return key_usable_by(key, account_id)


def _duration_minutes(form):
    raw = form.get("CompletionDurationMinutes")
    if raw is None:
        return None
    minutes = int(raw)
    if not MIN_DURATION_MINUTES <= minutes <= MAX_DURATION_MINUTES or minutes % DURATION_STEP_MINUTES:
        raise Ec2Error("InvalidParameterValue", f"Value ({raw}) for parameter CompletionDurationMinutes is invalid. It must be "
                       f"between {MIN_DURATION_MINUTES} and {MAX_DURATION_MINUTES} minutes, in {DURATION_STEP_MINUTES} minute increments.")
    return minutes


class CopyModel:
    """The copies of the endpoint: settings (duration, concurrent limit), CopySnapshot, source deletion."""

    def __init__(self, clock):
        self._clock = clock
        self._lock = threading.Lock()
        self.duration_seconds = DEFAULT_COPY_SECONDS
        self.limit = DEFAULT_CONCURRENT_COPIES
        self._copies = {}  # (account, region) -> [CopiedSnapshot]

    def reset(self):
        """Back to the default settings; forget every copy (moto's reset wipes the snapshots)."""
        with self._lock:
            self.duration_seconds = DEFAULT_COPY_SECONDS
            self.limit = DEFAULT_CONCURRENT_COPIES
            self._copies = {}

    def settings(self):
        """``{"duration_seconds", "limit"}``."""
        return {"duration_seconds": self.duration_seconds, "limit": self.limit}

    def configure(self, duration_seconds=None, limit=None):
        """Set the duration of standard copies (seconds, >= 0) and/or the concurrent copy limit (>= 1)."""
        if duration_seconds is not None:
            if isinstance(duration_seconds, bool) or not isinstance(duration_seconds, (int, float)) or duration_seconds < 0:
                raise ValueError(f"duration_seconds must be a number of seconds >= 0, got {duration_seconds!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
        with self._lock:
            if duration_seconds is not None:
                self.duration_seconds = float(duration_seconds)
            if limit is not None:
                self.limit = limit
        return self.settings()

    def pending(self, account_id, region):
        """The caller's copies still pending in ``region`` (deleted or finished ones are forgotten)."""
        backend = ec2_backends[account_id][region]
        alive = [copy for copy in self._copies.get((account_id, region), [])
                 if backend.snapshots.get(copy.id) is copy and copy.status == "pending"]
        self._copies[(account_id, region)] = alive
        return alive

    def source_deleted(self, snapshot):
        """A source snapshot was deleted: its pending copies end in error."""
        with self._lock:
            for (account_id, region) in list(self._copies):
                for copy in self.pending(account_id, region):
                    if copy.source is snapshot:
                        copy.fail(SOURCE_DELETED)

    def fail_copy(self, region, snapshot_id, message):
        """Make a pending copy end in ``error`` now (for tests of failed copies); returns its status."""
        copy = find_snapshot(region, snapshot_id)
        if not isinstance(copy, CopiedSnapshot):
            raise KeyError(f"{snapshot_id} is not a snapshot copy in {region}")
        if copy.status != "pending":
            raise ValueError(f"{snapshot_id} is {copy.status}, not pending")
        copy.fail(message)
        return copy.status

    def copy_snapshot(self, request, account_id):
        """CopySnapshot sent to the destination region ``request.region`` by ``account_id``."""
        refuse_dry_run(request)
        form, region = request.form, request.region
        source_id = form.get("SourceSnapshotId")
        if not source_id:
            raise Ec2Error("MissingParameter", "The request must contain the parameter SourceSnapshotId")
        source_region = form.get("SourceRegion") or region
        if source_region not in aws_regions():
            raise Ec2Error("InvalidParameterValue", f"Value ({source_region}) for parameter SourceRegion is invalid. It is not a Region.")
        source = visible_snapshot(account_id, source_region, source_id)
        if source.status != "completed":
            raise Ec2Error("IncorrectState", f"Snapshot '{source_id}' is {source.status}; only completed snapshots can be copied.")
        plan = self._plan(form, account_id, region, source, source_region)
        tags = tag_specifications(form).get("snapshot", {})
        backend = ec2_backends[account_id][region]
        duration = plan["minutes"] * 60 if plan["minutes"] else self.duration_seconds
        with self._lock:
            if len(self.pending(account_id, region)) >= self.limit:
                raise Ec2Error("ResourceLimitExceeded",
                               f"Too many snapshot copies in progress. The limit is {self.limit} for this destination region.")
            copy = CopiedSnapshot(backend, source=source, plan=plan, clock=self._clock, duration=duration)
            backend.snapshots[copy.id] = copy
            self._copies.setdefault((account_id, region), []).append(copy)
        if tags:
            copy.add_tags(tags)
        return moto_answer("CopySnapshot", {"SnapshotId": copy.id, "Tags": copy.tag_set})

    @staticmethod
    def _plan(form, account_id, region, source, source_region):
        """Description, encryption, key and the failure (if any) the copy will end with."""
        backend = ec2_backends[account_id][region]
        kms_key_param = form.get("KmsKeyId")
        encrypted, choice = copy_encryption(source.encrypted, flag(form, "Encrypted"), kms_key_param, backend.ebs_encryption_by_default)
        key, failure = None, None
        if choice == "given":
            key = find_kms_key_arn(account_id, region, kms_key_param)
            if key is None:
                key, failure = kms_key_param, KEY_NOT_ACCESSIBLE
        elif choice == "managed":
            key = aws_managed_ebs_key_arn(account_id, region)
        elif choice == "default":
            key = default_kms_key_arn(backend)
        if not source_key_usable(source, account_id, source_region):
            failure = KEY_NOT_ACCESSIBLE
        return {"description": form.get("Description", ""), "encrypted": encrypted, "kms_key_id": key,
                "failure": failure, "minutes": _duration_minutes(form)}
