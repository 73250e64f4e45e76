# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 query-protocol calls that moto lacks or answers unlike AWS.

- Get/Modify/ResetEbsDefaultKmsKeyId, per region, on moto's own ``default_kms_key_id`` so that
  CreateVolume and StartSnapshot use the same key; answers are key ARNs.
- DescribeVolumes and DescribeSnapshots page with MaxResults / NextToken (``paging.py``).
- DescribeRegions: the AWS region list with opt-in status; without ``AllRegions`` only the regions
  enabled by default are listed.
- RegisterImage keeps the BlockDeviceMappings it was given; CreateImage snapshots every attached
  volume; both honour TagSpecifications (image and snapshot).
- DeleteSnapshot fails with ``InvalidSnapshot.InUse`` while a registered image maps the snapshot; a
  deleted source fails its pending copies (``copies.py``).
- Snapshots across accounts (``sharing.py``): DescribeSnapshots, Describe/Modify/ResetSnapshotAttribute;
  DeleteSnapshot, CreateTags and DeleteTags on a snapshot another account shared are refused.
- CopySnapshot across regions and accounts, pending then completed, with its quota (``copies.py``).
- Block public access for snapshots (Get/Enable/DisableSnapshotBlockPublicAccess) and the archive tier
  (ModifySnapshotTier, RestoreSnapshotTier, CreateVolume refusing an archived snapshot) (``security.py``).
"""

import re
import time
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from moto.core.exceptions import ServiceException
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id

from . import paging, security, sharing
from .ebs_direct import DetachedVolume, default_kms_key_arn, find_kms_key_arn
# Re-exported: older imports use this module.
from .ec2_common import (  # noqa: F401  pylint: disable=unused-import
    Ec2Error, as_list, aws_regions, call_app, filters, moto_answer, numbered, parse_nested, refuse_dry_run, tag_specifications,
)
from .wire import ec2_response, error_response

AWS_MANAGED_EBS_ALIAS = sharing.AWS_MANAGED_EBS_ALIAS
REGIONS_ENABLED_BY_DEFAULT = frozenset({
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
})
_IMAGE_ID_RE = re.compile(rb"<imageId>([^<]+)</imageId>")
_SNAPSHOT_ID_RE = re.compile(rb"<snapshotId>([^<]+)</snapshotId>")


class RegisteredImage(Ami):
    """An AMI whose block device mappings are exactly those it was registered or created with."""

    @property
    def block_device_mappings(self):
        """The mappings recorded at registration."""
        return self.explicit_mappings


def backdate_snapshot(account_id, region, snapshot_id, start_time):
    """Set a snapshot's StartTime (EC2-created, direct or copy); False when the snapshot does not exist.

    The snapshot is looked up in ``account_id`` first, then in every account of the region.
    """
    snapshot = ec2_backends[account_id][region].snapshots.get(snapshot_id) or sharing.find_snapshot(region, snapshot_id)
    if snapshot is None:
        return False
    if start_time.tzinfo is not None:
        start_time = start_time.astimezone(timezone.utc).replace(tzinfo=None)
    snapshot.start_time = start_time
    return True


def add_foreign_snapshot(account_id, region, owner_id, volume_size=8, tags=None, description=""):
    """A completed snapshot in ``owner_id``'s account, shared with ``account_id`` (createVolumePermission).

    ``tags`` are the owner's; ``account_id`` sees the snapshot without them, can copy it, and cannot
    delete or tag it.
    """
    backend = ec2_backends[owner_id][region]
    snapshot = Snapshot(backend, random_snapshot_id(), DetachedVolume(volume_size), description, owner_id=owner_id)
    snapshot.status = "completed"
    snapshot.create_volume_permission_userids.add(account_id)
    backend.snapshots[snapshot.id] = snapshot
    if tags:
        backend.create_tags([snapshot.id], tags)
    return snapshot.id


def volume_key_to_snapshot(backend, snapshot):
    """Give a snapshot of an encrypted volume the ARN of the volume's key; True when it changed anything."""
    volume = backend.volumes.get(snapshot.volume_id)
    if volume is None or not volume.encrypted or not volume.kms_key_id or snapshot.kms_key_id:
        return False
    account, region = backend.account_id, backend.region_name
    snapshot.kms_key_id = find_kms_key_arn(account, region, volume.kms_key_id) or volume.kms_key_id
    return True


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

    def __init__(self, account_for, copies, clock=time.time):
        self._account_for = account_for
        self._copies = copies
        self._clock = clock
        self._handlers = {
            "GetEbsDefaultKmsKeyId": self.get_ebs_default_kms_key_id,
            "ModifyEbsDefaultKmsKeyId": self.modify_ebs_default_kms_key_id,
            "ResetEbsDefaultKmsKeyId": self.reset_ebs_default_kms_key_id,
            "DescribeRegions": self.describe_regions,
            "DescribeSnapshots": self.describe_snapshots,
            "DescribeSnapshotAttribute": self._for_caller(sharing.describe_snapshot_attribute),
            "ModifySnapshotAttribute": self._for_caller(sharing.modify_snapshot_attribute),
            "ResetSnapshotAttribute": self._for_caller(sharing.reset_snapshot_attribute),
            "DeleteSnapshot": self.delete_snapshot,
            "CreateTags": self.refuse_foreign_tags,
            "DeleteTags": self.refuse_foreign_tags,
            "CopySnapshot": self._for_caller(copies.copy_snapshot),
            "CreateSnapshot": self.create_snapshot,
            "CreateSnapshots": self.create_snapshots,
            "RegisterImage": self.register_image,
            "CreateImage": self.create_image,
            "GetSnapshotBlockPublicAccessState": self._for_caller(security.get_state),
            "EnableSnapshotBlockPublicAccess": self._for_caller(security.enable),
            "DisableSnapshotBlockPublicAccess": self._for_caller(security.disable),
            "ModifySnapshotTier": self._with_time(security.modify_tier),
            "RestoreSnapshotTier": self._with_time(security.restore_tier),
            "CreateVolume": self._with_time(security.refuse_archived_volume_source),
            "DescribeVolumes": self.describe_volumes,
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

    def _for_caller(self, handler):
        """A handler ``(request, account id)`` as an Ec2Extras handler."""
        return lambda request, _backend, _moto_app: handler(request, self._account_for(request))

    def _with_time(self, handler):
        """A handler ``(request, account id, now)`` (now: the endpoint's clock, naive UTC as moto keeps it)."""
        def run(request, _backend, _moto_app):
            now = datetime.fromtimestamp(self._clock(), timezone.utc).replace(tzinfo=None)
            return handler(request, self._account_for(request), now)
        return run

    # -- default KMS key -----------------------------------------------------------------------
    _refuse_dry_run = staticmethod(refuse_dry_run)

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
        filters = {item["Name"]: set(as_list(item.get("Value", {}))) for item in parse_nested(request.form, "Filter")}
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

    @staticmethod
    def describe_volumes(request, backend, _moto_app):
        """Let moto answer, unless ``MaxResults``/``NextToken`` ask for a page (``paging.py``)."""
        paged = paging.page_request("DescribeVolumes", request.form)
        if paged is None:
            return None
        refuse_dry_run(request)
        try:
            volumes = backend.describe_volumes(volume_ids=None, filters=filters(request.form))
        except ServiceException as exc:
            raise Ec2Error(exc.code, exc.message) from exc
        volumes, token = paging.page(sorted(volumes, key=lambda volume: volume.id), "DescribeVolumes", paged)
        return moto_answer("DescribeVolumes", dict({"Volumes": volumes}, **({"NextToken": token} if token else {})))

    # -- images and snapshots ------------------------------------------------------------------
    def describe_snapshots(self, request, _backend, _moto_app):
        """Every snapshot the caller can use in the region: owned, shared with it, public (``sharing.py``)."""
        return sharing.describe_snapshots(request, self._account_for(request))

    def _refuse_foreign(self, request, snapshot_ids):
        """``UnauthorizedOperation`` for a snapshot the caller can see but does not own."""
        account = self._account_for(request)
        for snapshot_id in snapshot_ids:
            snapshot = sharing.find_snapshot(request.region, snapshot_id)
            if snapshot is not None and snapshot.owner_id != account and sharing.restorable_by(snapshot, account):
                raise sharing.unauthorized(snapshot)

    def refuse_foreign_tags(self, request, _backend, _moto_app):
        """Tags on a snapshot shared from another account cannot be added nor removed; otherwise moto tags."""
        resources = numbered(request.form, "ResourceId")
        self._refuse_foreign(request, [resource for resource in resources if resource.startswith("snap-")])
        return None

    def delete_snapshot(self, request, backend, moto_app):
        """Refuse a foreign snapshot or one that a registered image maps; after moto deleted it, fail its pending copies."""
        snapshot_id = request.form.get("SnapshotId")
        self._refuse_foreign(request, [snapshot_id])
        for image in list(backend.amis.values()):
            for mapping in image.block_device_mappings:
                if (mapping.get("Ebs") or {}).get("SnapshotId") == snapshot_id:
                    raise Ec2Error("InvalidSnapshot.InUse", f"The snapshot {snapshot_id} is currently in use by {image.id}")
        snapshot = backend.snapshots.get(snapshot_id)
        response = call_app(moto_app, request.environ)
        if response.status == 200 and snapshot is not None:
            self._copies.source_deleted(snapshot)
        return response

    def create_snapshot(self, request, backend, moto_app):
        """Let moto snapshot the volume, then give the snapshot its volume's key (moto drops it)."""
        response = call_app(moto_app, request.environ)
        if response.status != 200:
            return response
        snapshot = backend.snapshots[_SNAPSHOT_ID_RE.search(response.body).group(1).decode()]
        if not volume_key_to_snapshot(backend, snapshot):
            return response
        return moto_answer("CreateSnapshot", snapshot)

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
            volume_key_to_snapshot(backend, snapshot)
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
