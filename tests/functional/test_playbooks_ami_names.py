# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/ami_names.yml (blockwise.ebs.ami_names) through ansible-playbook against the local endpoint.

The endpoint is seeded with ``seed_fleet`` (one region): an AMI ``front-web-<date>`` registered from two
policy snapshots (tags app/team on the image) and an AMI ``db-golden-<date>`` made by CreateImage, whose
snapshots have no Name.
"""
import pytest

from tests.functional.harness import ansible_env, run_playbook_file
from tests.localaws.seed import seed_fleet

PLAYBOOK = "blockwise.ebs.ami_names"
ROLE = "blockwise.ebs.ami_snapshot_names : "
APPLY = ROLE + "Name the snapshots behind the selected AMIs"
SUMMARY = ROLE + "Summarise the AMI snapshot names per region"
REGION = "us-east-1"


@pytest.fixture
def fleet(aws):
    return seed_fleet(aws, regions=(REGION,), days=3)[REGION]


@pytest.fixture
def run(aws, tmp_path):
    """``run(extra_vars, check=False, env=None)``: the playbook against the endpoint."""
    counter = {"n": 0}

    def _run(extra_vars, check=False, env=None):
        counter["n"] += 1
        workdir = tmp_path / "run{0}".format(counter["n"])
        workdir.mkdir()
        extra_vars = dict({"endpoint_url": aws.endpoint_url}, **extra_vars)
        return run_playbook_file(PLAYBOOK, workdir, check=check, diff=True, extra_vars=extra_vars, env=env or ansible_env(aws.endpoint_url))

    return _run


def image_snapshot_tags(aws, image_id):
    """{device: tags} of the snapshots behind an image."""
    ec2 = aws.client("ec2", region=REGION)
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    mappings = {m["Ebs"]["SnapshotId"]: m["DeviceName"] for m in image["BlockDeviceMappings"] if "Ebs" in m and m["Ebs"].get("SnapshotId")}
    snapshots = ec2.describe_snapshots(SnapshotIds=list(mappings))["Snapshots"]
    return {mappings[s["SnapshotId"]]: {t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in snapshots}


def image_name(aws, image_id):
    return aws.client("ec2", region=REGION).describe_images(ImageIds=[image_id])["Images"][0]["Name"]


def test_check_mode_reports_and_changes_nothing(aws, run, fleet):
    aws.reset_counters()
    out = run({"regions": [REGION]}, check=True)
    assert out.rc == 0, out
    res = out.result(APPLY)["results"][0]
    assert res["item"] == REGION
    assert res["images"]["total"] == 2
    assert len([s for s in res["snapshots"] if s["changed"]]) == 4
    assert aws.mutating_calls() == {}
    assert out.result(SUMMARY)["msg"] == ["us-east-1: 2 image(s), 4 snapshot(s): 4 would be named, 0 already right"]
    assert "blockwise:image-id" not in image_snapshot_tags(aws, fleet["images"]["front-web"])["/dev/xvda"]


def test_apply_names_every_image_then_second_run_changes_nothing(aws, run, fleet):
    out = run({})  # no regions: the connection's region (AWS_REGION); no selection: every image of self
    assert out.rc == 0, out
    assert out.result(APPLY)["changed"] is True
    for image_id in fleet["images"].values():
        name = image_name(aws, image_id)
        tags = image_snapshot_tags(aws, image_id)
        assert tags["/dev/xvda"]["Name"] == name + "(001)"
        assert tags["/dev/xvdb"]["Name"] == name + "(002)"
        assert {t["blockwise:image-id"] for t in tags.values()} == {image_id}
    # the policy tag of the front-web snapshots is kept (nothing is removed without purge_tags)
    assert image_snapshot_tags(aws, fleet["images"]["front-web"])["/dev/xvda"]["blockwise:policy"] == "daily"

    aws.reset_counters()
    again = run({"regions": REGION})
    assert again.rc == 0, again
    assert again.result(APPLY)["changed"] is False
    assert again.result(SUMMARY)["msg"] == ["us-east-1: 2 image(s), 4 snapshot(s): all named (compliant)"]
    assert aws.mutating_calls() == {}


def test_survey_style_filters_template_and_tags(aws, run, fleet):
    """Survey answers are text: filters and tags as YAML/JSON text, booleans as strings."""
    out = run({"regions": "us-east-1", "image_filters": "name: front-web-*", "ami_name_template": "{image_name}-disk{index}",
               "copy_image_tags": "true", "ami_snapshot_tags": '{"backup-source": "ami"}'})
    assert out.rc == 0, out
    front = image_snapshot_tags(aws, fleet["images"]["front-web"])
    name = image_name(aws, fleet["images"]["front-web"])
    assert front["/dev/xvda"]["Name"] == name + "-disk1" and front["/dev/xvdb"]["Name"] == name + "-disk2"
    assert all(t["team"] == "web" and t["app"] == "front-web" and t["backup-source"] == "ami" for t in front.values())
    db = image_snapshot_tags(aws, fleet["images"]["db-golden"])
    assert all("Name" not in t for t in db.values())  # not selected


@pytest.mark.parametrize("extra_vars, task, fragment", [
    ({"image_filters": "[not, a, dict]"}, "Check that image_filters is a dictionary", "image_filters must be a dictionary"),
    ({"ami_snapshot_tags": "just text"}, "Check that ami_snapshot_tags is a dictionary", "ami_snapshot_tags must be a dictionary"),
    ({"copy_image_tags": "maybe"}, "Validate the extra vars", "copy_image_tags"),
    ({"target_hosts": "no_such_group"}, "Check that target_hosts matches inventory hosts", "target_hosts=no_such_group matches no host"),
    ({"endpoint_url": "localhost:4566"}, "Check that endpoint_url is a URL", "endpoint_url=localhost:4566 is not an http(s) URL"),
    ({"ami_name_template": "{imge_name}"}, APPLY, "name_template: unknown variable 'imge_name'"),
])
def test_bad_extra_vars_fail_clearly_without_writes(aws, run, fleet, extra_vars, task, fragment):
    aws.reset_counters()
    out = run(dict({"regions": [REGION]}, **extra_vars))
    assert out.rc != 0, out
    res = out.result(task)
    assert res.get("failed") is True, res
    message = res["msg"] if task != APPLY else res["results"][0]["msg"]
    assert fragment in message, message
    assert APPLY not in out.names or task == APPLY  # input errors stop the run before the role
    assert aws.mutating_calls() == {}
