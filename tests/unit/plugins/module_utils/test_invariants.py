# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Invariants of pruning, end to end through the module's pure plan (``prune.plan``), up to 10,000 snapshots.

``test_retention_properties.py`` checks ``retention.decide`` on its own. Here the populations are what
the prune module reads from EC2 (DescribeSnapshots items with tags, owners and states, DescribeImages
items with several mappings, volume tags for a retention tag) and the options are the module's, so the
protections are derived the way the module derives them: AMI-backed, pending/error, protect tag,
another account's, outside the policy's scope, held by an invalid retention tag. The oracle below
recomputes every protection and floor independently of the engine.

Invariants, for every population and policy:

* nothing protected is ever deleted, nor any of the ``minimum`` (or ``keep_last``, or the volume's
  retention-tag count) newest deletable snapshots of a volume, nor anything within ``keep_within``;
* the plan does not depend on the order of the snapshots or images;
* a second run over what is left deletes nothing and keeps the same snapshots;
* a policy that keeps more (a rule added, a count, the floor or the window raised) never deletes more;
* protected snapshots never use up a slot: adding any number of them changes no other decision;
* snapshots are grouped by lineage (``blockwise:lineage``), else by a real volume; uploads and copies
  without lineage (placeholder ``vol-ffffffff``) are never grouped nor deleted (``no-lineage``).
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import prune, retention

UTC = timezone.utc
NOW = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)  # the night Europe/Berlin moves to summer time
ACCOUNT = "123456789012"
FOREIGN = "210987654321"
POLICY = "daily"
OTHER_POLICY = "weekly"
TAG_KEY = "Daily_Gens"
PROTECT_TAGS = (retention.PROTECT_TAG, "keep-forever")
ZONES = ("UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Chatham")
DIRECT_VOLUME = "vol-ffffffff"
VALID_TAG_VALUES = ("1", "2", "3", " 5 ", "7", "14", "30")
INVALID_TAG_VALUES = ("seven", "0", "-3", "", "1.5")

FAST = settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SLOTS = settings(max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LARGE = settings(max_examples=15, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------------------------------ populations

class Population:
    """DescribeSnapshots items, DescribeImages items and volume tags, as the module reads them."""

    def __init__(self, snapshots, images, volume_tags):
        self.snapshots = snapshots
        self.images = images
        self.volume_tags = volume_tags

    def without(self, snapshot_ids):
        return Population([s for s in self.snapshots if s["SnapshotId"] not in snapshot_ids], self.images, self.volume_tags)

    def shuffled(self, rng):
        snapshots, images = list(self.snapshots), list(self.images)
        rng.shuffle(snapshots)
        rng.shuffle(images)
        return Population(snapshots, images, dict(self.volume_tags))


def _start(rng):
    """Start times that cluster (same hour/day, exact ties, day edges in odd time zones) and spread (years)."""
    kind = rng.randrange(5)
    if kind == 0:
        return NOW - timedelta(seconds=rng.randrange(3 * 366 * 86400))
    if kind == 1:
        return NOW - timedelta(hours=rng.randrange(24 * 60))  # on the hour: ties
    if kind == 2:
        return NOW - timedelta(minutes=15 * rng.randrange(4 * 24 * 8))  # dense recent ones
    if kind == 3:
        return (NOW - timedelta(days=rng.randrange(1, 400))).replace(hour=2, minute=0, second=0)  # nightly
    return (NOW - timedelta(days=rng.randrange(1, 60))).replace(hour=23, minute=rng.choice((0, 30, 45, 59)), second=0)  # day edges


def make_population(rng, size, volumes, protect_tag, mix):
    """``size`` snapshots over ``volumes`` volumes; ``mix`` gives the rate of each kind of non-candidate."""
    volume_ids = ["vol-%05x" % number for number in range(volumes)]
    snapshots = []
    for number in range(size):
        tags = {"Team": "web"} if rng.random() < 0.1 else {}  # unrelated tags are ignored
        scope = rng.random()
        if scope >= mix["out_of_scope"]:
            tags[prune.POLICY_TAG] = POLICY
        elif scope < mix["out_of_scope"] / 2:
            tags[prune.POLICY_TAG] = OTHER_POLICY
        if rng.random() < mix["protect"]:
            tags[protect_tag] = rng.choice(("", "migration"))
        if rng.random() < 0.02:
            tags[rng.choice(PROTECT_TAGS)] = "other key"  # the other protect key only counts when it is the option
        roll = rng.random()
        state = "pending" if roll < mix["pending"] else "error" if roll < mix["pending"] * 1.5 else "completed"
        volume_id = DIRECT_VOLUME if rng.random() < mix["direct"] else rng.choice(volume_ids)
        if rng.random() < mix["lineage"]:
            # uploads and copies: a lineage of their own; one named like a real volume, one empty (held)
            tags[retention.LINEAGE_TAG] = rng.choice(("disk-a", "disk-b", "disk-c", volume_ids[0], ""))
        elif rng.random() < 0.01:
            tags[retention.COPY_SOURCE_TAG] = "snap-source"  # a copy without lineage: held
        snapshots.append({
            "SnapshotId": "snap-%017x" % rng.getrandbits(68) if rng.random() < 0.5 else "snap-%06d" % number,
            "VolumeId": volume_id,
            "StartTime": _start(rng),
            "State": state,
            "OwnerId": FOREIGN if rng.random() < mix["foreign"] else ACCOUNT,
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
        })
    # unique ids (the random ones could collide with each other in theory)
    seen = set()
    snapshots = [s for s in snapshots if not (s["SnapshotId"] in seen or seen.add(s["SnapshotId"]))]
    images = []
    ids = [s["SnapshotId"] for s in snapshots]
    for number in range(int(len(ids) * mix["ami"]) + rng.randrange(2)):
        mappings = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": rng.choice(ids) if ids else "snap-gone"}}]
        for extra in range(rng.randrange(3)):
            mappings.append({"DeviceName": "/dev/sd%s" % "bcd"[extra], "Ebs": {"SnapshotId": rng.choice(ids + ["snap-deleted"])}})
        mappings.append({"DeviceName": "/dev/sdz", "VirtualName": "ephemeral0"})
        images.append({"ImageId": "ami-%06d" % number, "BlockDeviceMappings": mappings})
    volume_tags = {}
    for volume_id in volume_ids:
        roll = rng.random()
        if roll < mix["tagged"]:
            volume_tags[volume_id] = {TAG_KEY: rng.choice(VALID_TAG_VALUES), "Name": volume_id}
        elif roll < mix["tagged"] + mix["held"]:
            volume_tags[volume_id] = {TAG_KEY: rng.choice(INVALID_TAG_VALUES)}
        elif rng.random() < 0.5:
            volume_tags[volume_id] = {"Name": volume_id}
    return Population(snapshots, images, volume_tags)


def mixes():
    rate = st.sampled_from((0.0, 0.02, 0.1, 0.3))
    return st.fixed_dictionaries({"out_of_scope": rate, "protect": rate, "pending": rate, "foreign": rate, "ami": rate,
                                  "tagged": st.sampled_from((0.0, 0.3, 0.8)), "held": st.sampled_from((0.0, 0.1, 0.3)),
                                  "direct": st.sampled_from((0.0, 0.02, 0.3)), "lineage": st.sampled_from((0.0, 0.05, 0.5))})


@st.composite
def retention_options(draw):
    counts = {name: draw(st.none() | st.integers(1, 40)) for name in retention.COUNT_RULES}
    within = draw(st.none() | st.sampled_from(("90m", "36h", "7 days", "2w", "400d")))
    if within is None and all(value is None for value in counts.values()):
        counts[draw(st.sampled_from(retention.COUNT_RULES))] = draw(st.integers(1, 40))
    options = dict(counts, keep_within=within, minimum=draw(st.integers(0, 8)), timezone=draw(st.sampled_from(ZONES)))
    return {key: value for key, value in options.items() if value is not None}


@st.composite
def module_options(draw):
    return {
        "policy": POLICY,
        "filters": {},
        "retention": draw(retention_options()),
        "retention_tag": draw(st.sampled_from((None, TAG_KEY))),
        "protect_tag": draw(st.sampled_from(PROTECT_TAGS)),
        "max_deletions": 100000,
        "max_concurrency": 4,
    }


@st.composite
def widened(draw, options):
    """Options that keep at least as much: a rule added, a count, the floor or the window raised."""
    rules = dict(options["retention"])
    choice = draw(st.sampled_from(retention.COUNT_RULES + ("keep_within", "minimum")))
    if choice in retention.COUNT_RULES:
        rules[choice] = rules.get(choice, 0) + draw(st.integers(1, 30))
    elif choice == "keep_within":
        current = retention.RetentionPolicy.from_options(options["retention"]).keep_within or timedelta(0)
        rules["keep_within"] = "%dm" % ((current + timedelta(minutes=draw(st.integers(1, 100000)))).total_seconds() // 60)
    else:
        rules["minimum"] = rules.get("minimum", 0) + draw(st.integers(1, 5))
    return dict(options, retention=rules)


# ------------------------------------------------------------------------------------------ the oracle

def plan(population, options):
    opts = prune.options_from_params(options)
    return prune.plan(population.snapshots, population.images, population.volume_tags, opts, NOW, ACCOUNT)


def summary(the_plan):
    return [(d.snapshot_id, d.action, d.reasons) for d in the_plan.decisions]


def deleted(the_plan):
    return {d.snapshot_id for d in the_plan.deletions}


def tag_dict(item):
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags") or []}


def group_of(item):
    """Which disk a snapshot belongs to, recomputed: its lineage tag, else a real volume, else None (held)."""
    tags = tag_dict(item)
    if retention.LINEAGE_TAG in tags:
        return "lineage:" + tags[retention.LINEAGE_TAG].strip() if tags[retention.LINEAGE_TAG].strip() else None
    if item["VolumeId"] in ("", DIRECT_VOLUME) or retention.COPY_SOURCE_TAG in tags:
        return None
    return item["VolumeId"]


def must_protect(item, options, ami_ids, held):
    tags = tag_dict(item)
    group = group_of(item)
    # blockwise:protect always protects; a custom protect_tag adds to it
    protect_keys = {options["protect_tag"], retention.PROTECT_TAG}
    return (item["State"] != "completed" or item["SnapshotId"] in ami_ids or bool(protect_keys & set(tags))
            or item["OwnerId"] != ACCOUNT or tags.get(prune.POLICY_TAG) != POLICY or group is None or group in held)


def check_safety(population, options, the_plan):
    """Recompute, without the engine, what may never be deleted, and compare."""
    ami_ids = {m["Ebs"]["SnapshotId"] for image in population.images for m in image["BlockDeviceMappings"] if "Ebs" in m}
    tag_key = options["retention_tag"]
    held, tag_counts = set(), {}
    for volume_id, tags in population.volume_tags.items():
        if tag_key and tag_key in tags:
            value = tags[tag_key].strip()
            if value.isdigit() and int(value) >= 1:
                tag_counts[volume_id] = int(value)
            else:
                held.add(volume_id)
    rules = retention.RetentionPolicy.from_options(options["retention"])
    by_id = {item["SnapshotId"]: item for item in population.snapshots}
    assert sorted(d.snapshot_id for d in the_plan.decisions) == sorted(by_id)
    assert set(the_plan.held) == held

    candidates = {}
    for item in population.snapshots:
        if not must_protect(item, options, ami_ids, held):
            candidates.setdefault(group_of(item), []).append(item)
    floor = {}
    for group, items in candidates.items():
        items.sort(key=lambda item: (item["StartTime"], item["SnapshotId"]), reverse=True)
        keep_last = tag_counts.get(group, rules.keep_last or 0)
        for rank, item in enumerate(items):
            floor[item["SnapshotId"]] = (rank < rules.minimum, rank < keep_last)
    for decision in the_plan.decisions:
        item = by_id[decision.snapshot_id]
        protected = must_protect(item, options, ami_ids, held)
        assert (decision.action == retention.PROTECT) == protected, (decision, item)
        if protected:
            if group_of(item) is None:
                assert retention.REASON_NO_LINEAGE in decision.reasons, decision
            continue
        assert decision.group == group_of(item), decision
        in_minimum, in_keep_last = floor[decision.snapshot_id]
        if in_minimum:
            assert decision.action == retention.KEEP and retention.REASON_MINIMUM in decision.reasons, decision
        if in_keep_last:
            assert decision.action == retention.KEEP and "keep_last" in decision.reasons, decision
        if decision.action == retention.DELETE:
            assert decision.reasons == (retention.REASON_DELETE,)
            if rules.keep_within is not None:
                assert item["StartTime"] < NOW - rules.keep_within, decision


def check_all(population, options, wider, rng):
    first = plan(population, options)
    check_safety(population, options, first)
    # deterministic: the order of what EC2 returns does not matter
    assert summary(plan(population.shuffled(rng), options)) == summary(first)
    # a second run over what is left deletes nothing and keeps the same snapshots
    gone = deleted(first)
    second = plan(population.without(gone), options)
    assert not second.deletions
    assert {d.snapshot_id for d in second.of(retention.KEEP)} == {d.snapshot_id for d in first.of(retention.KEEP)}
    # keeping more never deletes more
    more = plan(population, wider)
    check_safety(population, wider, more)
    assert deleted(more) <= gone


def with_protected_extras(population, rng, count, options):
    """The population plus ``count`` snapshots that are protected for one reason or another."""
    extra = []
    volumes = sorted({item["VolumeId"] for item in population.snapshots}) or ["vol-extra"]
    images = list(population.images)
    for number in range(count):
        item = {"SnapshotId": "snap-x%06d" % number, "VolumeId": rng.choice(volumes), "StartTime": _start(rng),
                "State": "completed", "OwnerId": ACCOUNT, "Tags": [{"Key": prune.POLICY_TAG, "Value": POLICY}]}
        why = number % 6
        if why == 5:
            item["VolumeId"] = DIRECT_VOLUME  # an upload without lineage: held
        elif why == 0:
            item["State"] = rng.choice(("pending", "error"))
        elif why == 1:
            item["Tags"].append({"Key": options["protect_tag"], "Value": ""})
        elif why == 2:
            item["OwnerId"] = FOREIGN
        elif why == 3:
            item["Tags"] = [{"Key": prune.POLICY_TAG, "Value": OTHER_POLICY}]
        else:
            images.append({"ImageId": "ami-x%06d" % number, "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": item["SnapshotId"]}}]})
        extra.append(item)
    return Population(population.snapshots + extra, images, population.volume_tags)


# ------------------------------------------------------------------------------------------ tests

@FAST
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(0, 120), volumes=st.integers(1, 6), mix=mixes(), data=st.data())
def test_small_populations(seed, size, volumes, mix, data):
    options = data.draw(module_options())
    rng = random.Random(seed)
    population = make_population(rng, size, volumes, options["protect_tag"], mix)
    check_all(population, options, data.draw(widened(options)), rng)


@SLOTS
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 80), count=st.integers(1, 40), mix=mixes(), data=st.data())
def test_protected_snapshots_never_use_up_a_slot(seed, size, count, mix, data):
    options = data.draw(module_options())
    rng = random.Random(seed)
    population = make_population(rng, size, 3, options["protect_tag"], mix)
    base = {d.snapshot_id: (d.action, d.reasons) for d in plan(population, options).decisions}
    extended = plan(with_protected_extras(population, rng, count, options), options)
    for decision in extended.decisions:
        if decision.snapshot_id in base:
            assert (decision.action, decision.reasons) == base[decision.snapshot_id]
        else:
            assert decision.action == retention.PROTECT


@LARGE
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(2000, 10000), volumes=st.integers(1, 300), mix=mixes(), data=st.data())
def test_large_populations_up_to_ten_thousand_snapshots(seed, size, volumes, mix, data):
    options = data.draw(module_options())
    rng = random.Random(seed)
    population = make_population(rng, size, volumes, options["protect_tag"], mix)
    check_all(population, options, data.draw(widened(options)), rng)


def test_ten_thousand_snapshots_of_one_volume():
    """The worst case for one group: every snapshot on one volume, every kind of protection mixed in."""
    rng = random.Random(7)
    mix = {"out_of_scope": 0.1, "protect": 0.05, "pending": 0.05, "foreign": 0.05, "ami": 0.05, "tagged": 1.0, "held": 0.0,
           "direct": 0.0, "lineage": 0.0}
    options = {"policy": POLICY, "filters": {}, "retention": {"keep_daily": 30, "keep_weekly": 8, "keep_monthly": 24, "minimum": 3,
                                                              "timezone": "Europe/Berlin"},
               "retention_tag": TAG_KEY, "protect_tag": retention.PROTECT_TAG, "max_deletions": 100000, "max_concurrency": 4}
    population = make_population(rng, 10000, 1, options["protect_tag"], mix)
    wider = dict(options, retention=dict(options["retention"], keep_yearly=3))
    check_all(population, options, wider, rng)
    first = plan(population, options)
    assert len(first.deletions) > 5000  # the rules keep a few dozen of thousands
    assert prune.circuit_breaker(first, len(first.deletions)) is None
    assert "nothing was deleted" in prune.circuit_breaker(first, len(first.deletions) - 1)
