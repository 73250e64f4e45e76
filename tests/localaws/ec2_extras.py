# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 query-protocol calls that moto lacks or answers unlike AWS.

- Get/Modify/ResetEbsDefaultKmsKeyId, per region, on moto's own ``default_kms_key_id`` so that
  CreateVolume and StartSnapshot use the same key; answers are key ARNs.
- DescribeRegions: the AWS region list with opt-in status; without ``AllRegions`` only the regions
  enabled by default are listed.
- RegisterImage keeps the BlockDeviceMappings it was given; CreateImage snapshots every volume
  attached to the instance; both honour TagSpecifications (image and snapshot).
- DeleteSnapshot fails with ``InvalidSnapshot.InUse`` while a registered image maps the snapshot.
- CopySnapshot of a direct snapshot gives the copy the source's data (as an independent snapshot).
"""

import functools
import re
from datetime import timezone
from xml.sax.saxutils import escape

import botocore.session
from moto.core.exceptions import ServiceException
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id

from .ebs_direct import DetachedVolume, DirectSnapshot, default_kms_key_arn, find_kms_key_arn, visible_blocks
from .wire import AwsError, Response, ec2_response, error_response

AWS_MANAGED_EBS_ALIAS = "alias/aws/ebs"
REGIONS_ENABLED_BY_DEFAULT = frozenset({
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
})
_IMAGE_ID_RE = re.compile(rb"<imageId>([^<]+)</imageId>")
_SNAPSHOT_ID_RE = re.compile(rb"<snapshotId>([^<]+)</snapshotId>")


class Ec2Error(Exception):
    """An EC2 error (XML ``Response/Errors/Error``)."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.error = AwsError(status, code, message)


class RegisteredImage(Ami):
    """An AMI whose block device mappings are exactly those it was registered or created with."""

    @property
    def block_device_mappings(self):
        """The mappings recorded at registration."""
        return self.explicit_mappings


def parse_nested(params, prefix):
    """Turn flattened query parameters (``Prefix.1.Ebs.SnapshotId``) into a list of nested dicts."""
    tree = {}
    for key, value in params.items():
        if not key.startswith(prefix + "."):
            continue
        node = tree
        *parents, leaf = key[len(prefix) + 1:].split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return _as_list(tree)


def _as_list(indexed):
    return [indexed[key] for key in sorted(indexed, key=int)]


def tag_specifications(params):
    """``{resource_type: {key: value}}`` from ``TagSpecification.N`` parameters."""
    tags = {}
    for spec in parse_nested(params, "TagSpecification"):
        resource_tags = tags.setdefault(spec.get("ResourceType", ""), {})
        for tag in _as_list(spec.get("Tag", {})):
            resource_tags[tag["Key"]] = tag.get("Value", "")
    return tags


def call_app(app, environ):
    """Run a WSGI app and capture its whole answer as a ``Response``."""
    captured = {}
    chunks = []

    def start_response(status, headers, exc_info=None):  # pylint: disable=unused-argument
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = [(name, value) for name, value in captured["headers"] if name.lower() != "content-length"]
    return Response(int(captured["status"].split()[0]), headers, b"".join(chunks))


@functools.lru_cache(maxsize=1)
def aws_regions():
    """Every commercial AWS region botocore knows for EC2."""
    return tuple(sorted(botocore.session.get_session().get_available_regions("ec2")))


def backdate_snapshot(account_id, region, snapshot_id, start_time):
    """Set a snapshot's StartTime (EC2-created or direct); False when the snapshot does not exist."""
    snapshot = ec2_backends[account_id][region].snapshots.get(snapshot_id)
    if snapshot is None:
        return False
    if start_time.tzinfo is not None:
        start_time = start_time.astimezone(timezone.utc).replace(tzinfo=None)
    snapshot.start_time = start_time
    return True


def add_foreign_snapshot(account_id, region, owner_id, volume_size=8, tags=None, description=""):
    """A snapshot owned by ``owner_id`` and shared with ``account_id`` (visible, not deletable)."""
    backend = ec2_backends[account_id][region]
    snapshot = Snapshot(backend, random_snapshot_id(), DetachedVolume(volume_size), description, owner_id=owner_id)
    snapshot.status = "completed"
    backend.snapshots[snapshot.id] = snapshot
    if tags:
        backend.create_tags([snapshot.id], tags)
    return snapshot.id


def _snapshot_info_xml(snapshot, tags):
    """One ``SnapshotInfo`` item of a CreateSnapshots answer."""
    start = snapshot.start_time
    started = start.strftime("%Y-%m-%dT%H:%M:%S.000Z") if hasattr(start, "strftime") else str(start)
    tag_set = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in tags.items())
    fields = {
        "snapshotId": snapshot.id, "volumeId": snapshot.volume.id, "state": snapshot.status, "volumeSize": snapshot.volume.size,
        "startTime": started, "progress": "100%" if snapshot.status == "completed" else "0%", "ownerId": snapshot.owner_id,
        "encrypted": str(bool(snapshot.encrypted)).lower(), "description": escape(snapshot.description or ""), "tagSet": tag_set,
    }
    return "<item>" + "".join(f"<{name}>{value}</{name}>" for name, value in fields.items()) + "</item>"


class Ec2Extras:
    """Intercepts the EC2 actions listed in the module docstring; others go to moto untouched."""

    def __init__(self, account_for):
        self._account_for = account_for
        self._handlers = {
            "GetEbsDefaultKmsKeyId": self.get_ebs_default_kms_key_id,
            "ModifyEbsDefaultKmsKeyId": self.modify_ebs_default_kms_key_id,
            "ResetEbsDefaultKmsKeyId": self.reset_ebs_default_kms_key_id,
            "DescribeRegions": self.describe_regions,
            "DescribeSnapshots": self.describe_snapshots,
            "DeleteSnapshot": self.delete_snapshot,
            "CreateTags": self.create_tags,
            "CopySnapshot": self.copy_snapshot,
            "CreateSnapshots": self.create_snapshots,
            "RegisterImage": self.register_image,
            "CreateImage": self.create_image,
        }

    def handle(self, request, moto_app):
        """Answer an EC2 request, or return None to let moto answer it."""
        handler = self._handlers.get(request.action)
        if handler is None:
            return None
        backend = ec2_backends[self._account_for(request)][request.region]
        try:
            return handler(request, backend, moto_app)
        except Ec2Error as exc:
            return error_response("ec2", exc.error)

    # -- default KMS key -----------------------------------------------------------------------
    @staticmethod
    def _refuse_dry_run(request):
        if request.form.get("DryRun", "").lower() == "true":
            raise Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)

    def get_ebs_default_kms_key_id(self, request, backend, _moto_app):
        """The region's default key ARN (the AWS managed ``alias/aws/ebs`` key unless modified)."""
        self._refuse_dry_run(request)
        return ec2_response(request.action, {"kmsKeyId": escape(default_kms_key_arn(backend))})

    def modify_ebs_default_kms_key_id(self, request, backend, _moto_app):
        """Set the default key from a key id, key ARN, alias or alias ARN that exists in KMS."""
        self._refuse_dry_run(request)
        key_id = request.form.get("KmsKeyId")
        if not key_id:
            raise Ec2Error("MissingParameter", "The request must contain the parameter KmsKeyId")
        if key_id == AWS_MANAGED_EBS_ALIAS or key_id.endswith(":" + AWS_MANAGED_EBS_ALIAS):
            backend.default_kms_key_id = ""
            arn = default_kms_key_arn(backend)
        else:
            arn = find_kms_key_arn(self._account_for(request), request.region, key_id)
            if arn is None:
                raise Ec2Error("InvalidParameterValue", f"Value ({key_id}) for parameter KmsKeyId is invalid. The KMS key does not exist.")
            backend.default_kms_key_id = arn
        return ec2_response(request.action, {"kmsKeyId": escape(arn)})

    def reset_ebs_default_kms_key_id(self, request, backend, _moto_app):
        """Go back to the AWS managed key."""
        self._refuse_dry_run(request)
        backend.default_kms_key_id = ""
        return ec2_response(request.action, {"kmsKeyId": escape(default_kms_key_arn(backend))})

    # -- regions -------------------------------------------------------------------------------
    def describe_regions(self, request, _backend, _moto_app):
        """Regions with endpoint and opt-in status; RegionNames, AllRegions and Filters honoured."""
        self._refuse_dry_run(request)
        names = {value for key, value in request.form.items() if key.startswith("RegionName.")}
        unknown = sorted(names.difference(aws_regions()))
        if unknown:
            raise Ec2Error("InvalidParameterValue", f"Invalid region names: {', '.join(unknown)}")
        all_regions = request.form.get("AllRegions", "").lower() == "true"
        filters = {item["Name"]: set(_as_list(item.get("Value", {}))) for item in parse_nested(request.form, "Filter")}
        items = []
        for name in aws_regions():
            region = {
                "region-name": name, "endpoint": f"ec2.{name}.amazonaws.com",
                "opt-in-status": "opt-in-not-required" if name in REGIONS_ENABLED_BY_DEFAULT else "not-opted-in",
            }
            if names and name not in names:
                continue
            if not names and not all_regions and region["opt-in-status"] == "not-opted-in":
                continue
            if any(region.get(key) not in values for key, values in filters.items()):
                continue
            items.append(
                f"<item><regionName>{name}</regionName><regionEndpoint>{region['endpoint']}</regionEndpoint>"
                f"<optInStatus>{region['opt-in-status']}</optInStatus></item>"
            )
        return ec2_response(request.action, {"regionInfo": "".join(items)})

    # -- images and snapshots ------------------------------------------------------------------
    def describe_snapshots(self, request, _backend, _moto_app):
        """Honour ``OwnerIds`` (moto ignores it) by turning it into an ``owner-id`` filter.

        ``self`` is the caller's account. Without ``OwnerIds`` every visible snapshot is listed,
        including snapshots shared from other accounts (see :func:`add_foreign_snapshot`).
        """
        params = dict(request.form)
        owners = [params.pop(key) for key in sorted(k for k in request.form if re.fullmatch(r"Owner\.\d+", k))]
        if not owners:
            return None
        account = self._account_for(request)
        owners = [account if owner == "self" else owner for owner in owners]
        index = 1 + max([int(m.group(1)) for m in (re.fullmatch(r"Filter\.(\d+)\.Name", k) for k in params) if m] or [0])
        params["Filter.{0}.Name".format(index)] = "owner-id"
        for number, owner in enumerate(owners, start=1):
            params["Filter.{0}.Value.{1}".format(index, number)] = owner
        request.replace_form(params)
        return None

    def _refuse_foreign(self, request, backend, snapshot_ids):
        account = self._account_for(request)
        for snapshot_id in snapshot_ids:
            snapshot = backend.snapshots.get(snapshot_id)
            if snapshot is not None and snapshot.owner_id != account:
                raise Ec2Error("UnauthorizedOperation",
                               f"You are not authorized to perform this operation on {snapshot_id}, owned by {snapshot.owner_id}.", 403)

    def create_tags(self, request, backend, _moto_app):
        """Tags on a snapshot shared from another account cannot be changed."""
        resources = [v for k, v in request.form.items() if re.fullmatch(r"ResourceId\.\d+", k)]
        self._refuse_foreign(request, backend, [r for r in resources if r.startswith("snap-")])
        return None

    def delete_snapshot(self, request, backend, _moto_app):
        """Refuse to delete a foreign snapshot or one that a registered image maps; otherwise let moto delete it."""
        snapshot_id = request.form.get("SnapshotId")
        self._refuse_foreign(request, backend, [snapshot_id])
        for image in list(backend.amis.values()):
            for mapping in image.block_device_mappings:
                if (mapping.get("Ebs") or {}).get("SnapshotId") == snapshot_id:
                    raise Ec2Error("InvalidSnapshot.InUse", f"The snapshot {snapshot_id} is currently in use by {image.id}")
        return None

    def copy_snapshot(self, request, backend, moto_app):
        """Copy with moto; a copy of a direct snapshot also gets the blocks the source shows."""
        source_region = request.form.get("SourceRegion") or request.region
        source_id = request.form.get("SourceSnapshotId")
        source = ec2_backends[self._account_for(request)][source_region].snapshots.get(source_id)
        if isinstance(source, DirectSnapshot) and source.status != "completed":
            raise Ec2Error("IncorrectState", f"Snapshot '{source_id}' is {source.status}; only completed snapshots can be copied.")
        response = call_app(moto_app, request.environ)
        if response.status == 200 and isinstance(source, DirectSnapshot):
            copy = backend.snapshots[_SNAPSHOT_ID_RE.search(response.body).group(1).decode()]
            copy.blocks = {index: entry[1] for index, entry in visible_blocks(source).items()}
        return response

    def create_snapshots(self, request, backend, _moto_app):
        """Multi-volume snapshot set of an instance, as AWS makes it (moto ignores most options).

        Honours ``ExcludeBootVolume``, ``ExcludeDataVolumeIds`` (naming the root volume is an error),
        ``CopyTagsFromSource=volume`` (volume tags, then the snapshot tag specification on top) and
        answers with each snapshot's ``State``.
        """
        self._refuse_dry_run(request)
        form = request.form
        try:
            instance = backend.get_instance(form.get("InstanceSpecification.InstanceId", ""))
        except ServiceException as exc:
            raise Ec2Error(exc.code, exc.message) from exc
        excluded = {v for k, v in form.items() if re.fullmatch(r"InstanceSpecification\.ExcludeDataVolumeId\.\d+", k)}
        exclude_boot = form.get("InstanceSpecification.ExcludeBootVolume", "false").lower() == "true"
        copy_tags = form.get("CopyTagsFromSource") == "volume"
        spec_tags = tag_specifications(form).get("snapshot", {})
        mappings = list(instance.get_block_device_mapping)
        devices = [device for device, _block in mappings]
        # moto gives every instance of an unknown AMI the root /dev/sda1; then the first mapping is the root.
        root = instance.root_device_name if instance.root_device_name in devices else (devices[0] if devices else None)
        selected = []
        for device, block in mappings:
            is_root = device == root
            if is_root and block.volume_id in excluded:
                raise Ec2Error("InvalidParameterValue", f"The root volume {block.volume_id} cannot be in ExcludeDataVolumeIds.")
            if (is_root and exclude_boot) or block.volume_id in excluded:
                continue
            selected.append(backend.get_volume(block.volume_id))
        items = []
        for volume in selected:
            snapshot = backend.create_snapshot(volume.id, form.get("Description", ""))
            tags = dict(backend.tags.get(volume.id) or {}) if copy_tags else {}
            tags = {k: v for k, v in tags.items() if not k.startswith("aws:")}
            tags.update(spec_tags)
            if tags:
                snapshot.add_tags(tags)
            items.append(_snapshot_info_xml(snapshot, tags))
        return ec2_response(request.action, {"snapshotSet": "".join(items)})

    def register_image(self, request, backend, moto_app):
        """Register an image with the given mappings (moto would invent one 15 GiB snapshot)."""
        params = request.form
        raw_mappings = parse_nested(params, "BlockDeviceMapping")
        mappings = [self._image_mapping(backend, raw) for raw in raw_mappings]
        tags = tag_specifications(params)
        response = self._call_moto(request, moto_app, ("BlockDeviceMapping.", "TagSpecification."))
        if response.status != 200:
            return response
        image = backend.amis[_IMAGE_ID_RE.search(response.body).group(1).decode()]
        if raw_mappings:
            self._replace_mappings(backend, image, mappings)
            image.root_device_name = params.get("RootDeviceName") or mappings[0]["DeviceName"]
            root_is_ebs = any(mapping["DeviceName"] == image.root_device_name and "Ebs" in mapping for mapping in mappings)
            image.root_device_type = "ebs" if root_is_ebs else "instance-store"
        image.architecture = params.get("Architecture", "x86_64")
        image.virtualization_type = params.get("VirtualizationType", "hvm")
        if "BootMode" in params:
            image.boot_mode = params["BootMode"]
        image.add_tags(tags.get("image", {}))
        return response

    def create_image(self, request, backend, moto_app):
        """Create an image with one EBS mapping (and one new snapshot) per attached volume."""
        tags = tag_specifications(request.form)
        response = self._call_moto(request, moto_app, ("TagSpecification.",))
        if response.status != 200:
            return response
        image = backend.amis[_IMAGE_ID_RE.search(response.body).group(1).decode()]
        instance = backend.get_instance(request.form["InstanceId"])
        description = f"Created by CreateImage({instance.id}) for {image.id}"
        mappings = []
        for device, block in instance.get_block_device_mapping:
            volume = backend.get_volume(block.volume_id)
            snapshot = backend.create_snapshot(volume.id, description, from_ami=image.id)
            snapshot.kms_key_id = volume.kms_key_id
            snapshot.add_tags(tags.get("snapshot", {}))
            ebs = {
                "SnapshotId": snapshot.id, "VolumeSize": volume.size, "DeleteOnTermination": bool(block.delete_on_termination),
                "VolumeType": volume.volume_type, "Encrypted": bool(volume.encrypted),
            }
            mappings.append({"DeviceName": device, "Ebs": ebs})
        self._replace_mappings(backend, image, mappings)
        image.root_device_name = instance.root_device_name
        image.root_device_type = "ebs"
        image.add_tags(tags.get("image", {}))
        return response

    @staticmethod
    def _call_moto(request, moto_app, stripped_prefixes):
        """Let moto create the image from the parameters it understands."""
        request.replace_form({key: value for key, value in request.form.items() if not key.startswith(stripped_prefixes)})
        return call_app(moto_app, request.environ)

    @staticmethod
    def _replace_mappings(backend, image, mappings):
        backend.snapshots.pop(image.ebs_snapshot.id, None)
        image.__class__ = RegisteredImage
        image.explicit_mappings = mappings

    @staticmethod
    def _image_mapping(backend, raw):
        """One DescribeImages mapping from a RegisterImage ``BlockDeviceMapping.N``."""
        device = raw.get("DeviceName")
        if not device:
            raise Ec2Error("InvalidBlockDeviceMapping", "Each block device mapping needs a DeviceName.")
        if "VirtualName" in raw:
            return {"DeviceName": device, "VirtualName": raw["VirtualName"]}
        if "NoDevice" in raw:
            return {"DeviceName": device, "NoDevice": ""}
        ebs = raw.get("Ebs", {})
        snapshot_id = ebs.get("SnapshotId")
        if snapshot_id:
            snapshot = backend.snapshots.get(snapshot_id)
            if snapshot is None:
                raise Ec2Error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot_id}' does not exist.")
            size = int(ebs.get("VolumeSize") or snapshot.volume_size)
            if size < snapshot.volume_size:
                raise Ec2Error("InvalidBlockDeviceMapping", f"Volume of {size} GiB is smaller than snapshot '{snapshot_id}'.")
            mapping = {"SnapshotId": snapshot_id, "Encrypted": bool(snapshot.encrypted)}
        elif ebs.get("VolumeSize"):
            size = int(ebs["VolumeSize"])
            mapping = {"Encrypted": ebs.get("Encrypted", "false").lower() == "true"}
        else:
            raise Ec2Error("InvalidBlockDeviceMapping", f"The EBS mapping of {device} needs a SnapshotId or a VolumeSize.")
        mapping.update({
            "VolumeSize": size, "VolumeType": ebs.get("VolumeType", "gp2"),
            "DeleteOnTermination": ebs.get("DeleteOnTermination", "true").lower() == "true",
        })
        for name in ("Iops", "Throughput"):
            if name in ebs:
                mapping[name] = int(ebs[name])
        if "KmsKeyId" in ebs:
            mapping["KmsKeyId"] = ebs["KmsKeyId"]
        return {"DeviceName": device, "Ebs": mapping}
