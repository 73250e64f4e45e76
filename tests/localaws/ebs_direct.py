# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The EBS direct APIs (service ``ebs``), as the AWS API reference describes them.

Snapshots started here are ``DirectSnapshot`` objects stored in moto's EC2 backend of the calling
account and region, so EC2 (DescribeSnapshots, DeleteSnapshot, tags, CreateVolume, ...) sees them with
their real state and no EC2 volume is created (``VolumeId`` is ``vol-ffffffff``, as in AWS). Snapshots
created by EC2 (CreateSnapshot) are readable too: they are completed and hold no block data.

Semantics chosen where AWS leaves room:
- a block is *changed* between two snapshots when the two see it from different writes (or only one
  sees it): a block rewritten in a child with identical bytes is still changed, as in AWS;
- two snapshots are related when their ``ParentSnapshotId`` chains share a root, or when both chains
  end in EC2 snapshots of the same volume; an EC2 copy of a direct snapshot holds the source's blocks
  (a ``blocks`` attribute set by the EC2 extras) and starts a lineage of its own;
- CompleteSnapshot is synchronous: the answer is ``completed`` or ``error``; completing a snapshot
  that is no longer pending answers its current status;
- a pending snapshot that sees no write for ``Timeout`` minutes (default 60) goes to ``error``; the
  control API can move this clock forward.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import threading
import time
from datetime import datetime, timezone
from typing import NamedTuple

from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id
from moto.kms.exceptions import NotFoundException
from moto.kms.models import kms_backends

from .block_faults import BlockFaults, corrupted, wrong_digest
from .wire import AwsError, Response, json_response

BLOCK_SIZE = 524288
BLOCKS_PER_GIB = 2048
MAX_VOLUME_SIZE_GIB = 65536
DETACHED_VOLUME_ID = "vol-ffffffff"
DEFAULT_TIMEOUT_MINUTES = 60
MIN_TIMEOUT_MINUTES, MAX_TIMEOUT_MINUTES = 10, 4320
MIN_RESULTS, MAX_RESULTS = 100, 10000
TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600
_SNAPSHOT_ID_RE = re.compile(r"^snap-[0-9a-f]+$")
_KMS_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:kms:.*:[0-9]{12}:key/.*$")


# StartSnapshot: "Tags ... Array Members: Maximum number of 50 items" (EBS direct API reference).
MAX_TAGS = 50


class EbsError(Exception):
    """An EBS direct API error, carried up to the request handler."""

    def __init__(self, status, code, message, reason=None):
        super().__init__(message)
        self.error = AwsError(status, code, message, reason)


def validation(message, reason="INVALID_PARAMETER_VALUE"):
    """A ``ValidationException`` (HTTP 400) with one of the model's reasons."""
    return EbsError(400, "ValidationException", message, reason)


def not_found(snapshot_id):
    """A ``ResourceNotFoundException`` (HTTP 404) for a snapshot."""
    return EbsError(404, "ResourceNotFoundException", f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND")


class Block(NamedTuple):
    """One written block: its bytes and their SHA256 digest (32 raw bytes)."""

    data: bytes
    digest: bytes


class DetachedVolume:
    """The volume a direct snapshot reports: none exists, AWS shows ``vol-ffffffff``."""

    id = DETACHED_VOLUME_ID

    def __init__(self, size):
        self.size = size


class DirectSnapshot(Snapshot):
    """An EC2 snapshot written through the EBS direct APIs."""

    def __init__(self, ec2_backend, *, volume_size, parent, options, clock):
        super().__init__(
            ec2_backend, random_snapshot_id(), DetachedVolume(volume_size), options["description"],
            encrypted=options["encrypted"], kms_key_id=options["kms_key_arn"],
        )
        self.parent = parent
        self.client_token = options["client_token"]
        self.fingerprint = options["fingerprint"]
        self.timeout_seconds = options["timeout"] * 60
        self.start_tags = options["tags"]
        self.blocks = {}
        self.lock = threading.Lock()
        self.reported_progress = None
        self.error_reason = None
        self._clock = clock
        self.last_activity = clock()
        self._state = "pending"

    @property
    def status(self):
        """pending, completed or error; a pending snapshot past its timeout turns to error."""
        if self._state == "pending" and self._clock() - self.last_activity > self.timeout_seconds:
            self._state, self.error_reason = "error", "timeout"
        return self._state

    @status.setter
    def status(self, value):
        self._state = value

    @property
    def progress(self):
        """The EC2 Progress field: 100% once completed, else the last progress a writer reported."""
        if self.status == "completed":
            return "100%"
        return f"{self.reported_progress or 0}%"


def _lineage(snapshot):
    chain = []
    while snapshot is not None:
        chain.append(snapshot)
        snapshot = getattr(snapshot, "parent", None)
    return chain


def _family(snapshot):
    root = _lineage(snapshot)[-1]
    if not isinstance(root, DirectSnapshot) and root.volume_id != DETACHED_VOLUME_ID:
        return ("volume", root.volume_id)
    return ("snapshot", root.id)


def visible_blocks(snapshot):
    """``{index: (owner, Block)}``: the snapshot's own blocks overlaid on its ancestors' blocks."""
    view = {}
    for member in reversed(_lineage(snapshot)):
        for index, block in dict(getattr(member, "blocks", {})).items():
            view[index] = (member, block)
    return view


def _epoch(moment):
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _int_param(value, name):
    """A non-negative integer parameter (header, label or query value)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise validation(f"{name} must be an integer.") from None
    if number < 0:
        raise validation(f"{name} must not be negative.")
    return number


class EbsDirect:
    """Handlers of the six EBS direct operations, plus the clock used for snapshot timeouts."""

    def __init__(self, account_for):
        self._account_for = account_for
        self._lock = threading.Lock()
        self._secret = os.urandom(32)
        self._clock_offset = 0.0
        self.block_faults = BlockFaults()
        # (account, region, client token) -> (request fingerprint, original answer). AWS returns the
        # result of the original request for a repeated token, even after that snapshot was deleted.
        self._tokens = {}

    # -- clock -------------------------------------------------------------------------------
    def now(self):
        """Seconds since the epoch, moved forward by ``advance_clock``."""
        return time.time() + self._clock_offset

    def advance_clock(self, seconds):
        """Move the timeout clock forward (pending snapshots may then time out)."""
        self._clock_offset += float(seconds)

    def reset(self):
        """Forget clock moves and client tokens (snapshots live in moto and are wiped by moto's reset)."""
        self._clock_offset = 0.0
        self._tokens = {}
        self.block_faults.clear()

    # -- dispatch ------------------------------------------------------------------------------
    def handle(self, request):
        """Answer one EBS direct request."""
        handlers = {
            "StartSnapshot": self.start_snapshot,
            "PutSnapshotBlock": self.put_snapshot_block,
            "CompleteSnapshot": self.complete_snapshot,
            "ListSnapshotBlocks": self.list_snapshot_blocks,
            "ListChangedBlocks": self.list_changed_blocks,
            "GetSnapshotBlock": self.get_snapshot_block,
        }
        handler = handlers.get(request.action)
        if handler is None:
            raise EbsError(404, "UnknownOperationException", f"No EBS direct operation matches {request.method} {request.path}.")
        return handler(request, self._backend(request))

    def _backend(self, request):
        return ec2_backends[self._account_for(request)][request.region]

    def snapshot(self, backend, snapshot_id):
        """Look a snapshot up (direct or EC2-created) or raise ResourceNotFound/Validation."""
        if not _SNAPSHOT_ID_RE.match(snapshot_id or ""):
            raise validation(f"Invalid snapshot ID '{snapshot_id}'.", "INVALID_SNAPSHOT_ID")
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is None:
            raise not_found(snapshot_id)
        return snapshot

    def _readable(self, backend, snapshot_id):
        snapshot = self.snapshot(backend, snapshot_id)
        if snapshot.status != "completed":
            raise validation(f"The snapshot '{snapshot_id}' is {snapshot.status}; only completed snapshots can be read.", "INVALID_SNAPSHOT_ID")
        now = datetime.fromtimestamp(self.now(), timezone.utc).replace(tzinfo=None)
        if getattr(snapshot, "storage_tier", "standard") == "archive" and not (snapshot.restore_expiry_time and snapshot.restore_expiry_time > now):
            # EBS user guide, "Archive Amazon EBS snapshots": archived snapshots cannot be used with the EBS direct APIs.
            raise validation(f"The snapshot '{snapshot_id}' is in the archive tier; restore it before reading it.", "INVALID_SNAPSHOT_ID")
        return snapshot

    # -- StartSnapshot -------------------------------------------------------------------------
    def start_snapshot(self, request, backend):
        """POST /snapshots: create a pending snapshot (idempotent on ClientToken)."""
        try:
            params = json.loads(request.body or b"{}")
        except ValueError:
            raise validation("The request body is not valid JSON.") from None
        volume_size = params.get("VolumeSize")
        if not isinstance(volume_size, int) or not 1 <= volume_size <= MAX_VOLUME_SIZE_GIB:
            raise validation(f"VolumeSize must be between 1 and {MAX_VOLUME_SIZE_GIB} GiB.", "INVALID_VOLUME_SIZE")
        timeout = params.get("Timeout", DEFAULT_TIMEOUT_MINUTES)
        if not isinstance(timeout, int) or not MIN_TIMEOUT_MINUTES <= timeout <= MAX_TIMEOUT_MINUTES:
            raise validation(f"Timeout must be between {MIN_TIMEOUT_MINUTES} and {MAX_TIMEOUT_MINUTES} minutes.")
        description = params.get("Description", "")
        if len(description) > 255:
            raise validation("Description must be at most 255 characters.")
        tags = params.get("Tags") or []
        if len(tags) > MAX_TAGS:
            raise validation(f"A snapshot can have at most {MAX_TAGS} tags; {len(tags)} were given.", "INVALID_TAG")
        for tag in tags:
            if not tag.get("Key") or len(tag["Key"]) > 127 or len(tag.get("Value", "")) > 255 or tag["Key"].startswith("aws:"):
                raise validation(f"Invalid tag {tag!r}.", "INVALID_TAG")
        fingerprint = json.dumps({key: value for key, value in params.items() if key != "ClientToken"}, sort_keys=True)
        client_token = params.get("ClientToken")
        token_key = (self._account_for(request), request.region, client_token)
        with self._lock:
            if client_token and token_key in self._tokens:
                used_with, original = self._tokens[token_key]
                if used_with != fingerprint:
                    raise EbsError(409, "ConflictException", "The client token was already used with different request parameters.")
                return json_response(201, original)
            parent = self._parent(backend, params.get("ParentSnapshotId"), volume_size)
            encrypted, kms_key_arn = self._encryption(request, backend, params, parent)
            options = {
                "description": description, "encrypted": encrypted, "kms_key_arn": kms_key_arn, "client_token": client_token,
                "fingerprint": fingerprint, "timeout": timeout, "tags": tags,
            }
            snapshot = DirectSnapshot(backend, volume_size=volume_size, parent=parent, options=options, clock=self.now)
            backend.snapshots[snapshot.id] = snapshot
            answer = self._describe(snapshot)
            if client_token:
                self._tokens[token_key] = (fingerprint, answer)
        if tags:
            snapshot.add_tags({tag["Key"]: tag.get("Value", "") for tag in tags})
        return json_response(201, answer)

    def _parent(self, backend, parent_id, volume_size):
        if not parent_id:
            return None
        parent = self.snapshot(backend, parent_id)
        if parent.status != "completed":
            raise validation(f"The parent snapshot '{parent_id}' is {parent.status}; it must be completed.", "INVALID_SNAPSHOT_ID")
        if volume_size < parent.volume_size:
            raise validation(f"VolumeSize must be at least the parent's size ({parent.volume_size} GiB).", "INVALID_VOLUME_SIZE")
        return parent

    def _encryption(self, request, backend, params, parent):
        """Apply the EBS direct encryption rules; return ``(encrypted, key ARN or None)``."""
        encrypted_param = params.get("Encrypted")
        kms_key_arn = params.get("KmsKeyArn")
        by_default = backend.ebs_encryption_by_default
        if parent is not None and encrypted_param is not None:
            raise validation("You can't specify ParentSnapshotId and Encrypted in the same request.")
        if kms_key_arn is not None:
            kms_key_arn = self._kms_key(request, kms_key_arn)
        if parent is not None:
            if parent.encrypted:
                return True, kms_key_arn or parent.kms_key_id or default_kms_key_arn(backend)
            if by_default:
                raise validation("Encryption by default is enabled: an unencrypted parent snapshot can't be used.")
            encrypted = kms_key_arn is not None
        else:
            if encrypted_param is False and by_default:
                raise validation("Encryption by default is enabled: Encrypted can't be false.")
            encrypted = bool(encrypted_param) or by_default
            if kms_key_arn is not None and not encrypted:
                raise validation("KmsKeyArn requires Encrypted to be true.")
        if not encrypted:
            return False, None
        return True, kms_key_arn or default_kms_key_arn(backend)

    def _kms_key(self, request, kms_key_arn):
        if not _KMS_ARN_RE.match(kms_key_arn):
            raise validation(f"KmsKeyArn '{kms_key_arn}' is not a KMS key ARN.", "INVALID_CUSTOMER_KEY")
        arn = find_kms_key_arn(self._account_for(request), request.region, kms_key_arn)
        if arn is None:
            raise validation(f"The KMS key '{kms_key_arn}' does not exist.", "INVALID_CUSTOMER_KEY")
        return arn

    @staticmethod
    def _describe(snapshot):
        answer = {
            "SnapshotId": snapshot.id, "OwnerId": snapshot.owner_id, "Status": snapshot.status,
            "StartTime": _epoch(snapshot.start_time), "VolumeSize": snapshot.volume_size, "BlockSize": BLOCK_SIZE,
            "Tags": snapshot.start_tags, "SseType": "sse-kms" if snapshot.encrypted else "none",
        }
        if snapshot.description:
            answer["Description"] = snapshot.description
        if snapshot.parent is not None:
            answer["ParentSnapshotId"] = snapshot.parent.id
        if snapshot.kms_key_id:
            answer["KmsKeyArn"] = snapshot.kms_key_id
        return answer

    # -- PutSnapshotBlock ----------------------------------------------------------------------
    def put_snapshot_block(self, request, backend):
        """PUT /snapshots/{id}/blocks/{index}: store one checksummed 512 KiB block."""
        snapshot = self._writable(backend, request.route_labels["snapshotId"])
        index = _int_param(request.route_labels["blockIndex"], "BlockIndex")
        if index >= snapshot.volume_size * BLOCKS_PER_GIB:
            raise validation(f"BlockIndex {index} is beyond the end of a {snapshot.volume_size} GiB volume.", "INVALID_BLOCK")
        data_length = _int_param(request.header("x-amz-Data-Length"), "DataLength")
        if data_length != BLOCK_SIZE:
            raise validation(f"DataLength must be {BLOCK_SIZE}.")
        algorithm = request.header("x-amz-Checksum-Algorithm")
        if algorithm != "SHA256":
            raise validation("ChecksumAlgorithm must be SHA256.")
        checksum = request.header("x-amz-Checksum")
        if not checksum:
            raise validation("Checksum is required.")
        progress = request.header("x-amz-Progress")
        if progress is not None:
            progress = _int_param(progress, "Progress")
            if progress > 100:
                raise validation("Progress must be between 0 and 100.")
        data = request.body
        if len(data) != data_length:
            raise validation(f"The block data is {len(data)} bytes, DataLength says {data_length}.")
        digest = hashlib.sha256(data).digest()
        if not hmac.compare_digest(_b64decode(checksum), digest):
            raise validation("The checksum of the block data does not match the Checksum header.", "INVALID_BLOCK")
        with snapshot.lock:
            self._check_writable(snapshot)
            snapshot.blocks[index] = Block(data, digest)
            snapshot.last_activity = self.now()
            if progress is not None:
                snapshot.reported_progress = progress
        encoded = base64.b64encode(digest).decode()
        return Response(201, [("Content-Type", "application/json"), ("x-amz-Checksum", encoded), ("x-amz-Checksum-Algorithm", "SHA256")])

    def _writable(self, backend, snapshot_id):
        snapshot = self.snapshot(backend, snapshot_id)
        self._check_writable(snapshot)
        return snapshot

    @staticmethod
    def _check_writable(snapshot):
        status = snapshot.status
        if status == "pending":
            return
        if getattr(snapshot, "error_reason", None) == "timeout":
            raise validation(f"The snapshot '{snapshot.id}' timed out before it was completed.", "WRITE_REQUEST_TIMEOUT")
        raise validation(f"The snapshot '{snapshot.id}' is {status}; blocks can be written only to a pending snapshot.", "INVALID_SNAPSHOT_ID")

    # -- CompleteSnapshot ----------------------------------------------------------------------
    def complete_snapshot(self, request, backend):
        """POST /snapshots/completion/{id}: check count and LINEAR checksum, then complete or fail."""
        snapshot = self.snapshot(backend, request.route_labels["snapshotId"])
        changed = _int_param(request.header("x-amz-ChangedBlocksCount"), "ChangedBlocksCount")
        checksum = request.header("x-amz-Checksum")
        expected = None
        if checksum is not None:
            if request.header("x-amz-Checksum-Algorithm") != "SHA256":
                raise validation("ChecksumAlgorithm must be SHA256.")
            if request.header("x-amz-Checksum-Aggregation-Method") != "LINEAR":
                raise validation("ChecksumAggregationMethod must be LINEAR.")
            expected = _b64decode(checksum)
        if not isinstance(snapshot, DirectSnapshot):
            return json_response(202, {"Status": snapshot.status})
        with snapshot.lock:
            if snapshot.status != "pending":
                return json_response(202, {"Status": snapshot.status})
            if changed != len(snapshot.blocks):
                snapshot.status, snapshot.error_reason = "error", "changed-blocks-count"
            elif expected is not None and not hmac.compare_digest(expected, aggregate_checksum(snapshot.blocks)):
                snapshot.status, snapshot.error_reason = "error", "checksum"
            else:
                snapshot.status = "completed"
            return json_response(202, {"Status": snapshot.status})

    # -- reads ---------------------------------------------------------------------------------
    def list_snapshot_blocks(self, request, backend):
        """GET /snapshots/{id}/blocks: every block with data, inherited ones included."""
        snapshot = self._readable(backend, request.route_labels["snapshotId"])
        view = visible_blocks(snapshot)
        page, next_token = self._page(request, snapshot.id, sorted(view))
        blocks = [{"BlockIndex": index, "BlockToken": self.block_token(snapshot.id, index)} for index in page]
        return json_response(200, self._listing("Blocks", blocks, snapshot, next_token))

    def list_changed_blocks(self, request, backend):
        """GET /snapshots/{second}/changedblocks: blocks that differ between two related snapshots."""
        second = self._readable(backend, request.route_labels["secondSnapshotId"])
        first_id = request.query.get("firstSnapshotId")
        first = self._readable(backend, first_id) if first_id else None
        if first is not None and _family(first) != _family(second):
            raise validation(f"The snapshots '{first.id}' and '{second.id}' are not related.", "UNRELATED_SNAPSHOTS")
        second_view = visible_blocks(second)
        first_view = visible_blocks(first) if first is not None else {}
        changed = sorted(
            index for index in set(first_view) | set(second_view)
            if _owner(first_view.get(index)) is not _owner(second_view.get(index))
        )
        page, next_token = self._page(request, f"{first_id or ''}/{second.id}", changed)
        blocks = []
        for index in page:
            entry = {"BlockIndex": index}
            if index in first_view:
                entry["FirstBlockToken"] = self.block_token(first.id, index)
            if index in second_view:
                entry["SecondBlockToken"] = self.block_token(second.id, index)
            blocks.append(entry)
        return json_response(200, self._listing("ChangedBlocks", blocks, second, next_token))

    def get_snapshot_block(self, request, backend):
        """GET /snapshots/{id}/blocks/{index}?blockToken=...: one block's data."""
        snapshot = self._readable(backend, request.route_labels["snapshotId"])
        index = _int_param(request.route_labels["blockIndex"], "BlockIndex")
        token = request.query.get("blockToken", "")
        if not hmac.compare_digest(token.encode(), self.block_token(snapshot.id, index).encode()):
            raise validation("The block token is not valid for this snapshot and block index.", "INVALID_BLOCK_TOKEN")
        entry = visible_blocks(snapshot).get(index)
        if entry is None:
            raise validation(f"Block {index} of '{snapshot.id}' holds no data.", "INVALID_BLOCK_TOKEN")
        data, digest = entry[1]
        fault = self.block_faults.take(self._account_for(request), request.region, snapshot.id, index)
        if fault is not None and fault.mode == "error":
            raise EbsError(fault.status, fault.code, fault.message)
        if fault is not None:
            data, digest = (corrupted(data), digest) if fault.mode == "corrupt" else (data, wrong_digest(digest))
        headers = [
            ("Content-Type", "application/octet-stream"), ("x-amz-Data-Length", str(len(data))),
            ("x-amz-Checksum", base64.b64encode(digest).decode()), ("x-amz-Checksum-Algorithm", "SHA256"),
        ]
        return Response(200, headers, data)

    def block_token(self, snapshot_id, index):
        """An opaque token that GetSnapshotBlock accepts only for this snapshot and index."""
        mac = hmac.new(self._secret, f"{snapshot_id}/{index}".encode(), hashlib.sha256).digest()
        return base64.b64encode(mac[:24]).decode()

    def _listing(self, key, blocks, snapshot, next_token):
        answer = {
            key: blocks, "ExpiryTime": self.now() + TOKEN_LIFETIME_SECONDS,
            "VolumeSize": snapshot.volume_size, "BlockSize": BLOCK_SIZE,
        }
        if next_token:
            answer["NextToken"] = next_token
        return answer

    def _page(self, request, listing, indexes):
        """Apply MaxResults, StartingBlockIndex and NextToken to sorted block indexes."""
        max_results = _int_param(request.query.get("maxResults", MAX_RESULTS), "MaxResults")
        if not MIN_RESULTS <= max_results <= MAX_RESULTS:
            raise validation(f"MaxResults must be between {MIN_RESULTS} and {MAX_RESULTS}.")
        start = _int_param(request.query.get("startingBlockIndex", 0), "StartingBlockIndex")
        page_token = request.query.get("pageToken")
        if page_token:
            start = self._decode_page_token(page_token, listing)
        remaining = [index for index in indexes if index >= start]
        page = remaining[:max_results]
        next_token = None
        if len(remaining) > max_results:
            raw = json.dumps({"listing": listing, "next": remaining[max_results]}).encode()
            next_token = base64.b64encode(raw + hmac.new(self._secret, raw, hashlib.sha256).digest()[:8]).decode()
        return page, next_token

    def _decode_page_token(self, page_token, listing):
        raw = _b64decode(page_token, reason="INVALID_PAGE_TOKEN")
        payload, mac = raw[:-8], raw[-8:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, payload, hashlib.sha256).digest()[:8]):
            raise validation("The page token is not valid.", "INVALID_PAGE_TOKEN")
        decoded = json.loads(payload)
        if decoded["listing"] != listing:
            raise validation("The page token belongs to another listing.", "INVALID_PAGE_TOKEN")
        return decoded["next"]


def _owner(entry):
    return entry[0] if entry is not None else None


def _b64decode(value, reason="INVALID_PARAMETER_VALUE"):
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise validation(f"'{value}' is not valid base64.", reason) from None


def aggregate_checksum(blocks):
    """LINEAR aggregate: SHA256 over the blocks' 32-byte digests in ascending index order."""
    return hashlib.sha256(b"".join(blocks[index].digest for index in sorted(blocks))).digest()


def default_kms_key_arn(backend):
    """The region's default EBS KMS key ARN (the AWS managed ``alias/aws/ebs`` key unless modified)."""
    return backend.default_kms_key_id or backend._create_default_encryption_key()  # pylint: disable=protected-access


def find_kms_key_arn(account_id, region, key_id):
    """The ARN of a KMS key given by id, ARN, alias or alias ARN; None when moto's KMS has no such key."""
    kms = kms_backends[account_id][region]
    if "alias/" in key_id:
        key_id = kms.get_key_id_from_alias("alias/" + key_id.split("alias/", 1)[1])
        if key_id is None:
            return None
    try:
        return kms.describe_key(key_id).arn
    except (KeyError, NotFoundException):
        return None
