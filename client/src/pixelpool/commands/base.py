"""What every command shares: the Typer app and its groups, `--json` and `--timeout`, the error
handling that turns an SDK error into one line and an exit code, and operation waiting."""
from __future__ import annotations

import functools
from typing import Annotated, Any, Callable

import typer

from pixelpool import output
from pixelpool.client import Client
from pixelpool.errors import PixelpoolError
from pixelpool.models import Operation

app = typer.Typer(help="pixelpool: upload, organise and export ML image data.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
images_app = typer.Typer(help="The registry's images.", no_args_is_help=True)
tags_app = typer.Typer(help="Global tags.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects.", no_args_is_help=True)
tasks_app = typer.Typer(help="Labeling tasks.", no_args_is_help=True)
exports_app = typer.Typer(help="Exports already made.", no_args_is_help=True)
datasets_app = typer.Typer(help="Datasets: upload, import, delete.", no_args_is_help=True)
operations_app = typer.Typer(help="Long-running operations.", no_args_is_help=True)
for sub, name in ((images_app, "images"), (tags_app, "tags"), (projects_app, "projects"), (tasks_app, "tasks"),
                  (exports_app, "exports"), (datasets_app, "datasets"), (operations_app, "operations")):
    app.add_typer(sub, name=name)

Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout, no progress bars")]
Timeout = Annotated[float, typer.Option(help="seconds to wait before giving up (exit 4)")]


def handled(function: Callable[..., int | None]) -> Callable[..., None]:
    """Run a command; an SDK error becomes one line on stderr and the exit code for its kind."""

    @functools.wraps(function)
    def command(*args: Any, **kwargs: Any) -> None:
        json_mode = bool(kwargs.get("json_mode"))
        try:
            code = function(*args, **kwargs) or 0
        except (PixelpoolError, OSError, ValueError) as exc:
            code = output.fail(json_mode, exc)
        except KeyboardInterrupt:
            output.stderr.print("interrupted")
            code = 130
        raise typer.Exit(code)

    return command


def client() -> Client:
    return Client()


def dump(model: Any) -> Any:
    if isinstance(model, list):
        return [dump(item) for item in model]
    return model.model_dump(mode="json") if hasattr(model, "model_dump") else model


def wait_operation(sdk: Client, operation: Operation, json_mode: bool, timeout: float) -> Operation:
    stage = f"operation:{operation.kind}"
    with output.bars(json_mode) as bars:
        return sdk.operations.wait(operation.id, timeout=timeout,
                                   on_progress=lambda done, total: bars.update(stage, done, total))


def operation_code(operation: Operation) -> int:
    if operation.status == "failed":
        output.stderr.print(f"error: operation {operation.id} failed: {operation.error}", markup=False)
        return output.EXIT_INCOMPLETE
    return 0
