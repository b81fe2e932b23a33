"""Where the client finds its endpoint and token: arguments, then `PIXELPOOL_URL` / `PIXELPOOL_TOKEN`,
then the config file `pixelpool login` writes (`$PIXELPOOL_CONFIG`, default
`~/.config/pixelpool/config.json`, readable by its owner only since it holds a token)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pixelpool.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    explicit = os.environ.get("PIXELPOOL_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pixelpool" / "config.json"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str

    @classmethod
    def resolve(cls, url: str | None = None, token: str | None = None) -> "Settings":
        """Each value from the first place that has it: argument, environment, config file."""
        stored = read_config()
        url = url or os.environ.get("PIXELPOOL_URL") or stored.get("url") or DEFAULT_URL
        token = token or os.environ.get("PIXELPOOL_TOKEN") or stored.get("token")
        if not token:
            raise ConfigError("no token: run `pixelpool login`, or set PIXELPOOL_TOKEN "
                              "(for `make run`: .venv/bin/python -m infra.local token --admin)")
        return cls(url=url.rstrip("/"), token=token)


def read_config() -> dict[str, str]:
    path = config_path()
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable pixelpool config ({exc})") from exc
    return {key: str(value) for key, value in stored.items() if key in ("url", "token") and value}


def write_config(url: str, token: str) -> Path:
    """Store the endpoint and token, created 0600 so no other user reads the token."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"url": url.rstrip("/"), "token": token}, file, indent=1)
    os.chmod(path, 0o600)
    return path
