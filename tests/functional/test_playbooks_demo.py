# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make demo`` end to end: ``tools/demo.py`` in a subprocess, as a new user runs it.

It must finish with exit code 0, print the summary, and leave nothing running (its endpoint's port is
closed afterwards). Playbook output uses the default callback.
"""
import re
import socket
import subprocess
import sys

from tools.collection_link import ROOT


def test_make_demo_runs_end_to_end_and_stops_its_endpoint():
    proc = subprocess.run([sys.executable, "-m", "tools.demo"], cwd=str(ROOT), capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout
    assert proc.returncode == 0, output[-4000:] + proc.stderr[-4000:]

    # the playbooks ran with the human-readable callback
    assert "PLAY [Blockwise.ebs site - check the inputs of every part]" in output
    assert "TASK [Show the compliance report]" in output
    assert re.search(r"item=upload: (hashing|uploading|done) \d+/\d+ blocks", output)

    summary = output[output.index("== Summary"):]
    assert re.search(r"encryption by default\s+on with alias/blockwise-demo in 3 of 3 regions", summary)
    assert re.search(r"snapshots created\s+21 ", summary)
    assert re.search(r"snapshots deleted\s+[1-9]\d* by retention", summary)
    assert re.search(r"AMI snapshots named\s+12 ", summary)
    assert re.search(r"SNS summary\s+blockwise.ebs snapshot_schedule: 21 snapshot\(s\) taken", summary)
    assert re.search(r"audit\s+3 of 3 regions compliant, no mutating call", summary)
    assert re.search(r"disk image\s+.*sha256 identical: [0-9a-f]{64}", summary)
    assert re.search(r"API calls: audit\s+\d+ \(0 mutating\)", summary)
    assert "the local endpoint is stopped" in summary

    port = int(re.search(r"Local AWS endpoint: http://127\.0\.0\.1:(\d+)", output).group(1))
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
