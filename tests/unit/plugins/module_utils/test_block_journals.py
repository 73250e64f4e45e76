# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Journals left by uploads with wait=false, and options given as empty strings (issue 10, second pass)."""
from __future__ import annotations

import os

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils.blocks import InputError
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.journals import sweep_finished_journals
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import journal_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import lock_path
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.plan import refuse_empty
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.retry import Retrier
from ansible_collections.blockwise.ebs.plugins.module_utils.fileio import FileLock
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import Journal


class FakeEC2:
    """DescribeSnapshots with a snapshot-id filter over ``states`` (a missing id is simply not listed)."""

    def __init__(self, states):
        self.states = states
        self.calls = []

    def describe_snapshots(self, OwnerIds, Filters):  # noqa: N803  (boto3 names)
        ids = Filters[0]["Values"]
        self.calls.append(list(ids))
        return {"Snapshots": [{"SnapshotId": i, "State": self.states[i]} for i in ids if i in self.states]}


def journal(state_dir, src, snapshot_id, complete=True):
    path = journal_path(str(state_dir), src)
    handle = Journal.create(path, "token-" + snapshot_id, snapshot_id)
    if complete:
        handle.mark_complete()
    handle.close()
    return path


def test_journals_of_finished_snapshots_are_removed_and_the_others_kept(tmp_path):
    done = journal(tmp_path, "/img/a", "snap-a")
    failed = journal(tmp_path, "/img/b", "snap-b")
    gone = journal(tmp_path, "/img/c", "snap-c")
    still = journal(tmp_path, "/img/d", "snap-d")
    writing = journal(tmp_path, "/img/e", "snap-e", complete=False)
    own = journal(tmp_path, "/img/f", "snap-f")
    (tmp_path / "unrelated.txt").write_text("x")
    ec2 = FakeEC2({"snap-a": "completed", "snap-b": "error", "snap-d": "pending", "snap-e": "completed",
                   "snap-f": "completed"})
    removed = sweep_finished_journals(str(tmp_path), own, ec2, Retrier())
    assert sorted(removed) == sorted([done, failed, gone])
    assert all(os.path.exists(p) for p in (still, writing, own))
    assert (tmp_path / "unrelated.txt").exists()
    assert ec2.calls == [["snap-a", "snap-b", "snap-c", "snap-d"]]  # one call; the running src's own is skipped
    assert sorted(os.listdir(str(tmp_path))) == sorted([os.path.basename(p) for p in (still, writing, own)] +
                                                       ["unrelated.txt"])


def test_a_journal_whose_upload_runs_now_is_left_to_that_upload(tmp_path):
    path = journal(tmp_path, "/img/a", "snap-a")
    held = FileLock(lock_path(str(tmp_path), "/img/a")).acquire()
    try:
        assert sweep_finished_journals(str(tmp_path), None, FakeEC2({"snap-a": "completed"}), Retrier()) == []
        assert os.path.exists(path)
    finally:
        held.release()
    assert sweep_finished_journals(str(tmp_path), None, FakeEC2({"snap-a": "completed"}), Retrier()) == [path]
    assert os.listdir(str(tmp_path)) == []


def test_no_journal_no_call(tmp_path):
    ec2 = FakeEC2({})
    assert sweep_finished_journals(str(tmp_path / "missing"), None, ec2, Retrier()) == []
    assert sweep_finished_journals(str(tmp_path), None, ec2, Retrier()) == []
    assert ec2.calls == []


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_strings_are_refused_naming_the_option(value):
    with pytest.raises(InputError) as info:
        refuse_empty({"parent_snapshot_id": value}, ("kms_key_arn", "parent_snapshot_id"))
    assert info.value.option == "parent_snapshot_id" and "empty" in str(info.value)


def test_omitted_and_real_values_pass():
    refuse_empty({"parent_snapshot_id": None, "kms_key_arn": "arn:aws:kms:x"}, ("kms_key_arn", "parent_snapshot_id"))
