# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/encryption.yml (blockwise.ebs.encryption) through ansible-playbook against the local endpoint.

Runs the playbook as operators do: by FQCN on implicit localhost with a ``regions`` list, and with the
example inventory (one host per region and account, accounts by AWS profile).
"""
import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tools.collection_link import ROOT

PLAYBOOK = "blockwise.ebs.encryption"
INVENTORY = ROOT / "inventories" / "example"
ROLE = "blockwise.ebs.encryption_baseline : "  # how the JSON callback names the role's tasks
APPLY = ROLE + "Manage EBS encryption by default"
SUMMARY = ROLE + "Summarise EBS encryption by default per region"
REGIONS = ["us-east-1", "eu-west-1"]
ALIAS = "alias/ebs-default"  # the key alias the example inventory sets for its production account


def encryption(aws, region):
    ec2 = aws.client("ec2", region=region)
    return ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"], ec2.get_ebs_default_kms_key_id()["KmsKeyId"]


def make_key(aws, region, alias=ALIAS):
    kms = aws.client("kms", region=region)
    key = kms.create_key(Description="blockwise.ebs playbook test")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return key["Arn"]


@pytest.fixture
def run(aws, tmp_path):
    """``run(extra_vars, check=False, inventory=None, env=None)``: the playbook against the endpoint."""
    counter = {"n": 0}

    def _run(extra_vars, check=False, inventory=None, env=None):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": aws.endpoint_url}, **extra_vars)
        return run_playbook_file(PLAYBOOK, workdir, check=check, diff=True, extra_vars=extra_vars, inventory=inventory,
                                 env=env or ansible_env(aws.endpoint_url))

    return _run


def results_of(run, name):
    return [result for task, result in zip(run.names, run.results) if task == name]


def test_check_mode_reports_and_changes_nothing(aws, run):
    arns = {region: make_key(aws, region) for region in REGIONS}
    aws.reset_counters()
    out = run({"regions": REGIONS, "kms_key_id": ALIAS}, check=True)
    assert out.rc == 0, out
    res = out.result(APPLY)
    assert res["changed"] is True
    for region in REGIONS:
        assert res["regions"][region]["actions"] == ["enable", "set_kms_key"]
        assert res["regions"][region]["kms_key_id"] == arns[region]  # predicted
        assert encryption(aws, region)[0] is False  # not done
    assert aws.mutating_calls() == {}
    summary = out.result(SUMMARY)["msg"]
    assert summary[0].startswith("us-east-1: encryption by default on") and "would be done: enable, set_kms_key" in summary[0]


def test_apply_then_second_run_changes_nothing(aws, run):
    arns = {region: make_key(aws, region) for region in REGIONS}
    out = run({"regions": REGIONS, "kms_key_id": ALIAS})
    assert out.rc == 0, out
    assert out.result(APPLY)["changed"] is True
    for region in REGIONS:
        assert encryption(aws, region) == (True, arns[region])
    assert encryption(aws, "eu-central-1")[0] is False  # not in the list

    aws.reset_counters()
    again = run({"regions": REGIONS, "kms_key_id": ALIAS})
    assert again.rc == 0, again
    assert again.result(APPLY)["changed"] is False
    assert all("(compliant)" in line for line in again.result(SUMMARY)["msg"])
    assert aws.mutating_calls() == {}


def test_survey_style_inputs_then_disable(aws, run):
    """A survey's text answers: regions as one comma/space separated string, booleans as strings."""
    out = run({"regions": "us-east-1, eu-west-1", "fail_on_region_error": "true", "encryption_state": "enabled"})
    assert out.rc == 0, out
    assert sorted(out.result(APPLY)["regions"]) == sorted(REGIONS)
    assert all(encryption(aws, region)[0] for region in REGIONS)

    out = run({"regions": "eu-west-1", "encryption_state": "disabled"})
    assert out.rc == 0, out
    assert out.result(APPLY)["regions"]["eu-west-1"]["actions"] == ["disable"]
    assert encryption(aws, "eu-west-1")[0] is False
    assert encryption(aws, "us-east-1")[0] is True


def test_connection_region_and_awx_security_token(aws, run):
    """No regions: the connection's region. AWX passes an STS token as AWS_SECURITY_TOKEN; it reaches the module."""
    out = run({}, env=ansible_env(aws.endpoint_url, region="eu-west-1", extra={"AWS_SECURITY_TOKEN": "awx-sts-token"}))
    assert out.rc == 0, out
    res = out.result(APPLY)
    assert list(res["regions"]) == ["eu-west-1"]
    assert encryption(aws, "eu-west-1")[0] is True
    assert res["invocation"]["module_args"]["session_token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"regions": REGIONS, "encryption_state": "off"}, "Validate the extra vars",
     "value of encryption_state must be one of: enabled, disabled, got: off"),
    ({"regions": REGIONS, "target_hosts": "no_such_group"}, "Check that target_hosts matches inventory hosts",
     "target_hosts=no_such_group matches no host of the inventory"),
    ({"regions": REGIONS, "endpoint_url": "localhost:4566"}, "Check that endpoint_url is a URL", "endpoint_url=localhost:4566 is not an http(s) URL"),
    ({"regions": ["us-east-1", "xx-nowhere-9"]}, APPLY, "regions: unknown region 'xx-nowhere-9'"),
    ({"regions": REGIONS, "kms_key_id": "alias/does-not-exist"}, APPLY, "kms_key_id='alias/does-not-exist' was not found in"),
])
def test_bad_extra_vars_fail_clearly_without_writes(aws, run, extra_vars, task, fragment):
    aws.reset_counters()
    out = run(extra_vars)
    assert out.rc != 0, out
    res = out.result(task)
    assert res.get("failed") is True, res
    assert fragment in res["msg"], res["msg"]
    assert APPLY not in out.names or task == APPLY  # input errors stop the run before the role
    assert aws.mutating_calls() == {}


def test_no_region_anywhere_fails_clearly(aws, run):
    env = ansible_env(aws.endpoint_url)
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(key)
    out = run({}, env=env)
    assert out.rc != 0
    assert "No region: set `regions`" in out.result("Check that a region is given")["msg"]
    assert APPLY not in out.names


def test_example_inventory_two_region_hosts_with_account_profiles(aws, run, tmp_path):
    """Region hosts of the example inventory: one task per host, credentials from each account's profile."""
    arns = {region: make_key(aws, region) for region in ("us-east-1", "eu-west-1")}
    credentials = tmp_path / "credentials"
    credentials.write_text("".join("[{0}]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n".format(profile)
                                   for profile in ("production", "staging")))
    env = ansible_env(aws.endpoint_url, extra={"AWS_SHARED_CREDENTIALS_FILE": str(credentials),
                                               "AWS_CONFIG_FILE": str(tmp_path / "no-config")})
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)  # amazon.aws refuses a profile together with access keys
    hosts = "production-us-east-1:production-eu-west-1"

    out = run({"target_hosts": hosts}, inventory=INVENTORY, env=env)
    assert out.rc == 0, out
    applied = results_of(out, APPLY)
    assert len(applied) == 2
    assert sorted(region for res in applied for region in res["regions"]) == ["eu-west-1", "us-east-1"]
    for region, arn in arns.items():
        assert encryption(aws, region) == (True, arn)  # the account's kms_key_id from group_vars
    assert encryption(aws, "eu-central-1")[0] is False  # a production host outside the pattern

    aws.reset_counters()
    again = run({"target_hosts": hosts}, inventory=INVENTORY, env=env)
    assert again.rc == 0, again
    assert [res["changed"] for res in results_of(again, APPLY)] == [False, False]
    assert aws.mutating_calls() == {}
