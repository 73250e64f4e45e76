# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``LocalAWS``: moto's server application behind the fidelity layer, on a loopback port.

The server is werkzeug's threaded WSGI server running in a daemon thread of this process; moto's
backends are process-wide, so run one ``LocalAWS`` per process.
"""

import threading

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from .client import LocalAWSControl, account_credentials
from .clock import http_date
from .middleware import FidelityMiddleware
from .moto_speedups import index_moto_tag_lookups

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto's default account


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's one-line-per-request log, dated by the endpoint's clock."""

    def log_request(self, code="-", size="-"):
        """Do not log served requests."""

    def date_time_string(self, timestamp=None):
        """The ``Date`` header tells the endpoint's time (moved by ``set_clock_skew``), as AWS tells its own."""
        clock = getattr(getattr(self.server, "app", None), "clock", None)
        if timestamp is None and clock is not None:
            return http_date(clock.now())
        return super().date_time_string(timestamp)


class LocalAWS(LocalAWSControl):
    """A local AWS endpoint with faithful EBS direct APIs, fault injection and request counters.

    Use it as a context manager, or call ``start()`` and ``stop()``. The control methods are those
    of ``LocalAWSControl``.
    """

    def __init__(self, host="127.0.0.1", port=0):
        super().__init__("http://unstarted")
        self.host = host
        self.port = port
        self.middleware = None
        self._server = None
        self._thread = None

    def start(self):
        """Listen on ``host:port`` (port 0 picks a free one) and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("LocalAWS is already running")
        index_moto_tag_lookups()
        self.middleware = FidelityMiddleware(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self.host, self.port, self.middleware, threaded=True, request_handler=QuietRequestHandler)
        self.port = self._server.server_port
        self.endpoint_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"localaws-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close the listening socket and wait for the server thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
        self._thread = None

    def client(self, service, region="us-east-1", account_id=None, **config):
        """A boto3 client for this endpoint; ``config`` goes to ``botocore.config.Config``.

        Without ``account_id`` the client has dummy credentials (moto's default account 123456789012);
        with a 12-digit ``account_id`` its access key id is that id, which makes it act as that account.
        """
        credentials = account_credentials(account_id) if account_id else DUMMY_CREDENTIALS
        return boto3.client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=Config(**config) if config else None,
            **credentials,
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
