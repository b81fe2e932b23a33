"""Zipped size of the deployment package `chalice package` builds (the one Lambda receives)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from infra.package import package


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = package(Path(tmp) / "sam")
        size = (out.parent / "deployment.zip").stat().st_size
    return [("deployment package (zipped)", f"{size / 2**20:.1f} MB", "goal <= 50 MB")]
