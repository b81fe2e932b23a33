"""`login` and `whoami`: where the CLI finds the API and who it is there."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from pixelpool import output
from pixelpool.client import Client
from pixelpool.commands.base import Json, app, client, handled
from pixelpool.config import DEFAULT_URL, config_path, read_config, write_config


@app.command()
@handled
def login(url: Annotated[Optional[str], typer.Option(help="the API, e.g. http://127.0.0.1:8000")] = None,
          token: Annotated[Optional[str], typer.Option(help="a bearer token (asked for when absent)")] = None,
          json_mode: Json = False) -> int:
    """Store the endpoint and token (checked against the API first)."""
    url = url or read_config().get("url") or DEFAULT_URL
    token = token or typer.prompt("token", hide_input=True)
    me = Client(url, token).data("GET", "/api/v1/me")
    path = write_config(url, token)
    output.emit(json_mode, {"url": url, "user": me.get("sub"), "config": str(path)},
                f"logged in to {url} as {me.get('sub')} (saved in {path})")
    return 0


@app.command()
@handled
def whoami(json_mode: Json = False) -> int:
    """Who the stored token is, and where the config lives."""
    sdk = client()
    me = sdk.data("GET", "/api/v1/me")
    output.emit(json_mode, {"url": sdk.url, "user": me, "config": str(config_path())},
                f"{me.get('sub')} at {sdk.url}{' (admin)' if me.get('is_admin') else ''}")
    return 0
