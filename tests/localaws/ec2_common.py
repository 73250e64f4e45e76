# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the EC2 parts of the fidelity layer: errors, query parameters, answers.

- ``Ec2Error``: an EC2 error (XML ``Response/Errors/Error``) raised by a handler;
- ``parse_nested`` / ``numbered`` / ``tag_specifications`` / ``flag``: read EC2 query parameters;
- ``call_app``: run moto's WSGI application and keep its whole answer;
- ``moto_answer``: render a result with moto's own EC2 serializer, so that an answer the layer
  builds has exactly the shape of the answers moto builds (every field of a ``Snapshot``, dates...).
"""

import functools
import re

import botocore.session
from moto.core.responses import ActionContext, ActionResult
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model
from moto.ec2.responses._base_response import EC2BaseResponse

from .wire import AwsError, Response


class Ec2Error(Exception):
    """An EC2 error (XML ``Response/Errors/Error``)."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.error = AwsError(status, code, message)


def parse_nested(params, prefix):
    """Turn flattened query parameters (``Prefix.1.Ebs.SnapshotId``) into a list of nested dicts."""
    tree = {}
    for key, value in params.items():
        if not key.startswith(prefix + "."):
            continue
        node = tree
        *parents, leaf = key[len(prefix) + 1:].split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return as_list(tree)


def as_list(indexed):
    """The values of ``{"1": a, "2": b}`` in index order."""
    return [indexed[key] for key in sorted(indexed, key=int)]


def numbered(params, name):
    """The values of ``Name.1``, ``Name.2``, ... in index order."""
    pattern = re.compile(re.escape(name) + r"\.(\d+)")
    found = {}
    for key, value in params.items():
        match = pattern.fullmatch(key)
        if match:
            found[match.group(1)] = value
    return as_list(found)


def tag_specifications(params):
    """``{resource_type: {key: value}}`` from ``TagSpecification.N`` parameters."""
    tags = {}
    for spec in parse_nested(params, "TagSpecification"):
        resource_tags = tags.setdefault(spec.get("ResourceType", ""), {})
        for tag in as_list(spec.get("Tag", {})):
            resource_tags[tag["Key"]] = tag.get("Value", "")
    return tags


def filters(params):
    """``{name: [values]}`` from ``Filter.N.Name`` / ``Filter.N.Value.M`` parameters."""
    return {item["Name"]: as_list(item.get("Value", {})) for item in parse_nested(params, "Filter") if "Name" in item}


def flag(params, name):
    """A boolean query parameter: True, False, or None when absent."""
    if name not in params:
        return None
    return params[name].lower() == "true"


def refuse_dry_run(request):
    """Answer ``DryRunOperation`` (HTTP 412) to a request with ``DryRun=true``, as EC2 does."""
    if flag(request.form, "DryRun"):
        raise Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


def call_app(app, environ):
    """Run a WSGI app and capture its whole answer as a ``Response``."""
    captured = {}
    chunks = []

    def start_response(status, headers, exc_info=None):  # pylint: disable=unused-argument
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    headers = [(name, value) for name, value in captured["headers"] if name.lower() != "content-length"]
    return Response(int(captured["status"].split()[0]), headers, b"".join(chunks))


@functools.lru_cache(maxsize=1)
def aws_regions():
    """Every commercial AWS region botocore knows for EC2."""
    return tuple(sorted(botocore.session.get_session().get_available_regions("ec2")))


def moto_answer(action, result):
    """The EC2 answer of ``action`` for ``result`` (shaped like the operation's output), as moto renders it."""
    service_model = get_service_model("ec2")
    serializer = get_serializer_class("ec2", "ec2")
    context = ActionContext(service_model, service_model.operation_model(action), serializer, EC2BaseResponse)
    status, headers, body = ActionResult(result).execute_result(context)
    body = body.encode() if isinstance(body, str) else body
    return Response(int(status), [(name, str(value)) for name, value in headers.items() if name.lower() != "content-length"], body)
