# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Control features of the local endpoint: counters, faults, back-dating, reset and the CLI."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.localaws import LocalAWSControl, LocalAWSControlError
from tests.localaws.blockdata import block, put_block, write_snapshot

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_RETRIES = {"retries": {"total_max_attempts": 1, "mode": "standard"}}


def failure(call, **kwargs):
    """Run a call that must fail; return ``(HTTP status, code, content type)``."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["ResponseMetadata"]["HTTPHeaders"].get("content-type")


# -- counters -------------------------------------------------------------------------------------


def test_counters_count_each_service_and_action(aws):
    ec2, ebs = aws.client("ec2"), aws.client("ebs")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    ec2.create_snapshot(VolumeId=volume)
    ec2.describe_snapshots()
    write_snapshot(ebs, {0: block(1), 1: block(2)})
    aws.client("kms").list_keys()
    aws.client("s3").create_bucket(Bucket="counted")
    assert aws.counters() == {
        "ec2:CreateVolume": 1, "ec2:CreateSnapshot": 1, "ec2:DescribeSnapshots": 1,
        "ebs:StartSnapshot": 1, "ebs:PutSnapshotBlock": 2, "ebs:CompleteSnapshot": 1,
        "kms:ListKeys": 1, "s3:CreateBucket": 1,
    }
    assert aws.mutating_calls() == {
        "ec2:CreateVolume": 1, "ec2:CreateSnapshot": 1, "ebs:StartSnapshot": 1,
        "ebs:PutSnapshotBlock": 2, "ebs:CompleteSnapshot": 1, "s3:CreateBucket": 1,
    }
    aws.reset_counters()
    assert aws.counters() == {}


def test_faulted_requests_are_counted_twice(aws):
    ec2 = aws.client("ec2", **NO_RETRIES)
    aws.inject_error("DescribeVolumes", status=500, code="InternalError", message="boom", count=2)
    for _attempt in range(2):
        failure(ec2.describe_volumes)
    ec2.describe_volumes()
    assert aws.counters() == {"ec2:DescribeVolumes": 3}
    assert aws.faulted_counters() == {"ec2:DescribeVolumes": 2}


def test_control_requests_are_not_counted(aws):
    aws.counters()
    aws.set_faults(throttle_rate=1.0)
    aws.faults()
    aws.clear_faults()
    assert aws.counters() == {}


# -- random faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "call", "expected"), [
    ("ec2", lambda client: client.describe_volumes(), (503, "RequestLimitExceeded", "text/xml")),
    ("ebs", lambda client: client.start_snapshot(VolumeSize=1), (400, "RequestThrottledException", "application/json")),
    ("kms", lambda client: client.list_keys(), (400, "ThrottlingException", "application/x-amz-json-1.1")),
    ("sts", lambda client: client.get_caller_identity(), (400, "Throttling", "text/xml")),
])
def test_throttling_uses_each_services_own_error(aws, service, call, expected):
    client = aws.client(service, **NO_RETRIES)
    aws.set_faults(throttle_rate=1.0)
    assert failure(lambda: call(client)) == expected


@pytest.mark.parametrize(("service", "call", "expected"), [
    ("ec2", lambda client: client.describe_volumes(), (500, "InternalError")),
    ("ebs", lambda client: client.start_snapshot(VolumeSize=1), (500, "InternalServerException")),
    ("kms", lambda client: client.list_keys(), (500, "InternalFailure")),
])
def test_error_rate_answers_internal_errors(aws, service, call, expected):
    client = aws.client(service, **NO_RETRIES)
    aws.set_faults(error_rate=1.0)
    assert failure(lambda: call(client))[:2] == expected


def test_throttled_ebs_reason_is_modelled(aws):
    aws.set_faults(throttle_rate=1.0)
    with pytest.raises(ClientError) as caught:
        aws.client("ebs", **NO_RETRIES).start_snapshot(VolumeSize=1)
    assert caught.value.response["Reason"] == "ACCOUNT_THROTTLED"


def test_faults_can_be_limited_to_actions_and_services(aws):
    ebs, ec2 = aws.client("ebs", **NO_RETRIES), aws.client("ec2", **NO_RETRIES)
    aws.set_faults(throttle_rate=1.0, services=["ebs"], actions=["PutSnapshotBlock"])
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    ec2.describe_snapshots()
    assert failure(put_block, ebs=ebs, snapshot_id=snapshot_id, index=0, data=block(1))[1] == "RequestThrottledException"
    assert aws.faulted_counters() == {"ebs:PutSnapshotBlock": 1}


def test_seeded_faults_repeat(aws):
    ec2 = aws.client("ec2", **NO_RETRIES)

    def pattern():
        aws.set_faults(throttle_rate=0.3, error_rate=0.2, seed=1234)
        outcomes = []
        for _attempt in range(30):
            try:
                ec2.describe_volumes()
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
        return outcomes

    first = pattern()
    assert first == pattern()
    assert {"ok", "RequestLimitExceeded", "InternalError"} == set(first)


def test_sdk_retries_a_throttled_ebs_call(aws):
    aws.inject_error("StartSnapshot", status=400, code="RequestThrottledException", message="slow down", reason="ACCOUNT_THROTTLED")
    ebs = aws.client("ebs", retries={"total_max_attempts": 3, "mode": "standard"})
    assert ebs.start_snapshot(VolumeSize=1)["Status"] == "pending"
    assert aws.counters() == {"ebs:StartSnapshot": 2}
    assert aws.faulted_counters() == {"ebs:StartSnapshot": 1}


def test_latency_delays_selected_requests_only(aws):
    ec2 = aws.client("ec2")
    aws.set_faults(latency=0.3, actions=["ec2:DescribeVolumes"])
    started = time.monotonic()
    ec2.describe_volumes()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    ec2.describe_snapshots()
    aws.counters()
    assert time.monotonic() - started < 0.3


def test_fault_rates_are_validated(aws):
    with pytest.raises(LocalAWSControlError):
        aws.set_faults(throttle_rate=1.5)
    with pytest.raises(LocalAWSControlError):
        aws.set_faults(throttle_rate=0.6, error_rate=0.6)


# -- injected errors ------------------------------------------------------------------------------


def test_injected_error_answers_the_next_calls_then_stops(aws):
    ebs = aws.client("ebs", **NO_RETRIES)
    snapshot_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    aws.inject_error("PutSnapshotBlock", status=403, code="AccessDeniedException", message="no access", reason="UNAUTHORIZED_ACCOUNT")
    with pytest.raises(ClientError) as caught:
        put_block(ebs, snapshot_id, 0, block(1))
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"] == {"Code": "AccessDeniedException", "Message": "no access"}
    assert response["Reason"] == "UNAUTHORIZED_ACCOUNT"
    put_block(ebs, snapshot_id, 0, block(1))


def test_injected_error_for_every_call_until_cleared(aws):
    ebs = aws.client("ebs", **NO_RETRIES)
    aws.inject_error("ebs:ListSnapshotBlocks", status=404, code="ResourceNotFoundException", message="not yet", count=None)
    snapshot_id = write_snapshot(ebs, {0: block(1)})
    for _attempt in range(3):
        assert failure(ebs.list_snapshot_blocks, SnapshotId=snapshot_id)[:2] == (404, "ResourceNotFoundException")
    aws.clear_faults()
    assert len(ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]) == 1


def test_injected_ec2_error_is_ec2_xml(aws):
    aws.inject_error("CreateSnapshot", status=400, code="SnapshotCreationPerVolumeRateExceeded", message="slow down", service="ec2")
    ec2 = aws.client("ec2", **NO_RETRIES)
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    assert failure(ec2.create_snapshot, VolumeId=volume) == (400, "SnapshotCreationPerVolumeRateExceeded", "text/xml")


def test_injected_error_can_deny_one_region_only(aws):
    """An IAM policy can deny an action in one region (condition ``aws:RequestedRegion``); EC2 then answers
    ``UnauthorizedOperation`` (HTTP 403) there and nowhere else."""
    aws.inject_error("DescribeVolumes", status=403, code="UnauthorizedOperation", message="You are not authorized to perform this operation.",
                     count=None, region="eu-west-1")
    for _attempt in range(2):
        aws.client("ec2", region="us-east-1").describe_volumes()
        assert failure(aws.client("ec2", region="eu-west-1", **NO_RETRIES).describe_volumes) == (403, "UnauthorizedOperation", "text/xml")
    assert aws.faults()["injected"][0]["region"] == "eu-west-1"
    assert aws.counters()["ec2:DescribeVolumes"] == 4
    assert aws.faulted_counters() == {"ec2:DescribeVolumes": 2}


def test_region_limited_error_is_used_up_only_in_its_region(aws):
    aws.inject_error("ec2:DescribeVolumes", status=500, code="InternalError", message="boom", count=1, region="eu-west-1")
    aws.client("ec2", region="us-east-1").describe_volumes()
    assert len(aws.faults()["injected"]) == 1
    assert failure(aws.client("ec2", region="eu-west-1", **NO_RETRIES).describe_volumes)[:2] == (500, "InternalError")
    assert aws.faults()["injected"] == []
    aws.client("ec2", region="eu-west-1").describe_volumes()


def test_injected_error_without_region_answers_every_region(aws):
    aws.inject_error("DescribeVolumes", status=500, code="InternalError", message="boom", count=None)
    assert aws.faults()["injected"][0]["region"] is None
    for region in ("us-east-1", "eu-west-1"):
        assert failure(aws.client("ec2", region=region, **NO_RETRIES).describe_volumes)[:2] == (500, "InternalError")


# -- back-dating, progress, reset -----------------------------------------------------------------


def test_backdate_ec2_and_direct_snapshots(aws):
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    made_by_ec2 = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    made_directly = write_snapshot(aws.client("ebs"), {0: block(1)})
    when = datetime(2021, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    for snapshot_id in (made_by_ec2, made_directly):
        aws.backdate_snapshot(snapshot_id, when)
        described = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
        assert described["StartTime"] == when


def test_backdate_in_another_region(aws):
    ec2 = aws.client("ec2", region="eu-west-1")
    volume = ec2.create_volume(Size=1, AvailabilityZone="eu-west-1a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    when = datetime(2020, 1, 1, tzinfo=timezone.utc)
    aws.backdate_snapshot(snapshot_id, when, region="eu-west-1")
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["StartTime"] == when


def test_backdate_errors(aws):
    with pytest.raises(LocalAWSControlError):
        aws.backdate_snapshot("snap-0123456789abcdef0", datetime(2020, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError):
        aws.backdate_snapshot("snap-0123456789abcdef0", datetime(2020, 1, 1))


def test_progress_of_an_ec2_snapshot(aws):
    ec2 = aws.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    assert aws.snapshot_progress(snapshot_id) == {
        "snapshot_id": snapshot_id, "status": "completed", "progress": 100, "blocks_written": 0, "direct": False,
        "copy": False}


def test_reset_wipes_all_state(aws):
    ec2 = aws.client("ec2")
    ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")
    write_snapshot(aws.client("ebs"), {0: block(1)})
    aws.set_faults(latency=0.01)
    aws.reset()
    assert aws.counters() == {}
    assert aws.faults()["policy"]["latency"] == 0.0
    assert ec2.describe_volumes()["Volumes"] == []
    assert ec2.describe_snapshots()["Snapshots"] == []


def test_control_client_over_http(aws):
    control = LocalAWSControl(aws.endpoint_url)
    assert control.health()
    aws.client("ec2").describe_volumes()
    assert control.counters() == {"ec2:DescribeVolumes": 1}
    with pytest.raises(LocalAWSControlError):
        control._call("GET", "no-such-route")  # pylint: disable=protected-access


def test_endpoint_url_and_client(aws):
    assert aws.endpoint_url == f"http://127.0.0.1:{aws.port}"
    client = aws.client("sts", region="eu-central-1")
    assert client.meta.region_name == "eu-central-1"
    assert client.get_caller_identity()["Account"] == "123456789012"


# -- command line ---------------------------------------------------------------------------------


def _wait_for(path, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text(encoding="utf-8").strip()


def _port_open(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_cli_serve_and_stop(tmp_path):
    port_file, pid_file = tmp_path / "port", tmp_path / "pid"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "tests.localaws", "serve", "--port-file", str(port_file), "--pid-file", str(pid_file)]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(_wait_for(port_file))
        assert int(_wait_for(pid_file)) == server.pid
        endpoint = f"http://127.0.0.1:{port}"
        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
        ec2.describe_volumes()
        assert LocalAWSControl(endpoint).counters() == {"ec2:DescribeVolumes": 1}
        stop_command = [sys.executable, "-m", "tests.localaws", "stop", "--pid-file", str(pid_file)]
        stop = subprocess.run(stop_command, cwd=REPO_ROOT, env=environment, timeout=30, check=False)
        assert stop.returncode == 0
        assert server.wait(timeout=10) == 0
        output = server.stdout.read()
        assert f"listening on {endpoint}" in output
        assert server.stderr.read() == ""
        assert not pid_file.exists() and not port_file.exists()
        assert not _port_open(port)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait()
        server.stdout.close()
        server.stderr.close()


def test_cli_stop_without_server_is_harmless(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stop = subprocess.run(
        [sys.executable, "-m", "tests.localaws", "stop", "--pid-file", str(tmp_path / "missing")],
        cwd=REPO_ROOT, env=environment, timeout=30, check=False, capture_output=True, text=True,
    )
    assert stop.returncode == 0
