# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property tests of the ebs_snapshot_policy planner: deterministic, idempotent, never duplicates in-flight work."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import policy
from ansible_collections.blockwise.ebs.plugins.module_utils.policy import POLICY_TAG

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
FREQUENCIES = ["30m", "12 hours", "1d", "0 2 * * *", "*/15 * * * *", "0 3 * * 1"]

snapshot_st = st.tuples(
    st.integers(min_value=0, max_value=7),  # volume index
    st.integers(min_value=0, max_value=10 * 24 * 60),  # age in minutes
    st.sampled_from(["completed", "completed", "pending", "error"]),
    st.sampled_from(["daily", "daily", "other"]),
)


def build(volume_count, raw):
    volumes = [{"VolumeId": "vol-%d" % i, "tags": {}, "Attachments": []} for i in range(volume_count)]
    snapshots = [
        {"SnapshotId": "snap-%03d" % index, "VolumeId": "vol-%d" % (vol % volume_count), "StartTime": NOW - timedelta(minutes=age),
         "State": state, "tags": {POLICY_TAG: name}}
        for index, (vol, age, state, name) in enumerate(raw)
    ]
    return volumes, snapshots


def options(frequency):
    return policy.options_from_params(dict(name="daily", volume_filters={"tag:a": "b"}, frequency=frequency, timezone="UTC"))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FREQUENCIES), st.integers(min_value=1, max_value=8), st.lists(snapshot_st, max_size=30), st.randoms())
def test_plan_is_deterministic_and_idempotent(frequency, volume_count, raw, rnd):
    opts = options(frequency)
    volumes, snapshots = build(volume_count, raw)
    first = policy.plan(opts, volumes, [], snapshots, NOW)
    shuffled_volumes, shuffled_snapshots = list(volumes), list(snapshots)
    rnd.shuffle(shuffled_volumes)
    rnd.shuffle(shuffled_snapshots)
    second = policy.plan(opts, shuffled_volumes, [], shuffled_snapshots, NOW)
    assert first.actions == second.actions and first.not_due == second.not_due

    created = {v for action in first.actions for v in action["volume_ids"]}
    pending = {s["VolumeId"] for s in snapshots if s["State"] == "pending" and s["tags"][POLICY_TAG] == "daily"}
    assert not created & pending  # never a second snapshot while one is in flight
    assert created | {item["volume_id"] for item in first.not_due} == {v["VolumeId"] for v in volumes}

    # Apply the plan: a run one minute later creates nothing.
    made = [{"SnapshotId": "snap-new-%s" % v, "VolumeId": v, "StartTime": NOW, "State": "pending", "tags": {POLICY_TAG: "daily"}}
            for v in sorted(created)]
    assert not policy.plan(opts, volumes, [], snapshots + made, NOW + timedelta(minutes=1)).changed


@settings(max_examples=500, deadline=None)
@given(runs=st.lists(st.tuples(st.floats(0, 20), st.floats(0, 5)), min_size=2, max_size=4),
       resolution=st.sampled_from([0.001, 1.0]), lag=st.floats(0, 1.5), ids=st.randoms(use_true_random=False))
def test_overlapping_runs_leave_exactly_one_snapshot_per_period(runs, resolution, lag, ids):
    """Model of overlapping runs of one policy on one volume: run ``i`` creates at server time ``created``
    (StartTime truncated to ``resolution``), gets the answer ``answer`` seconds later, waits
    DUPLICATE_CHECK_SECONDS and lists the snapshots that exist and were created at least ``lag`` seconds
    before its read; it then removes its own if ``rival_of`` finds one. Whatever the timing, exactly one
    snapshot of the period stays."""
    action = policy.plan(options("1d"), [{"VolumeId": "vol-1", "tags": {}, "Attachments": []}], [], [], NOW).actions[0]
    names = ["snap-%010x%02d" % (ids.getrandbits(40), index) for index in range(len(runs))]
    made = []
    for (created, dummy), name in zip(runs, names):
        start = NOW + timedelta(seconds=created // resolution * resolution)
        made.append({"SnapshotId": name, "VolumeId": "vol-1", "StartTime": start, "State": "pending", "tags": {POLICY_TAG: "daily"}})
    removed_at = {}
    checks = sorted(range(len(runs)), key=lambda i: runs[i][0] + runs[i][1])
    for index in checks:
        created, answer = runs[index]
        read_at = created + answer + policy.DUPLICATE_CHECK_SECONDS
        visible = [snap for other, snap in enumerate(made)
                   if runs[other][0] + lag <= read_at and removed_at.get(other, float("inf")) > read_at]
        if made[index] not in visible:
            visible.append(made[index])
        if policy.rival_of(action, [made[index]], visible, "daily") is not None:
            removed_at[index] = read_at
    assert len(runs) - len(removed_at) == 1, (runs, removed_at)


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(st.tuples(st.floats(0, 20), st.floats(0, 5)), min_size=2, max_size=3), lag=st.floats(0, 1.5),
       ids=st.randoms(use_true_random=False))
def test_overlapping_runs_leave_exactly_one_crash_consistent_set(runs, lag, ids):
    """The same model for a crash-consistent set of two volumes: every run's set shares one StartTime
    (one second resolution) and its snapshot ids interleave with the other sets'; exactly one whole set stays."""
    volumes = [{"VolumeId": v, "tags": {}, "Attachments": [{"InstanceId": "i-1", "Device": d, "State": "attached"}]}
               for v, d in (("vol-1", "/dev/sdf"), ("vol-2", "/dev/sdg"))]
    set_options = policy.options_from_params(dict(name="daily", instance_filters={"tag:a": "b"}, crash_consistent=True,
                                                  frequency="1d", timezone="UTC"))
    action = policy.plan(set_options, volumes, [{"InstanceId": "i-1", "tags": {}}], [], NOW, ["i-1"]).actions[0]
    sets = []
    for index, (created, dummy) in enumerate(runs):
        start = NOW + timedelta(seconds=int(created))
        sets.append([{"SnapshotId": "snap-%010x%02d" % (ids.getrandbits(40), index), "VolumeId": v, "StartTime": start,
                      "State": "pending", "tags": {POLICY_TAG: "daily"}} for v in ("vol-1", "vol-2")])
    removed_at = {}
    for index in sorted(range(len(runs)), key=lambda i: runs[i][0] + runs[i][1]):
        read_at = runs[index][0] + runs[index][1] + policy.DUPLICATE_CHECK_SECONDS
        visible = [snap for other, members in enumerate(sets) for snap in members
                   if (other == index or runs[other][0] + lag <= read_at) and removed_at.get(other, float("inf")) > read_at]
        if policy.rival_of(action, sets[index], visible, "daily") is not None:
            removed_at[index] = read_at
    assert len(runs) - len(removed_at) == 1, (runs, removed_at)
