# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make demo``: start the local AWS endpoint, run the demo playbook against it, stop it.

Everything runs against an in-process moto server with the EBS fidelity layer on a free loopback
port; nothing talks to real AWS and nothing is left running afterwards.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.functional.harness import ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from tests.localaws import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
KEY_ALIAS = "alias/blockwise-demo"


def seed(aws):
    """A customer-managed KMS key with the same alias in every demo region."""
    for region in REGIONS:
        kms = aws.client("kms", region=region)
        key = kms.create_key(Description="blockwise.ebs demo key")["KeyMetadata"]
        kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key["KeyId"])


def main():
    started = time.monotonic()
    with LocalAWS() as aws:
        print("Local AWS endpoint: {0} (moto + EBS fidelity layer)".format(aws.endpoint_url), flush=True)
        seed(aws)
        aws.reset_counters()
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "demo.yml"), "--diff",
               "-e", json.dumps({"endpoint_url": aws.endpoint_url, "regions": REGIONS, "kms_key_id": KEY_ALIAS})]
        rc = subprocess.call(cmd, cwd=str(ROOT), env=ansible_env(aws.endpoint_url, REGIONS[0]))
        calls = aws.counters()
    print("\nAPI calls the demo made:")
    for name in sorted(calls):
        print("  {0:<45} {1}".format(name, calls[name]))
    print("\nDemo {0} in {1:.0f} s; the local endpoint is stopped.".format("finished" if rc == 0 else "FAILED", time.monotonic() - started))
    return rc


if __name__ == "__main__":
    sys.exit(main())
