# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils import encryption as core

KNOWN = {
    "us-east-1": "opt-in-not-required",
    "eu-west-1": "opt-in-not-required",
    "ap-east-1": "not-opted-in",
    "me-south-1": "opted-in",
}
KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_ARN = "arn:aws:kms:eu-west-1:123456789012:key/ffffffff-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("key, expected", [
    ("alias/aws/ebs", True),
    ("arn:aws:kms:us-east-1:123456789012:alias/aws/ebs", True),
    ("alias/aws/ebs-not", False),
    (KEY_ARN, False),
    (None, False),
    ("", False),
])
def test_is_aws_managed(key, expected):
    assert core.is_aws_managed(key) is expected


def test_arn_helpers():
    assert core.arn_region(KEY_ARN) == "eu-west-1"
    assert core.arn_region("alias/mine") is None
    assert core.is_key_arn(KEY_ARN)
    assert not core.is_key_arn("arn:aws:kms:eu-west-1:123456789012:alias/mine")


@pytest.mark.parametrize("state, key, reset, regions, fragment", [
    ("disabled", "alias/mine", False, None, "kms_key_id"),
    ("disabled", None, True, None, "reset_kms_key"),
    ("enabled", "  ", False, None, "kms_key_id must not be empty"),
    ("enabled", None, False, [], "regions must not be empty"),
    ("enabled", None, False, ["all", "us-east-1"], "'all' must be the only item"),
    ("enabled", None, False, ["US East"], "regions: 'US East' is not a region name"),
])
def test_validate_options_rejects(state, key, reset, regions, fragment):
    with pytest.raises(core.EncryptionInputError, match=fragment):
        core.validate_options(state, key, reset, regions)


def test_validate_options_accepts():
    core.validate_options("enabled", "alias/mine", False, ["us-east-1", "eu-west-1"])
    core.validate_options("disabled", None, False, ["all"])
    core.validate_options("enabled", None, True, None)


def test_resolve_regions_default_is_module_region():
    assert core.resolve_regions(None, "eu-west-1", KNOWN) == ["eu-west-1"]


def test_resolve_regions_without_any_region_fails():
    with pytest.raises(core.EncryptionInputError, match="no region"):
        core.resolve_regions(None, None, KNOWN)


def test_resolve_regions_all_skips_not_opted_in():
    assert core.resolve_regions(["all"], "us-east-1", KNOWN) == ["eu-west-1", "me-south-1", "us-east-1"]


def test_resolve_regions_unknown_names_the_option_and_value():
    with pytest.raises(core.EncryptionInputError, match=r"regions: unknown region 'xx-nowhere-1'"):
        core.resolve_regions(["us-east-1", "xx-nowhere-1"], None, KNOWN)


def test_resolve_regions_keeps_order_and_dedupes():
    assert core.resolve_regions(["eu-west-1", "us-east-1", "eu-west-1"], None, KNOWN) == ["eu-west-1", "us-east-1"]


def test_check_key_region():
    core.check_key_region(KEY_ARN, ["eu-west-1"])
    core.check_key_region("alias/mine", ["eu-west-1", "us-east-1"])
    with pytest.raises(core.EncryptionInputError, match="cannot be the default key of us-east-1"):
        core.check_key_region(KEY_ARN, ["eu-west-1", "us-east-1"])


def test_check_key_region_of_the_aws_managed_alias_arn():
    managed_alias_arn = "arn:aws:kms:eu-west-1:123456789012:alias/aws/ebs"
    core.check_key_region(managed_alias_arn, ["eu-west-1"])
    core.check_key_region("alias/aws/ebs", ["eu-west-1", "us-east-1"])
    with pytest.raises(core.EncryptionInputError, match="cannot be the default key of us-east-1; use alias/aws/ebs instead"):
        core.check_key_region(managed_alias_arn, ["eu-west-1", "us-east-1"])


MANAGED_ARN = "arn:aws:kms:eu-west-1:123456789012:key/aaaaaaaa-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize("key_id, managed, reported", [
    ("alias/aws/ebs", None, "alias/aws/ebs"),
    ("arn:aws:kms:eu-west-1:123456789012:alias/aws/ebs", None, "alias/aws/ebs"),
    (MANAGED_ARN, MANAGED_ARN, "alias/aws/ebs"),
    (MANAGED_ARN, None, MANAGED_ARN),
    (KEY_ARN, MANAGED_ARN, KEY_ARN),
    (None, MANAGED_ARN, None),
])
def test_reported_key_id_names_the_aws_managed_key_one_way(key_id, managed, reported):
    assert core.reported_key_id(key_id, managed) == reported


@pytest.mark.parametrize("metadata, fragment", [
    ({"KeyState": "PendingDeletion"}, "is PendingDeletion, not Enabled"),
    ({"KeyState": "Disabled"}, "is Disabled"),
    ({"KeyState": "Enabled", "KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}, "symmetric"),
    ({"KeyState": "Enabled", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "GENERATE_VERIFY_MAC"}, "symmetric"),
])
def test_check_key_metadata_rejects(metadata, fragment):
    with pytest.raises(core.EncryptionInputError, match=fragment):
        core.check_key_metadata("alias/mine", "eu-west-1", metadata)


def test_check_key_metadata_accepts_symmetric_enabled():
    core.check_key_metadata("alias/mine", "eu-west-1", {"KeyState": "Enabled", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"})


def current(enabled, key="alias/aws/ebs", arn=None):
    return {"encryption_by_default": enabled, "kms_key_id": key, "kms_key_arn": arn}


def test_plan_enable_only():
    plan = core.plan_region(current(False), "enabled")
    assert plan["actions"] == [core.ENABLE]
    assert plan["after"] == {"encryption_by_default": True, "kms_key_id": "alias/aws/ebs"}
    assert plan["changed"]


def test_plan_nothing_to_do():
    plan = core.plan_region(current(True, KEY_ARN, KEY_ARN), "enabled", want_key_arn=KEY_ARN)
    assert plan == {"actions": [], "before": plan["after"], "after": plan["after"], "changed": False}


def test_plan_disable_leaves_key():
    plan = core.plan_region(current(True, KEY_ARN, KEY_ARN), "disabled")
    assert plan["actions"] == [core.DISABLE]
    assert plan["after"]["kms_key_id"] == KEY_ARN


def test_plan_set_key_from_aws_managed():
    plan = core.plan_region(current(True), "enabled", want_key_arn=KEY_ARN)
    assert plan["actions"] == [core.SET_KEY]
    assert plan["after"]["kms_key_id"] == KEY_ARN


def test_plan_set_key_when_other_key():
    plan = core.plan_region(current(False, OTHER_ARN, OTHER_ARN), "enabled", want_key_arn=KEY_ARN)
    assert plan["actions"] == [core.ENABLE, core.SET_KEY]


def test_plan_set_key_when_current_unresolvable():
    plan = core.plan_region(current(True, "alias/deleted", None), "enabled", want_key_arn=KEY_ARN)
    assert plan["actions"] == [core.SET_KEY]


def test_plan_reset_only_when_not_already_aws_managed():
    assert core.plan_region(current(True, KEY_ARN, KEY_ARN), "enabled", want_aws_managed=True)["actions"] == [core.RESET_KEY]
    assert core.plan_region(current(True, "arn:aws:kms:us-east-1:123456789012:alias/aws/ebs"), "enabled", want_aws_managed=True)["actions"] == []


def test_plan_reports_the_aws_managed_key_by_its_alias_before_and_after():
    by_arn = {"encryption_by_default": True, "kms_key_id": MANAGED_ARN, "kms_key_arn": MANAGED_ARN, "aws_managed": True}
    plan = core.plan_region(by_arn, "enabled", want_key_arn=KEY_ARN)
    assert plan["before"]["kms_key_id"] == "alias/aws/ebs" and plan["after"]["kms_key_id"] == KEY_ARN
    reset = core.plan_region(current(True, KEY_ARN, KEY_ARN), "enabled", want_aws_managed=True)
    assert reset["before"]["kms_key_id"] == KEY_ARN and reset["after"]["kms_key_id"] == "alias/aws/ebs"
    assert core.plan_region(by_arn, "enabled", want_aws_managed=True)["actions"] == []


def test_plan_setting_the_key_it_already_has_changes_nothing():
    plan = core.plan_region({"encryption_by_default": True, "kms_key_id": MANAGED_ARN, "kms_key_arn": MANAGED_ARN, "aws_managed": True},
                            "enabled", want_key_arn=MANAGED_ARN)
    assert plan["actions"] == []


def test_build_diff_after_applying_shows_what_happened():
    plans = {
        "us-east-1": core.plan_region(current(False), "enabled", want_key_arn=KEY_ARN),
        "eu-west-1": core.plan_region(current(False), "enabled"),
        "eu-north-1": core.plan_region(current(True), "enabled"),
    }
    predicted = core.build_diff(plans)
    assert predicted["after"]["us-east-1"] == {"encryption_by_default": True, "kms_key_id": KEY_ARN}
    outcomes = {
        "us-east-1": {"encryption_by_default": True, "kms_key_id": "alias/aws/ebs"},  # enabled, then set_kms_key failed
        "eu-west-1": {"encryption_by_default": False, "kms_key_id": "alias/aws/ebs"},  # enable failed
    }
    done = core.build_diff(plans, outcomes)
    assert done["before"] == predicted["before"]
    assert done["after"] == outcomes
    assert "eu-north-1" not in done["after"]
    assert core.build_diff(plans, {})["after"]["us-east-1"] == plans["us-east-1"]["before"]  # nothing known: as before


def test_build_diff_lists_only_changed_regions():
    plans = {
        "us-east-1": core.plan_region(current(False), "enabled"),
        "eu-west-1": core.plan_region(current(True), "enabled"),
    }
    diff = core.build_diff(plans)
    assert list(diff["before"]) == ["us-east-1"]
    assert diff["before"]["us-east-1"]["encryption_by_default"] is False
    assert diff["after"]["us-east-1"]["encryption_by_default"] is True
