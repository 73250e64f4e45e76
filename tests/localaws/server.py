# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``LocalAWS``: moto's server application behind the fidelity layer, on a loopback port.

The server is werkzeug's threaded WSGI server running in a daemon thread of this process; moto's
backends are process-wide, so run one ``LocalAWS`` per process.

With ``tls=True`` it serves HTTPS with a certificate of a test CA made for this run (``trustme``);
clients trust it through ``ca_bundle`` (the path of the CA's PEM file: boto3's ``verify``, the modules'
``aws_ca_bundle``), never by turning verification off. The HTTPS server is ``cheroot`` (CherryPy's
WSGI server), which keeps connections alive as AWS endpoints do; werkzeug's development server closes
every connection after one response, so each request would pay a TLS handshake. ``connections_opened``
counts the connections accepted, so a test can tell a client that reuses its connections from one that
opens one per request.
"""

import os
import tempfile
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

    def setup(self):
        """Count the connection (one handler per accepted connection), then set it up."""
        counter = getattr(self.server, "connection_counter", None)
        if counter is not None:
            counter.add()
        super().setup()

    def date_time_string(self, timestamp=None):
        """The ``Date`` header tells the endpoint's time (moved by ``set_clock_skew``), as AWS tells its own."""
        clock = getattr(getattr(self.server, "app", None), "clock", None)
        if timestamp is None and clock is not None:
            return http_date(clock.now())
        return super().date_time_string(timestamp)


class ConnectionCounter:
    """Connections accepted by the server (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.count = 0

    def add(self):
        with self._lock:
            self.count += 1


def _tls_files(host, workdir):
    """``(certificate chain path, key path, CA bundle path)`` of a test CA and a certificate for ``host``."""
    # Only HTTPS endpoints need it.
    import trustme  # pylint: disable=import-outside-toplevel

    ca = trustme.CA()
    cert = ca.issue_cert(host, "localhost", "127.0.0.1")
    paths = [os.path.join(workdir, name) for name in ("server.pem", "server.key", "localaws-ca.pem")]
    with open(paths[0], "wb") as chain:
        for blob in cert.cert_chain_pems:
            chain.write(blob.bytes())
    cert.private_key_pem.write_to_path(paths[1])
    ca.cert_pem.write_to_path(paths[2])
    return paths


class _ClockDate:
    """WSGI wrapper: the ``Date`` header tells the endpoint's time (moved by ``set_clock_skew``)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != "date"]
            headers.append(("Date", http_date(self.app.clock.now())))
            return start_response(status, headers, exc_info)
        return self.app(environ, start)


def _quiet(*_args, **_kwargs):
    """Drop cheroot's connection-level log lines."""


def _https_server(host, port, app, workdir, counter):
    """A cheroot WSGI server on ``host:port`` with TLS and keep-alive -> (server, CA bundle path)."""
    # pylint: disable=import-outside-toplevel
    from cheroot import server as cheroot_server
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    chain, key, bundle = _tls_files(host, workdir)

    class CountedConnection(cheroot_server.HTTPConnection):
        def __init__(self, *args, **kwargs):
            counter.add()
            super().__init__(*args, **kwargs)

    server = wsgi.Server((host, port), _ClockDate(app), numthreads=160, request_queue_size=256, timeout=60)
    server.ConnectionClass = CountedConnection
    server.keep_alive_conn_limit = 1024  # cheroot closes connections beyond 10 idle ones by default
    server.error_log = _quiet  # a client that does not trust the test CA is expected in tests
    server.ssl_adapter = BuiltinSSLAdapter(chain, key)
    server.prepare()
    return server, bundle


class LocalAWS(LocalAWSControl):
    """A local AWS endpoint with faithful EBS direct APIs, fault injection and request counters.

    Use it as a context manager, or call ``start()`` and ``stop()``. The control methods are those
    of ``LocalAWSControl``.
    """

    def __init__(self, host="127.0.0.1", port=0, tls=False):
        super().__init__("http://unstarted")
        self.host = host
        self.port = port
        self.tls = tls
        self.ca_bundle = None
        self.middleware = None
        self._server = None
        self._thread = None
        self._tls_dir = None
        self._connections = ConnectionCounter()

    @property
    def connections_opened(self):
        """Connections the server accepted since it started."""
        return self._connections.count

    def start(self):
        """Listen on ``host:port`` (port 0 picks a free one) and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("LocalAWS is already running")
        index_moto_tag_lookups()
        self.middleware = FidelityMiddleware(DomainDispatcherApplication(create_backend_app))
        if self.tls:
            self._tls_dir = tempfile.TemporaryDirectory(prefix="localaws-tls-")
            self._server, self.ca_bundle = _https_server(self.host, self.port, self.middleware, self._tls_dir.name,
                                                         self._connections)
            self.port = self._server.bind_addr[1]
            serve = self._server.serve
        else:
            self._server = make_server(self.host, self.port, self.middleware, threaded=True,
                                       request_handler=QuietRequestHandler)
            self._server.connection_counter = self._connections
            self.port = self._server.server_port
            serve = self._server.serve_forever
        self.endpoint_url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        self._thread = threading.Thread(target=serve, name=f"localaws-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close the listening socket and wait for the server thread."""
        if self._server is None:
            return
        if self.tls:
            self._server.stop()
        else:
            self._server.shutdown()
            self._server.server_close()
        self._thread.join()
        self._server = None
        self._thread = None
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def client(self, service, region="us-east-1", account_id=None, **config):
        """A boto3 client for this endpoint; ``config`` goes to ``botocore.config.Config``.

        Without ``account_id`` the client has dummy credentials (moto's default account 123456789012);
        with a 12-digit ``account_id`` its access key id is that id, which makes it act as that account.
        """
        credentials = account_credentials(account_id) if account_id else DUMMY_CREDENTIALS
        return boto3.client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=Config(**config) if config else None,
            verify=self.ca_bundle if self.tls else None, **credentials,
        )

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
