# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A second front door to the local AWS endpoint that denies chosen actions in chosen regions only.

The endpoint's fault injector answers an action with an error in every region. To show that one
region's failure does not stop another, ``RegionDenial`` serves the same endpoint application (the
same moto state, counters and faults) on another loopback port, and answers the actions it was told
to deny, in the regions it was told (read from the SigV4 credential scope, as AWS routes them), with
the error AWS gives a principal whose IAM policy does not allow the action: for EC2
``UnauthorizedOperation`` (HTTP 403, "You are not authorized to perform this operation.", see
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html), for the query services
such as SNS ``AuthorizationError`` (HTTP 403,
https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html). Denied calls are counted as faulted.
"""
import threading

from werkzeug.serving import make_server

from tests.localaws.control import CONTROL_PREFIX
from tests.localaws.server import QuietRequestHandler
from tests.localaws.wire import AwsError, AwsRequest, error_response

DENIED = {
    "ec2": (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
    "query": (403, "AuthorizationError", "User is not authorized to perform this action."),
}


class RegionDenial:
    """Serve ``localaws``'s application on ``endpoint_url``, denying ``(region, action)`` pairs."""

    def __init__(self, localaws):
        self._app = localaws.middleware
        self._lock = threading.Lock()
        self._rules = set()
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=QuietRequestHandler)
        self.endpoint_url = "http://127.0.0.1:{0}".format(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="region-denial", daemon=True)
        self._thread.start()

    def deny(self, region, action):
        """Deny every call of ``action`` (``Action`` or ``service:Action``) signed for ``region``."""
        with self._lock:
            self._rules.add((region, action))

    def allow_all(self):
        """Forget every denial."""
        with self._lock:
            self._rules.clear()

    def stop(self):
        """Stop serving (the endpoint itself keeps running)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _denied(self, request):
        with self._lock:
            return any(region == request.region and action in (request.action, request.counter_key)
                       for region, action in self._rules)

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            request = AwsRequest(environ)
            if self._denied(request):
                self._app.counters.record(request.counter_key, faulted=True)
                status, code, message = DENIED.get(request.protocol, DENIED["query"])
                return error_response(request.protocol, AwsError(status, code, message))(start_response)
        return self._app(environ, start_response)
