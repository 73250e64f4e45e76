# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input, module by module: every case fails, names the option and the value, and writes nothing.

The cases of one module run as failing tasks (``ignore_errors``) of ONE ansible-playbook run against
a freshly set-up endpoint. After each case a controller-side lookup reads the endpoint's request
counters, so the mutating calls are attributed to the case that made them. The runs are shared by
the whole test session (across xdist workers, through a file lock), and each case is asserted on
its own.
"""
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.functional.harness import run_playbook
from tests.localaws.blockdata import block, write_snapshot
from tests.localaws.faults import is_mutating
from tests.localaws.seed import seed_fleet

COLLECTION = "blockwise.ebs."
UNKNOWN_SNAPSHOT = "snap-0123456789abcdef0"
UNKNOWN_VOLUME = "vol-0123456789abcdef0"
NO_REGION = "xx-north-9"  # well formed, but no such region
FAKE_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
DR_REGION = "eu-west-1"  # the destination of the copy cases (the fleet is seeded in us-east-1)
OTHER_ACCOUNT = "210987654321"


@dataclass(frozen=True)
class Case:
    """One bad input: ``args`` (or ``args(ctx)``) for ``module``; ``expect`` (or ``expect(ctx)``) must be in the message."""

    module: str
    name: str
    args: object
    expect: object
    bug: str = field(default=None, compare=False)

    def resolve(self, ctx):
        args = self.args(ctx) if callable(self.args) else self.args
        expect = self.expect(ctx) if callable(self.expect) else self.expect
        return args, tuple(expect)


# ------------------------------------------------------------------------------ per-module set-up
# Each returns the context its cases refer to; everything it creates is made before the counters are reset.

def setup_default_encryption(aws, workdir):
    del workdir
    kms = aws.client("kms")
    disabled = kms.create_key(Description="disabled")["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    asymmetric = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    other_region = aws.client("kms", region="eu-west-1").create_key(Description="eu")["KeyMetadata"]
    return {"disabled_key": disabled["Arn"], "asymmetric_key": asymmetric["Arn"], "eu_key": other_region["Arn"]}


def _paths(workdir):
    workdir = Path(workdir)
    image = workdir / "disk.raw"
    image.write_bytes(block(7)[:4096] + b"tail")
    big = workdir / "big.raw"  # sparse, 1.5 GiB: does not fit in 1 GiB
    with open(big, "wb") as handle:
        handle.truncate(3 * 512 * 1024 * 1024)
    directory = workdir / "a-directory"
    directory.mkdir()
    fifo = workdir / "a-fifo"
    os.mkfifo(fifo)
    plain = workdir / "a-file"
    plain.write_text("not a directory")
    return {"image": str(image), "big": str(big), "dir": str(directory), "fifo": str(fifo), "file": str(plain),
            "state_dir": str(workdir / "state"), "work": str(workdir)}


def setup_blocks(aws, workdir):
    ctx = _paths(workdir)
    ebs = aws.client("ebs")
    ctx["snap"] = write_snapshot(ebs, {0: block(1)})
    ctx["unrelated"] = write_snapshot(ebs, {0: block(2)})
    ctx["pending"] = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    return ctx


def setup_fleet(aws, workdir):
    del workdir
    return {"fleet": seed_fleet(aws, regions=["us-east-1"], days=3)["us-east-1"]}


def setup_copies(aws, workdir):
    """The fleet in us-east-1 (the source), a disabled KMS key in eu-west-1 (the destination), and a snapshot
    encrypted with us-east-1's AWS managed key ``aws/ebs`` (made through EBS direct without a key)."""
    ctx = setup_fleet(aws, workdir)
    disabled = aws.client("kms", region=DR_REGION).create_key(Description="disabled")["KeyMetadata"]
    aws.client("kms", region=DR_REGION).disable_key(KeyId=disabled["KeyId"])
    ctx["disabled_key"] = disabled["Arn"]
    ctx["managed"] = write_snapshot(aws.client("ebs"), {0: block(5)}, Encrypted=True,
                                    Tags=[{"Key": "blockwise:policy", "Value": "managed-key"}])
    return ctx


# ------------------------------------------------------------------------------------------ cases

def enc(name, args, expect, bug=None):
    return Case("ebs_default_encryption", name, args, expect, bug)


def put(name, args, expect, bug=None):
    def build(ctx):
        values = args(ctx) if callable(args) else args
        return dict({"src": ctx["image"], "state_dir": ctx["state_dir"]}, **values)
    return Case("ebs_block_put", name, build, expect, bug)


def get(name, args, expect, bug=None):
    return Case("ebs_block_get", name, args, expect, bug)


def cbi(name, args, expect, bug=None):
    return Case("ebs_changed_blocks_info", name, args, expect, bug)


def ver(name, args, expect, bug=None):
    def build(ctx):
        values = args(ctx) if callable(args) else args
        return dict({"snapshot_id": ctx["snap"]}, **values)
    return Case("ebs_snapshot_verify", name, build, expect, bug)


def ami(name, args, expect, bug=None):
    return Case("ami_snapshot_tag", name, args, expect, bug)


def pol(name, args, expect, bug=None):
    return Case("ebs_snapshot_policy", name, dict({"name": "daily", "frequency": "1d", "volume_filters": {"tag:backup": "daily"}}, **args),
                expect, bug)


def sel(name, args, expect, bug=None):
    """A policy case with its own selection."""
    return Case("ebs_snapshot_policy", name, args, expect, bug)


def pru(name, args, expect, bug=None):
    return Case("ebs_snapshot_prune", name, dict({"policy": "daily", "retention": {"keep_daily": 1}}, **args), expect, bug)


def _over(base, args):
    """``args`` (or ``args(ctx)``) over ``base``; a value None removes the option."""
    def build(ctx):
        values = dict(base, **(args(ctx) if callable(args) else args))
        return {key: value for key, value in values.items() if value is not None}
    return build


def cpy(name, args, expect, bug=None):
    """A copy from the seeded us-east-1 into DR_REGION."""
    return Case("ebs_snapshot_copy", name, _over({"region": DR_REGION, "source_region": "us-east-1", "policy": "daily"}, args), expect, bug)


def shr(name, args, expect, bug=None):
    return Case("ebs_snapshot_share", name, _over({"policy": "daily", "account_ids": [OTHER_ACCOUNT]}, args), expect, bug)


BUG_CORE_DICT_SUBOPTIONS = ("ansible-core 2.19: a string for a dict option with suboptions fails in _list_no_log_values with "
                            "'dictionary requested, could not parse JSON or key=value', without the option's name")

CASES = [
    # ebs_default_encryption: choices, conflicts, regions, KMS keys
    enc("state not a choice", {"state": "on"}, ["state", "on"]),
    enc("module region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    enc("kms_key_id with state=disabled", {"state": "disabled", "kms_key_id": "alias/ebs"}, ["kms_key_id", "alias/ebs", "state=disabled"]),
    enc("reset_kms_key with state=disabled", {"state": "disabled", "reset_kms_key": True}, ["reset_kms_key=true", "state=disabled"]),
    enc("kms_key_id and reset_kms_key", {"kms_key_id": "alias/ebs", "reset_kms_key": True}, ["kms_key_id", "reset_kms_key"]),
    enc("kms_key_id blank", {"kms_key_id": "  "}, ["kms_key_id", "empty"]),
    enc("regions empty list", {"regions": []}, ["regions", "empty"]),
    enc("regions all mixed with names", {"regions": ["all", "us-east-1"]}, ["regions", "'all'", "us-east-1"]),
    enc("regions malformed name", {"regions": ["us_east_1"]}, ["regions", "us_east_1"]),
    enc("regions that do not exist", {"regions": ["us-east-1", NO_REGION]}, ["regions", NO_REGION]),
    enc("kms key that does not exist", {"kms_key_id": "alias/no-such-key"}, ["kms_key_id", "alias/no-such-key", "not found"]),
    enc("kms key disabled", lambda c: {"kms_key_id": c["disabled_key"]}, lambda c: ["kms_key_id", c["disabled_key"], "Disabled"]),
    enc("kms key asymmetric", lambda c: {"kms_key_id": c["asymmetric_key"]}, lambda c: ["kms_key_id", c["asymmetric_key"], "RSA_2048"]),
    enc("kms key ARN of another region", lambda c: {"regions": ["us-east-1"], "kms_key_id": c["eu_key"]},
        lambda c: ["kms_key_id", c["eu_key"], "eu-west-1"]),
    enc("fail_on_region_error not a bool", {"fail_on_region_error": "maybe"}, ["fail_on_region_error", "maybe"]),

    # ebs_block_put: unreadable sources, ranges, reserved tags, parents
    put("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    put("src missing", lambda c: {"src": c["work"] + "/nope.raw"}, lambda c: ["src", c["work"] + "/nope.raw", "does not exist"]),
    put("src is a directory", lambda c: {"src": c["dir"]}, lambda c: ["src", c["dir"], "directory"]),
    put("src is a fifo", lambda c: {"src": c["fifo"]}, lambda c: ["src", c["fifo"], "not a regular file"]),
    put("src below a file", lambda c: {"src": c["file"] + "/x.raw"}, lambda c: ["src", c["file"] + "/x.raw", "Not a directory"]),
    put("workers zero", {"workers": 0}, ["workers", "got 0"]),
    put("workers not an int", {"workers": "many"}, ["workers", "many"]),
    put("volume_size zero", {"volume_size": 0}, ["volume_size", "got 0"]),
    put("volume_size above the EBS limit", {"volume_size": 70000}, ["volume_size", "70000"]),
    put("volume_size smaller than src", lambda c: {"src": c["big"], "volume_size": 1}, ["volume_size=1", "smaller than src"]),
    put("timeout out of range", {"timeout": 5}, ["timeout", "got 5"]),
    put("description too long", {"description": "d" * 256}, ["description", "256 characters"]),
    put("reserved tag", {"tags": {"blockwise:content": "x"}}, ["tags", "blockwise:content"]),
    put("kms_key_arn with encrypted=false", {"encrypted": False, "kms_key_arn": FAKE_KEY_ARN}, ["kms_key_arn", FAKE_KEY_ARN, "encrypted=true"]),
    put("wait_timeout zero", {"wait_timeout": 0}, ["wait_timeout", "got 0"]),
    put("parent that does not exist", {"parent_snapshot_id": UNKNOWN_SNAPSHOT}, ["parent_snapshot_id", UNKNOWN_SNAPSHOT, "not found"]),
    put("parent still pending", lambda c: {"parent_snapshot_id": c["pending"]}, lambda c: ["parent_snapshot_id", c["pending"], "pending"]),
    put("encrypted against an unencrypted parent", lambda c: {"parent_snapshot_id": c["snap"], "encrypted": True},
        lambda c: ["encrypted=true", "parent_snapshot_id", c["snap"]]),
    put("manifest below a file", lambda c: {"manifest": c["file"] + "/m"}, lambda c: ["manifest", c["file"] + "/m"]),

    # ebs_block_get: unknown/pending snapshots, destinations, lineage
    get("region that does not exist", lambda c: {"snapshot_id": c["snap"], "dest": c["work"] + "/o1.raw", "region": NO_REGION},
        ["region", NO_REGION]),
    get("snapshot that does not exist", lambda c: {"snapshot_id": UNKNOWN_SNAPSHOT, "dest": c["work"] + "/o1.raw"},
        ["snapshot_id", UNKNOWN_SNAPSHOT, "does not exist"]),
    get("snapshot still pending", lambda c: {"snapshot_id": c["pending"], "dest": c["work"] + "/o1.raw"},
        lambda c: ["snapshot_id", c["pending"], "pending"]),
    get("dest is a directory", lambda c: {"snapshot_id": c["snap"], "dest": c["dir"]}, lambda c: ["dest", c["dir"], "directory"]),
    get("dest directory missing", lambda c: {"snapshot_id": c["snap"], "dest": c["work"] + "/nodir/o.raw"},
        lambda c: ["dest", c["work"] + "/nodir", "does not exist"]),
    get("dest is a fifo", lambda c: {"snapshot_id": c["snap"], "dest": c["fifo"]}, lambda c: ["dest", c["fifo"], "not a regular file"]),
    get("base_snapshot_id equal to snapshot_id", lambda c: {"snapshot_id": c["snap"], "dest": c["work"] + "/o1.raw", "base_snapshot_id": c["snap"]},
        lambda c: ["base_snapshot_id", "snapshot_id", c["snap"]]),
    get("base_snapshot_id without dest", lambda c: {"snapshot_id": c["snap"], "dest": c["work"] + "/o9.raw", "base_snapshot_id": c["unrelated"]},
        lambda c: ["dest", c["work"] + "/o9.raw", "base_snapshot_id=" + c["unrelated"]]),
    get("base_snapshot_id unrelated", lambda c: {"snapshot_id": c["snap"], "dest": c["image"], "base_snapshot_id": c["unrelated"]},
        lambda c: ["base_snapshot_id", c["unrelated"], "not related"]),
    get("workers negative", lambda c: {"snapshot_id": c["snap"], "dest": c["work"] + "/o1.raw", "workers": -1}, ["workers", "got -1"]),

    # ebs_changed_blocks_info: unknown ids, identical and unrelated snapshots, types
    cbi("region that does not exist", lambda c: {"second_snapshot_id": c["snap"], "region": NO_REGION}, ["region", NO_REGION]),
    cbi("second snapshot that does not exist", {"second_snapshot_id": UNKNOWN_SNAPSHOT}, ["second_snapshot_id", UNKNOWN_SNAPSHOT]),
    cbi("first snapshot that does not exist", lambda c: {"second_snapshot_id": c["snap"], "first_snapshot_id": UNKNOWN_SNAPSHOT},
        ["first_snapshot_id", UNKNOWN_SNAPSHOT]),
    cbi("first equal to second", lambda c: {"second_snapshot_id": c["snap"], "first_snapshot_id": c["snap"]},
        lambda c: ["first_snapshot_id", "second_snapshot_id", c["snap"]]),
    cbi("return_block_indexes not a bool", lambda c: {"second_snapshot_id": c["snap"], "return_block_indexes": "perhaps"},
        ["return_block_indexes", "perhaps"]),
    cbi("second_snapshot_id missing", {"first_snapshot_id": UNKNOWN_SNAPSHOT}, ["second_snapshot_id", "missing"]),

    # ebs_snapshot_verify: samples, references, the file system check, refused snapshots
    ver("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    ver("snapshot that does not exist", {"snapshot_id": UNKNOWN_SNAPSHOT}, ["snapshot_id", UNKNOWN_SNAPSHOT, "not found"]),
    ver("snapshot still pending", lambda c: {"snapshot_id": c["pending"]}, lambda c: ["snapshot_id", c["pending"], "pending"]),
    ver("sample zero", {"sample": 0}, ["sample", "0"]),
    ver("sample not a number", {"sample": "ten"}, ["sample", "ten"]),
    ver("sample above 100%", {"sample": "150%"}, ["sample", "150%"]),
    ver("sample with fs_check", {"sample": 5, "fs_check": "e2fsck -fn {image}"}, ["sample", "fs_check"]),
    ver("fs_check without {image}", {"fs_check": "e2fsck -fn"}, ["fs_check", "{image}"]),
    ver("fs_check program missing", {"fs_check": "no-such-fsck {image}"}, ["fs_check", "no-such-fsck"]),
    ver("fs_check_timeout zero", {"fs_check": "e2fsck -fn {image}", "fs_check_timeout": 0}, ["fs_check_timeout", "got 0"]),
    ver("tmp_dir missing", lambda c: {"fs_check": "e2fsck -fn {image}", "tmp_dir": c["work"] + "/no-tmp"},
        lambda c: ["tmp_dir", c["work"] + "/no-tmp"]),
    ver("compare_to missing", lambda c: {"compare_to": c["work"] + "/nope.raw"}, lambda c: ["compare_to", c["work"] + "/nope.raw", "does not exist"]),
    ver("compare_to is a directory", lambda c: {"compare_to": c["dir"]}, lambda c: ["compare_to", c["dir"], "directory"]),
    ver("compare_to and manifest", lambda c: {"compare_to": c["image"], "manifest": c["work"] + "/m"}, ["compare_to", "manifest"]),
    ver("manifest not a manifest", lambda c: {"manifest": c["file"]}, lambda c: ["manifest", c["file"], "not a blockwise.ebs manifest"]),
    ver("compare_to is the progress_file", lambda c: {"compare_to": c["image"], "progress_file": c["image"]},
        ["compare_to", "progress_file"]),
    ver("max_bad_blocks zero", {"max_bad_blocks": 0}, ["max_bad_blocks", "got 0"]),
    ver("workers zero", {"workers": 0}, ["workers", "got 0"]),

    # ami_snapshot_tag: selection, templates, tags, regions
    ami("no selection", {}, ["image_ids", "filters", "all_images"]),
    ami("image_ids and all_images", {"image_ids": ["ami-12345678"], "all_images": True}, ["image_ids", "all_images", "mutually exclusive"]),
    ami("filters empty", {"filters": {}}, ["filters", "empty"]),
    ami("owners empty", {"all_images": True, "owners": []}, ["owners", "empty"]),
    ami("all_images false alone", {"all_images": False}, ["all_images=false"]),
    ami("name_template unknown variable", {"all_images": True, "name_template": "{image_name}-{colour}"}, ["name_template", "colour"]),
    ami("name_template unbalanced brace", {"all_images": True, "name_template": "{image_name"}, ["name_template", "'{image_name'"]),
    ami("name_template positional field", {"all_images": True, "name_template": "snap-{0}"}, ["name_template", "{0}"]),
    ami("name_template bad format spec", {"all_images": True, "name_template": "{index:>s}"}, ["name_template", ":>s", "index"]),
    ami("name_template too long", {"all_images": True, "name_template": "x" * 300}, ["name_template", "300 characters"]),
    ami("Name given in tags", {"all_images": True, "tags": {"Name": "x"}}, ["tags", "Name"]),
    ami("reserved aws: tag key", {"all_images": True, "tags": {"aws:team": "x"}}, ["tags", "aws:team"]),
    ami("tag value too long", {"all_images": True, "tags": {"team": "v" * 300}}, ["tags.team", "300 characters"]),
    ami("region that does not exist", {"all_images": True, "region": NO_REGION}, ["region", NO_REGION]),

    # ebs_snapshot_policy: durations, cron, time zones, selection, templates, tags, ids
    pol("frequency unknown unit", {"frequency": "12 parsecs"}, ["frequency", "12 parsecs"]),
    pol("frequency without unit", {"frequency": "12"}, ["frequency", "'12'", "no unit"]),
    pol("frequency in months", {"frequency": "1 month"}, ["frequency", "1 month", "months"]),
    pol("cron minute out of range", {"frequency": "61 * * * *"}, ["frequency", "61 * * * *"]),
    pol("cron with four fields", {"frequency": "0 2 * *"}, ["frequency", "0 2 * *"]),
    pol("cron macro unknown", {"frequency": "@fortnightly"}, ["frequency", "@fortnightly"]),
    pol("timezone unknown", {"frequency": "0 2 * * *", "timezone": "Mars/Olympus_Mons"}, ["timezone", "Mars/Olympus_Mons"]),
    pol("grace not shorter than frequency", {"frequency": "1h", "grace": "2h"}, ["grace", "2h", "frequency"]),
    pol("grace unparsable", {"grace": "soon"}, ["grace", "soon"]),
    sel("selection empty", {"name": "daily", "frequency": "1d"}, ["volume_filters", "instance_filters", "volume_ids", "all_volumes"]),
    pol("all_volumes with volume_filters", {"all_volumes": True}, ["all_volumes=true", "volume_filters"]),
    pol("crash_consistent without instance_filters", {"crash_consistent": True}, ["crash_consistent", "instance_filters"]),
    pol("name_template unknown variable", {"name_template": "{volume_name}-{colour}"}, ["name_template", "colour"]),
    sel("crash_consistent name_template with a volume variable",
        {"name": "daily", "frequency": "1d", "instance_filters": {"tag:app": "db"}, "crash_consistent": True, "name_template": "{volume_id}"},
        ["name_template", "volume_id", "crash_consistent"]),
    pol("description_template unbalanced brace", {"description_template": "{policy"}, ["description_template", "'{policy'"]),
    pol("reserved tag", {"tags": {"blockwise:policy": "other"}}, ["tags", "blockwise:policy"]),
    pol("max_concurrency zero", {"max_concurrency": 0}, ["max_concurrency", "got 0"]),
    pol("wait_timeout zero", {"wait_timeout": 0}, ["wait_timeout", "got 0"]),
    pol("volume that does not exist", {"volume_ids": [UNKNOWN_VOLUME]}, ["volume_ids", UNKNOWN_VOLUME]),
    pol("volume id malformed", {"volume_ids": ["disk-1"]}, ["volume_ids", "disk-1"]),
    pol("exclude id malformed", {"exclude": ["snap-1"]}, ["exclude", "snap-1"]),
    pol("name empty", {"name": ""}, ["name", "''"]),
    sel("volume_filters not a dictionary", {"name": "daily", "frequency": "1d", "volume_filters": "tag:backup"}, ["volume_filters", "str"]),
    pol("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),

    # ebs_snapshot_prune: retention rules, durations, time zones, scope, filters, circuit breaker
    pru("retention without a rule", {"retention": {"minimum": 2}}, ["retention", "at least one rule"]),
    pru("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    pru("keep_daily zero", {"retention": {"keep_daily": 0}}, ["retention.keep_daily", "got 0"]),
    pru("keep_last not an int", {"retention": {"keep_last": "seven"}}, ["keep_last", "retention", "seven"]),
    pru("keep_within in months", {"retention": {"keep_within": "1 month"}}, ["retention.keep_within", "1 month"]),
    pru("keep_within unparsable", {"retention": {"keep_within": "forever"}}, ["retention.keep_within", "forever"]),
    pru("minimum negative", {"retention": {"keep_daily": 3, "minimum": -1}}, ["retention.minimum", "got -1"]),
    pru("timezone unknown", {"retention": {"keep_daily": 3, "timezone": "Europe/Atlantis"}}, ["retention.timezone", "Europe/Atlantis"]),
    pru("unknown retention rule", {"retention": {"keep_daily": 3, "keep_forever": True}}, ["retention.keep_forever"]),
    pru("retention not a dictionary", {"retention": "keep everything"}, ["retention", "dict"], bug=BUG_CORE_DICT_SUBOPTIONS),
    Case("ebs_snapshot_prune", "no scope", {"retention": {"keep_daily": 1}}, ["policy", "filters"]),
    pru("policy blank", {"policy": " "}, ["policy", "' '"]),
    pru("owner filter", {"filters": {"owner-id": "123456789012"}}, ["filters", "owner"]),
    pru("filters contradict policy", {"filters": {"tag:blockwise:policy": "weekly"}}, ["filters", "weekly", "policy='daily'"]),
    pru("filter value malformed", {"filters": {"tag:team": {"a": 1}}}, ["filters", "{'a': 1}"]),
    pru("protect_tag empty", {"protect_tag": ""}, ["protect_tag", "''"]),
    pru("max_deletions zero", {"max_deletions": 0}, ["max_deletions", "got 0"]),
    pru("max_concurrency too high", {"max_concurrency": 100}, ["max_concurrency", "got 100"]),
    pru("retention_tag reserved prefix", {"retention_tag": "aws:gens"}, ["retention_tag", "aws:gens"]),
    pru("circuit breaker", {"max_deletions": 1}, ["max_deletions=1", "nothing was deleted"]),
    pru("copy_regions unknown region", {"copy_regions": [NO_REGION]}, ["copy_regions", NO_REGION]),
    pru("copy_accounts malformed", {"copy_accounts": ["all"]}, ["copy_accounts", "'all'"]),

    # ebs_snapshot_copy: regions, keys, selection, tags, limits
    cpy("source_region that does not exist", {"source_region": NO_REGION}, ["source_region", NO_REGION]),
    cpy("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    cpy("same region without a key change", {"region": "us-east-1"}, ["source_region='us-east-1'", "destination region"]),
    cpy("kms key missing in the destination", {"kms_key_id": "alias/blockwise-demo"}, ["kms_key_id", "alias/blockwise-demo", DR_REGION]),
    cpy("kms key ARN of another region", {"kms_key_id": FAKE_KEY_ARN}, ["kms_key_id", FAKE_KEY_ARN, "us-east-1"]),
    cpy("kms key disabled", lambda c: {"kms_key_id": c["disabled_key"]}, lambda c: ["kms_key_id", c["disabled_key"], "Disabled"]),
    cpy("policy no snapshot carries", {"policy": "nightly-typo"}, ["policy", "nightly-typo"]),
    cpy("snapshot that does not exist", {"snapshot_ids": [UNKNOWN_SNAPSHOT]}, ["snapshot_ids", UNKNOWN_SNAPSHOT]),
    cpy("no selection", {"policy": None}, ["policy", "filters", "snapshot_ids"]),
    cpy("owner filter", {"filters": {"owner-id": "123456789012"}}, ["filters", "owner"]),
    cpy("collection tag in tags", {"tags": {"blockwise:lineage": "x"}}, ["tags", "blockwise:lineage"]),
    cpy("max_in_flight zero", {"max_in_flight": 0}, ["max_in_flight", "got 0"]),
    cpy("completion_duration_minutes off the 15-minute grid", {"completion_duration_minutes": 20}, ["completion_duration_minutes", "got 20"]),
    cpy("description unknown variable", {"description": "{colour}"}, ["description", "colour"]),
    cpy("source_owner_id malformed", {"source_owner_id": "12345"}, ["source_owner_id", "'12345'"]),

    # ebs_snapshot_share: never public, never aws/ebs, selection, option combinations
    shr("public", {"account_ids": ["all"]}, ["account_ids", "'all'", "public"]),
    shr("account id malformed", {"account_ids": ["12345"]}, ["account_ids", "'12345'"]),
    shr("purge with state absent", {"purge": True, "state": "absent"}, ["purge", "state=present"]),
    shr("state not a choice", {"state": "public"}, ["state", "public"]),
    shr("policy no snapshot carries", {"policy": "nightly-typo"}, ["policy", "nightly-typo"]),
    shr("snapshot that does not exist", {"snapshot_ids": [UNKNOWN_SNAPSHOT]}, ["snapshot_ids", UNKNOWN_SNAPSHOT]),
    shr("encrypted with aws/ebs", lambda c: {"policy": None, "snapshot_ids": [c["managed"]]}, lambda c: ["account_ids", "aws/ebs", c["managed"]]),
    shr("encrypted with aws/ebs, by policy", {"policy": "managed-key"}, ["account_ids", "aws/ebs"]),
    shr("max_concurrency zero", {"max_concurrency": 0}, ["max_concurrency", "got 0"]),
    shr("region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
]

SETUP = {
    "ebs_default_encryption": setup_default_encryption,
    "ebs_block_put": setup_blocks,
    "ebs_block_get": setup_blocks,
    "ebs_changed_blocks_info": setup_blocks,
    "ebs_snapshot_verify": setup_blocks,
    "ami_snapshot_tag": setup_fleet,
    "ebs_snapshot_policy": setup_fleet,
    "ebs_snapshot_prune": setup_fleet,
    "ebs_snapshot_copy": setup_copies,
    "ebs_snapshot_share": setup_copies,
}


# ---------------------------------------------------------------------- security and cost (issue 13)

def setup_nothing(aws, workdir):
    del aws, workdir
    return {}


def bpa(name, args, expect, bug=None):
    return Case("ebs_snapshot_block_public_access", name, args, expect, bug)


def ctl(name, args, expect, bug=None):
    return Case("ebs_audit_controls_info", name, args, expect, bug)


def cost(name, args, expect, bug=None):
    return Case("ebs_snapshot_cost_info", name, args, expect, bug)


CASES += [
    bpa("state not a choice", {"state": "blocked"}, ["state", "blocked"]),
    bpa("regions empty list", {"regions": []}, ["regions", "empty"]),
    bpa("regions all mixed with names", {"regions": ["all", "us-east-1"]}, ["regions", "'all'", "us-east-1"]),
    bpa("regions malformed name", {"regions": ["us_east_1"]}, ["regions", "us_east_1"]),
    bpa("module region that does not exist", {"region": NO_REGION}, ["region", NO_REGION]),
    ctl("policy without a name", {"policies": [{"target_tags": {"backup": "daily"}}]}, ["policies[0]", "name"]),
    ctl("policy frequency unparsable", {"policies": [{"name": "p", "frequency": "often"}]}, ["policies[0]", "often"]),
    ctl("allowed account malformed", {"allowed_share_accounts": ["12345"]}, ["allowed_share_accounts", "'12345'"]),
    ctl("recent_snapshot_age unparsable", {"recent_snapshot_age": "soon"}, ["recent_snapshot_age", "soon"]),
    ctl("workers zero", {"workers": 0}, ["workers", "got 0"]),
    cost("no chain", {}, ["volume_id", "snapshot_ids"]),
    cost("volume and snapshots", {"volume_id": UNKNOWN_VOLUME, "snapshot_ids": [UNKNOWN_SNAPSHOT]}, ["volume_id", "snapshot_ids"]),
    cost("snapshot that does not exist", {"snapshot_ids": [UNKNOWN_SNAPSHOT]}, ["snapshot_ids", UNKNOWN_SNAPSHOT]),
    cost("negative price", {"volume_id": UNKNOWN_VOLUME, "standard_price": -1}, ["standard_price", "-1"]),
    cost("workers zero", {"volume_id": UNKNOWN_VOLUME, "workers": 0}, ["workers", "got 0"]),
]


def points(name, args, expect, bug=None):
    return Case("ebs_restore_points_info", name, args, expect, bug)


def rpo(name, args, expect, bug=None):
    return Case("ebs_copy_status_info", name, dict({"home_snapshots": [], "frequency": "1d"}, **args), expect, bug)


CASES += [
    points("negative sample", {"sample_volumes": -1}, ["sample_volumes", "-1"]),
    points("filter without a value", {"filters": {"tag:backup": []}}, ["filters", "tag:backup"]),
    points("empty policy name", {"policies": [""]}, ["policies", "empty"]),
    points("filter with a null value", {"filters": {"tag:backup": [None]}}, ["filters", "tag:backup"]),
    rpo("frequency unparsable", {"frequency": "often"}, ["frequency", "often"]),
    rpo("grace unparsable", {"grace": "soon"}, ["grace", "soon"]),
    rpo("timezone unknown", {"timezone": "Mars/Olympus"}, ["timezone", "Mars/Olympus"]),
    rpo("destination without a name", {"destinations": [{"copies": []}]}, ["destinations"]),
]

SETUP.update({
    "ebs_restore_points_info": setup_nothing,
    "ebs_copy_status_info": setup_nothing,
})

SETUP.update({
    "ebs_snapshot_block_public_access": setup_nothing,
    "ebs_audit_controls_info": setup_nothing,
    "ebs_snapshot_cost_info": setup_nothing,
})


# ------------------------------------------------------------------------------------------ runner

def counters_task(endpoint_url, name):
    url = "{0}/_localaws/counters".format(endpoint_url)
    return {"name": "counters after " + name,
            "ansible.builtin.debug": {"msg": "{{ lookup('ansible.builtin.url', '%s', split_lines=false, use_proxy=false) | from_json }}" % url}}


def run_module_cases(endpoint, module, workdir):
    """Set up, run every case of ``module`` in one playbook, and return what each case did (JSON-ready)."""
    endpoint.reset()
    endpoint.clear_faults()
    workdir = Path(workdir)
    ctx = SETUP[module](endpoint, workdir)
    cases = [case for case in CASES if case.module == module]
    tasks = []
    for case in cases:
        args, dummy = case.resolve(ctx)
        tasks.append({"name": case.name, COLLECTION + module: args, "ignore_errors": True})
        tasks.append(counters_task(endpoint.endpoint_url, case.name))
    endpoint.reset_counters()
    run = run_playbook(endpoint.endpoint_url, tasks, workdir)
    outcome = {"rc": run.rc, "stderr": run.stderr[-3000:], "cases": {}, "mutating_total": endpoint.mutating_calls()}
    before = {}
    for case in cases:
        try:
            result = run.result(case.name)
            after = run.result("counters after " + case.name)["msg"]["counts"]
        except KeyError:
            outcome["cases"][case.name] = {"missing": True}
            continue
        made = {key: count - before.get(key, 0) for key, count in after.items() if count != before.get(key, 0)}
        before = after
        outcome["cases"][case.name] = {
            "failed": bool(result.get("failed")),
            "msg": str(result.get("msg", "")),
            "mutating": {key: count for key, count in made.items() if is_mutating(key)},
            "expect": list(case.resolve(ctx)[1]),
        }
    attributed = {}
    for got in outcome["cases"].values():
        for key, count in got.get("mutating", {}).items():
            attributed[key] = attributed.get(key, 0) + count
    outcome["unattributed"] = {key: count - attributed.get(key, 0) for key, count in outcome["mutating_total"].items()
                               if count != attributed.get(key, 0)}
    return outcome


def _shared_dir(tmp_path_factory):
    """A directory shared by the xdist workers of this session (the session's own base dir without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


class SharedRuns:
    """Each module's playbook run, made once per session by whichever worker claims it first.

    A worker that needs a run another worker is making does not sit idle: it claims and makes a run
    nobody has started yet, then waits for the one it needs.
    """

    def __init__(self, endpoint, tmp_path_factory):
        self.endpoint = endpoint
        self.factory = tmp_path_factory
        self.shared = _shared_dir(tmp_path_factory)
        self.cache = {}

    def _path(self, module):
        return self.shared / "bad_input_{0}.json".format(module)

    def _make_if_unclaimed(self, module, wait=False):
        """Make the run of ``module`` unless another worker has it (or, with ``wait``, wait for that worker)."""
        path = self._path(module)
        with open(str(path) + ".lock", "a", encoding="utf-8") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            if not path.exists():
                data = run_module_cases(self.endpoint, module, self.factory.mktemp("bad_input_" + module))
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                tmp.replace(path)
        return True

    def __call__(self, module):
        if module not in self.cache:
            if not self._make_if_unclaimed(module):
                for other in SETUP:
                    if other != module and not self._path(other).exists():
                        self._make_if_unclaimed(other)
                self._make_if_unclaimed(module, wait=True)
            self.cache[module] = json.loads(self._path(module).read_text())
        return self.cache[module]


@pytest.fixture(scope="session")
def module_outcomes(localaws, tmp_path_factory):
    """``outcomes(module)``: the shared result of that module's playbook run."""
    return SharedRuns(localaws, tmp_path_factory)


def _param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id="{0}: {1}".format(case.module, case.name), marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input_fails_naming_option_and_value_without_writes(case, module_outcomes):
    outcome = module_outcomes(case.module)
    assert outcome["unattributed"] == {}, outcome["unattributed"]
    got = outcome["cases"].get(case.name)
    assert got and not got.get("missing"), "no result for {0!r}: rc={1} {2}".format(case.name, outcome["rc"], outcome["stderr"])
    assert got["mutating"] == {}, "{0} made mutating calls: {1}".format(case.name, got["mutating"])
    assert got["failed"], "{0} did not fail".format(case.name)
    missing = [text for text in got["expect"] if text not in got["msg"]]
    assert not missing, "message does not name {0}: {1}".format(missing, got["msg"])


def test_matrix_covers_every_module():
    modules = sorted(path.stem for path in (Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
    counts = {module: sum(1 for case in CASES if case.module == module) for module in modules}
    assert all(count >= 4 for count in counts.values()), "add bad-input cases for {0}".format(
        [module for module, count in counts.items() if count < 4])
    assert len(CASES) >= 40
