# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Second adversarial pass on scheduling, retention, AMI snapshot names, encryption and the playbooks.

Every attack goes through the public interface: real ``ansible-playbook`` runs against the local endpoint,
with the endpoint's controls (fault injection, back-dated snapshots, foreign snapshots) and, where an attack
needs AWS to be slower or one run to be slower than another, a second front door to the same endpoint that
holds chosen requests back (``SlowDoor``). Each attack tries to delete a snapshot that must stay, miss a
backup, get a false success, leave a mess, or crash. Findings are marked ``xfail(strict=True)`` with the
finding as the reason; attacks that held are plain tests.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.etree import ElementTree

import pytest
from werkzeug.serving import make_server

from tests.functional.conftest import playbook, playbook_file  # noqa: F401  pylint: disable=unused-import
from tests.functional.harness import ansible_env, play, run_playbook
from tests.localaws.control import CONTROL_PREFIX
from tests.localaws.server import QuietRequestHandler
from tests.localaws.wire import AwsRequest

POLICY = "blockwise.ebs.ebs_snapshot_policy"
PRUNE = "blockwise.ebs.ebs_snapshot_prune"
ENCRYPTION = "blockwise.ebs.ebs_default_encryption"
POLICY_TAG = "blockwise:policy"
PROTECT_TAG = "blockwise:protect"
AZ = "us-east-1a"
UTC = timezone.utc


# ------------------------------------------------------------------------------------------ helpers

def task(module, title, **params):
    return {"name": title, module: params, "register": "out", "ignore_errors": True}


def tag_list(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def volume(ec2, tags=None):
    spec = [{"ResourceType": "volume", "Tags": tag_list(tags)}] if tags else []
    return ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=spec)["VolumeId"]


def snapshot(aws, ec2, volume_id, when, tags):
    """A completed snapshot of ``volume_id`` with ``tags``, back-dated to ``when``."""
    snap_id = ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}])["SnapshotId"]
    aws.backdate_snapshot(snap_id, when)
    return snap_id


def policy_snapshots(ec2, name="daily", volume_id=None):
    filters = [{"Name": "tag:" + POLICY_TAG, "Values": [name]}]
    if volume_id:
        filters.append({"Name": "volume-id", "Values": [volume_id]})
    return {item["SnapshotId"]: item for item in ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"]}


def existing(ec2):
    return {item["SnapshotId"] for item in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


class SlowDoor:
    """A second front door to the endpoint (same moto state, counters and faults) that can hold requests back.

    ``before(action, hook)`` runs ``hook(request)`` before a call of ``action`` made through this door reaches the
    endpoint, ``after(action, hook)`` runs ``hook(request, body)`` after the endpoint answered and before the answer
    goes back; an ``after`` hook may return new body bytes or a ``(status, body)`` pair, to model an answer AWS gives
    differently (anything else it returns is ignored). Calls made through the main endpoint are not affected, so one
    run can be made slower than another.
    """

    def __init__(self, localaws):
        self._app = localaws.middleware
        self._before, self._after = {}, {}
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=QuietRequestHandler)
        self.endpoint_url = "http://127.0.0.1:{0}".format(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-door", daemon=True)
        self._thread.start()

    def before(self, action, hook):
        self._before[action] = hook

    def after(self, action, hook):
        self._after[action] = hook

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self._app(environ, start_response)
        request = AwsRequest(environ)
        if request.action in self._before:
            self._before[request.action](request)
        if request.action not in self._after:
            return self._app(environ, start_response)
        captured = {}

        def capture(status, headers, exc_info=None):  # pylint: disable=unused-argument
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self._app(environ, capture))
        status = captured["status"]
        replaced = self._after[request.action](request, body)
        if isinstance(replaced, tuple) and len(replaced) == 2 and isinstance(replaced[0], str):
            status, replaced = replaced
        if isinstance(replaced, bytes):
            body = replaced
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def doors(aws):
    """``doors()`` opens one more ``SlowDoor`` to the test's endpoint; all are closed after the test."""
    opened = []

    def _open():
        opened.append(SlowDoor(aws))
        return opened[-1]

    yield _open
    for front in opened:
        front.stop()


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def side_by_side(*jobs):
    """Run the zero-argument callables at the same time; their results in order."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


def days_ago(days, hour=2):
    return (datetime.now(UTC) - timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


# ------------------------------------------------------------------------------------------ protections

def test_a_custom_protect_tag_still_honours_the_collections_own_protect_tag(aws, playbook):  # noqa: F811
    """A user who adopts an older tool's protect tag (``protect_tag: DoNotDelete``) must not lose the snapshots
    tagged ``blockwise:protect`` by hand, as the AMI snapshot guide tells them to: the collection documents
    ``blockwise:protect`` (any value) as "never pruned" (docs/architecture.md, docs/ami-snapshot-names.md)."""
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    newest = snapshot(aws, ec2, vol, days_ago(1), {POLICY_TAG: "daily"})
    guarded = snapshot(aws, ec2, vol, days_ago(5), {POLICY_TAG: "daily", PROTECT_TAG: "yes"})
    legacy = snapshot(aws, ec2, vol, days_ago(6), {POLICY_TAG: "daily", "DoNotDelete": "true"})
    plain = snapshot(aws, ec2, vol, days_ago(7), {POLICY_TAG: "daily"})

    out = playbook([task(PRUNE, "prune", policy="daily", retention={"keep_last": 1}, protect_tag="DoNotDelete")])

    res = out.result("prune")
    assert not res.get("failed"), res
    assert [item["snapshot_id"] for item in res["deleted"]] == [plain], res  # only the unprotected old one goes
    assert {newest, guarded, legacy} <= existing(ec2)


# ------------------------------------------------------------------------------------------ playbook inputs

def seeded_volume_with_history(aws, ec2, days=6):
    """A ``backup=daily`` volume with one ``daily`` policy snapshot a day for ``days`` days (oldest first)."""
    vol = volume(ec2, {"Name": "data", "backup": "daily"})
    return vol, [snapshot(aws, ec2, vol, days_ago(day), {POLICY_TAG: "daily"}) for day in range(days, 0, -1)]


SNAPSHOT_STEP = "blockwise.ebs.snapshot_schedule : Take the snapshots that are due"
PRUNE_STEP = "blockwise.ebs.snapshot_schedule : Prune by retention"
PAUSED = {"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d", "retention": {"keep_last": 1}}


@pytest.mark.parametrize("switch", [{"prune": "false"}, {"enabled": "false"}, {"prune": "no"}])
def test_a_policy_switched_off_with_a_string_boolean_deletes_nothing(aws, playbook_file, switch):  # noqa: F811
    ec2 = aws.client("ec2")
    dummy, history = seeded_volume_with_history(aws, ec2)

    out = playbook_file("backup", {"policies": [dict(PAUSED, **switch)]})

    assert set(history) <= existing(ec2), out  # nothing of the history was pruned
    assert out.rc == 0, out


def test_a_policy_switched_off_with_a_real_boolean_deletes_nothing(aws, playbook_file):  # noqa: F811
    ec2 = aws.client("ec2")
    dummy, history = seeded_volume_with_history(aws, ec2)

    out = playbook_file("backup", {"policies": [dict(PAUSED, prune=False)]})

    assert out.rc == 0, out
    assert set(history) <= existing(ec2)


def test_policies_as_empty_text_is_the_same_as_the_empty_list(aws, playbook_file):  # noqa: F811
    ec2 = aws.client("ec2")
    vol, history = seeded_volume_with_history(aws, ec2, days=3)

    as_list = playbook_file("backup", {"policies": [], "steps": ["snapshot"]}, check=True)
    as_text = playbook_file("backup", {"policies": "[]", "steps": ["snapshot"]}, check=True)

    listed = as_list.result(SNAPSHOT_STEP)
    assert listed["results"] and listed["results"][0]["summary"]["created"] == 1, listed
    texted = as_text.result(SNAPSHOT_STEP)
    assert as_text.rc != 0 or texted.get("results"), texted  # either refused, or the same backup


# ------------------------------------------------------------------------------------------ overlapping runs

SELECT = {"name": "daily", "volume_filters": {"tag:backup": "yes"}, "frequency": "1d"}


def history_of(aws, ec2, vol, days=(3, 2, 1)):
    """Policy snapshots of ``vol`` taken ``days`` days (and an hour) ago: the volume is due now."""
    now = datetime.now(UTC)
    return [snapshot(aws, ec2, vol, now - timedelta(days=day, hours=1), {POLICY_TAG: "daily"}) for day in days]


def after_snapshot_of(ec2, vol, known):
    """Wait until a policy snapshot of ``vol`` other than ``known`` exists, then one more second (StartTime has a
    resolution of a second: the next snapshot is then the newer one whatever the ids)."""
    wait_for(lambda: set(policy_snapshots(ec2, volume_id=vol)) - set(known), what="another run's snapshot")
    time.sleep(1.1)


def workdir(tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    return path


def test_a_prune_between_two_overlapping_runs_never_leaves_fewer_than_minimum(aws, doors, tmp_path):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol)
    door_a, door_b = doors(), doors()
    b_has_read, a_finished = threading.Event(), threading.Event()
    # Both runs find the volume due (A creates only after B has read); B's CreateSnapshot reaches EC2 just after
    # A's, so A's is the older snapshot of the period; B's answer is slow: it arrives after A's run has ended.
    door_b.after("DescribeSnapshots", lambda request, body: b_has_read.set())
    door_a.before("CreateSnapshot", lambda request: b_has_read.wait(60))
    door_b.before("CreateSnapshot", lambda request: after_snapshot_of(ec2, vol, history))
    door_b.after("CreateSnapshot", lambda request, body: a_finished.wait(120))
    prune_task = task(PRUNE, "prune", policy="daily", retention={"keep_last": 2, "minimum": 2})

    def run_a():
        try:
            return run_playbook(door_a.endpoint_url, [task(POLICY, "policy", **SELECT), prune_task], workdir(tmp_path, "a"))
        finally:
            a_finished.set()

    def run_b():
        return run_playbook(door_b.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, "b"))

    out_a, out_b = side_by_side(run_a, run_b)

    assert out_a.rc == 0 and out_b.rc == 0, (out_a, out_b)
    assert out_b.result("policy")["superseded"], out_b.result("policy")  # the scenario happened: B removed its duplicate
    left = policy_snapshots(ec2, volume_id=vol)
    assert len(left) >= 2, (sorted(left), out_a.result("prune")["deleted"])  # minimum: 2
    assert history[-1] in left  # keep_last 2: today's and yesterday's


class ListingLag:
    """EC2's eventual consistency on a ``SlowDoor``: DescribeSnapshots does not list a snapshot until ``lag`` seconds
    after the CreateSnapshot that made it. AWS: "if you run a command to create a resource, it will eventually be
    visible to other commands", and callers should wait "starting with a couple of seconds ... up to a few minutes"
    (https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html)."""

    def __init__(self, front, lag):
        self.lag = lag
        self.created = {}
        front.after("CreateSnapshot", self._record)
        front.after("DescribeSnapshots", self._hide)

    def _record(self, request, body):
        for snap_id in re.findall(rb"<snapshotId>(snap-[0-9a-f]+)</snapshotId>", body):
            self.created[snap_id.decode()] = time.monotonic()

    def _hide(self, request, body):
        fresh = {snap_id for snap_id, when in self.created.items() if time.monotonic() - when < self.lag}
        if not fresh:
            return None
        root = ElementTree.fromstring(body)
        namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        for snapshot_set in root.iter(namespace + "snapshotSet"):
            for item in list(snapshot_set):
                if item.findtext(namespace + "snapshotId") in fresh:
                    snapshot_set.remove(item)
        if namespace:
            ElementTree.register_namespace("", namespace[1:-1])
        return ElementTree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_overlapping_runs_leave_one_snapshot_when_ec2_lists_new_snapshots_late(aws, doors, tmp_path):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol, days=(1,))
    front = doors()
    ListingLag(front, lag=8.0)

    def run(name):
        return run_playbook(front.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, name))

    out_a, out_b = side_by_side(lambda: run("a"), lambda: run("b"))
    time.sleep(8.0)
    again = run("c")

    assert out_a.rc == 0 and out_b.rc == 0 and again.rc == 0, (out_a, out_b, again)
    assert again.result("policy")["created"] == []
    today = set(policy_snapshots(ec2, volume_id=vol)) - set(history)
    assert len(today) == 1, sorted(today)  # at most one snapshot per volume and due period


def test_overlapping_runs_leave_one_snapshot_when_ec2_lists_new_snapshots_within_the_wait(aws, doors, tmp_path):
    """The same race with a listing lag shorter than the check's wait: the design holds."""
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol, days=(1,))
    front = doors()
    ListingLag(front, lag=1.5)

    def run(name):
        return run_playbook(front.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, name))

    out_a, out_b = side_by_side(lambda: run("a"), lambda: run("b"))

    assert out_a.rc == 0 and out_b.rc == 0, (out_a, out_b)
    today = set(policy_snapshots(ec2, volume_id=vol)) - set(history)
    assert len(today) == 1, sorted(today)
    created = [item["snapshot_id"] for out in (out_a, out_b) for item in out.result("policy")["created"]]
    assert created == sorted(today)  # the runs' reports add up to what exists


def start_playbook(endpoint_url, tasks, path):
    """``ansible-playbook`` in a session of its own (so that the test can kill it with its module processes)."""
    playbook_path = path / "playbook.yml"
    playbook_path.write_text(json.dumps([play(endpoint_url, tasks)], default=str))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook_path)]
    return subprocess.Popen(cmd, cwd=str(path), env=ansible_env(endpoint_url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_a_run_killed_before_its_duplicate_check_leaves_no_duplicate_for_good(aws, doors, tmp_path):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol, days=(1,))
    door_a, door_b = doors(), doors()
    b_has_read, b_created, release = threading.Event(), threading.Event(), threading.Event()
    door_b.after("DescribeSnapshots", lambda request, body: b_has_read.set())
    door_a.before("CreateSnapshot", lambda request: b_has_read.wait(60))
    door_b.before("CreateSnapshot", lambda request: after_snapshot_of(ec2, vol, history))
    door_b.after("CreateSnapshot", lambda request, body: (b_created.set(), release.wait(60)))
    victim = start_playbook(door_b.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, "b"))
    try:
        out_a = run_playbook(door_a.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, "a"))
        assert b_created.wait(60)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)  # killed after creating, before its check (a crash, an OOM, a reboot)
        victim.wait()
        release.set()

    assert out_a.rc == 0, out_a
    again = run_playbook(aws.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, "c"))
    assert again.rc == 0, again
    today = set(policy_snapshots(ec2, volume_id=vol)) - set(history)
    assert len(today) == 1, sorted(today)


def test_a_run_whose_create_answer_was_lost_reports_the_snapshot_it_made(aws, doors, tmp_path):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol, days=(1,))
    front = doors()
    calls = []
    lost = (b"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>InternalError</Code>"
            b"<Message>An internal error has occurred</Message></Error></Errors><RequestID>lost</RequestID></Response>")

    def lose_first_answer(request, body):
        calls.append(body)
        if len(calls) == 1:
            time.sleep(1.1)  # the retry's snapshot starts in a later second
            return "500 Internal Server Error", lost
        return None

    front.after("CreateSnapshot", lose_first_answer)
    out = run_playbook(front.endpoint_url, [task(POLICY, "policy", **SELECT)], workdir(tmp_path, "a"))

    res = out.result("policy")
    assert out.rc == 0 and len(calls) == 2, (out, res)  # the scenario happened: the call was retried
    today = set(policy_snapshots(ec2, volume_id=vol)) - set(history)
    assert len(today) == 1, sorted(today)  # the retry's duplicate was removed: no mess
    assert res["changed"] is True and [item["snapshot_id"] for item in res["created"]] == sorted(today), res


# ------------------------------------------------------------------------------------------ check mode predicts

def planned_and_done(out):
    res = out.result(PRUNE_STEP)["results"][0]
    return sorted(item["snapshot_id"] for item in res["deleted"])


def test_backup_check_mode_predicts_exactly_what_the_real_run_deletes(aws, playbook_file):  # noqa: F811
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history_of(aws, ec2, vol, days=(5, 4, 3, 2, 1))
    policies = [dict(SELECT, retention={"keep_last": 3})]

    audit = playbook_file("backup", {"policies": policies}, check=True)
    real = playbook_file("backup", {"policies": policies})

    assert audit.rc == 0 and real.rc == 0, (audit, real)
    assert audit.result(SNAPSHOT_STEP)["results"][0]["summary"]["created"] == 1
    assert planned_and_done(audit) == planned_and_done(real)


# ------------------------------------------------------------------------------------------ odd tag values

# retention_tag value -> how many of the volume's 4 snapshots a keep_last 1 prune keeps (4: the volume is held)
GENERATIONS = {"2": 2, " 3 ": 3, "0002": 2, "seven": 4, "0": 4, "-1": 4, "": 4, "\u0667": 4, "\uff17": 4, "2.0": 4,
               "1e1": 4, "+2": 4, "99999999999999999999": 4}


def test_nonsense_retention_tag_values_hold_their_volume_and_unicode_digits_are_not_numbers(aws, playbook):  # noqa: F811
    ec2 = aws.client("ec2")
    history = {}
    for value in GENERATIONS:
        vol = volume(ec2, {"Gens": value, "Name": "v" + value})
        history[vol] = (value, [snapshot(aws, ec2, vol, days_ago(day), {POLICY_TAG: "daily"}) for day in (4, 3, 2, 1)])

    out = playbook([task(PRUNE, "prune", policy="daily", retention={"keep_last": 1}, retention_tag="Gens", max_deletions=100)])

    res = out.result("prune")
    assert not res.get("failed"), res
    left = existing(ec2)
    for vol, (value, snaps) in history.items():
        assert len(set(snaps) & left) == GENERATIONS[value], (repr(value), res["volumes"].get(vol))
        assert set(snaps[-GENERATIONS[value]:]) <= left  # the newest ones stay


# ------------------------------------------------------------------------------------------ wait: true

def test_wait_never_reports_a_snapshot_that_vanished_as_created(aws, doors, tmp_path):
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history_of(aws, ec2, vol, days=(1,))
    front = doors()

    def delete_soon(request, body):
        snap_id = re.search(rb"<snapshotId>(snap-[0-9a-f]+)</snapshotId>", body).group(1).decode()
        threading.Timer(0.5, lambda: ec2.delete_snapshot(SnapshotId=snap_id)).start()

    front.after("CreateSnapshot", delete_soon)
    out = run_playbook(front.endpoint_url, [task(POLICY, "policy", wait=True, **SELECT)], workdir(tmp_path, "a"))

    res = out.result("policy")
    gone = [item["snapshot_id"] for item in res.get("created", []) if item["snapshot_id"] not in existing(ec2)]
    assert res.get("failed") or not gone, res  # a vanished snapshot is never reported as a backup taken


# ------------------------------------------------------------------------------------------ split schedules

def test_a_prune_only_job_never_prunes_an_overdue_policy_by_age(aws, playbook_file):  # noqa: F811
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    history = history_of(aws, ec2, vol, days=(6, 5, 4))  # the last backup that worked is 4 days old: 3 missed
    policies = [dict(SELECT, retention={"keep_within": "3 days", "minimum": 1})]

    out = playbook_file("backup", {"policies": policies, "steps": ["prune"]})

    assert out.rc == 0, out
    assert set(history) <= existing(ec2), out.result(PRUNE_STEP)["results"][0]["deleted"]


# ------------------------------------------------------------------------------------------ attacks that held

def test_snapshots_with_the_same_start_time_prune_the_same_way_in_check_mode_and_twice(aws, playbook):  # noqa: F811
    ec2 = aws.client("ec2")
    vol = volume(ec2, {"backup": "yes"})
    same = days_ago(2)
    snaps = [snapshot(aws, ec2, vol, same, {POLICY_TAG: "daily"}) for dummy in range(6)]
    prune = task(PRUNE, "prune", policy="daily", retention={"keep_last": 2, "minimum": 1})

    audit = playbook([prune], check=True)
    real = playbook([prune])
    again = playbook([prune])

    planned = sorted(item["snapshot_id"] for item in audit.result("prune")["deleted"])
    deleted = sorted(item["snapshot_id"] for item in real.result("prune")["deleted"])
    assert len(planned) == 4 and planned == deleted, (planned, deleted)
    assert existing(ec2) == set(snaps) - set(deleted)
    assert again.result("prune")["changed"] is False and again.result("prune")["deleted"] == []


def test_encryption_with_the_key_disabled_in_one_region_changes_no_region(aws, playbook):  # noqa: F811
    for region in ("us-east-1", "eu-west-1"):
        kms = aws.client("kms", region=region)
        key = kms.create_key(Description="ebs default")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/ebs-default", TargetKeyId=key)
        if region == "eu-west-1":
            kms.disable_key(KeyId=key)
    aws.reset_counters()

    out = playbook([task(ENCRYPTION, "encryption", regions=["us-east-1", "eu-west-1"], kms_key_id="alias/ebs-default")])

    res = out.result("encryption")
    assert res.get("failed") and "eu-west-1" in res["msg"] and "kms_key_id" in res["msg"], res
    assert aws.mutating_calls() == {}, aws.mutating_calls()
    for region in ("us-east-1", "eu-west-1"):
        assert aws.client("ec2", region=region).get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
