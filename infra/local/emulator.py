"""moto's server, embedded in this process, with in-process Lambda dispatch in front of it."""
from __future__ import annotations

import logging
import threading

from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from infra.local.patches import MOTO_PATCHES
from infra.local.lambdas import LambdaDispatcher


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
        self._server = make_server(
            self.host, self.requested_port, self.lambdas.wsgi(moto_app), threaded=True,
            request_handler=MotoRequestHandler,
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
