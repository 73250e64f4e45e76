# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS wire formats for the local endpoint: who is calling what, and how to answer.

``AwsRequest`` reads one WSGI request once and tells the service (from the SigV4 credential scope),
the region, the access key and the action, for every AWS protocol: query (``Action=``), JSON
(``X-Amz-Target``), Smithy RPC v2 and REST (matched against the botocore service model's routes).
``Response`` and the ``*_response`` helpers write answers in the shapes botocore parses.
"""

import functools
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlencode
from xml.sax.saxutils import escape

import botocore.exceptions
import botocore.loaders

EC2_XML_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"

_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_SMITHY_RPC_RE = re.compile(r"^/service/[^/]+/operation/([^/]+)$")
_LABEL_RE = re.compile(r"\{([^}]+)\}")
_LOADER = botocore.loaders.create_loader()


@dataclass
class Response:
    """A complete HTTP answer; calling it with ``start_response`` sends it (WSGI style)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def __call__(self, start_response):
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Unknown"
        headers = [*self.headers, ("Content-Length", str(len(self.body)))]
        if not any(header[0].lower() == "x-amzn-requestid" for header in self.headers):
            headers.append(("x-amzn-RequestId", str(uuid.uuid4())))
        start_response(f"{self.status} {phrase}", headers)
        return [self.body]


@dataclass(frozen=True)
class AwsError:
    """An error to send in the calling service's own error format."""

    status: int
    code: str
    message: str
    reason: str | None = None
    details: tuple = ()  # extra ``(element, text)`` pairs of an S3 (rest-xml) error, e.g. ``ServerTime``


class AwsRequest:
    """One incoming AWS API request, parsed lazily and read at most once.

    The body is read only when a caller needs it (form-encoded bodies always, since they carry the
    action); after reading, ``wsgi.input`` is replaced by an in-memory stream of the same bytes so
    that the request can still be passed on to moto.
    """

    def __init__(self, environ):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.path = environ.get("PATH_INFO", "") or "/"
        self.query = _first_values(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        self._body = None
        self.access_key, self.region, self.service = self._credential_scope()
        self.form = self._form_params()
        self.route_labels = {}
        self.action = self._action()

    def header(self, name, default=None):
        """Return a request header by its case-insensitive name."""
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key, default)
        return self.environ.get(f"HTTP_{key}", default)

    @property
    def body(self):
        """The raw request body (read from the socket on first use)."""
        if self._body is None:
            stream = self.environ["wsgi.input"]
            length = self.environ.get("CONTENT_LENGTH")
            if length:
                self._body = stream.read(int(length))
            elif self.environ.get("wsgi.input_terminated"):
                self._body = stream.read()
            else:
                self._body = b""
            self.environ["wsgi.input"] = io.BytesIO(self._body)
        return self._body

    def replace_form(self, params):
        """Rewrite a form-encoded body (used to strip parameters before moto sees them)."""
        encoded = urlencode(params).encode()
        self._body = encoded
        self.form = dict(params)
        self.environ["wsgi.input"] = io.BytesIO(encoded)
        self.environ["CONTENT_LENGTH"] = str(len(encoded))

    @property
    def protocol(self):
        """The wire protocol of the call: ``ec2``, ``query``, ``json``, ``rest-xml`` or ``rest-json``."""
        if self.service == "ec2":
            return "ec2"
        if "Action" in self.form or "Action" in self.query:
            return "query"
        if self.header("X-Amz-Target"):
            return "json"
        if self.service == "s3":
            return "rest-xml"
        return "rest-json"

    @property
    def counter_key(self):
        """``service:Action``, the key of the request counters."""
        return f"{self.service}:{self.action}"

    def _credential_scope(self):
        authorization = self.header("Authorization", "") or self.query.get("X-Amz-Credential", "")
        match = _CREDENTIAL_RE.search(authorization) or _CREDENTIAL_RE.search("Credential=" + authorization)
        if match:
            return match.group(1), match.group(2), match.group(3)
        return None, "us-east-1", "unknown"

    def _form_params(self):
        content_type = self.header("Content-Type", "") or ""
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return {}
        return _first_values(parse_qs(self.body.decode("utf-8"), keep_blank_values=True))

    def _action(self):
        action = self.form.get("Action") or self.query.get("Action")
        if action:
            return action
        target = self.header("X-Amz-Target")
        if target:
            return target.rsplit(".", 1)[-1]
        match = _SMITHY_RPC_RE.match(self.path)
        if match:
            return match.group(1)
        route = match_rest_route(self.service, self.method, self.path, self.query)
        if route:
            self.route_labels = route[1]
            return route[0]
        return "Unknown"


def _first_values(parsed):
    return {key: values[0] for key, values in parsed.items()}


@functools.lru_cache(maxsize=64)
def _rest_routes(service):
    """Routes of a REST service from its botocore model, most specific first."""
    try:
        model = _LOADER.load_service_model(service, "service-2")
    except (botocore.exceptions.UnknownServiceError, botocore.exceptions.DataNotFoundError):
        return ()
    routes = []
    for name, operation in model["operations"].items():
        http = operation.get("http", {})
        path, query = (http.get("requestUri", "/").split("?", 1) + [""])[:2]
        labels = []
        pattern = ""
        position = 0
        for label in _LABEL_RE.finditer(path):
            pattern += re.escape(path[position:label.start()])
            greedy = label.group(1).endswith("+")
            labels.append(label.group(1).rstrip("+"))
            pattern += "(.+)" if greedy else "([^/]+)"
            position = label.end()
        pattern += re.escape(path[position:])
        required_query = tuple(item.split("=", 1)[0] for item in query.split("&") if item)
        literal_length = len(_LABEL_RE.sub("", path))
        routes.append((literal_length, len(required_query), name, http.get("method", "POST"), re.compile(f"^{pattern}/?$"), tuple(labels), required_query))
    routes.sort(key=lambda route: (route[0], route[1]), reverse=True)
    return tuple(route[2:] for route in routes)


def match_rest_route(service, method, path, query):
    """Return ``(operation, {label: value})`` for a REST call, or None when no route matches."""
    for name, route_method, pattern, labels, required_query in _rest_routes(service):
        if route_method != method or any(key not in query for key in required_query):
            continue
        match = pattern.match(path)
        if match:
            return name, {label: unquote(value) for label, value in zip(labels, match.groups())}
    return None


def json_response(status, payload, headers=()):
    """A JSON body answer (REST-JSON and JSON protocols)."""
    return Response(status, [("Content-Type", "application/json"), *headers], json.dumps(payload).encode())


def ec2_response(action, fields):
    """An EC2 query-protocol answer; ``fields`` maps element names to already-escaped XML text."""
    inner = "".join(f"<{name}>{value}</{name}>" for name, value in fields.items())
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{EC2_XML_NAMESPACE}">'
        f"<requestId>{uuid.uuid4()}</requestId>{inner}</{action}Response>"
    )
    return Response(200, [("Content-Type", "text/xml")], body.encode())


def error_response(protocol, error):
    """Render ``error`` in the error format botocore expects for ``protocol``."""
    code, message = escape(error.code), escape(error.message)
    request_id = uuid.uuid4()
    if protocol == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return Response(error.status, [("Content-Type", "text/xml")], body.encode())
    if protocol == "query":
        kind = "Receiver" if error.status >= 500 else "Sender"
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return Response(error.status, [("Content-Type", "text/xml")], body.encode())
    if protocol == "rest-xml":
        extra = "".join(f"<{name}>{escape(str(text))}</{name}>" for name, text in error.details)
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{extra}'
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return Response(error.status, [("Content-Type", "application/xml")], body.encode())
    payload = {"__type": error.code, "Message": error.message} if protocol == "json" else {"Message": error.message}
    if error.reason:
        payload["Reason"] = error.reason
    content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
    return Response(error.status, [("Content-Type", content_type), ("x-amzn-ErrorType", error.code)], json.dumps(payload).encode())


def throttling_error(request):
    """The throttling error the called service really sends."""
    if request.protocol == "ec2":
        return AwsError(503, "RequestLimitExceeded", "Request limit exceeded.")
    if request.service == "ebs":
        return AwsError(400, "RequestThrottledException", "The request was throttled.", "ACCOUNT_THROTTLED")
    if request.protocol == "rest-xml":
        return AwsError(503, "SlowDown", "Please reduce your request rate.")
    if request.protocol == "query":
        return AwsError(400, "Throttling", "Rate exceeded")
    return AwsError(400, "ThrottlingException", "Rate exceeded")


def server_error(request):
    """The internal (HTTP 500) error the called service really sends."""
    if request.protocol in ("ec2", "rest-xml"):
        return AwsError(500, "InternalError", "An internal error has occurred.")
    if request.service == "ebs":
        return AwsError(500, "InternalServerException", "An internal error has occurred.")
    return AwsError(500, "InternalFailure", "An internal error has occurred.")
