# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where blockwise.ebs modules get AWS clients and classify AWS errors.

Everything here stands on amazon.aws: credentials, regions and endpoints come from
``AnsibleAWSModule`` (so ``region``, ``endpoint_url``, ``access_key``, ``secret_key``,
``session_token``, ``profile``, ``validate_certs``, ``aws_config`` and the ``AWS_*`` environment
variables behave as in amazon.aws), retries from ``AWSRetry.jittered_backoff``.
"""
from __future__ import annotations

try:
    import botocore
    import botocore.session
    from botocore.config import Config

    AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# Error codes retried on top of the ones AWSRetry already knows (RequestLimitExceeded, Throttling,
# InternalError, ...): the EBS direct APIs and JSON services spell throttling and 5xx differently.
EXTRA_RETRYABLE_CODES = (
    "RequestThrottledException",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "SlowDown",
    "InternalServerException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "500",
    "502",
    "503",
    "504",
)
ACCESS_DENIED_CODES = (
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "OptInRequired",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
)

DEFAULT_RETRY = AWSRetry.jittered_backoff(retries=10, delay=1, backoff=2.0, max_delay=30, catch_extra_error_codes=list(EXTRA_RETRYABLE_CODES))

# Botocore's own pool holds 10 connections; concurrent workers need at least one each.
MIN_POOL_CONNECTIONS = 10


def build_module(argument_spec, **kwargs):
    """An AnsibleAWSModule with the collection's conventions (check mode is always supported).

    An unknown ``region`` fails here, naming the option, before any call: otherwise it ends in a
    connection error after retries, or an endpoint's error page, naming neither.
    """
    kwargs.setdefault("supports_check_mode", True)
    module = AnsibleAWSModule(argument_spec=argument_spec, **kwargs)
    region = module.region
    if region and region not in known_regions():
        module.fail_json(msg="region: unknown region {0!r}; botocore {1} knows {2}".format(
            region, botocore.__version__, ", ".join(sorted(known_regions()))))
    return module


def known_regions():
    """Every region botocore knows, in every partition (EC2 is in all of them)."""
    session = botocore.session.get_session()
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def client(module, service, region=None, workers=None, retry_decorator=DEFAULT_RETRY):
    """A boto3 client for ``service`` built from the module's connection options.

    ``region`` overrides the module's region (multi-region modules); ``workers`` sizes the
    connection pool so that that many threads can call the client at once. Calls made with
    ``aws_retry=True`` are retried with jittered backoff on throttling and 5xx errors.
    A user's ``aws_config`` still wins over the pool size set here.
    """
    extra = {}
    if region:
        extra["region"] = region
    if workers:
        extra["config"] = Config(max_pool_connections=max(MIN_POOL_CONNECTIONS, int(workers) + 2))
    return module.client(service, retry_decorator=retry_decorator, **extra)


def error_code(exc):
    """The AWS error code of a botocore ClientError (or the HTTP status as text, or '')."""
    response = getattr(exc, "response", None) or {}
    code = (response.get("Error") or {}).get("Code")
    if code:
        return str(code)
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(status) if status else ""


CLOCK_HINT = (" (AWS refuses requests signed more than 15 minutes away from its clock: check the clock of the host "
              "that runs the module, e.g. with NTP)")


def is_clock_skew(exc):
    """True when AWS refused the request because the signer's clock is off."""
    response = getattr(exc, "response", None) or {}
    message = ((response.get("Error") or {}).get("Message") or "").lower()
    return error_code(exc) in ("RequestExpired", "RequestTimeTooSkewed") or \
        "signature expired" in message or "signature not yet current" in message


def error_message(exc):
    """A one-line description of an AWS error: ``Code: message`` (with a hint for a skewed clock)."""
    response = getattr(exc, "response", None) or {}
    message = (response.get("Error") or {}).get("Message") or str(exc)
    code = error_code(exc)
    text = "{0}: {1}".format(code, message) if code else message
    return text + CLOCK_HINT if is_clock_skew(exc) else text


def exception_text(exc):
    """One line for any exception a worker raised: the AWS message for AWS errors, else ``Type: message``."""
    if isinstance(exc, AWS_ERRORS):
        return error_message(exc)
    return "{0}: {1}".format(type(exc).__name__, exc)


def http_status(exc):
    response = getattr(exc, "response", None) or {}
    return (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")


def is_retryable(exc):
    """True for throttling, 5xx and connection errors: the call may succeed if repeated."""
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.ReadTimeoutError)):
        return True
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    code = error_code(exc)
    if AWSRetry.found(code, list(EXTRA_RETRYABLE_CODES)):
        return True
    status = http_status(exc)
    return bool(status and int(status) >= 500)


def is_access_denied(exc):
    return error_code(exc) in ACCESS_DENIED_CODES


def paginate(aws_client, method, result_key, token_key="NextToken", **params):
    """All items of a paginated describe/list call.

    ``aws_client`` is a client from :func:`client`; ``method`` its snake_case method name. Pages are
    requested one by one following ``token_key`` and each page is retried on its own (a botocore
    page iterator cannot be resumed once a page has failed).
    """
    call = getattr(aws_client, method)
    items = []
    token = None
    while True:
        page_params = dict(params)
        if token:
            page_params[token_key] = token
        page = call(aws_retry=True, **page_params)
        items.extend(page.get(result_key) or [])
        token = page.get(token_key)
        if not token:
            return items
