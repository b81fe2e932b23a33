"""Downloads of presigned URLs to a file, with progress, the size checked against what the API said,
and a ZIP unpacked only if none of its names would land outside the target folder."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable

import httpx

from pixelpool.errors import TransferError

ATTEMPTS = 3


def download(url: str, destination: Path, expected_size: int | None = None,
             on_progress: Callable[[str, int, "int | None"], None] | None = None,
             transport: httpx.BaseTransport | None = None) -> int:
    """Stream `url` into `destination` (written under a temporary name, renamed when complete);
    returns the byte count, which must equal `expected_size` when given."""
    on_progress = on_progress or (lambda stage, done, total: None)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    http = httpx.Client(timeout=httpx.Timeout(300.0, connect=30.0), transport=transport)
    try:
        return _fetch(http, url, destination, partial, expected_size, on_progress)
    finally:
        http.close()


def _fetch(http: httpx.Client, url: str, destination: Path, partial: Path, expected_size: int | None,
           on_progress: Callable[[str, int, "int | None"], None]) -> int:
    problem = ""
    for _ in range(ATTEMPTS):
        received = 0
        try:
            with http.stream("GET", url) as response:
                if response.status_code >= 300:
                    response.read()
                    raise TransferError(f"download answered {response.status_code}: {response.text[:200]}")
                total = expected_size or int(response.headers.get("Content-Length") or 0) or None
                on_progress("download", 0, total)
                with open(partial, "wb") as file:
                    for chunk in response.iter_bytes(1 << 20):
                        file.write(chunk)
                        received += len(chunk)
                        on_progress("download", received, total)
        except httpx.TransportError as exc:
            problem = f"{exc.__class__.__name__}: {exc}"
            continue
        if expected_size is not None and received != expected_size:
            partial.unlink(missing_ok=True)
            raise TransferError(f"{destination.name}: received {received} bytes, the API said {expected_size}")
        os.replace(partial, destination)
        return received
    partial.unlink(missing_ok=True)
    raise TransferError(f"{destination.name}: {problem} (after {ATTEMPTS} attempts)")


def unzip(archive: Path, folder: Path) -> list[str]:
    """Unpack `archive` into `folder`; refuses the whole archive if a member escapes it."""
    folder = Path(folder).resolve()
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        for name in names:
            target = (folder / name).resolve()
            if name.startswith("/") or (target != folder and folder not in target.parents):
                raise TransferError(f"{archive.name}: member {name!r} would land outside {folder}")
        zipped.extractall(folder)
    return names
