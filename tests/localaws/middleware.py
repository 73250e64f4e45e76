# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fidelity layer: a WSGI middleware in front of moto's server application.

For each request: control routes are answered directly; any other request is counted, refused
when it was signed more than 15 minutes away from the endpoint's clock (as AWS does), may be delayed
or failed by the fault injector, and is then answered by the EBS direct implementation, the EC2
extras, or moto itself.

Accounts: a request whose access key id is 12 digits acts as that AWS account (moto itself maps only
access keys it issued through IAM/STS), so that two accounts can be exercised against one endpoint;
moto is told through its ``x-moto-account-id`` header. ``MOTO_ACCOUNT_ID`` and an explicit header win.
"""

import logging
import os
import re
import time

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from
from moto.moto_api import _internal as moto_api

from .clock import ServerClock, skew_error
from .control import CONTROL_PREFIX, ControlAPI
from .copies import CopyModel
from .ebs_direct import EbsDirect, EbsError
from .ec2_extras import Ec2Extras
from .faults import Counters, FaultInjector
from .wire import AwsError, AwsRequest, error_response, server_error, throttling_error

LOG = logging.getLogger(__name__)
_ACCOUNT_KEY_RE = re.compile(r"^\d{12}$")


def account_for(request):
    """The AWS account of a request: ``MOTO_ACCOUNT_ID``, moto's header, a 12-digit access key id, then moto's lookup."""
    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    header = request.header("x-moto-account-id")
    if header:
        return header
    if request.access_key and _ACCOUNT_KEY_RE.match(request.access_key):
        return request.access_key
    return get_account_id_from(request.access_key) if request.access_key else DEFAULT_ACCOUNT_ID


def pin_account(request):
    """Make moto serve a request as the account of its 12-digit access key id."""
    if "MOTO_ACCOUNT_ID" in os.environ or request.header("x-moto-account-id"):
        return
    if request.access_key and _ACCOUNT_KEY_RE.match(request.access_key):
        request.environ["HTTP_X_MOTO_ACCOUNT_ID"] = request.access_key


class FidelityMiddleware:
    """Wraps moto's WSGI application; owns the counters, faults and EBS direct state."""

    def __init__(self, moto_app):
        self.moto_app = moto_app
        self.counters = Counters()
        self.faults = FaultInjector()
        self.ebs = EbsDirect(account_for)
        self.copies = CopyModel(clock=self.ebs.now)
        self.ec2 = Ec2Extras(account_for, self.copies, clock=self.ebs.now)
        self.clock = ServerClock()
        self.control = ControlAPI(counters=self.counters, faults=self.faults, ebs=self.ebs, clock=self.clock, reset=self.reset,
                                  copies=self.copies)

    def reset(self):
        """Wipe everything: moto's backends, direct snapshots, copies and their settings, counters, faults and both clocks."""
        moto_api.moto_api_backend.reset()
        self.ebs.reset()
        self.copies.reset()
        self.counters.clear()
        self.faults.clear()
        self.clock.clear()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        if path.startswith("/moto-api/"):
            if path.rstrip("/") == "/moto-api/reset":
                self.ebs.reset()
                self.copies.reset()
            return self.moto_app(environ, start_response)
        request = AwsRequest(environ)
        pin_account(request)
        now = self.clock.now()
        skewed = skew_error(request, now)
        if skewed is not None:
            self.counters.record(request.counter_key, faulted=False)
            return error_response(request.protocol, skewed)(start_response)
        decision = self.faults.decide(request.service, request.action, request.region)
        self.counters.record(request.counter_key, faulted=decision.kind is not None)
        if decision.delay:
            time.sleep(decision.delay)
        if decision.kind is not None:
            return error_response(request.protocol, self._fault_error(request, decision))(start_response)
        try:
            if request.service == "ebs":
                return self.ebs.handle(request)(start_response)
            if request.service == "ec2":
                response = self.ec2.handle(request, self.moto_app)
                if response is not None:
                    return response(start_response)
        except EbsError as exc:
            return error_response(request.protocol, exc.error)(start_response)
        except Exception:  # pylint: disable=broad-exception-caught
            # A bug here must surface as the service's own 500, never as a dropped connection.
            LOG.exception("localaws: %s failed", request.counter_key)
            return error_response(request.protocol, server_error(request))(start_response)
        return self.moto_app(environ, start_response)

    @staticmethod
    def _fault_error(request, decision):
        if decision.kind == "throttle":
            return throttling_error(request)
        if decision.kind == "error":
            return server_error(request)
        rule = decision.injected
        return AwsError(rule.status, rule.code, rule.message, rule.reason)
