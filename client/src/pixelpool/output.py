"""How the CLI talks: Rich progress bars and tables on the terminal (bars and errors on stderr, so
stdout pipes cleanly), or exactly one JSON document on stdout with `--json`; and the exit codes
scripts can trust."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from rich.console import Console
from rich.progress import (BarColumn, Progress, SpinnerColumn, TaskID, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn)
from rich.table import Table

from pixelpool.errors import ApiError, ConfigError, PixelpoolError, TimeoutError, TransferError, TransportError

# Exit codes: 0 done; 2 bad command line (Typer's); the rest below.
EXIT_API = 1          # the API refused the request (the line names the status, code and fields)
EXIT_INCOMPLETE = 3   # it ran, but some of it failed: images refused, an export or operation failed
EXIT_TIMEOUT = 4      # a wait ran out of time; the work goes on on the server
EXIT_UNREACHABLE = 5  # no answer from the API, or no endpoint/token configured

STAGES = {  # stage → (label, unit): what each long operation's bar says
    "hash": ("hashing", "bytes"), "upload": ("uploading", "bytes"), "ingest": ("ingesting", "images"),
    "export": ("building export", "shards"), "download": ("downloading", "bytes"),
    "operation": ("running", "items"),
}

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)


def _amount(done: int, total: int | None, unit: str) -> str:
    if unit == "bytes":
        scale = lambda n: f"{n / 1e6:,.1f}"  # noqa: E731
        return f"{scale(done)}/{scale(total)} MB" if total is not None else f"{scale(done)} MB"
    return f"{done:,}/{total:,} {unit}" if total is not None else f"{done:,} {unit}"


class Bars:
    """One bar per stage, made the first time the stage reports; `update(stage, done, total)`."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def update(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is None:
            return
        base, _, detail = stage.partition(":")
        label, unit = STAGES.get(base, (base, "items"))
        label = f"{label} {detail}" if detail else label
        if stage not in self.tasks:
            if total == 0:
                return  # nothing to do in this stage: no empty bar

            self.tasks[stage] = self.progress.add_task(label, total=total, amount="")
        self.progress.update(self.tasks[stage], completed=done, total=total, amount=_amount(done, total, unit))


@contextmanager
def bars(json_mode: bool) -> Iterator[Bars]:
    """Progress bars on stderr, none with --json."""
    if json_mode:
        yield Bars(None)
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description:<18}"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[amount]}"), TimeElapsedColumn(), console=stderr)
    with progress:
        yield Bars(progress)


def emit(json_mode: bool, document: Any, human: Callable[[], None] | str | None = None) -> None:
    """The command's answer: the JSON document with --json, else `human` (a callable or a line)."""
    if json_mode:
        sys.stdout.write(json.dumps(document, default=str, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif callable(human):
        human()
    elif human is not None:
        stdout.print(human, markup=False)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    shown = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:  # ids are for copying: never cut
        shown.add_column(column, no_wrap=column == "id", min_width=36 if column == "id" else None)
    for row in rows:
        shown.add_row(*["" if cell is None else str(cell) for cell in row])
    stdout.print(shown)


def fail(json_mode: bool, exc: BaseException) -> int:
    """Report an error as one line on stderr (and as a JSON document with --json); its exit code."""
    if isinstance(exc, ApiError):
        code, document = EXIT_API, {"error": {"status": exc.status, "code": exc.code, "message": exc.message,
                                              "details": exc.details}}
    elif isinstance(exc, TimeoutError):
        code, document = EXIT_TIMEOUT, {"error": {"code": "timeout", "message": str(exc)}}
    elif isinstance(exc, (TransportError, ConfigError)):
        code, document = EXIT_UNREACHABLE, {"error": {"code": "unreachable" if isinstance(exc, TransportError)
                                                      else "not_configured", "message": str(exc)}}
    elif isinstance(exc, TransferError):
        code, document = EXIT_INCOMPLETE, {"error": {"code": "transfer_failed", "message": str(exc)}}
    elif isinstance(exc, (PixelpoolError, OSError, ValueError)):
        code, document = EXIT_API, {"error": {"code": "error", "message": str(exc)}}
    else:
        raise exc
    stderr.print(f"error: {exc}", markup=False)
    if json_mode:
        emit(True, document)
    return code
