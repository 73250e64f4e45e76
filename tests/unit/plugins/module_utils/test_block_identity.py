# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which existing snapshot an upload is, and its tags (issue 10, items 4, 12 and 21). Pure functions."""
from __future__ import annotations

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import identity

KEY = "arn:aws:kms:us-east-1:123456789012:key/1111"


def snap(**kw):
    tags = kw.pop("tags", {})
    base = {"SnapshotId": "snap-1", "VolumeSize": 1, "Encrypted": False, "Description": "", "State": "completed",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    base.update(kw)
    return base


@pytest.mark.parametrize("tags, fragment", [
    ({"aws:x": "1"}, "aws:"),
    ({"AWS:x": "1"}, "aws:"),
    ({"k" * 128: "1"}, "127"),
    ({"k": "v" * 256}, "255"),
    ({"k%d" % i: "" for i in range(48)}, "at most 47"),
    ({"blockwise:content": "x"}, "set by this module"),
    ({"blockwise:lineage": "x"}, "lineage option"),
])
def test_check_tags_refuses(tags, fragment):
    with pytest.raises(InputError) as info:
        identity.check_tags(tags)
    assert fragment in str(info.value) and info.value.option == "tags"


def test_check_tags_accepts_the_limits():
    identity.check_tags(dict(("k%d" % i, "v" * 255) for i in range(47)), lineage="x" * 255)
    identity.check_tags({"k" * 127: "v"})
    with pytest.raises(InputError) as info:
        identity.check_tags({}, lineage="x" * 256)
    assert info.value.option == "lineage"


def test_expected_encryption_follows_parent_option_then_account():
    parent = {"Encrypted": True, "KmsKeyId": KEY}
    assert identity.expected_encryption({}, parent, None) == (True, KEY)
    assert identity.expected_encryption({"encrypted": False}, None, (True, KEY)) == (False, None)
    assert identity.expected_encryption({"encrypted": True}, None, (False, KEY)) == (True, KEY)
    assert identity.expected_encryption({}, None, (True, KEY)) == (True, KEY)
    assert identity.expected_encryption({}, None, (False, None)) == (False, None)
    assert identity.expected_encryption({"kms_key_arn": KEY}, None, (False, None)) == (True, KEY)


def test_expectation_matches_only_the_same_upload():
    expect = identity.Expectation(1, None, False, None, None, None)
    assert expect.matches(snap())
    assert expect.matches(snap(tags={"blockwise:lineage": "snap-1"}))
    assert not expect.matches(snap(tags={"blockwise:lineage": "disk-a"}))  # another disk's lineage
    assert not expect.matches(snap(Encrypted=True))  # encryption by default turned on since
    assert not expect.matches(snap(VolumeSize=2))
    assert not expect.matches(snap(tags={"blockwise:parent": "snap-0"}))
    described = identity.Expectation(1, None, False, None, "nightly", "disk-a")
    assert described.matches(snap(Description="nightly", tags={"blockwise:lineage": "disk-a"}))
    assert not described.matches(snap(Description="other", tags={"blockwise:lineage": "disk-a"}))
    keyed = identity.Expectation(1, None, True, KEY, None, None)
    assert keyed.matches(snap(Encrypted=True, KmsKeyId=KEY))
    assert not keyed.matches(snap(Encrypted=True, KmsKeyId=KEY.replace("1111", "2222")))


def test_lineage_from_option_then_parent():
    assert identity.lineage_of({"lineage": "web"}, {"SnapshotId": "snap-p"}) == "web"
    assert identity.lineage_of({}, snap(SnapshotId="snap-p", tags={"blockwise:lineage": "web"})) == "web"
    assert identity.lineage_of({}, snap(SnapshotId="snap-p")) == "snap-p"
    assert identity.lineage_of({}, None) is None


def test_tags_to_apply_adds_and_updates_never_removes():
    current = {"Name": "a", "other": "kept", "blockwise:content": "c"}
    wanted = identity.wanted_tags({"Name": "b", "team": 1}, "c", None, "web")
    assert identity.tags_to_apply(current, wanted) == {"Name": "b", "team": "1", "blockwise:lineage": "web"}
