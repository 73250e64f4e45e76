# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules over HTTPS, as AWS serves them: certificate checked against a test CA (``aws_ca_bundle``,
never ``validate_certs: false``) and connections kept alive (issue 15, section 1).

A client that paid a TLS handshake per request would open about one connection per request; one that
reuses its connections opens about as many as it has workers. Both are counted by the endpoint.
"""
import boto3
import pytest
from botocore.exceptions import SSLError

from tests.functional.harness import run_playbook
from tests.functional.test_block_put import BS, assert_restored, assert_same_content, ok, random_blocks, write_image
from tests.localaws import LocalAWS

WORKERS = 4


@pytest.fixture(scope="module")
def tls_aws():
    with LocalAWS(tls=True) as endpoint:
        yield endpoint


def test_the_endpoint_serves_https_with_a_certificate_of_its_test_ca(tls_aws):
    assert tls_aws.endpoint_url.startswith("https://")
    assert tls_aws.client("ec2").describe_regions()["Regions"]
    untrusting = boto3.client("ec2", region_name="us-east-1", endpoint_url=tls_aws.endpoint_url,
                              aws_access_key_id="testing", aws_secret_access_key="testing")
    with pytest.raises(SSLError):
        untrusting.describe_regions()


def test_one_client_reuses_its_connection(tls_aws):
    ec2 = tls_aws.client("ec2")
    ec2.describe_regions()
    before = tls_aws.connections_opened
    for _round in range(200):
        ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)
    assert tls_aws.connections_opened - before <= 1


def _task(endpoint, module, **args):
    return {"name": module, module: dict({"endpoint_url": endpoint.endpoint_url, "region": "us-east-1",
                                          "aws_ca_bundle": endpoint.ca_bundle}, **args)}


def test_upload_and_restore_over_https_open_about_one_connection_per_worker(tls_aws, tmp_path):
    nblocks = 96
    img = write_image(tmp_path / "disk.raw", nblocks * BS, random_blocks(range(nblocks), seed=1515))
    tls_aws.reset_counters()
    opened = tls_aws.connections_opened
    tasks = [dict(_task(tls_aws, "blockwise.ebs.ebs_block_put", src=img, workers=WORKERS,
                        state_dir=str(tmp_path / "state")), register="up"),
             _task(tls_aws, "blockwise.ebs.ebs_block_get", snapshot_id="{{ up.snapshot_id }}",
                   dest=str(tmp_path / "r.raw"), workers=WORKERS, state_dir=str(tmp_path / "state"))]
    for task, name in zip(tasks, ("put", "get")):
        task["name"] = name
    run = run_playbook(tls_aws.endpoint_url, tasks, tmp_path)
    put, get = ok(run, "put"), ok(run, "get")
    assert put["blocks_written"] == nblocks and get["blocks_fetched"] == nblocks
    assert_same_content(tls_aws, put["snapshot_id"], img)
    assert_restored(img, str(tmp_path / "r.raw"))
    requests = sum(tls_aws.counters().values())
    connections = tls_aws.connections_opened - opened
    assert requests >= 2 * nblocks
    # Each module process has its block workers plus a few clients for the calls around the transfer
    # (EC2, STS): far fewer connections than requests.
    assert connections <= 2 * (WORKERS + 6), (connections, requests)
