# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of ebs_snapshot_verify's pure core (``verify.py``) and of the downloader's bad-block hook."""
import base64
import hashlib
import threading
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.blockwise.ebs.plugins.module_utils import blocks
from ansible_collections.blockwise.ebs.plugins.module_utils import verify as core
from ansible_collections.blockwise.ebs.plugins.module_utils.blocks.verify_reads import Reads
from ansible_collections.blockwise.ebs.plugins.module_utils.manifest import BLOCK_SIZE, ZERO_BLOCK_DIGEST

BS = BLOCK_SIZE


def sha(data):
    return hashlib.sha256(data).digest()


# ------------------------------------------------------------------------------------ sample

@pytest.mark.parametrize("value,count,percent", [
    (1000, 1000, None), ("1000", 1000, None), (" 7 ", 7, None), (3.0, 3, None),
    ("1%", None, 1.0), ("0.5%", None, 0.5), ("100 %", None, 100.0),
])
def test_parse_sample(value, count, percent):
    spec = core.parse_sample(value)
    assert (spec.count, spec.percent) == (count, percent)


@pytest.mark.parametrize("value", [0, -3, "0", "0%", "101%", "-1%", "ten", "1.5", 1.5, True, "%", [1]])
def test_parse_sample_refuses_naming_the_option(value):
    with pytest.raises(blocks.InputError) as err:
        core.parse_sample(value)
    assert err.value.option == "sample" and "sample" in str(err.value)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_sample_is_a_full_verification(value):
    assert core.parse_sample(value) is None


def test_sample_is_seeded_by_snapshot_id_and_holds_first_and_last():
    domain = list(range(5, 100000, 3))
    spec = core.parse_sample("1%")
    a = core.choose_sample("snap-0aaa", domain, spec, always=[0, domain[-1]])
    again = core.choose_sample("snap-0aaa", domain, spec, always=[0, domain[-1]])
    other = core.choose_sample("snap-0bbb", domain, spec, always=[0, domain[-1]])
    assert a == again and a != other
    assert a[0] == 0 and a[-1] == domain[-1]
    assert len(a) == spec.size(len(domain)) == 334
    assert set(a) - {0} <= set(domain) and a == sorted(set(a))


def test_sample_covering_everything_is_full():
    assert core.choose_sample("snap-1", [1, 2, 3], core.parse_sample(3), always=[0, 3]) is None
    assert core.choose_sample("snap-1", [1, 2, 3], core.parse_sample("100%"), always=[0, 3]) is None
    assert core.choose_sample("snap-1", [], core.parse_sample(5), always=[0]) is None


def test_sample_smaller_than_the_blocks_always_checked():
    assert core.choose_sample("snap-1", list(range(1, 50)), core.parse_sample(1), always=[0, 49]) == [0, 49]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5000), min_size=1, max_size=400, unique=True), st.integers(1, 450), st.text(max_size=12))
def test_sample_size_and_membership(values, count, sid):
    domain = sorted(values)
    always = [0, domain[-1]]
    chosen = core.choose_sample(sid, domain, core.SampleSpec(count=count), always)
    if count >= len(domain):
        assert chosen is None
        return
    assert chosen == sorted(set(chosen))
    assert set(always) <= set(chosen) and set(chosen) - {0} <= set(domain)
    assert len(chosen) == max(count, len(set(always)))


def test_sorted_union_and_intersection():
    assert core.sorted_union([1, 3, 5], [2, 3, 9], []) == [1, 2, 3, 5, 9]
    assert core.intersect_sorted([0, 2, 4, 6, 8], [1, 2, 3, 8, 9]) == [2, 8]
    assert core.intersect_sorted([5], []) == []


# ------------------------------------------------------------------------------------ refusals

def snap(**kw):
    base = {"SnapshotId": "snap-1", "State": "completed", "OwnerId": "123456789012", "StorageTier": "standard"}
    base.update(kw)
    return base


@pytest.mark.parametrize("snapshot,owned,words", [
    (snap(State="pending", Progress="40%"), True, ["pending", "40%"]),
    (snap(State="error", StateMessage="boom"), True, ["error", "boom"]),
    (snap(StorageTier="archive"), True, ["archive", "RestoreSnapshotTier"]),
    (snap(OwnerId="210987654321"), False, ["210987654321", "account"]),
])
def test_refusal_names_the_reason(snapshot, owned, words):
    why = core.refusal(snapshot, owned)
    assert why.startswith("snapshot_id: snap-1") and all(w in why for w in words)


def test_refusal_none_for_a_completed_owned_standard_snapshot():
    assert core.refusal(snap(), True) is None
    assert core.refusal(snap(StorageTier=None), True) is None


# ------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("code,kind", [
    ("ChecksumMismatch", core.UNREADABLE), ("InternalServerException", core.UNREADABLE), ("500", core.UNREADABLE),
    ("ValidationException", core.UNREADABLE),
    ("AccessDeniedException", "fatal"), ("KMSAccessDeniedException", "fatal"), ("KMS.DisabledException", "fatal"),
    ("RequestThrottledException", "fatal"), ("ThrottlingException", "fatal"), ("ResourceNotFoundException", "fatal"),
    ("ServiceQuotaExceededException", "fatal"), (None, "fatal"), ("", "fatal"),
])
def test_block_error_kind(code, kind):
    assert core.block_error_kind(blocks.TransferError("x", code=code)) == kind


def test_bad_blocks_keeps_the_lowest_and_counts_all():
    bad = core.BadBlocks(3)
    for index in (50, 7, 99, 3, 12, 1):
        bad.add(index, "e%d" % index)
    assert bad.indexes() == [1, 3, 7] and bad.count == 6
    assert sorted(bad.errors) == [1, 3, 7]


def test_compare_treats_absent_as_zero_and_skips_unread():
    a, b = sha(b"a"), sha(b"b")
    mine = {1: a, 2: ZERO_BLOCK_DIGEST, 4: a, 5: a}
    theirs = {1: a, 3: b, 4: b, 5: b, 6: ZERO_BLOCK_DIGEST}
    got = core.compare([1, 2, 3, 4, 5, 6], mine.get, theirs.get, skip=lambda i: i == 5)
    assert got == [3, 4]


# ------------------------------------------------------------------------------------ result

@pytest.mark.parametrize("args,expected", [
    ((0, 0), core.OK), ((0, 0, True, True), core.OK), ((1, 0), core.UNREADABLE), ((1, 5, False, False), core.UNREADABLE),
    ((0, 2), core.MISMATCH), ((0, 0, False), core.MISMATCH), ((0, 0, None, False), core.MISMATCH),
])
def test_outcome(args, expected):
    assert core.outcome(*args) == expected


def test_restore_estimate_scales_the_measured_rate():
    # a full read is its own estimate
    assert core.restore_estimate(1000, 1000, 7.5, 64) == 7.5
    # 100 blocks with 10 workers in 2 s -> 1000 blocks take 20 s
    assert core.restore_estimate(1000, 100, 2.0, 10) == 20.0
    # 8 blocks read at once in 0.1 s: 640 blocks, 64 at a time, take 10 rounds of 0.1 s
    assert core.restore_estimate(640, 8, 0.1, 64) == 1.0
    assert core.restore_estimate(0, 0, 0.0, 8) == 0.0
    assert core.restore_estimate(10, 0, 0.0, 8) is None


def test_verify_tags_are_iso_utc():
    now = datetime(2026, 11, 28, 13, 5, 9, 123456, tzinfo=timezone.utc)
    assert core.verify_tags("ok", "sample", now) == {
        "blockwise:verified": "ok", "blockwise:verified-at": "2026-11-28T13:05:09Z", "blockwise:verify-mode": "sample"}
    assert core.recorded_tags({"Name": "x", "blockwise:verified": "ok"}) == {"blockwise:verified": "ok"}


def test_summary_names_blocks_and_reference():
    unreadable, mismatched = core.BadBlocks(2), core.BadBlocks(2)
    for i in (9, 4, 6):
        mismatched.add(i)
    text = core.summary("snap-1", core.MISMATCH, "full", unreadable, mismatched, "manifest /m", None, None)
    assert "3 block(s) differ from the manifest /m: 4, 6 and 1 more" in text
    text = core.summary("snap-1", core.MISMATCH, "full", unreadable, core.BadBlocks(2), "blockwise:content tag", False,
                        None)
    assert "blockwise:content" in text and "not known" in text
    text = core.summary("snap-1", core.MISMATCH, "full", unreadable, core.BadBlocks(2), "manifest /m", False, None)
    assert "every block matches the manifest /m" in text and "not known" not in text


# ------------------------------------------------------------------------------------ fs_check

@pytest.mark.parametrize("template,word", [
    ("e2fsck -fn", "{image}"), ("{image} --check", "program"), ("fsck 'unclosed {image}", "split"), ("", "{image}"),
])
def test_fs_template_refused(template, word):
    with pytest.raises(blocks.InputError) as err:
        core.check_fs_template(template)
    assert err.value.option == "fs_check" and word in str(err.value)


def test_fs_check_argv_without_and_with_shell():
    image = "/tmp/a dir/.img"
    assert core.fs_check_argv("e2fsck -fn {image}", image) == ["e2fsck", "-fn", image]
    assert core.fs_check_argv("tool --dev={image} 'x y'", image) == ["tool", "--dev=" + image, "x y"]
    assert core.fs_check_argv("e2fsck -fn {image} | tail -1", image, shell=True) == [
        "/bin/sh", "-c", "e2fsck -fn '/tmp/a dir/.img' | tail -1"]


def test_output_tail():
    assert core.output_tail("a\n\nb  \nc\n", 2) == ["b", "c"]
    assert core.output_tail(None) == []


# ------------------------------------------------------------------------------------ the downloader's hook

def client_error(code, message="msg", status=400):
    import botocore.exceptions
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetSnapshotBlock")


class Body:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data

    def close(self):
        pass


class FakeReader:
    """GetSnapshotBlock for blocks ``{index: data}``; ``corrupt`` blocks come with a wrong checksum, ``errors``
    raise the given exception."""

    def __init__(self, data, corrupt=(), errors=None):
        self.data = data
        self.corrupt = set(corrupt)
        self.errors = errors or {}
        self.calls = []
        self.lock = threading.Lock()

    def get_snapshot_block(self, SnapshotId, BlockIndex, BlockToken):  # noqa: N803  pylint: disable=invalid-name
        with self.lock:
            self.calls.append(BlockIndex)
        if BlockIndex in self.errors:
            raise self.errors[BlockIndex]
        data = self.data[BlockIndex]
        digest = sha(b"other" if BlockIndex in self.corrupt else data)
        return {"BlockData": Body(data), "Checksum": base64.b64encode(digest).decode()}


def blocks_of(n):
    return {i: bytes([i + 1]) * BS for i in range(n)}


def test_downloader_without_hook_stops_at_the_first_bad_block():
    reader = FakeReader(blocks_of(6), corrupt=[2])
    down = blocks.BlockDownloader(reader, "snap-1", 1, retry=blocks.Retrier(sleep=lambda s: None))
    seen = []
    with pytest.raises(blocks.TransferError) as err:
        down.run([(i, "t") for i in range(6)], lambda i, d, g: seen.append(i))
    assert err.value.code == "ChecksumMismatch" and err.value.block_index == 2
    assert seen == [0, 1]


def test_downloader_hook_records_bad_blocks_and_goes_on():
    reader = FakeReader(blocks_of(8), corrupt=[2, 5],
                        errors={6: client_error("ValidationException", "injected", 400)})
    reads = Reads(list(range(8)), list(range(8)), max_bad=10)
    stop = threading.Event()
    down = blocks.BlockDownloader(reader, "snap-1", 3, retry=blocks.Retrier(sleep=lambda s: None), stop=stop,
                                  on_block_error=reads.on_error(stop))
    down.run([(i, "t") for i in range(8)], reads.handle)
    assert reads.unreadable.indexes() == [2, 5, 6] and reads.unreadable.count == 3
    assert "bad checksum" in reads.unreadable.errors[2] and "injected" in reads.unreadable.errors[6]
    assert down.blocks_fetched == 5 and not reads.stopped and not reads.complete
    assert reads.digest(1) == sha(bytes([2]) * BS) and reads.digest(2) is None and reads.unread(2)
    assert reader.calls.count(2) == blocks.BlockDownloader.CHECKSUM_RETRIES


def test_downloader_hook_lets_fatal_errors_stop_the_run():
    reader = FakeReader(blocks_of(4), errors={1: client_error("AccessDeniedException", "no kms:Decrypt", 403)})
    reads = Reads(list(range(4)), list(range(4)), max_bad=10)
    stop = threading.Event()
    down = blocks.BlockDownloader(reader, "snap-1", 1, retry=blocks.Retrier(sleep=lambda s: None), stop=stop,
                                  on_block_error=reads.on_error(stop))
    with pytest.raises(blocks.TransferError) as err:
        down.run([(i, "t") for i in range(4)], reads.handle)
    assert err.value.code == "AccessDeniedException" and reads.unreadable.count == 0


def test_reads_stop_after_max_bad_blocks():
    reader = FakeReader(blocks_of(20), corrupt=range(20))
    reads = Reads(list(range(20)), list(range(20)), max_bad=3)
    stop = threading.Event()
    down = blocks.BlockDownloader(reader, "snap-1", 1, retry=blocks.Retrier(sleep=lambda s: None), stop=stop,
                                  on_block_error=reads.on_error(stop))
    down.run([(i, "t") for i in range(20)], reads.handle)
    assert reads.stopped and reads.unreadable.count == 3 and len(set(reader.calls)) == 3


def test_reads_select_follows_the_sample_and_stops_listing():
    reads = Reads(list(range(100)), [3, 50], max_bad=5)
    consumed = []

    def listing():
        for i in range(100):
            consumed.append(i)
            yield i, "t%d" % i

    assert list(reads.select(listing(), sample=True)) == [(3, "t3"), (50, "t50")]
    assert consumed[-1] == 51  # the listing is not read past the sample's last block
    assert list(reads.select(iter([(1, "a")]), sample=False)) == [(1, "a")]
