# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode writes nothing: every module and every playbook, against a seeded endpoint.

Modules are found in ``plugins/modules`` and playbooks in ``playbooks``; each needs a case below.
A new module or playbook without one fails this test ("add a check-mode case for ..."), so the
proof always covers the whole collection. Each case must succeed in check mode and read from the
endpoint (a run that stops before its reads would prove nothing); the endpoint's counters must show
no Create*/Delete*/Put*/Start*/Complete*/Modify*/Enable*/Disable*/Reset*/Register*/Deregister*/Copy* call.
"""
from pathlib import Path

from tests.functional.harness import ansible_env, run_playbook_file
from tests.localaws.blockdata import block, write_snapshot
from tests.localaws.seed import seed_fleet
from tools.collection_link import ROOT

REGIONS = ["us-east-1", "eu-west-1"]
KMS_ALIAS = "alias/blockwise-demo"  # made by seed_fleet in every region
BS = 524288


def write_image(path, blocks):
    with open(path, "wb") as handle:
        handle.truncate(4 * BS)
        for index, data in blocks.items():
            handle.seek(index * BS)
            handle.write(data)
    return str(path)


def prepare(aws, workdir):
    """Seed the endpoint and the local files the cases use; returns their names."""
    fleet = seed_fleet(aws, regions=REGIONS, days=3)
    ebs = aws.client("ebs")
    parent = write_snapshot(ebs, {0: block(1), 2: block(2)})
    child = write_snapshot(ebs, {2: block(3)}, ParentSnapshotId=parent)
    restored = workdir / "restored.raw"
    restored.write_bytes(b"\x01" * BS)
    return {
        "fleet": fleet,
        "parent": parent,
        "child": child,
        "image": write_image(workdir / "disk.raw", {0: block(1), 1: block(9), 3: block(4)}),
        "restored": str(restored),
        "work": str(workdir),
    }


# ---------------------------------------------------------------------------------- module cases
# module -> function(ctx) -> [(title, args, expect_changed)]; expect_changed=True proves the check-mode
# run planned writes (so there was something not to do).

MODULE_CASES = {
    "ebs_default_encryption": lambda c: [
        ("regions with a key", {"regions": REGIONS, "kms_key_id": KMS_ALIAS}, True),
        ("every region, off", {"regions": ["all"], "state": "disabled"}, False),
    ],
    "ebs_block_put": lambda c: [
        ("full upload", {"src": c["image"], "state_dir": c["work"] + "/state", "manifest": c["work"] + "/put.manifest",
                         "progress_file": c["work"] + "/put.progress", "tags": {"Name": "proof"}}, True),
        ("incremental upload", {"src": c["image"], "parent_snapshot_id": c["parent"], "state_dir": c["work"] + "/state"}, True),
    ],
    "ebs_block_get": lambda c: [
        ("restore to a new file", {"snapshot_id": c["child"], "dest": c["work"] + "/new.raw", "manifest": c["work"] + "/get.manifest"}, True),
        ("restore over a file", {"snapshot_id": c["parent"], "dest": c["restored"]}, True),
    ],
    "ebs_changed_blocks_info": lambda c: [
        ("changed blocks", {"first_snapshot_id": c["parent"], "second_snapshot_id": c["child"], "return_block_indexes": True}, False),
    ],
    "ebs_snapshot_verify": lambda c: [
        ("full, recorded", {"snapshot_id": c["child"], "progress_file": c["work"] + "/verify.progress"}, True),
        ("sample against a file", {"snapshot_id": c["parent"], "sample": 1, "compare_to": c["image"],
                                   "fail_on_mismatch": False}, True),
        ("file system check", {"snapshot_id": c["parent"], "fs_check": "e2fsck -fn {image}", "tmp_dir": c["work"]}, True),
    ],
    "ami_snapshot_tag": lambda c: [
        ("every image", {"all_images": True, "copy_image_tags": True, "tags": {"source": "ami"}, "purge_tags": True}, True),
    ],
    "ebs_snapshot_policy": lambda c: [
        ("per volume", {"name": "daily", "volume_filters": {"tag:backup": "daily"}, "frequency": "1h", "copy_tags": True, "wait": True}, True),
        ("crash-consistent sets", {"name": "sets", "instance_filters": {"tag:app": "front-web"}, "crash_consistent": True,
                                   "frequency": "0 * * * *"}, True),
    ],
    "ebs_snapshot_prune": lambda c: [
        ("policy scope", {"policy": "daily", "retention": {"keep_daily": 1}, "max_deletions": 100}, True),
        ("adopted snapshots", {"filters": {"tag:CreatedBy": "ebs-snapper"}, "retention": {"keep_last": 1}}, True),
        ("circuit breaker in check mode", {"policy": "daily", "retention": {"keep_last": 1}, "max_deletions": 1, "_fails": True}, False),
    ],
    "ebs_snapshot_copy": lambda c: [
        ("policy into another region, waiting",
         {"region": "eu-west-1", "source_region": "us-east-1", "policy": "daily", "kms_key_id": KMS_ALIAS, "wait": True,
          "wait_timeout": 60}, True),
        ("newest per volume, quota of 2",
         {"region": "eu-west-1", "source_region": "us-east-1", "policy": "daily", "latest_only": True, "max_in_flight": 2},
         True),
    ],
    "ebs_snapshot_share": lambda c: [
        ("share with an account", {"policy": "daily", "account_ids": ["210987654321"]}, True),
        ("purge other accounts", {"policy": "daily", "account_ids": ["210987654321"], "purge": True}, True),
    ],
}

# ---------------------------------------------------------------------------------- playbook cases
# playbook (file stem) -> function(ctx) -> extra vars. The runs use the playbook by FQCN, in check mode.

PLAYBOOK_CASES = {
    "ami_names": lambda c: {"regions": REGIONS, "copy_image_tags": True},
    "audit": lambda c: {"regions": REGIONS, "kms_key_id": KMS_ALIAS, "report_dir": c["work"] + "/audit-report"},
    "backup": lambda c: {"regions": REGIONS},
    "site": lambda c: {"regions": REGIONS, "kms_key_id": KMS_ALIAS, "copy_image_tags": True},
    "encryption": lambda c: {"regions": REGIONS, "kms_key_id": KMS_ALIAS},
    "demo": lambda c: {"regions": REGIONS, "kms_key_id": KMS_ALIAS},
    "upload_image": lambda c: {"image_path": c["image"], "regions": ["us-east-1"], "manifest": c["work"] + "/pb.manifest"},
    "restore_image": lambda c: {"snapshot_id": c["child"], "restore_path": c["work"] + "/pb-restore.raw", "regions": ["us-east-1"]},
}
# Known defects: playbook -> {task that fails in check mode: why}. Such a playbook must still make no
# write, and must fail exactly there (once it is fixed, this test says so and the entry must go).
EXPECTED_CHECK_MODE_FAILURES = {
    "demo": {"Write a 1 GiB sparse image with some random blocks": (
        "demo.yml does not support --check: ansible.builtin.tempfile creates no directory in check mode, so the "
        "image step fails with \"object of type 'dict' has no attribute 'path'\" before any AWS call")},
}


def discover():
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    playbooks = sorted(p.stem for p in (ROOT / "playbooks").iterdir() if p.suffix in (".yml", ".yaml"))
    return modules, playbooks


def reads(counters):
    return sum(count for key, count in counters.items() if ":Describe" in key or ":List" in key or ":Get" in key)


def module_tasks(ctx, modules):
    tasks, expected = [], {}
    for module in modules:
        for title, args, changed in MODULE_CASES[module](ctx):
            args = dict(args)
            fails = args.pop("_fails", False)
            name = "{0}: {1}".format(module, title)
            tasks.append({"name": name, "blockwise.ebs." + module: args, "check_mode": True, "ignore_errors": fails})
            expected[name] = (changed, fails)
    return tasks, expected


def test_every_module_and_playbook_writes_nothing_in_check_mode(aws, playbook, tmp_path):
    modules, playbooks = discover()
    missing = ["add a check-mode case for module {0} (MODULE_CASES in {1})".format(m, Path(__file__).name) for m in modules if m not in MODULE_CASES]
    missing += ["add a check-mode case for playbook {0} (PLAYBOOK_CASES in {1})".format(p, Path(__file__).name) for p in playbooks
                if p not in PLAYBOOK_CASES]
    assert not missing, "\n".join(missing)

    ctx = prepare(aws, tmp_path)
    problems = []

    # Every module, in one playbook run with check_mode on each task.
    tasks, expected = module_tasks(ctx, modules)
    aws.reset_counters()
    run = playbook(tasks, diff=True)
    if aws.mutating_calls():
        problems.append("modules made mutating calls in check mode: {0}".format(aws.mutating_calls()))
    if not reads(aws.counters()):
        problems.append("modules read nothing: {0!r}".format(run))
    for name, (changed, fails) in expected.items():
        try:
            res = run.result(name)
        except KeyError:
            problems.append("{0}: did not run ({1!r})".format(name, run))
            continue
        if bool(res.get("failed")) != fails:
            problems.append("{0}: failed={1} in check mode: {2}".format(name, res.get("failed"), res.get("msg")))
        elif changed and not res.get("changed"):
            problems.append("{0}: planned no change, so check mode proved nothing".format(name))

    # Every playbook, by FQCN, with --check.
    for name in playbooks:
        workdir = tmp_path / ("playbook-" + name)
        workdir.mkdir()
        extra_vars = dict(PLAYBOOK_CASES[name](ctx), endpoint_url=aws.endpoint_url)
        aws.reset_counters()
        out = run_playbook_file("blockwise.ebs." + name, workdir, check=True, diff=True, extra_vars=extra_vars,
                                env=ansible_env(aws.endpoint_url))
        mutating = aws.mutating_calls()
        if mutating:
            problems.append("playbook {0} made mutating calls in check mode: {1}".format(name, mutating))
        expected_failures = EXPECTED_CHECK_MODE_FAILURES.get(name, {})
        failed = [task for task, res in zip(out.names, out.results) if res.get("failed") and not res.get("ignore_errors")]
        if expected_failures:
            if sorted(failed) != sorted(expected_failures):
                problems.append("playbook {0}: expected to fail in check mode at {1} (a known defect), but failed at {2} (rc={3}); "
                                "if it is fixed, remove it from EXPECTED_CHECK_MODE_FAILURES".format(name, sorted(expected_failures), failed, out.rc))
            continue
        if not reads(aws.counters()):
            problems.append("playbook {0} read nothing from the endpoint (rc={1}): {2}".format(name, out.rc, out.stderr[-1500:]))
        if failed or out.rc != 0:
            messages = [out.result(task).get("msg") for task in failed]
            problems.append("playbook {0} failed in check mode (rc={1}): {2} {3} {4}".format(name, out.rc, failed, messages, out.stderr[-1500:]))

    assert not problems, "\n".join(problems)


# Security and cost modules (issue 13).
MODULE_CASES.update({
    "ebs_snapshot_block_public_access": lambda c: [
        ("block all sharing in two regions", {"regions": REGIONS, "state": "block-all-sharing"}, True),
        ("every region, block new sharing", {"regions": ["all"], "state": "block-new-sharing"}, True),
    ],
    "ebs_audit_controls_info": lambda c: [
        ("controls with account shares", {"regions": REGIONS, "check_account_shares": True,
                                          "policies": [{"name": "daily", "target_tags": {"backup": "daily"}, "frequency": "1d"}]}, False),
    ],
    "ebs_snapshot_cost_info": lambda c: [
        ("chain of two uploads", {"snapshot_ids": [c["child"], c["parent"]]}, False),
    ],
    "ebs_restore_points_info": lambda c: [
        ("a sample of the daily policy", {"policies": ["daily"], "sample_volumes": 2, "seed": "proof"}, False),
    ],
    "ebs_copy_status_info": lambda c: [
        ("nothing copied yet", {"home_snapshots": [], "destinations": [{"name": "eu-west-1", "copies": []}],
                                "frequency": "1d"}, False),
    ],
})
PLAYBOOK_CASES["restore_drill"] = lambda c: {"regions": REGIONS, "report_dir": c["work"] + "/drill-report"}
