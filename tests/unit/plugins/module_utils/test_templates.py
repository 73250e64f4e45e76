# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of name/description templates and tag checks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.blockwise.ebs.plugins.module_utils.templates import (
    ALL_VARIABLES,
    TemplateError,
    check_tag_key,
    check_tag_value,
    check_tags,
    check_template_length,
    drop_aws_tags,
    merge_tags,
    min_length,
    render,
    time_variables,
    validate_template,
)

VARIABLES = {
    "policy": "daily",
    "volume_id": "vol-0123",
    "volume_name": "db-data",
    "instance_id": "i-0abc",
    "instance_name": "db1",
    "device": "/dev/xvdf",
    "image_id": "ami-0123",
    "image_name": "front-web-2024",
    "snapshot_id": "snap-0456",
    "index": 2,
    "date": "2024-01-31",
    "timestamp": "20240131T020000Z",
}


def test_all_variables():
    assert set(ALL_VARIABLES) == set(VARIABLES)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{image_name}({index:03d})", "front-web-2024(002)"),
        ("{instance_name}_{volume_id}_daily", "db1_vol-0123_daily"),
        ("{volume_name} Snap", "db-data Snap"),
        ("{policy}-{date}", "daily-2024-01-31"),
        ("{policy}/{timestamp}", "daily/20240131T020000Z"),
        ("{device} of {image_id} -> {snapshot_id} on {instance_id}", "/dev/xvdf of ami-0123 -> snap-0456 on i-0abc"),
        ("{{literal}} {volume_id}", "{literal} vol-0123"),
        ("{volume_name:.2}|{index:>4}|{device:_<12}", "db|   2|/dev/xvdf___"),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_render(template, expected):
    validate_template(template)
    assert render(template, VARIABLES) == expected


def test_render_missing_values_are_empty():
    assert render("{volume_name} Snap", {"volume_id": "vol-1"}) == " Snap"
    assert render("{instance_name}_{volume_id}", {"volume_id": "vol-1", "instance_name": None}) == "_vol-1"
    # The format spec of a missing value is ignored rather than failing.
    assert render("{image_name}({index:03d})", {"image_name": "x"}) == "x()"
    # Extra keys are ignored.
    assert render("{volume_id}", {"volume_id": "vol-1", "other": "x"}) == "vol-1"


def test_render_bad_value_type_names_the_variable():
    with pytest.raises(TemplateError, match="format spec ':03d' does not apply to integer 'index'"):
        render("{index:03d}", {"index": "two"}, option_name="name_template")


@pytest.mark.parametrize(
    "template, message",
    [
        (
            "{imge_name}({index:03d})",
            "name_template: unknown variable 'imge_name' in template '{imge_name}({index:03d})'; allowed: policy, volume_id, volume_name,",
        ),
        ("{Volume_Id}", "unknown variable 'Volume_Id'"),
        ("{ volume_id }", "unknown variable ' volume_id '"),
        ("{volume_id.__class__}", "attribute or index access '{volume_id.__class__}' is not allowed"),
        ("{a.b}", "attribute or index access '{a.b}' is not allowed"),
        ("{volume_id[0]}", "attribute or index access '{volume_id[0]}' is not allowed"),
        ("{volume_id!r}", "conversion '!r' on 'volume_id' is not allowed"),
        ("{volume_id!s}", "conversion '!s' on 'volume_id' is not allowed"),
        ("{volume_id!a}", "conversion '!a' on 'volume_id' is not allowed"),
        ("{}", "positional field '{}' is not allowed"),
        ("{0}", "positional field '{0}' is not allowed"),
        ("{index:{width}}", "nested field in format spec '{width}' of 'index' is not allowed"),
        ("{index:999999999}", "format spec '999999999' of 'index' asks for more than 256 characters"),
        ("{volume_name:.1000}", "asks for more than 256 characters"),
        ("{volume_id:03d}", "format spec ':03d' does not apply to string 'volume_id'"),
        ("{date:%Y}", "format spec ':%Y' does not apply to string 'date'"),
        ("{index:s}", "format spec ':s' does not apply to integer 'index'"),
        ("{", "malformed template '{'"),
        ("}", "malformed template '}'"),
        ("{volume_id", "malformed template '{volume_id'"),
        ("name }", "malformed template 'name }'"),
        ("{index!}", "malformed template '{index!}'"),
        (42, "template must be a string"),
        (None, "template must be a string"),
    ],
)
def test_validate_template_errors(template, message):
    with pytest.raises(TemplateError) as info:
        validate_template(template, option_name="name_template")
    assert message in str(info.value)
    assert str(info.value).startswith("name_template: ")


def test_validate_template_allowed_subset():
    allowed = ("image_name", "image_id", "index", "device", "snapshot_id")
    validate_template("{image_name}({index:03d})", allowed)
    with pytest.raises(TemplateError) as info:
        validate_template("{volume_name}", allowed)
    assert str(info.value) == "unknown variable 'volume_name' in template '{volume_name}'; allowed: image_name, image_id, index, device, snapshot_id"
    with pytest.raises(TemplateError, match="unknown variable 'volume_name'"):
        render("{volume_name}", {"volume_name": "x"}, allowed)


def test_validate_without_option_name():
    with pytest.raises(TemplateError) as info:
        validate_template("{nope}")
    assert str(info.value).startswith("unknown variable 'nope'")


def test_template_error_is_value_error():
    assert issubclass(TemplateError, ValueError)


@pytest.mark.parametrize(
    "template, expected",
    [
        ("", 0),
        ("plain", 5),
        ("{image_name}", 0),
        ("{image_name}({index:03d})", 5),
        ("{index}", 1),
        ("{device:>20}", 20),
        ("{volume_name:.5}", 0),
        ("{{x}}", 3),
        ("ab{device:_<10}cd", 14),
    ],
)
def test_min_length(template, expected):
    assert min_length(template) == expected


def test_check_template_length():
    assert check_template_length("x" * 256) == 256
    assert check_template_length("x" * 250 + "{image_name}") == 250
    with pytest.raises(TemplateError) as info:
        check_template_length("x" * 250 + "{device:>10}", option_name="name_template")
    assert str(info.value) == (
        "name_template: template '" + "x" * 40 + "...' renders at least 260 characters (its fixed text and widths); "
        "EC2 tag values allow at most 256"
    )
    with pytest.raises(TemplateError, match="renders at least 6 characters"):
        check_template_length("{index:06d}", limit=5)
    # It validates first: unknown variables are reported as such.
    with pytest.raises(TemplateError, match="unknown variable 'nope'"):
        check_template_length("{nope}", ("image_name",))


def test_time_variables():
    assert time_variables(datetime(2024, 1, 31, 2, 0, 5, tzinfo=timezone.utc)) == {"date": "2024-01-31", "timestamp": "20240131T020005Z"}
    # Converted to UTC first.
    auckland = timezone(timedelta(hours=13))
    assert time_variables(datetime(2024, 2, 1, 10, 0, tzinfo=auckland)) == {"date": "2024-01-31", "timestamp": "20240131T210000Z"}
    with pytest.raises(TemplateError, match="timezone-aware"):
        time_variables(datetime(2024, 1, 1))


# --- tags --------------------------------------------------------------------------------------


def test_check_tag_value():
    assert check_tag_value("x" * 256, "name_template") == "x" * 256
    assert check_tag_value("", "tags.Env") == ""
    assert check_tag_value("aws:allowed-in-values", "tags.Env") == "aws:allowed-in-values"
    with pytest.raises(TemplateError, match=r"^name_template: value 'x{40}\.\.\.' is 257 characters long; EC2 tag values allow at most 256$"):
        check_tag_value("x" * 257, "name_template")
    with pytest.raises(TemplateError, match="tags.Env: tag values must be strings, got 5"):
        check_tag_value(5, "tags.Env")


def test_check_tag_key():
    assert check_tag_key("k" * 128, "tags") == "k" * 128
    with pytest.raises(TemplateError, match="tags: tag key .* is 129 characters long; EC2 allows at most 128"):
        check_tag_key("k" * 129, "tags")
    for reserved in ("aws:cloudformation:stack", "AWS:x", "Aws:y"):
        with pytest.raises(TemplateError, match="tags: tag key .* uses the reserved prefix 'aws:'"):
            check_tag_key(reserved, "tags")
    for bad in ("", None, 3):
        with pytest.raises(TemplateError, match="tags: tag keys must be non-empty strings"):
            check_tag_key(bad, "tags")


def test_check_tags():
    assert check_tags({"Env": "prod", "Owner": ""}, "tags") == {"Env": "prod", "Owner": ""}
    assert check_tags(None, "tags") == {}
    with pytest.raises(TemplateError, match="tags.Env: value"):
        check_tags({"Env": "v" * 300}, "tags")
    with pytest.raises(TemplateError, match="reserved prefix"):
        check_tags({"aws:x": "1"}, "tags")
    with pytest.raises(TemplateError, match="tags: 51 tags; EC2 allows at most 50 per resource"):
        check_tags({"k%d" % i: "v" for i in range(51)}, "tags")
    assert len(check_tags({"k%d" % i: "v" for i in range(51)}, "tags", max_tags=None)) == 51
    with pytest.raises(TemplateError, match="tags must be a dictionary"):
        check_tags(["Env=prod"], "tags")


def test_drop_aws_tags():
    tags = {"aws:cloudformation:stack-name": "s", "AWS:x": "y", "Name": "db", "awsome": "keep", "aws": "keep"}
    assert drop_aws_tags(tags) == {"Name": "db", "awsome": "keep", "aws": "keep"}
    assert drop_aws_tags(None) == {}
    assert tags["aws:cloudformation:stack-name"] == "s"  # input untouched


def test_merge_tags():
    assert merge_tags({"a": "1", "b": "1"}, None, {"b": "2"}, {}, {"c": "3"}) == {"a": "1", "b": "2", "c": "3"}
    assert merge_tags() == {}
    first = {"a": "1"}
    merge_tags(first, {"a": "2"})
    assert first == {"a": "1"}
