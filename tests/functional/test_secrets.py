# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials given as module options never show: not in -vvv output, results, the Ansible log or the files the modules write.

Every module runs with ``access_key``, ``secret_key`` and ``session_token`` options (the environment
has no credentials, so the options are what the calls are signed with), once succeeding and once
failing (bad input, and AWS errors through both error paths: ``fail_json_aws`` and the block
pipeline). The secret key and the session token must appear nowhere. The access key id is not a
secret for AWS and amazon.aws does not mark it ``no_log``: it may appear as the echoed
``invocation.module_args.access_key`` and nowhere else.

The other direction matters too: ``no_log`` masking replaces every occurrence of a secret's value, so
an option marked ``no_log`` by mistake (a KMS key, a tag key) would hide ordinary output. Every
ordinary option must come back unmasked, and no module may warn about a missing ``no_log``.
"""
import json
import os
from pathlib import Path

from tests.functional.harness import run_playbook
from tests.localaws.blockdata import block, write_snapshot
from tests.localaws.seed import seed_fleet

ACCESS_KEY = "AKIAEXAMPLEBLOCKWISE7"
SECRET_KEY = "sEcReT-kEy/7c1f9a+DO-NOT-PRINT"
SESSION_TOKEN = "sEsSiOn-ToKeN/52be1d+DO-NOT-PRINT"
SECRETS = (SECRET_KEY, SESSION_TOKEN)
CREDENTIALS = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "session_token": SESSION_TOKEN}
MASKS = ("********", "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", "NOT_LOGGING")
# No credentials in the environment: a module that ignored its options could not sign a request.
NO_ENV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                      "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
BS = 524288


def task(name, module, args, fails=False):
    return {"name": name, "blockwise.ebs." + module: dict(CREDENTIALS, **args), "ignore_errors": fails}


def cases(ctx, work):
    """(name, module, args, fails): each module once succeeding and once failing on bad input."""
    return [
        # another region than the uploads: encryption by default would make them write every block
        ("encryption", "ebs_default_encryption", {"regions": ["eu-west-1"], "kms_key_id": "alias/aws/ebs"}, False),
        ("encryption fails", "ebs_default_encryption", {"kms_key_id": "alias/no-such-key"}, True),
        ("put", "ebs_block_put", {"src": ctx["image"], "state_dir": work + "/state", "manifest": work + "/put.manifest",
                                  "progress_file": work + "/put.progress", "tags": {"Name": "secret-test"}, "workers": 2}, False),
        ("put fails", "ebs_block_put", {"src": ctx["image"], "parent_snapshot_id": "snap-0123456789abcdef0", "state_dir": work + "/state",
                                        "progress_file": work + "/put-fail.progress"}, True),
        ("get", "ebs_block_get", {"snapshot_id": ctx["snapshot"], "dest": work + "/restored.raw", "manifest": work + "/get.manifest",
                                  "progress_file": work + "/get.progress", "workers": 2}, False),
        ("get fails", "ebs_block_get", {"snapshot_id": "snap-0123456789abcdef0", "dest": work + "/never.raw",
                                        "progress_file": work + "/get-fail.progress"}, True),
        ("changed blocks", "ebs_changed_blocks_info", {"second_snapshot_id": ctx["snapshot"]}, False),
        ("changed blocks fails", "ebs_changed_blocks_info", {"second_snapshot_id": "snap-0123456789abcdef0"}, True),
        ("ami", "ami_snapshot_tag", {"all_images": True, "copy_image_tags": True}, False),
        ("ami fails", "ami_snapshot_tag", {"all_images": True, "name_template": "{colour}"}, True),
        ("policy", "ebs_snapshot_policy", {"name": "daily", "volume_filters": {"tag:backup": "daily"}, "frequency": "1h"}, False),
        ("policy fails", "ebs_snapshot_policy", {"name": "daily", "volume_ids": ["vol-0123456789abcdef0"], "frequency": "1h"}, True),
        ("prune", "ebs_snapshot_prune", {"policy": "daily", "retention": {"keep_daily": 2}, "protect_tag": "keep-me-key",
                                         "retention_tag": "Daily_Gens", "max_deletions": 100}, False),
        ("prune fails", "ebs_snapshot_prune", {"policy": "daily", "retention": {"keep_last": 1}, "max_deletions": 1}, True),
    ]


def aws_error_cases(ctx, work):
    """AWS errors on the two error paths: fail_json_aws (EC2 reads) and the block pipeline (fail fast)."""
    return [
        ("ami denied", "ami_snapshot_tag", {"all_images": True}, True),
        ("put denied", "ebs_block_put", {"src": ctx["image2"], "state_dir": work + "/state2", "progress_file": work + "/denied.progress",
                                         "workers": 1}, True),
    ]


def prepare(aws, workdir):
    seed_fleet(aws, regions=["us-east-1"], days=3)
    image = workdir / "disk.raw"
    image.write_bytes(block(5) * 2 + b"end")
    image2 = workdir / "disk2.raw"
    image2.write_bytes(block(6) + b"other")
    return {"image": str(image), "image2": str(image2), "snapshot": write_snapshot(aws.client("ebs"), {0: block(1), 3: block(2)})}


def run_cases(aws, workdir, the_cases):
    tasks = [task(name, module, args, fails) for name, module, args, fails in the_cases]
    log = workdir / "ansible.log"
    run = run_playbook(aws.endpoint_url, tasks, workdir, verbosity=3, env=dict(NO_ENV_CREDENTIALS, ANSIBLE_LOG_PATH=str(log)))
    return run, log


def scrubbed(result):
    """The result without the one place the access key id may be echoed."""
    data = json.loads(json.dumps(result, default=str))
    args = (data.get("invocation") or {}).get("module_args") or {}
    if args.get("access_key") == ACCESS_KEY:
        args["access_key"] = "<access key id>"
    return data


def echoed_as_given(echoed, given):
    """True when every value given comes back as it was (dict options come back with their defaults added)."""
    if isinstance(given, dict) and isinstance(echoed, dict):
        return all(echoed_as_given(echoed.get(key), value) for key, value in given.items())
    return echoed == given


def check_run(run, the_cases, problems):
    assert run.names, run
    for name, module, args, fails in the_cases:
        res = run.result(name)
        if bool(res.get("failed")) != fails:
            problems.append("{0}: failed={1}: {2}".format(name, res.get("failed"), res.get("msg")))
        text = json.dumps(scrubbed(res), default=str)
        for secret in SECRETS + (ACCESS_KEY,):
            if secret in text:
                problems.append("{0}: the result holds {1!r}".format(name, secret))
        echoed = (res.get("invocation") or {}).get("module_args") or {}
        if echoed:
            for option, value in args.items():
                if not echoed_as_given(echoed.get(option), value):
                    problems.append("{0}: option {1} comes back as {2!r}, not {3!r}".format(name, option, echoed.get(option), value))
            if echoed.get("secret_key") == SECRET_KEY or echoed.get("session_token") == SESSION_TOKEN:
                problems.append("{0}: a secret is echoed in invocation".format(name))
        elif not fails:
            problems.append("{0}: no invocation in the result, so the echo of the options cannot be checked".format(name))
        visible = json.dumps({key: value for key, value in res.items() if key != "invocation"}, default=str)
        for mask in MASKS:
            if mask in visible:
                problems.append("{0}: {1} hides part of the result: {2}".format(name, mask, visible[:600]))
        for warning in res.get("warnings") or []:
            if "no_log" in warning:
                problems.append("{0}: {1}".format(name, warning))


def check_text(label, text, problems, access_key_allowed=0):
    for secret in SECRETS:
        if secret in text:
            problems.append("{0} holds {1!r}".format(label, secret))
    count = text.count(ACCESS_KEY)
    if count > access_key_allowed:
        problems.append("{0} holds the access key id {1} times (only the invocation echoes may)".format(label, count))


def check_files(workdir, problems):
    for path in sorted(Path(workdir).rglob("*")):
        if path.is_file() and path.name not in ("playbook.yml", "ansible.log"):
            data = path.read_bytes()
            for secret in SECRETS + (ACCESS_KEY,):
                if secret.encode() in data:
                    problems.append("{0} holds {1!r}".format(path, secret))


def test_credentials_given_as_options_never_show(aws, tmp_path):
    ctx = prepare(aws, tmp_path)
    problems = []

    work = tmp_path / "run"
    work.mkdir()
    the_cases = cases(ctx, str(work))
    run, log = run_cases(aws, work, the_cases)
    check_run(run, the_cases, problems)
    echoes = sum(1 for res in run.results if ((res.get("invocation") or {}).get("module_args") or {}).get("access_key") == ACCESS_KEY)
    check_text("stdout (-vvv)", run.stdout, problems, access_key_allowed=echoes)
    check_text("stderr (-vvv)", run.stderr, problems)
    check_text("the Ansible log", log.read_text() if log.exists() else "", problems, access_key_allowed=echoes)
    assert os.path.exists(str(work / "put.manifest")) and os.path.exists(str(work / "get.manifest"))
    assert json.loads((work / "put.progress").read_text())["state"] == "done"
    assert json.loads((work / "put-fail.progress").read_text())["state"] == "failed"

    # AWS errors, through fail_json_aws and through the block pipeline's fail-fast path.
    denied = tmp_path / "denied"
    denied.mkdir()
    aws.inject_error("DescribeImages", status=403, code="UnauthorizedOperation", message="You are not authorized to perform this operation.")
    aws.inject_error("PutSnapshotBlock", status=403, code="AccessDeniedException", message="User is not authorized to perform: ebs:PutSnapshotBlock")
    error_cases = aws_error_cases(ctx, str(denied))
    run2, log2 = run_cases(aws, denied, error_cases)
    aws.clear_faults()
    check_run(run2, error_cases, problems)
    if "not authorized" not in str(run2.result("ami denied").get("msg")) or "not authorized" not in str(run2.result("put denied").get("msg")):
        problems.append("the AWS errors were not the injected ones: {0!r}".format(run2))
    echoes2 = sum(1 for res in run2.results if ((res.get("invocation") or {}).get("module_args") or {}).get("access_key") == ACCESS_KEY)
    check_text("stdout (-vvv, AWS errors)", run2.stdout, problems, access_key_allowed=echoes2)
    check_text("stderr (-vvv, AWS errors)", run2.stderr, problems)
    check_text("the Ansible log (AWS errors)", log2.read_text() if log2.exists() else "", problems, access_key_allowed=echoes2)

    check_files(tmp_path, problems)
    assert not problems, "\n".join(problems)
