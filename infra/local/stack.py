"""The whole local stack in one object: emulator, resources, app, Lambda dispatch, event pump.

`make run` and the tests both build it; only names and endpoints differ from AWS, and they reach
the app the way they do on AWS — as the environment variables the template gives its functions.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import boto3
from chalice.config import Config

from infra.local.emulator import Emulator
from infra.local.gateway import emulate_gateway_responses
from infra.local.heap import HeapFreezer
from infra.local.issuer import LocalIssuer, default_email
from infra.local.provision import Context, Provisioner
from infra.local.pump import EventPump
from infra.local.schedule import Scheduler, scheduled_functions
from infra.template import render

_OWN_EMAIL: Any = object()  # token(): the user's own `<sub>@example.com`

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's default account


class LocalStack:
    def __init__(
        self,
        port: int = 0,
        stage: str = "dev",
        region: str = "us-east-1",
        key_file: Path | None = None,
        retry_delay: int = 1,
    ) -> None:
        self.stage = stage
        self.region = region
        self.stack_name = f"pixelpool-{stage}"
        self.emulator = Emulator(port=port)
        self.issuer = LocalIssuer(key_file=key_file)
        self.retry_delay = retry_delay
        self.variables: dict[str, str] = {}
        self.physical: dict[str, dict[str, str]] = {}
        self.app: Any = None
        self.pump: EventPump | None = None
        self.scheduler: Scheduler | None = None
        self.heap = HeapFreezer()
        self._session = boto3.session.Session()
        self._clients: dict[str, Any] = {}

    @property
    def endpoint(self) -> str:
        return self.emulator.endpoint

    def chalice_config(self) -> Config:
        disk = json.loads((ROOT / ".chalice" / "config.json").read_text())
        return Config.create(chalice_stage=self.stage, project_dir=str(ROOT), config_from_disk=disk)

    def start(self) -> "LocalStack":
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": self.region}.items():
            os.environ[name] = value
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        self.emulator.start()
        self.heap.start()
        # moto's Step Functions executor calls Lambda at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.emulator.port)
        os.environ["PIXELPOOL_AWS_ENDPOINT"] = self.endpoint
        self.provision()
        os.environ.update(self.chalice_config().environment_variables)
        os.environ.update(self.variables)
        self._refresh_settings()
        self.app = importlib.import_module("app").app
        emulate_gateway_responses()
        self.emulator.lambdas.register(self.app, self.stage)
        queue = self.physical["IngestQueue"]
        self.pump = EventPump(
            self.aws("sqs"), queue["QueueUrl"], queue["Arn"],
            handler=lambda event: self.emulator.lambdas.call("ingest", event),
            region=self.region, retry_delay=self.retry_delay,
        )
        self.scheduler = Scheduler(scheduled_functions(self.app), self.emulator.lambdas.call, self.region)
        return self

    def provision(self) -> None:
        context = Context(stack=self.stack_name, region=self.region, account=ACCOUNT)
        variables = Provisioner(self.aws, context).apply(render())
        # The local issuer replaces the Cognito user pool.
        variables.update(PIXELPOOL_JWT_ISSUER=self.issuer.issuer, PIXELPOOL_JWKS_JSON=self.issuer.jwks())
        for name in ("PIXELPOOL_JWKS_URL", "PIXELPOOL_JWT_AUDIENCE"):
            variables.pop(name, None)
            os.environ.pop(name, None)
        self.variables = variables
        self.physical = context.physical

    def reset(self) -> None:
        """Empty every table, bucket and queue: moto forgets everything, resources are made again."""
        self.emulator.reset()
        self.emulator.lambdas.clear_faults()
        self.heap.release_if_grown()
        self.provision()
        from chalicelib.services.container import services

        services().reset()

    def start_pump(self) -> EventPump:
        """Deliver queued S3 notifications and run scheduled functions on their rates, as AWS does."""
        assert self.pump is not None and self.scheduler is not None, "start() first"
        self.scheduler.start()
        return self.pump.start()

    def stop(self) -> None:
        if self.pump is not None:
            self.pump.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        self.emulator.stop()
        self.heap.stop()

    def token(self, sub: str = "dev-admin", email: str | None = _OWN_EMAIL,
              groups: list[str] | None = None, **claims: Any) -> str:
        """A token of the local issuer: an administrator's unless `groups` says otherwise; the e-mail is
        `<sub>@example.com` unless given (None: no e-mail)."""
        email = default_email(sub) if email is _OWN_EMAIL else email
        return self.issuer.token(sub, email=email, groups=["admin"] if groups is None else groups, **claims)

    def aws(self, service: str):
        """A boto3 client of the emulator for `service` (built once per service: building one costs ~0.1 s)."""
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self.region, endpoint_url=self.endpoint)
        return self._clients[service]

    def _refresh_settings(self) -> None:
        if "chalicelib.config" in sys.modules:
            from chalicelib.config import get_settings
            from chalicelib.store.aws import reset_clients

            get_settings.cache_clear()
            reset_clients()
