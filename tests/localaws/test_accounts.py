# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two accounts in one endpoint: a request whose access key id is 12 digits acts as that AWS account.

moto 5.2 maps only the access keys it issued (IAM, STS) and its ``x-moto-account-id`` header to an
account; the fidelity layer adds the 12-digit access key id, in every service, so that tests exercise
sharing and cross-account copies with two plain boto3 clients.
"""

import pytest

from tests.localaws import account_credentials

HOME, OTHER = "123456789012", "210987654321"
REGION = "us-east-1"


def snapshot(ec2):
    """A completed snapshot of a new 1 GiB volume."""
    volume = ec2.create_volume(Size=1, AvailabilityZone=REGION + "a")["VolumeId"]
    return ec2.create_snapshot(VolumeId=volume)["SnapshotId"]


def test_two_access_keys_are_two_accounts(aws):
    home, other = aws.client("ec2", region=REGION), aws.client("ec2", region=REGION, account_id=OTHER)
    mine = snapshot(home)
    assert home.describe_snapshots(SnapshotIds=[mine])["Snapshots"][0]["OwnerId"] == HOME
    assert other.describe_snapshots()["Snapshots"] == []
    theirs = snapshot(other)
    assert other.describe_snapshots(SnapshotIds=[theirs])["Snapshots"][0]["OwnerId"] == OTHER
    assert [item["SnapshotId"] for item in home.describe_snapshots()["Snapshots"]] == [mine]


def test_every_service_answers_as_the_account_of_the_access_key(aws):
    """STS tells a module its account id (for the ``blockwise:source-account`` tag of a copy)."""
    assert aws.client("sts", account_id=OTHER).get_caller_identity()["Account"] == OTHER
    assert aws.client("sts").get_caller_identity()["Account"] == HOME
    key = aws.client("kms", account_id=OTHER).create_key()["KeyMetadata"]["Arn"]
    assert key.startswith(f"arn:aws:kms:{REGION}:{OTHER}:key/")
    assert aws.client("kms").list_keys()["Keys"] == []


def test_account_credentials_for_boto3_and_ansible():
    assert account_credentials(OTHER) == {"aws_access_key_id": OTHER, "aws_secret_access_key": "testing"}
    for bad in ("12345", "21098765432a", None):
        with pytest.raises(ValueError):
            account_credentials(bad)
