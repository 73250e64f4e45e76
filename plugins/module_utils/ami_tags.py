# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name and tag the snapshots behind AMIs, and keep them in step with their images.

The planner is pure (data in, data out, no I/O):

* ``check_selection`` / ``check_options``: the user's input, checked before any AWS call.
* ``snapshot_mappings(image)``: the image's EBS mappings that have a snapshot, in *block-device
  order* (the root device first, then the other devices sorted by name, ``xvdX`` counted as ``sdX``
  and numbers compared as numbers), each with its 1-based ``index``. Ephemeral (instance-store),
  ``NoDevice`` and snapshot-less EBS mappings are not counted. DescribeImages returns mappings in no
  documented order, so sorting keeps ``(001)`` on the root volume from one run to the next.
* ``owner_lookups`` / ``plan``: which image names each snapshot, the wanted ``Name`` and tags, and
  the tag changes. A snapshot mapped by several images is named after one of them: the image recorded
  in its ``blockwise:image-id`` tag while that image still maps it, else the oldest image
  (``CreationDate``, then image id) of the selection. The others are reported as skipped.
* ``write_calls``: the changes as CreateTags/DeleteTags calls, batched over every snapshot that needs
  the same tags (``group_calls``).

The AWS wiring (``read_images``, ``read_snapshots``, ``apply``, ``confirm``) reads through ``fleet``
and writes with ``aws_retry=True``; ``apply`` survives snapshots deleted between the read and the
write. After any write, ``confirm`` reads every planned snapshot again, so that what the module
reports (named, already right, vanished) is what AWS holds at the end of the run, not what it held
at the first read. ``result`` builds the module's return values and diff once from the plan, what
was done and what was confirmed.

Keys starting with ``blockwise:`` are the collection's own control tags (``blockwise:protect``,
``blockwise:policy``, ...): image tags are never copied onto them, the ``tags`` option cannot set
them, and ``purge_tags`` never removes them. The module writes only ``blockwise:image-id``.
"""
from __future__ import annotations

import re
import time
from datetime import datetime

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.blockwise.ebs.plugins.module_utils import fleet
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import AWS_ERRORS
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import error_code
from ansible_collections.blockwise.ebs.plugins.module_utils.aws import error_message
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import MAX_TAGS_PER_RESOURCE
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import RESERVED_PREFIX
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import TemplateError
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import check_tag_value
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import check_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import check_template_length
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import drop_aws_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import merge_tags
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import render
from ansible_collections.blockwise.ebs.plugins.module_utils.templates import time_variables

NAME_TAG = "Name"
IMAGE_ID_TAG = "blockwise:image-id"
COLLECTION_PREFIX = "blockwise:"
DEFAULT_NAME_TEMPLATE = "{image_name}({index:03d})"
# ``date``/``timestamp`` are the image's CreationDate (a fixed value: names stay put between runs).
NAME_VARIABLES = ("image_name", "image_id", "index", "device", "snapshot_id", "volume_id", "date", "timestamp")
# EC2 accepts up to 1000 resource ids per CreateTags/DeleteTags and recommends smaller batches.
MAX_RESOURCES_PER_CALL = 500
IGNORED_IMAGE_STATES = frozenset(("deregistered",))
MAX_REPORTED_PROBLEMS = 10
# EC2 is eventually consistent (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html):
# a snapshot read right after CreateTags may not show the new tags yet. A mismatch is read again after
# these waits (seconds) before it is reported as a change made by another writer.
CONFIRM_DELAYS = (1, 2, 4)

# Reasons of skipped snapshots.
NOT_OWNED = "not_owned"
SHARED = "shared"
VANISHED = "vanished"

NOT_FOUND_CODES = ("InvalidSnapshot.NotFound",)
_SNAPSHOT_ID_RE = re.compile(r"snap-[0-9a-fA-F]+")
_NUMBER_RE = re.compile(r"([0-9]+)")


class PlanError(ValueError):
    """Problems found while planning (e.g. a rendered Name too long); nothing has been written."""

    def __init__(self, problems):
        self.problems = list(problems)
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        super().__init__("; ".join(shown) + ("; and %d more" % more if more else ""))


# --------------------------------------------------------------------------------- input checks


def check_selection(image_ids, filters, all_images, owners=("self",)):
    """Raise ``TemplateError`` unless the selection names images explicitly (or ``all_images=true``).

    Nothing may widen the selection silently: ``owners`` must not be empty (DescribeImages without
    owners lists every public image too), ``filters`` must not hold a filter without a value (see
    ``fleet.filter_problem``), and no id or owner may be blank.
    """
    if owners is not None and not owners:
        raise TemplateError("owners must not be empty (it would select every public image too); the default is [self]")
    _check_blank("owners", owners)
    if image_ids is not None and not image_ids:
        raise TemplateError("image_ids must not be empty")
    _check_blank("image_ids", image_ids)
    problem = fleet.filter_problem(filters, "filters")
    if problem:
        raise TemplateError(problem)
    if image_ids is None and filters is not None and not filters:
        raise TemplateError("filters is empty, which would select every image; set all_images=true to mean that")
    if image_ids is None and filters is None and not all_images:
        raise TemplateError("all_images=false selects no image; give image_ids or filters, or set all_images=true")


def _check_blank(option, values):
    for value in values or ():
        if not isinstance(value, str) or not value.strip():
            raise TemplateError("%s: %r is not an id; every item must be a non-empty string" % (option, value))


def is_collection_key(key):
    """True for the collection's own control tags (``blockwise:...``, in any case)."""
    return str(key).lower().startswith(COLLECTION_PREFIX)


def check_options(name_template=DEFAULT_NAME_TEMPLATE, tags=None, copy_image_tags=False, purge_tags=False):
    """Check the naming and tag options; return them as the ``options`` dict of ``plan``.

    Raises ``TemplateError`` naming the option: unknown template variables, a template whose fixed
    text cannot fit in a tag value, bad tag keys or values, ``Name`` or ``blockwise:image-id`` in
    ``tags`` (both are set by the module), and any other ``blockwise:`` key (the collection's control
    tags: ``blockwise:policy`` would put AMI snapshots in a prune scope, ``blockwise:lineage`` would
    merge retention groups; ``ami_snapshot_tag`` sets none of them).
    """
    if not name_template:
        raise TemplateError("name_template must not be empty")
    check_template_length(name_template, NAME_VARIABLES, "name_template")
    # Name and blockwise:image-id are added to every snapshot.
    tags = check_tags(tags, "tags", max_tags=MAX_TAGS_PER_RESOURCE - 2)
    if NAME_TAG in tags:
        raise TemplateError("tags: the Name tag is set from name_template; remove it from tags")
    if IMAGE_ID_TAG in tags:
        raise TemplateError("tags: %s is set by the module to the image id; remove it from tags" % IMAGE_ID_TAG)
    reserved = sorted(key for key in tags if is_collection_key(key))
    if reserved:
        raise TemplateError("tags: %s: keys starting with '%s' are the collection's control tags and cannot be set here"
                            % (", ".join(reserved), COLLECTION_PREFIX))
    return {"name_template": name_template, "tags": tags, "copy_image_tags": bool(copy_image_tags), "purge_tags": bool(purge_tags)}


# ------------------------------------------------------------------------------ images and order


def device_sort_key(device):
    """Sort key of a device name: ``/dev/`` dropped, ``xvd`` counted as ``sd``, numbers compared as numbers."""
    name = device or ""
    short = name[5:] if name.startswith("/dev/") else name
    if short.startswith("xvd"):
        short = "sd" + short[3:]
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in _NUMBER_RE.split(short) if part)
    return parts, name


def snapshot_mappings(image):
    """The EBS mappings of ``image`` with a snapshot, in block-device order, as ``{index, device, snapshot_id}``."""
    root = image.get("RootDeviceName")
    mappings = [m for m in image.get("BlockDeviceMappings") or [] if (m.get("Ebs") or {}).get("SnapshotId")]
    mappings.sort(key=lambda m: (m.get("DeviceName") != root, device_sort_key(m.get("DeviceName"))))
    return [
        {"index": index, "device": mapping.get("DeviceName") or "", "snapshot_id": mapping["Ebs"]["SnapshotId"]}
        for index, mapping in enumerate(mappings, 1)
    ]


def live_images(images):
    """``images`` without deregistered ones and duplicates, sorted by image id."""
    by_id = {}
    for image in images or ():
        if image.get("State") not in IGNORED_IMAGE_STATES:
            by_id.setdefault(image["ImageId"], image)
    return [by_id[image_id] for image_id in sorted(by_id)]


def referenced_snapshot_ids(images):
    """Sorted ids of the snapshots mapped by ``images``."""
    return sorted({m["snapshot_id"] for image in live_images(images) for m in snapshot_mappings(image)})


def owner_lookups(images, snapshots):
    """Image ids recorded in ``blockwise:image-id`` of the mapped snapshots but outside the selection.

    The module reads these images (one batched read, usually none) so that ``plan`` can tell whether a
    snapshot already belongs to an image that still maps it.
    """
    images = live_images(images)
    selected = {image["ImageId"] for image in images}
    referenced = set(referenced_snapshot_ids(images))
    recorded = set()
    for snapshot in snapshots or ():
        owner = (snapshot.get("tags") or {}).get(IMAGE_ID_TAG)
        if snapshot["SnapshotId"] in referenced and owner and owner not in selected:
            recorded.add(owner)
    return sorted(recorded)


def creation_variables(image):
    """``date`` and ``timestamp`` of the image's CreationDate (empty when EC2 gives none)."""
    created = image.get("CreationDate")
    if isinstance(created, datetime):
        moment = created
    else:
        try:
            moment = datetime.fromisoformat(str(created or "").replace("Z", "+00:00"))
        except ValueError:
            return {"date": None, "timestamp": None}
    if moment.tzinfo is None:
        return {"date": None, "timestamp": None}
    return time_variables(moment)


def _age_key(user):
    image, mapping = user
    created = image.get("CreationDate") or ""
    return (str(created), image["ImageId"], mapping["index"])


def _claim(snapshot, users, others):
    """The ``(image, mapping)`` a snapshot is named after, or ``(None, recorded image id)``."""
    recorded = (snapshot.get("tags") or {}).get(IMAGE_ID_TAG)
    mine = [user for user in users if user[0]["ImageId"] == recorded]
    if mine:
        return min(mine, key=_age_key)
    other = others.get(recorded) if recorded else None
    if other is not None and any(m["snapshot_id"] == snapshot["SnapshotId"] for m in snapshot_mappings(other)):
        return None, recorded
    return min(users, key=_age_key)


# ------------------------------------------------------------------------------------- planning


def _never_purged(key):
    return key.lower().startswith(RESERVED_PREFIX) or is_collection_key(key)


def wanted_tags(image, name, options):
    """The tags the module manages on a snapshot of ``image`` named ``name``.

    Copied image tags leave out ``aws:`` keys, the image's ``Name`` and every ``blockwise:`` key: an
    image's control tags never set, change or remove a snapshot's (``blockwise:protect`` above all).
    """
    copied = {}
    if options["copy_image_tags"]:
        copied = {key: value for key, value in drop_aws_tags(image.get("tags")).items()
                  if key != NAME_TAG and not is_collection_key(key)}
    return merge_tags(copied, options["tags"], {NAME_TAG: name, IMAGE_ID_TAG: image["ImageId"]})


def tag_changes(current, wanted, purge_tags):
    """``(to_set, to_unset)``: tags to write and ``{key: old value}`` to remove.

    Without purge nothing is removed. With purge, every tag outside ``wanted`` is removed except
    ``aws:`` keys (reserved by AWS) and ``blockwise:`` keys (the collection's own control tags, e.g.
    ``blockwise:protect``).
    """
    current = dict(current or {})
    desired = dict(wanted)
    if purge_tags:
        desired = merge_tags({k: v for k, v in current.items() if _never_purged(k)}, wanted)
    to_set, keys_to_unset = compare_aws_tags(current, desired, purge_tags=purge_tags)
    return dict(to_set), {key: current[key] for key in sorted(keys_to_unset)}


def _skip(image, mapping, reason, message):
    return {
        "snapshot_id": mapping["snapshot_id"], "image_id": image["ImageId"], "device": mapping["device"],
        "index": mapping["index"], "reason": reason, "msg": message,
    }


def _plan_snapshot(image, mapping, snapshot, options, also_used_by, problems):
    variables = dict(creation_variables(image))
    variables.update(
        image_name=image.get("Name"), image_id=image["ImageId"], index=mapping["index"], device=mapping["device"],
        snapshot_id=snapshot["SnapshotId"], volume_id=snapshot.get("VolumeId"),
    )
    where = "snapshot %s (image %s, %s)" % (snapshot["SnapshotId"], image["ImageId"], mapping["device"])
    name = render(options["name_template"], variables, NAME_VARIABLES, "name_template")
    try:
        check_tag_value(name, "name_template: the Name of " + where)
    except TemplateError as exc:
        problems.append(str(exc))
    before = dict(snapshot.get("tags") or {})
    wanted = wanted_tags(image, name, options)
    to_set, to_unset = tag_changes(before, wanted, options["purge_tags"])
    after = {k: v for k, v in before.items() if k not in to_unset}
    after.update(to_set)
    counted = len(drop_aws_tags(after))
    if counted > MAX_TAGS_PER_RESOURCE:
        problems.append("%s would have %d tags; EC2 allows at most %d per resource (set purge_tags=true or fewer tags)"
                        % (where, counted, MAX_TAGS_PER_RESOURCE))
    return {
        "snapshot_id": snapshot["SnapshotId"], "image_id": image["ImageId"], "device": mapping["device"],
        "index": mapping["index"], "name": name, "before": before, "after": after, "to_set": to_set,
        "to_unset": to_unset, "wanted": wanted, "also_used_by": also_used_by,
    }


def plan(images, snapshots, options, other_images=()):
    """Decide, for every EBS snapshot mapped by ``images``, its Name, tags and tag changes.

    ``images``: the selected images (DescribeImages items with a ``tags`` dict); ``snapshots``: the
    mapped snapshots this account owns (DescribeSnapshots ``OwnerIds=self`` items with ``tags``);
    ``options``: from ``check_options``; ``other_images``: the images ``owner_lookups`` asked for.

    Returns ``{"items", "skipped", "images", "without_snapshots"}``: ``items`` are the snapshots the
    module names (in image id, then index order), ``skipped`` the mapped snapshots it leaves alone
    (``not_owned``: not returned as this account's, e.g. owned by another account; ``shared``: named
    after another image). Raises ``PlanError`` listing every problem (e.g. a Name over 256
    characters) so that nothing is written when any snapshot cannot be handled.
    """
    images = live_images(images)
    owned = {snapshot["SnapshotId"]: snapshot for snapshot in snapshots or ()}
    others = {image["ImageId"]: image for image in live_images(other_images)}
    mappings = {image["ImageId"]: snapshot_mappings(image) for image in images}
    users = {}
    for image in images:
        for mapping in mappings[image["ImageId"]]:
            users.setdefault(mapping["snapshot_id"], []).append((image, mapping))
    claims = {sid: _claim(owned[sid], found, others) for sid, found in users.items() if sid in owned}

    items, skipped, problems = [], [], []
    for image in images:
        for mapping in mappings[image["ImageId"]]:
            sid = mapping["snapshot_id"]
            if sid not in owned:
                skipped.append(_skip(image, mapping, NOT_OWNED, "snapshot %s is not among this account's snapshots "
                                     "(owned by another account, or deleted)" % sid))
                continue
            owner_image, owner_mapping = claims[sid]
            if owner_image is None:
                skipped.append(_skip(image, mapping, SHARED, "snapshot %s is named after image %s (its %s tag), which still "
                                     "maps it and is not in this selection" % (sid, owner_mapping, IMAGE_ID_TAG)))
                continue
            if owner_image is not image or owner_mapping is not mapping:
                skipped.append(_skip(image, mapping, SHARED, "snapshot %s is also mapped by image %s (%s) and is named after it"
                                     % (sid, owner_image["ImageId"], owner_mapping["device"])))
                continue
            also = sorted({user[0]["ImageId"] for user in users[sid]} - {image["ImageId"]})
            items.append(_plan_snapshot(image, mapping, owned[sid], options, also, problems))
    if problems:
        raise PlanError(problems)
    return {
        "items": items,
        "skipped": skipped,
        "images": [image["ImageId"] for image in images],
        "without_snapshots": [image["ImageId"] for image in images if not mappings[image["ImageId"]]],
    }


# -------------------------------------------------------------------------------------- batching


def _chunks(ids, limit):
    return [ids[start:start + limit] for start in range(0, len(ids), limit)]


def _calls(groups, limit):
    """``[(tags, ids)]`` -> chunked calls ``{"tags", "resources"}`` in a stable order."""
    calls = []
    for tags, ids in groups:
        for chunk in _chunks(sorted(ids), limit):
            calls.append({"tags": dict(tags), "resources": chunk})
    calls.sort(key=lambda call: (sorted((k, "" if v is None else v) for k, v in call["tags"].items()), call["resources"]))
    return calls


def group_calls(changes, limit=MAX_RESOURCES_PER_CALL):
    """Batch per-resource tag changes into as few calls as this heuristic finds.

    ``changes`` maps a resource id to the ``{key: value}`` it needs (values may be ``None`` for
    DeleteTags). A call applies one tag set to up to ``limit`` resources, and only to resources that
    need every pair of it. Resources needing a pair that no other resource needs (typically their
    ``Name``) get one call each, holding all their changes. The others are grouped both ways, by
    identical change sets and by pairs shared by the same resources, and the grouping with fewer calls
    wins (ties go to identical sets). Returns ``[{"tags": {...}, "resources": [...]}]``.
    """
    changes = {rid: dict(tags) for rid, tags in changes.items() if tags}
    users = {}
    for rid, tags in changes.items():
        for pair in tags.items():
            users.setdefault(pair, set()).add(rid)
    solo = {rid for rid, tags in changes.items() if any(len(users[pair]) == 1 for pair in tags.items())}
    calls = _calls([(changes[rid], [rid]) for rid in solo], limit)
    rest = {rid: tags for rid, tags in changes.items() if rid not in solo}
    if not rest:
        return calls

    by_set = {}
    for rid, tags in rest.items():
        by_set.setdefault(frozenset(tags.items()), []).append(rid)
    same_sets = _calls([(dict(pairs), ids) for pairs, ids in by_set.items()], limit)

    by_users = {}
    for pair in {pair for tags in rest.values() for pair in tags.items()}:
        by_users.setdefault(frozenset(users[pair] - solo), []).append(pair)
    shared_pairs = _calls([(dict(pairs), rids) for rids, pairs in by_users.items()], limit)

    best = same_sets if len(same_sets) <= len(shared_pairs) else shared_pairs
    return calls + best


def write_calls(items, limit=MAX_RESOURCES_PER_CALL):
    """The DeleteTags and CreateTags calls of a plan's ``items``: ``{"delete": [...], "create": [...]}``.

    Deletes name keys only (``{key: None}``) so that one call serves every value; they run first, so
    that removing tags makes room under the 50-tag limit before new ones are added.
    """
    return {
        "delete": group_calls({item["snapshot_id"]: dict.fromkeys(item["to_unset"]) for item in items}, limit),
        "create": group_calls({item["snapshot_id"]: item["to_set"] for item in items}, limit),
    }


# ------------------------------------------------------------------------------------ AWS wiring


def read_images(ec2, image_ids=None, filters=None, owners=("self",)):
    """The selected images (one paginated DescribeImages pass, ids in batches) and the ids not found.

    Disabled and deprecated images are included: they still hold their snapshots.
    """
    images = live_images(fleet.read_images(ec2, filters=filters, image_ids=image_ids, owners=owners, include_hidden=True))
    found = {image["ImageId"] for image in images}
    missing = sorted(set(image_ids or ()) - found)
    return images, missing


def read_snapshots(ec2, snapshot_ids):
    """This account's snapshots among ``snapshot_ids`` (DescribeSnapshots in batches, ``OwnerIds=self``)."""
    if not snapshot_ids:
        return []
    return fleet.read_snapshots(ec2, snapshot_ids=snapshot_ids, owner_ids=("self",))


def read_other_images(ec2, image_ids):
    """The images ``owner_lookups`` named, whoever owns them."""
    if not image_ids:
        return []
    return live_images(fleet.read_images(ec2, image_ids=image_ids, owners=None, include_hidden=True))


def _create_tags(ec2, resources, tags):
    ec2.create_tags(Resources=resources, Tags=ansible_dict_to_boto3_tag_list(tags), aws_retry=True)


def _delete_tags(ec2, resources, tags):
    ec2.delete_tags(Resources=resources, Tags=[{"Key": key} for key in sorted(tags)], aws_retry=True)


def _tolerant_call(write, resources, vanished):
    """Call ``write(resources)``; on snapshot-not-found, set the missing ones aside and redo the rest.

    EC2 fails the whole call when one resource is gone. The ids named in the error message are set
    aside; when the message names none, the batch is halved until the missing ids are isolated.
    Returns ``{id: message}`` of the resources found missing. Other errors propagate.
    """
    found = {}
    pending = [list(resources)]
    while pending:
        batch = [rid for rid in pending.pop() if rid not in vanished and rid not in found]
        if not batch:
            continue
        try:
            write(batch)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in NOT_FOUND_CODES:
                raise
            named = set(_SNAPSHOT_ID_RE.findall(str((exc.response.get("Error") or {}).get("Message") or ""))) & set(batch)
            if named:
                found.update(dict.fromkeys(sorted(named), error_message(exc)))
                pending.append([rid for rid in batch if rid not in named])
            elif len(batch) == 1:
                found[batch[0]] = error_message(exc)
            else:
                middle = len(batch) // 2
                pending.extend([batch[middle:], batch[:middle]])
    return found


def apply(ec2, calls):
    """Make the ``write_calls`` calls: DeleteTags first, then CreateTags; stop at the first real error.

    Returns ``{"written": set of ids with at least one successful write, "vanished": {id: message},
    "error": message or None, "unfinished": set of ids with a call not made}``.
    """
    outcome = {"written": set(), "vanished": {}, "error": None, "unfinished": set()}
    queue = [("DeleteTags", _delete_tags, call) for call in calls.get("delete", ())]
    queue += [("CreateTags", _create_tags, call) for call in calls.get("create", ())]
    for position, (action, write, call) in enumerate(queue):
        try:
            missing = _tolerant_call(lambda batch, w=write, t=call["tags"]: w(ec2, batch, t), call["resources"], outcome["vanished"])
        except AWS_ERRORS as exc:
            outcome["error"] = "%s failed: %s" % (action, error_message(exc))
            for dummy_action, dummy_write, later in queue[position:]:
                outcome["unfinished"].update(rid for rid in later["resources"] if rid not in outcome["vanished"])
            break
        outcome["vanished"].update(missing)
        outcome["written"].update(rid for rid in call["resources"] if rid not in outcome["vanished"])
    outcome["written"] -= set(outcome["vanished"])
    return outcome


def _current_tags(ec2, snapshot_ids):
    seen = {snapshot["SnapshotId"]: snapshot["tags"] for snapshot in read_snapshots(ec2, snapshot_ids)}
    return {sid: seen.get(sid) for sid in snapshot_ids}


def confirm(ec2, items, sleep=time.sleep, delays=CONFIRM_DELAYS):
    """Read the planned snapshots again after the writes: ``{snapshot id: tags, or None when gone}``.

    One batched read of every item (those written and those found already right). Snapshots whose
    tags do not hold the run's claim (``drift``) are read again after each of ``delays``, for EC2's
    eventual consistency, until they do or the waits are over.
    """
    by_id = {item["snapshot_id"]: item for item in items}
    found = _current_tags(ec2, sorted(by_id))
    for delay in delays:
        pending = sorted(sid for sid, tags in found.items() if tags is not None and drift(by_id[sid], tags))
        if not pending:
            break
        sleep(delay)
        found.update(_current_tags(ec2, pending))
    return found


# ---------------------------------------------------------------------------------------- result


def drift(item, tags):
    """How ``tags`` (a snapshot's tags read after the run) contradict what the run reports; None if they do not.

    The run reports that every wanted tag has its wanted value and that the tags it removed are gone.
    Tags that someone else added meanwhile are no part of that report.
    """
    problems = []
    for key, value in sorted(item["wanted"].items()):
        if key not in tags:
            problems.append("%s is missing (this run wants %r)" % (key, value))
        elif tags[key] != value:
            problems.append("%s is %r (this run wants %r)" % (key, tags[key], value))
    problems.extend("%s is back (this run removed it)" % key for key in sorted(item["to_unset"]) if key in tags)
    return "; ".join(problems) or None


def conflicts(the_plan, outcome):
    """``{snapshot id: drift}`` of the snapshots that someone else changed while the run wrote."""
    confirmed = (outcome or {}).get("confirmed") or {}
    found = {}
    for item in the_plan["items"]:
        tags = confirmed.get(item["snapshot_id"])
        problem = drift(item, tags) if tags is not None else None
        if problem:
            found[item["snapshot_id"]] = problem
    return found


def _gone(outcome):
    """Snapshots found missing by a write or by the confirming read: ``{id: how}``."""
    gone = dict(outcome.get("vanished") or {})
    for sid, tags in (outcome.get("confirmed") or {}).items():
        if tags is None and sid not in gone:
            gone[sid] = "not found when its tags were read again after the writes"
    return gone


def _vanished_entry(item, how):
    sid = item["snapshot_id"]
    return {
        "snapshot_id": sid, "image_id": item["image_id"], "device": item["device"], "index": item["index"],
        "reason": VANISHED, "msg": "snapshot %s no longer exists (deleted after it was read): %s" % (sid, how),
    }


def _entry(item, outcome, drifted):
    """One ``snapshots`` entry; ``outcome`` None means check mode (changes are predicted)."""
    sid = item["snapshot_id"]
    wants_change = bool(item["to_set"] or item["to_unset"])
    entry = {
        "snapshot_id": sid, "image_id": item["image_id"], "device": item["device"], "index": item["index"],
        "name": item["name"], "changed": wants_change if outcome is None else sid in outcome.get("written", ()),
        "tags_added": dict(item["to_set"]), "tags_removed": dict(item["to_unset"]), "also_used_by": list(item["also_used_by"]),
    }
    if outcome is not None and sid in outcome.get("unfinished", ()):
        entry["error"] = outcome.get("error")
    elif drifted:
        entry["error"] = "tags changed by another writer during the run: " + drifted
    return entry


def result(the_plan, outcome=None, missing_image_ids=(), with_diff=False):
    """The module's return values from a plan and, unless in check mode, what ``apply`` did.

    In check mode (``outcome`` None) every snapshot with changes is reported as changed. When the run
    wrote, ``outcome["confirmed"]`` (from ``confirm``) holds the tags read back: a snapshot gone by
    then is reported ``vanished`` whether it needed a write or not, one whose tags contradict the run
    (``conflicts``) gets an ``error``, and the diff's ``after`` is the tags read back.
    """
    gone = _gone(outcome or {})
    drifted = conflicts(the_plan, outcome)
    confirmed = (outcome or {}).get("confirmed") or {}
    snapshots, skipped = [], list(the_plan["skipped"])
    diff = {"before": {}, "after": {}}
    for item in the_plan["items"]:
        sid = item["snapshot_id"]
        if sid in gone:
            skipped.append(_vanished_entry(item, gone[sid]))
            continue
        entry = _entry(item, outcome, drifted.get(sid))
        snapshots.append(entry)
        if item["to_set"] or item["to_unset"] or sid in drifted:
            diff["before"][sid] = dict(sorted(item["before"].items()))
            diff["after"][sid] = dict(sorted((confirmed.get(sid) or item["after"]).items()))
    skipped.sort(key=lambda entry: (entry["image_id"], entry["index"]))
    changed_images = {entry["image_id"] for entry in snapshots if entry["changed"]}
    total = len(the_plan["images"])
    output = {
        "changed": bool(changed_images),
        "snapshots": snapshots,
        "skipped_snapshots": skipped,
        "images": {
            "total": total,
            "changed": len(changed_images),
            "unchanged": total - len(changed_images),
            "without_snapshots": len(the_plan["without_snapshots"]),
        },
        "missing_image_ids": list(missing_image_ids),
    }
    if with_diff:
        output["diff"] = diff
    return output
