"""Lazily built AWS clients, pointed at the configured endpoint.

`PIXELPOOL_AWS_ENDPOINT` (host:port or URL) routes every service to one local endpoint — the
embedded emulator of `make run`, or LocalStack — through `localstack-client`'s endpoint map.
Unset, boto3 resolves endpoints itself, so the standard `AWS_ENDPOINT_URL*` variables and real
AWS both work without a code change.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from localstack_client import config as localstack_config

from chalicelib.config import get_settings

_lock = threading.Lock()
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


def endpoint_url(service: str) -> str | None:
    endpoint = get_settings().aws_endpoint
    if not endpoint:
        return None
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    return localstack_config.get_service_endpoint(service, localstack_host=parsed.netloc)


@lru_cache(maxsize=None)
def client(service: str):
    """One client per service and process; boto3 clients are thread-safe once built."""
    with _lock:
        return boto3.session.Session().client(
            service,
            region_name=get_settings().region,
            endpoint_url=endpoint_url(service),
            config=_CLIENT_CONFIG,
        )


def reset_clients() -> None:
    """Forget built clients, for a process whose settings changed (the local stack, tests)."""
    client.cache_clear()
