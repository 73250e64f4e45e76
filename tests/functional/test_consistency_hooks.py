# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""snapshot_schedule consistency hooks (freeze / snapshot / always thaw, host-side timeout) through ansible-playbook.

The freeze and thaw are harmless stand-ins that append "<step> <unix time>" to a log file; the snapshot start is
the StartTime EC2 reports. The host is localhost (delegation to the instance's inventory host).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.functional.harness import ansible_env, play
from tests.functional.test_snapshot_policy import instance

POLICY = "consistent"


def hooks(log, timeout=30, freeze_extra=""):
    record = "echo {0} $(date +%s.%N) >> " + str(log)
    return {"freeze": record.format("freeze") + "; sleep 1" + freeze_extra, "thaw": record.format("thaw"),
            "host": "localhost", "timeout": timeout}


def policy(consistency, **extra):
    return dict({"name": POLICY, "instance_filters": {"tag:app": "db"}, "exclude_boot_volume": True, "frequency": "1d",
                 "retention": {"keep_last": 5}, "consistency": consistency}, **extra)


def role_task(policies, steps=("snapshot",)):
    return {"name": "schedule", "ansible.builtin.include_role": {"name": "blockwise.ebs.snapshot_schedule"},
            "vars": {"snapshot_schedule_policies": policies, "snapshot_schedule_steps": list(steps)}}


def entries(log):
    if not Path(log).exists():
        return []
    return [(line.split()[0], float(line.split()[1])) for line in Path(log).read_text().splitlines() if line.strip()]


def started(aws):
    ec2 = aws.client("ec2")
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:blockwise:policy", "Values": [POLICY]}])["Snapshots"]
    return [s["StartTime"].timestamp() for s in snaps]


@pytest.fixture
def db(aws):
    return instance(aws.client("ec2"), "db-1", data_volumes=2, tags={"app": "db"})


def test_freeze_then_snapshot_then_thaw_and_the_watchdog_is_cancelled(aws, playbook, db, tmp_path):
    log = tmp_path / "hooks.log"
    aws.reset_counters()
    run = playbook([role_task([policy(hooks(log, timeout=12))])])
    assert run.rc == 0, [(n, str(r.get("msg"))[:600]) for n, r in zip(run.names, run.results) if r.get("failed")]
    steps = entries(log)
    assert [s for s, _when in steps] == ["freeze", "thaw"]
    starts = started(aws)
    assert len(starts) == 2 and aws.mutating_calls() == {"ec2:CreateSnapshots": 1}
    freeze_at, thaw_at = steps[0][1], steps[1][1]
    # EC2 StartTime has whole seconds at best: the freeze sleeps 1 s after recording, so a start after the freeze
    # is after it even when truncated.
    assert all(freeze_at < start <= thaw_at for start in starts), (steps, starts)
    res = run.result("blockwise.ebs.snapshot_schedule : Record the policy's result")["ansible_facts"]
    entry = res["snapshot_schedule_hook_results"][0]
    assert entry["failed"] is False and entry["consistency"] == {"watchdog": "cancelled", "thawed": True}
    # The host-side thaw was cancelled: after the timeout, still one thaw.
    time.sleep(max(0.0, freeze_at + 13 - time.time()))
    assert [s for s, _when in entries(log)] == ["freeze", "thaw"]
    # Nothing due the second time: no freeze at all.
    again = playbook([role_task([policy(hooks(log, timeout=12))])])
    assert again.rc == 0, again
    assert [s for s, _when in entries(log)] == ["freeze", "thaw"] and len(started(aws)) == 2


def test_thaw_runs_when_the_snapshots_fail_and_the_step_fails(aws, playbook, db, tmp_path):
    log = tmp_path / "hooks.log"
    aws.inject_error("CreateSnapshots", status=403, code="UnauthorizedOperation", message="not allowed", count=1)
    run = playbook([role_task([policy(hooks(log))])])
    assert run.rc != 0
    assert [s for s, _when in entries(log)] == ["freeze", "thaw"] and started(aws) == []
    fail = run.result("blockwise.ebs.snapshot_schedule : Fail naming each region and step that failed")
    assert POLICY + " snapshot" in fail["msg"] and "Take the snapshots of the policy" in fail["msg"]


def test_thaw_runs_when_the_freeze_fails(aws, playbook, db, tmp_path):
    log = tmp_path / "hooks.log"
    run = playbook([role_task([policy(hooks(log, freeze_extra="; exit 3"))])])
    assert run.rc != 0
    assert [s for s, _when in entries(log)] == ["freeze", "thaw"] and started(aws) == []


def test_check_mode_neither_freezes_nor_snapshots(aws, playbook, db, tmp_path):
    log = tmp_path / "hooks.log"
    aws.reset_counters()
    run = playbook([role_task([policy(hooks(log))])], check=True)
    assert run.rc == 0, [(n, str(r.get("msg"))[:600]) for n, r in zip(run.names, run.results) if r.get("failed")]
    assert entries(log) == [] and aws.mutating_calls() == {}
    summary = run.result("blockwise.ebs.snapshot_schedule : Build the summary of the snapshots and the retention per region and policy")
    assert any("2 snapshot(s) would be taken" in line for line in summary["ansible_facts"]["snapshot_schedule_summary"])


def test_a_freeze_that_outlasts_the_timeout_is_thawed_by_the_host_and_reported(aws, playbook, db, tmp_path):
    log = tmp_path / "hooks.log"
    aws.set_faults(latency=12.0, actions=["CreateSnapshots"])
    run = playbook([role_task([policy(hooks(log, timeout=5))])])
    aws.clear_faults()
    assert run.rc != 0
    steps = entries(log)
    assert [s for s, _when in steps] == ["freeze", "thaw", "thaw"]
    assert steps[1][1] - steps[0][1] >= 4  # the host's own thaw, after the timeout, before the snapshots returned
    fail = run.result("blockwise.ebs.snapshot_schedule : Fail naming each region and step that failed")
    assert "outlasted consistency.timeout" in fail["msg"]


def test_a_controller_killed_mid_snapshot_leaves_nothing_frozen(aws, db, tmp_path):
    log = tmp_path / "hooks.log"
    aws.set_faults(latency=15.0, actions=["CreateSnapshots"])
    path = tmp_path / "playbook.yml"
    path.write_text(json.dumps([play(aws.endpoint_url, [role_task([policy(hooks(log, timeout=6))])])]))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), str(path)], cwd=str(tmp_path),
                            env=ansible_env(aws.endpoint_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not entries(log) and time.time() < deadline:
            time.sleep(0.2)
        assert [s for s, _when in entries(log)] == ["freeze"]
        time.sleep(1.5)  # the snapshots are being started (15 s of latency)
        os.killpg(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=30)
        assert [s for s, _when in entries(log)] == ["freeze"]  # the controller never thawed
        deadline = time.time() + 15
        while len(entries(log)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        steps = entries(log)
        assert [s for s, _when in steps] == ["freeze", "thaw"] and steps[1][1] - steps[0][1] >= 4
        # The module process of the killed run may outlive it (it is not in the controller's process group) and
        # finish its requests: let the endpoint's request counts settle before the next test counts requests.
        time.sleep(max(0.0, killed_at + 16 - time.time()))
        last, stable_since = aws.counters(), time.time()
        while time.time() - stable_since < 4 and time.time() < killed_at + 90:
            time.sleep(0.5)
            now_counts = aws.counters()
            if now_counts != last:
                last, stable_since = now_counts, time.time()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        aws.clear_faults()


def test_bad_hooks_fail_naming_the_key_before_any_aws_call(aws, playbook, tmp_path):
    log = tmp_path / "hooks.log"
    cases = [({"freeze": "", "thaw": "true", "host": "localhost", "timeout": 5}, "consistency.freeze"),
             ({"freeze": "true", "thaw": "true", "host": "localhost", "timeout": 0}, "consistency.timeout"),
             ({"freeze": "true", "thaw": "true", "host": "no-such-host", "timeout": 5}, "no-such-host"),
             ({"freeze": "true", "thaw": "thaw.yml", "host": "localhost", "timeout": 5}, "consistency.watchdog")]
    for consistency, named in cases:
        aws.reset_counters()
        run = playbook([role_task([policy(consistency)])])
        assert run.rc != 0 and named in run.stdout, (named, run)
        assert aws.counters() == {} and entries(log) == [], named


def test_check_mode_set_by_the_play_neither_freezes_nor_snapshots(aws, playbook, db, tmp_path):
    """The audit runs snapshot_schedule in a play with `check_mode: true` (ansible_check_mode is then false)."""
    log = tmp_path / "hooks.log"
    aws.reset_counters()
    run = playbook([{"name": "in check mode", "check_mode": True, "block": [role_task([policy(hooks(log))])]}])
    assert run.rc == 0, [(n, str(r.get("msg"))[:600]) for n, r in zip(run.names, run.results) if r.get("failed")]
    assert entries(log) == [] and aws.mutating_calls() == {}
    entry = run.result("blockwise.ebs.snapshot_schedule : Record the policy's result")["ansible_facts"]["snapshot_schedule_hook_results"][0]
    assert entry["failed"] is False and entry["consistency"]["watchdog"] is None


def test_hooked_and_plain_policies_share_one_summary_and_prune(aws, playbook, db, tmp_path):
    """A hooked policy's result joins the others': one summary line each, and its prune runs after its snapshots."""
    from tests.functional.test_snapshot_policy import volume  # pylint: disable=import-outside-toplevel
    log = tmp_path / "hooks.log"
    volume(aws.client("ec2"), {"backup": "plain"})
    plain = {"name": "plain", "target_tags": {"backup": "plain"}, "frequency": "1d", "retention": {"keep_last": 3}}
    run = playbook([role_task([plain, policy(hooks(log))], steps=("snapshot", "prune"))])
    assert run.rc == 0, [(n, str(r.get("msg"))[:600]) for n, r in zip(run.names, run.results) if r.get("failed")]
    summary = run.result("blockwise.ebs.snapshot_schedule : Build the summary of the snapshots and the retention per region "
                         "and policy")["ansible_facts"]["snapshot_schedule_summary"]
    assert any(POLICY + " snapshot: 2 volume(s) selected, 2 snapshot(s) taken" in line for line in summary), summary
    assert any("plain snapshot: 1 volume(s) selected, 1 snapshot(s) taken" in line for line in summary), summary
    assert any(POLICY + " prune: 0 snapshot(s) deleted, 2 kept" in line for line in summary), summary
    assert [s for s, _when in entries(log)] == ["freeze", "thaw"]
