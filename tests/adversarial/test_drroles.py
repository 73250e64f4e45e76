# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks on the snapshot_schedule role's copies through ansible-playbook: lose data, lie, leak secrets.

AWS facts: a copy's VolumeId is arbitrary and it carries the policy tag (EC2 CopySnapshot reference), so a
prune scoped by the policy tag in a region that also receives copies would treat them as home snapshots.
"""
from tests.functional.test_role_copies import (BACKUP, CREDENTIALS, DR, HOME, SECRET, TASK, failures, history, policy,
                                               results, role_task, volumes)


def test_a_copy_region_that_is_also_a_home_region_is_refused_before_any_call(aws, playbook):
    """The home prune of that region would apply the home retention to the copies made there."""
    history(aws, volumes(aws, tagged=False), days=2)
    aws.reset_counters()
    run = playbook([role_task([policy([{"region": DR, "retention": {"keep_monthly": 12}}])], snapshot_schedule_regions=[HOME, DR])])
    assert run.rc != 0
    check = run.result(TASK + "Check the copies of the policies")
    assert check.get("failed") and "snapshot_schedule_regions" in check["msg"] and DR in check["msg"]
    assert aws.mutating_calls() == {}


def test_credentials_of_the_other_account_never_reach_the_output_even_verbose(aws, playbook):
    history(aws, volumes(aws, tagged=False), days=1)
    run = playbook([role_task([policy([{"region": DR, "account": BACKUP, "wait": True, "wait_timeout": 60}])],
                              snapshot_schedule_copy_credentials=CREDENTIALS)], verbosity=3)
    assert run.rc == 0, failures(run)
    assert results(run, TASK + "Copy into each destination")[0]["copies"]  # the other account was really used
    assert SECRET not in run.stdout and SECRET not in run.stderr


def test_an_account_id_that_is_not_12_digits_is_refused_naming_the_option(aws, playbook):
    aws.reset_counters()
    run = playbook([role_task([policy([{"region": DR, "account": "21098765432"}])])])
    check = run.result(TASK + "Check the copies of the policies")
    assert run.rc != 0 and check.get("failed") and "account" in check["msg"] and "21098765432" in check["msg"]
    assert aws.mutating_calls() == {}
