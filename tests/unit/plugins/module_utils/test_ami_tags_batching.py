# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit and property tests of the CreateTags/DeleteTags batching of the AMI snapshot planner."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import ami_tags as core


def covered(calls):
    """{(resource, key): value} as set by ``calls``; fails if a call sets two values for one pair."""
    out = {}
    for call in calls:
        for rid in call["resources"]:
            for key, value in call["tags"].items():
                assert out.setdefault((rid, key), value) == value
    return out


def expected(changes):
    return {(rid, key): value for rid, tags in changes.items() for key, value in tags.items()}


def exact_grouping_calls(changes, limit):
    groups = {}
    for rid, tags in changes.items():
        if tags:
            groups.setdefault(frozenset(tags.items()), []).append(rid)
    return sum(math.ceil(len(ids) / limit) for ids in groups.values())


def test_first_run_one_call_per_snapshot():
    # Every snapshot needs its own Name: one call each, holding all its tags.
    changes = {
        "snap-%d" % i: {"Name": "web(%03d)" % i, "blockwise:image-id": "ami-%d" % (i // 3), "env": "prod"} for i in range(9)
    }
    calls = core.group_calls(changes)
    assert len(calls) == 9
    assert all(len(call["resources"]) == 1 for call in calls)
    assert covered(calls) == expected(changes)


def test_shared_change_is_one_call():
    changes = {"snap-%04d" % i: {"env": "staging"} for i in range(300)}
    calls = core.group_calls(changes)
    assert calls == [{"tags": {"env": "staging"}, "resources": sorted(changes)}]


def test_chunks_of_at_most_limit_resources():
    changes = {"snap-%04d" % i: {"env": "staging"} for i in range(1200)}
    calls = core.group_calls(changes)
    assert [len(call["resources"]) for call in calls] == [500, 500, 200]
    assert len(core.group_calls(changes, limit=1000)) == 2


def test_per_image_tags_group_by_image():
    # An image tag changed on 3 images: one call per image, whatever the number of snapshots.
    changes = {"snap-%d-%d" % (img, dev): {"version": "v%d" % img} for img in range(3) for dev in range(4)}
    calls = core.group_calls(changes)
    assert len(calls) == 3
    assert covered(calls) == expected(changes)


def test_pairs_shared_by_the_same_snapshots_beat_identical_sets():
    changes = {"a": {"x": "1", "y": "1"}, "b": {"x": "1"}, "c": {"y": "1"}}
    calls = core.group_calls(changes)
    assert calls == [{"tags": {"x": "1"}, "resources": ["a", "b"]}, {"tags": {"y": "1"}, "resources": ["a", "c"]}]


def test_mixed_name_and_shared_change():
    changes = {"a": {"Name": "a", "env": "prod"}, "b": {"env": "prod"}, "c": {"Name": "c", "env": "prod"}}
    calls = core.group_calls(changes)
    assert len(calls) == 3
    assert covered(calls) == expected(changes)


def test_empty_changes_make_no_call():
    assert core.group_calls({}) == []
    assert core.group_calls({"a": {}, "b": {}}) == []


def test_write_calls_delete_keys_only_and_first():
    items = [
        {"snapshot_id": "snap-1", "to_set": {"Name": "x(001)"}, "to_unset": {"old": "1", "stale": "a"}},
        {"snapshot_id": "snap-2", "to_set": {}, "to_unset": {"old": "2", "stale": "b"}},
        {"snapshot_id": "snap-3", "to_set": {}, "to_unset": {}},
    ]
    calls = core.write_calls(items)
    assert calls["delete"] == [{"tags": {"old": None, "stale": None}, "resources": ["snap-1", "snap-2"]}]
    assert calls["create"] == [{"tags": {"Name": "x(001)"}, "resources": ["snap-1"]}]


tag_values = st.sampled_from(["a", "b", "c"])
tag_keys = st.sampled_from(["Name", "env", "team", "app", "blockwise:image-id"])
change_sets = st.dictionaries(
    st.sampled_from(["snap-%02d" % i for i in range(25)]),
    st.dictionaries(tag_keys, tag_values, max_size=5),
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(changes=change_sets, limit=st.sampled_from([1, 2, 3, 500]))
def test_batching_properties(changes, limit):
    calls = core.group_calls(changes, limit)
    # Exactly the wanted changes: every pair set where needed, nothing set where not needed.
    assert covered(calls) == expected(changes)
    for call in calls:
        assert call["tags"] and call["resources"]
        assert len(call["resources"]) <= limit
        assert len(set(call["resources"])) == len(call["resources"])
        for rid in call["resources"]:
            assert set(call["tags"].items()) <= set(changes[rid].items())
    # Never more calls than one per distinct change set.
    assert len(calls) <= exact_grouping_calls(changes, limit)
    # Deterministic whatever the input order.
    assert core.group_calls(dict(reversed(list(changes.items()))), limit) == calls
