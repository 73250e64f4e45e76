# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ebs_default_encryption through ansible-playbook against the local endpoint."""
import pytest

REGIONS = ["us-east-1", "eu-west-1"]
MODULE = "blockwise.ebs.ebs_default_encryption"


def task(name="encryption", **params):
    return {"name": name, MODULE: params, "register": "out", "ignore_errors": True}


def state(aws, region):
    ec2 = aws.client("ec2", region=region)
    return (ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"], ec2.get_ebs_default_kms_key_id()["KmsKeyId"])


def make_key(aws, region, alias="alias/team-ebs"):
    kms = aws.client("kms", region=region)
    key = kms.create_key(Description="test")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return key["Arn"]


def test_check_mode_reports_and_changes_nothing(aws, playbook):
    aws.reset_counters()
    run = playbook([task(regions=REGIONS)], check=True, diff=True)
    res = run.result("encryption")
    assert run.rc == 0, run
    assert res["changed"] is True
    assert set(res["regions"]) == set(REGIONS)
    for region in REGIONS:
        assert res["regions"][region]["actions"] == ["enable"]
        assert res["regions"][region]["encryption_by_default"] is True  # predicted
        assert state(aws, region)[0] is False  # but not done
    assert res["diff"]["before"]["us-east-1"]["encryption_by_default"] is False
    assert res["diff"]["after"]["us-east-1"]["encryption_by_default"] is True
    assert aws.mutating_calls() == {}


def test_enable_then_idempotent(aws, playbook):
    run = playbook([task(regions=REGIONS)])
    assert run.rc == 0, run
    assert run.result("encryption")["changed"] is True
    assert all(state(aws, region)[0] for region in REGIONS)
    assert state(aws, "ap-southeast-2")[0] is False  # untouched region

    aws.reset_counters()
    again = playbook([task(regions=REGIONS)])
    res = again.result("encryption")
    assert res["changed"] is False
    assert all(not r["changed"] and r["actions"] == [] for r in res["regions"].values())
    assert aws.mutating_calls() == {}


def test_default_region_is_module_region(aws, playbook):
    run = playbook([task()], region="eu-west-1")
    assert list(run.result("encryption")["regions"]) == ["eu-west-1"]
    assert state(aws, "eu-west-1")[0] is True
    assert state(aws, "us-east-1")[0] is False


def test_customer_key_by_alias_in_each_region(aws, playbook):
    arns = {region: make_key(aws, region) for region in REGIONS}
    run = playbook([task(regions=REGIONS, kms_key_id="alias/team-ebs")], diff=True)
    res = run.result("encryption")
    assert run.rc == 0, run
    for region in REGIONS:
        assert res["regions"][region]["actions"] == ["enable", "set_kms_key"]
        enabled, key = state(aws, region)
        assert enabled and arns[region] in key or key == arns[region]
    aws.reset_counters()
    again = playbook([task(regions=REGIONS, kms_key_id="alias/team-ebs")])
    assert again.result("encryption")["changed"] is False
    assert aws.mutating_calls() == {}
    # The same key named by its ARN is also already in place.
    by_arn = playbook([task(regions=["eu-west-1"], kms_key_id=arns["eu-west-1"])])
    assert by_arn.result("encryption")["changed"] is False


def test_reset_to_aws_managed_key(aws, playbook):
    make_key(aws, "us-east-1")
    assert playbook([task(regions=["us-east-1"], kms_key_id="alias/team-ebs")]).rc == 0
    run = playbook([task(regions=["us-east-1"], kms_key_id="alias/aws/ebs")])
    res = run.result("encryption")
    assert res["regions"]["us-east-1"]["actions"] == ["reset_kms_key"]
    managed = aws.client("kms").describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    assert state(aws, "us-east-1")[1] in (managed, "alias/aws/ebs")
    again = playbook([task(regions=["us-east-1"], reset_kms_key=True)])
    assert again.result("encryption")["changed"] is False


def test_disable(aws, playbook):
    assert playbook([task(regions=["us-east-1"])]).rc == 0
    run = playbook([task(regions=["us-east-1"], state="disabled")])
    assert run.result("encryption")["regions"]["us-east-1"]["actions"] == ["disable"]
    assert state(aws, "us-east-1")[0] is False


def test_all_regions_expands_to_enabled_regions(aws, playbook):
    expected = {r["RegionName"] for r in aws.client("ec2").describe_regions()["Regions"]}
    run = playbook([task(regions=["all"])], check=True)
    res = run.result("encryption")
    assert run.rc == 0, run
    assert set(res["regions"]) == expected
    assert len(expected) > 10


@pytest.mark.parametrize("params, fragment", [
    ({"regions": ["us-east-1", "xx-nowhere-9"]}, "regions: unknown region 'xx-nowhere-9'"),
    ({"regions": []}, "regions must not be empty"),
    ({"regions": ["all", "us-east-1"]}, "'all' must be the only item"),
    ({"regions": ["US East"]}, "regions: 'US East' is not a region name"),
    ({"state": "disabled", "kms_key_id": "alias/team-ebs"}, "kms_key_id='alias/team-ebs' cannot be used with state=disabled"),
    ({"state": "off"}, "value of state must be one of: enabled, disabled, got: off"),
    ({"kms_key_id": "alias/does-not-exist", "regions": REGIONS}, "kms_key_id='alias/does-not-exist' was not found in"),
    ({"kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "regions": REGIONS},
     "cannot be the default key of us-east-1"),
    ({"kms_key_id": "alias/x", "reset_kms_key": True}, "mutually exclusive"),
    ({"regions": REGIONS, "fail_on_region_error": "sometimes"}, "fail_on_region_error"),
])
def test_bad_input_fails_naming_the_option_without_writes(aws, playbook, params, fragment):
    aws.reset_counters()
    run = playbook([task(**params)])
    res = run.result("encryption")
    assert res.get("failed") is True, res
    assert fragment in res["msg"]
    assert aws.mutating_calls() == {}
    assert state(aws, "us-east-1")[0] is False


def test_key_invalid_in_one_region_writes_nowhere(aws, playbook):
    make_key(aws, "eu-west-1")  # the alias exists in eu-west-1 only
    aws.reset_counters()
    run = playbook([task(regions=["eu-west-1", "us-east-1"], kms_key_id="alias/team-ebs")])
    res = run.result("encryption")
    assert res["failed"] and "was not found in us-east-1" in res["msg"]
    assert aws.mutating_calls() == {}


def test_disabled_key_is_refused(aws, playbook):
    kms = aws.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    run = playbook([task(regions=["us-east-1"], kms_key_id=key)])
    assert "not Enabled" in run.result("encryption")["msg"]


def test_region_error_is_reported_and_other_regions_done(aws, playbook):
    aws.inject_error("GetEbsEncryptionByDefault", status=403, code="UnauthorizedOperation",
                     message="You are not authorized to perform this operation.", count=1)
    run = playbook([task(regions=REGIONS)])
    res = run.result("encryption")
    assert res["failed"] is True
    assert res["failed_regions"] == ["us-east-1"]
    assert "UnauthorizedOperation" in res["regions"]["us-east-1"]["error"]
    assert res["regions"]["eu-west-1"]["changed"] is True
    assert res["changed"] is True
    assert state(aws, "eu-west-1")[0] is True
    assert "1 of 2 regions" in res["msg"]


def test_region_error_as_warning(aws, playbook):
    aws.inject_error("GetEbsEncryptionByDefault", status=403, code="UnauthorizedOperation", message="denied", count=1)
    run = playbook([task(regions=REGIONS, fail_on_region_error=False)])
    res = run.result("encryption")
    assert run.rc == 0, run
    assert not res.get("failed")
    assert res["failed_regions"] == ["us-east-1"]
    assert any("us-east-1" in w for w in res.get("warnings", []))


def test_write_error_mid_region_reports_what_was_done(aws, playbook):
    make_key(aws, "us-east-1")
    aws.inject_error("ModifyEbsDefaultKmsKeyId", status=403, code="UnauthorizedOperation", message="denied", count=1)
    run = playbook([task(regions=["us-east-1"], kms_key_id="alias/team-ebs")])
    region = run.result("encryption")["regions"]["us-east-1"]
    assert region["actions"] == ["enable"]
    assert region["encryption_by_default"] is True
    assert region["changed"] is True
    assert "set_kms_key failed: UnauthorizedOperation" in region["error"]


def test_converges_under_throttling_and_5xx(aws, playbook):
    aws.set_faults(throttle_rate=0.2, error_rate=0.02, seed=7)
    run = playbook([task(regions=REGIONS)])
    aws.clear_faults()
    assert run.rc == 0, run
    assert all(state(aws, region)[0] for region in REGIONS)
    again = playbook([task(regions=REGIONS)])
    assert again.result("encryption")["changed"] is False


def test_credentials_given_as_options_never_appear_in_output(aws, playbook):
    secret = "s3cr3t-Value-That-Must-Not-Leak"
    run = playbook([task(regions=["us-east-1"], access_key="testing", secret_key=secret, session_token="tok-" + secret)], verbosity=3)
    assert run.rc == 0, run
    assert secret not in run.stdout and secret not in run.stderr
