"""`make bench`: run every bench script and print one table of figures.

Each bench runs in its own interpreter. A bench that starts the embedded stack binds the process
to it for good — moto's backends are process-global and PynamoDB reads its endpoint into each
model's `Meta` at import — so a second stack in the same process would find the first one's
tables and talk to a server that is gone. A fresh process per bench also keeps each bench's peak
RSS its own.

Usage: python -m bench [NAME ...]   (internally: python -m bench --rows FILE NAME)
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import install_request_counter, table

ROOT = Path(__file__).resolve().parent.parent


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))


def _run_here(name: str, rows_file: Path) -> None:
    """Run one bench in this process and write its rows to `rows_file` as JSON."""
    install_request_counter()
    module = importlib.import_module(f"bench.{name}")
    rows_file.write_text(json.dumps([list(row) for row in module.run()]))


def _run_in_child(name: str, env: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    print(f"running {name} …", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        rows_file = Path(scratch) / "rows.json"
        result = subprocess.run([sys.executable, "-m", "bench", "--rows", str(rows_file), name], cwd=ROOT,
                                env={**os.environ, **(env or {})})
        if result.returncode != 0 or not rows_file.exists():
            return [(f"{name}: FAILED", f"exit {result.returncode}", "")]
        return [tuple(row) for row in json.loads(rows_file.read_text())]


def _run(name: str) -> list[tuple[str, str, str]]:
    """One bench; one that sets `EMULATOR_BEFORE_AFTER` runs first on an emulator that closes every
    connection (as moto's server does), then on ours (keep-alive), and prints both."""
    module = importlib.import_module(f"bench.{name}")
    if not getattr(module, "EMULATOR_BEFORE_AFTER", False):
        return _run_in_child(name)
    before = _run_in_child(name, {"PIXELPOOL_EMULATOR_KEEP_ALIVE": "0"})
    after = _run_in_child(name)
    return ([(f"before (a connection per request): {row[0]}", *row[1:]) for row in before]
            + [(f"after (keep-alive): {row[0]}", *row[1:]) for row in after])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--rows"]:
        _run_here(argv[2], Path(argv[1]))
        return 0
    unknown = set(argv) - set(_names())
    if unknown:
        print(f"unknown benches: {sorted(unknown)}; known: {_names()}", file=sys.stderr)
        return 2
    rows = [("figure", "value", "target")]
    for name in (argv or _names()):
        rows.extend(_run(name))
    print(table(rows))
    return 1 if any(row[0].endswith(": FAILED") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
