# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint refuses requests signed with a clock more than 15 minutes off, as AWS does.

AWS documents the rule once for every service: "RequestExpired: The request reached the service more
than 15 minutes after the date stamp on the request or more than 15 minutes after the request
expiration date (such as for pre-signed URLs), or the date stamp on the request is more than 15
minutes in the future." (HTTP 400; https://docs.aws.amazon.com/AWSEC2/latest/APIReference/CommonErrors.html,
https://docs.aws.amazon.com/AWSEC2/latest/devguide/errors-overview.html). The answer's code and
message depend on the protocol:

- EC2 (query protocol, EC2 flavour): ``RequestExpired`` "Request has expired.", HTTP 400, in both
  directions (the EC2 pages above; the XML answer as EC2 sends it is quoted in boto/boto#148).
- JSON services (KMS): ``InvalidSignatureException`` "Signature expired: <signed> is now earlier than
  <now - 15 min> (<now> - 15 min.)", HTTP 400 (quoted in aws/aws-sdk-js#254), and for a clock ahead
  "Signature not yet current: <signed> is still later than <now + 15 min> (<now> + 15 min.)".
- Query services (STS, SNS): ``SignatureDoesNotMatch`` with the same texts, HTTP 403
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html: signature
  problems answer HTTP 403 ``SignatureDoesNotMatch``; texts quoted in aws/aws-cli#6676 for STS and
  aws/aws-sdk-js#265 for SNS).
- REST-JSON services (the EBS direct APIs): ``InvalidSignatureException``, HTTP 403 (quoted for a
  REST-JSON service in serverless/serverless#27).
- S3: ``RequestTimeTooSkewed`` "The difference between the request time and the current time is too
  large.", HTTP 403, with ``RequestTime``, ``ServerTime`` and ``MaxAllowedSkewMilliseconds``
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).

The request time is the SigV4 ``X-Amz-Date`` (header, or query string for pre-signed requests, which
stay valid for ``X-Amz-Expires`` seconds). The endpoint's clock is moved with the control API
(``set_clock_skew``) so that a client whose clock is far ahead can be simulated without touching the
machine's clock.
"""

import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import botocore.auth
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.localaws import LocalAWSControlError
from tests.localaws.blockdata import write_snapshot

DAY = 24 * 3600
MINUTES = 60
_STAMP = r"\d{8}T\d{6}Z"


def refusal(call, **kwargs):
    """``(HTTP status, code, message, response)`` of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"], response


def not_yet_current(message):
    match = re.fullmatch(r"Signature not yet current: ({0}) is still later than ({0}) \(({0}) \+ 15 min\.\)".format(_STAMP), message)
    assert match, message
    return [datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) for stamp in match.groups()]


def expired(message):
    match = re.fullmatch(r"Signature expired: ({0}) is now earlier than ({0}) \(({0}) - 15 min\.\)".format(_STAMP), message)
    assert match, message
    return [datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) for stamp in match.groups()]


# -- the client's own clock --------------------------------------------------------------------------


def test_a_client_whose_own_clock_is_a_month_ahead_is_refused(aws, monkeypatch):
    """The request time is read from what the client signed: no server offset is needed."""
    ec2, kms = aws.client("ec2"), aws.client("kms")
    ahead = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(days=30)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: ahead)
    assert refusal(ec2.describe_snapshots, OwnerIds=["self"])[:3] == (400, "RequestExpired", "Request has expired.")
    assert refusal(kms.list_keys)[:2] == (400, "InvalidSignatureException")
    monkeypatch.undo()
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []


# -- control --------------------------------------------------------------------------------------


def test_clock_skew_is_set_read_cleared_and_reset(aws):
    assert aws.clock_skew() == 0
    aws.set_clock_skew(-30 * DAY)
    assert aws.clock_skew() == -30 * DAY
    aws.clear_clock_skew()
    assert aws.clock_skew() == 0
    aws.set_clock_skew(3600.5)
    aws.reset()
    assert aws.clock_skew() == 0
    for bad in ("soon", None, True, float("inf")):
        with pytest.raises(LocalAWSControlError, match="offset_seconds"):
            aws.set_clock_skew(bad)
    assert aws.clock_skew() == 0


def test_clock_skew_route_takes_json(aws):
    request = urllib.request.Request(aws.endpoint_url + "/_localaws/clock-skew", data=b'{"offset_seconds": -120}', method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    assert aws.clock_skew() == -120


# -- every protocol, client clock far ahead (the endpoint 30 days behind) --------------------------


def test_ec2_refuses_a_request_signed_in_the_future(aws):
    ec2 = aws.client("ec2")
    aws.set_clock_skew(-30 * DAY)
    status, code, message, response = refusal(ec2.describe_snapshots, OwnerIds=["self"])
    assert (status, code, message) == (400, "RequestExpired", "Request has expired.")
    server_date = response["ResponseMetadata"]["HTTPHeaders"]["date"]
    served = datetime.strptime(server_date, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
    assert abs((served - datetime.now(timezone.utc)).total_seconds() + 30 * DAY) < 120  # the endpoint's own clock


def test_kms_json_protocol_says_signature_not_yet_current(aws):
    kms = aws.client("kms")
    aws.set_clock_skew(-30 * DAY)
    status, code, message, dummy = refusal(kms.list_keys)
    assert (status, code) == (400, "InvalidSignatureException")
    signed, limit, now = not_yet_current(message)
    assert limit - now == timedelta(minutes=15)
    assert timedelta(days=29, hours=23) < signed - now < timedelta(days=30, minutes=1)


def test_sts_and_sns_query_protocol_say_signature_does_not_match(aws):
    sts, sns = aws.client("sts"), aws.client("sns")
    aws.set_clock_skew(-30 * DAY)
    for call in (sts.get_caller_identity, sns.list_topics):
        status, code, message, dummy = refusal(call)
        assert (status, code) == (403, "SignatureDoesNotMatch"), call
        not_yet_current(message)


def test_ebs_direct_rest_json_says_invalid_signature(aws):
    ebs = aws.client("ebs")
    aws.set_clock_skew(-30 * DAY)
    status, code, message, response = refusal(ebs.start_snapshot, VolumeSize=1)
    assert (status, code) == (403, "InvalidSignatureException")
    not_yet_current(message)
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "InvalidSignatureException"


def test_s3_says_request_time_too_skewed_with_both_times(aws):
    s3 = aws.client("s3")
    aws.set_clock_skew(-30 * DAY)
    status, code, message, response = refusal(s3.list_buckets)
    assert (status, code, message) == (403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.")
    assert response["Error"]["MaxAllowedSkewMilliseconds"] == "900000"
    request_time = datetime.strptime(response["Error"]["RequestTime"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    server_time = datetime.strptime(response["Error"]["ServerTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(days=29, hours=23) < request_time - server_time < timedelta(days=30, minutes=1)


# -- the other direction, and the 15-minute boundary ------------------------------------------------


def test_client_clock_far_behind_says_signature_expired(aws):
    kms, sts, ec2 = aws.client("kms"), aws.client("sts"), aws.client("ec2")
    aws.set_clock_skew(2 * 3600)
    status, code, message, dummy = refusal(kms.list_keys)
    assert (status, code) == (400, "InvalidSignatureException")
    signed, limit, now = expired(message)
    assert now - limit == timedelta(minutes=15)
    assert timedelta(minutes=119) < now - signed < timedelta(minutes=121)
    assert refusal(sts.get_caller_identity)[:2] == (403, "SignatureDoesNotMatch")
    assert refusal(ec2.describe_volumes)[:3] == (400, "RequestExpired", "Request has expired.")


@pytest.mark.parametrize("offset", [14 * MINUTES, -14 * MINUTES])
def test_a_clock_less_than_fifteen_minutes_off_is_accepted(aws, offset):
    aws.set_clock_skew(offset)
    assert aws.client("ec2").describe_volumes()["Volumes"] == []
    assert aws.client("kms").list_keys()["Keys"] == []
    assert aws.client("sts").get_caller_identity()["Account"]


@pytest.mark.parametrize("offset", [16 * MINUTES, -16 * MINUTES])
def test_a_clock_more_than_fifteen_minutes_off_is_refused(aws, offset):
    aws.set_clock_skew(offset)
    assert refusal(aws.client("ec2").describe_volumes)[1] == "RequestExpired"
    assert refusal(aws.client("kms").list_keys)[1] == "InvalidSignatureException"


# -- nothing happens, nothing is retried ------------------------------------------------------------


def test_a_refused_request_changes_nothing_and_is_counted_once(aws):
    ec2, ebs = aws.client("ec2"), aws.client("ebs")  # botocore's default retry policy
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    aws.reset_counters()
    aws.set_clock_skew(-30 * DAY)
    refusal(ec2.create_snapshot, VolumeId=volume)
    refusal(ec2.delete_volume, VolumeId=volume)
    refusal(ebs.start_snapshot, VolumeSize=1)
    refusal(aws.client("kms").create_key)
    assert aws.counters() == {"ec2:CreateSnapshot": 1, "ec2:DeleteVolume": 1, "ebs:StartSnapshot": 1, "kms:CreateKey": 1}
    aws.clear_clock_skew()
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [volume]
    assert aws.client("kms").list_keys()["Keys"] == []


def test_requests_pass_again_once_the_clocks_agree(aws):
    ebs = aws.client("ebs")
    aws.set_clock_skew(-30 * DAY)
    refusal(ebs.start_snapshot, VolumeSize=1)
    aws.set_clock_skew(0)
    snapshot_id = write_snapshot(ebs, {0: b"\x01" * 524288})
    assert ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"][0]["BlockIndex"] == 0


# -- pre-signed requests: X-Amz-Date in the query string, valid for X-Amz-Expires ------------------


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_presigned_request_is_read_from_the_query_string(aws):
    url = aws.client("sts").generate_presigned_url("get_caller_identity", ExpiresIn=3600)
    assert "X-Amz-Date=" in url and "X-Amz-Expires=3600" in url
    aws.set_clock_skew(30 * MINUTES)  # signed 30 minutes ago, valid for an hour
    status, body = _get(url)
    assert status == 200, body
    aws.set_clock_skew(2 * 3600)  # past its expiry
    status, body = _get(url)
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in body and "Signature expired" in body
    aws.set_clock_skew(-30 * DAY)  # signed in the future
    status, body = _get(url)
    assert status == 403 and "Signature not yet current" in body


def test_unsigned_requests_are_not_checked(aws):
    aws.client("s3").create_bucket(Bucket="public")
    aws.set_clock_skew(-30 * DAY)
    assert aws.health()
    anonymous = aws.client("s3", signature_version=UNSIGNED)
    assert anonymous.list_objects_v2(Bucket="public")["KeyCount"] == 0
