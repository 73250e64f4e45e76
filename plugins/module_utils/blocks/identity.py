# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which existing snapshot an upload is, and the tags it must carry. Pure: data in, data out.

An upload is *the same* as an existing completed snapshot when content, volume size, parent,
encryption (as the account would apply it now), KMS key, description (when given) and lineage agree.
Tags are not part of the identity: missing or different tags are applied to the existing snapshot.
"""
from __future__ import annotations

from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.errors import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import CONTENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import LINEAGE_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import PARENT_TAG
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import RESERVED_TAGS
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import tag_dict

MAX_TAGS = 50
# StartSnapshot's tags (EBS direct APIs, Tag): keys up to 127 and values up to 255 characters, one less than
# EC2's CreateTags allows. Every tag of an upload goes through StartSnapshot.
MAX_KEY_LENGTH = 127
MAX_VALUE_LENGTH = 255
AWS_MANAGED_EBS_KEY = "alias/aws/ebs"


def check_tags(tags, lineage=None):
    """Refuse what EC2 would refuse (``aws:`` keys, lengths, more than 50 tags with the module's own)."""
    tags = tags or {}
    for key, value in tags.items():
        key, value = str(key), "" if value is None else str(value)
        if key in RESERVED_TAGS:
            hint = " (use the lineage option)" if key == LINEAGE_TAG else ""
            raise InputError("tags: {0} is set by this module and cannot be given{1}".format(key, hint), option="tags")
        if not key or key.lower().startswith("aws:"):
            raise InputError("tags: key {0!r} is not allowed: keys starting with aws: are reserved by AWS".format(key),
                             option="tags")
        if len(key) > MAX_KEY_LENGTH:
            raise InputError("tags: key {0!r} is {1} characters long; at most {2} are allowed".format(
                key[:40] + "...", len(key), MAX_KEY_LENGTH), option="tags")
        if len(value) > MAX_VALUE_LENGTH:
            raise InputError("tags: the value of {0!r} is {1} characters long; at most {2} are allowed".format(
                key, len(value), MAX_VALUE_LENGTH), option="tags")
    limit = MAX_TAGS - len(RESERVED_TAGS)
    if len(tags) > limit:
        message = "tags: {0} tags given; a snapshot holds at most {1}, and this module sets {2} of its own ({3}), " \
                  "so at most {4} can be given".format(len(tags), MAX_TAGS, len(RESERVED_TAGS), ", ".join(RESERVED_TAGS),
                                                       limit)
        raise InputError(message, option="tags")
    if lineage is not None and not 1 <= len(str(lineage)) <= MAX_VALUE_LENGTH:
        raise InputError("lineage must be 1 to {0} characters long".format(MAX_VALUE_LENGTH), option="lineage")


class Expectation:
    """What an existing snapshot must be to be this upload.

    ``lineage`` None means "a standalone upload": the snapshot's lineage must be its own id (or
    absent, from before lineage was recorded).
    """

    def __init__(self, volume_size, parent_id, encrypted, kms_key_id, description, lineage):
        self.volume_size = volume_size
        self.parent_id = parent_id or None
        self.encrypted = bool(encrypted)
        self.kms_key_id = kms_key_id
        self.description = description
        self.lineage = lineage

    def matches(self, snap):
        tags = tag_dict(snap.get("Tags"))
        if int(snap.get("VolumeSize") or 0) != self.volume_size:
            return False
        if (tags.get(PARENT_TAG) or None) != self.parent_id:
            return False
        if bool(snap.get("Encrypted")) != self.encrypted:
            return False
        if self.kms_key_id and self.kms_key_id.startswith("arn:") and snap.get("KmsKeyId") != self.kms_key_id:
            return False
        if self.description is not None and (snap.get("Description") or "") != self.description:
            return False
        found = tags.get(LINEAGE_TAG)
        if self.lineage is None:
            return found in (None, snap.get("SnapshotId"))
        return found == self.lineage


def expected_encryption(params, parent, account_default):
    """``(encrypted, kms key id or None)`` that StartSnapshot will apply with these options now.

    ``account_default``: ``(enabled, key id)`` of EBS encryption by default, or None when not read
    (it is only read when neither ``encrypted`` nor a parent decides).
    """
    if parent is not None:
        return bool(parent.get("Encrypted")), parent.get("KmsKeyId")
    if params.get("encrypted") is not None:
        if not params["encrypted"]:
            return False, None
        return True, params.get("kms_key_arn") or (account_default[1] if account_default else None)
    enabled, key = account_default or (False, None)
    if params.get("kms_key_arn"):
        return True, params["kms_key_arn"]
    return bool(enabled), key if enabled else None


def lineage_of(params, parent):
    """The lineage an upload belongs to: the option, else the parent's, else None (its own id, set later)."""
    if params.get("lineage"):
        return str(params["lineage"])
    if parent is not None:
        parent_tags = tag_dict(parent.get("Tags"))
        return parent_tags.get(LINEAGE_TAG) or parent.get("SnapshotId")
    return None


def wanted_tags(user_tags, content, parent_id, lineage):
    """Every tag the snapshot must carry (user tags and the module's own)."""
    tags = dict((str(k), "" if v is None else str(v)) for k, v in (user_tags or {}).items())
    tags[CONTENT_TAG] = content
    if parent_id:
        tags[PARENT_TAG] = parent_id
    if lineage:
        tags[LINEAGE_TAG] = lineage
    return tags


def tags_to_apply(current, wanted):
    """The wanted tags that are missing or have another value (tags are never removed)."""
    return dict((k, v) for k, v in wanted.items() if current.get(k) != v)
