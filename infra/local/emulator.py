"""moto's server, embedded in this process, with in-process Lambda dispatch in front of it.

It speaks HTTP/1.1 with keep-alive: werkzeug's development server closes every connection, so
each emulated AWS request (thousands per test run) paid for a new TCP connection.
"""
from __future__ import annotations

import logging
import os
import threading

from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wsgi import LimitedStream

from infra.local.patches import MOTO_PATCHES
from infra.local.lambdas import LambdaDispatcher


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open between requests.

    werkzeug answers `Connection: close` on every response and, after each, reads whatever is
    left in the socket — with keep-alive that would swallow the client's next request. So while
    a request runs, the handler's input is only that request's body (`Content-Length` bytes):
    werkzeug's drain reads the unread rest of the body and stops there. Responses are framed by
    their `Content-Length` or, lacking one, by werkzeug's chunked encoding. A chunked request
    body still closes its connection.
    """

    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle kept-alive connection's thread ends after this many seconds
    # Headers and body leave in separate writes: without this, Nagle's algorithm holds the body
    # back until the client's delayed ACK (~40 ms per request), which only a closed connection hid.
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._keep_alive = False
            return super().run_wsgi()
        self._keep_alive = True
        connection_input = self.rfile
        self.rfile = LimitedStream(connection_input, int(self.headers.get("Content-Length") or 0))
        try:
            super().run_wsgi()
        finally:
            self.rfile = connection_input

    def log_error(self, format: str, *args) -> None:
        # http.server reports an idle kept-alive connection reaching `timeout` as an error; it is
        # the normal end of one (the client simply made no further request on it).
        if format.startswith("Request timed out"):
            return
        super().log_error(format, *args)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "_keep_alive", False):
            return
        super().send_header(keyword, value)


class Emulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self.lambdas = LambdaDispatcher()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "Emulator":
        # Step Functions runs real ASL (moto's executor, ported from LocalStack) instead of
        # answering every execution with an immediate success.
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        MOTO_PATCHES.apply()  # fails here, with what differs, if moto is not the expected one
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_app = DomainDispatcherApplication(create_backend_app)
        # PIXELPOOL_EMULATOR_KEEP_ALIVE=0 serves as moto's own server does (benches' "before").
        keep_alive = os.environ.get("PIXELPOOL_EMULATOR_KEEP_ALIVE", "1") != "0"
        self._server = make_server(
            self.host, self.requested_port, self.lambdas.wsgi(moto_app), threaded=True,
            request_handler=KeepAliveRequestHandler if keep_alive else MotoRequestHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        return self

    def reset(self) -> None:
        """Drop every resource and item (moto's reset), keeping the server up."""
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
