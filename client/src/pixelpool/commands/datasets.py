"""`datasets …` and `operations …`: dataset uploads, imports and deletions, and waiting on them."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixelpool import output
from pixelpool.commands.base import (Json, Timeout, client, datasets_app, dump, handled, operation_code,
                                     operations_app, wait_operation)
from pixelpool.errors import PixelpoolError
from pixelpool.models import Operation
from pixelpool.multipart import MultipartUpload
from pixelpool.uploads import Uploader


@datasets_app.command("ls")
@handled
def datasets_ls(state: Annotated[Optional[str], typer.Option()] = None, json_mode: Json = False) -> int:
    """Your datasets (`--state deleted`: the trash)."""
    found = list(client().datasets.iter(state=state))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "status", "state", "images", "annotations"],
        [(d.id, d.name, d.status, d.state, d.image_count, d.annotation_count) for d in found]))
    return 0


@datasets_app.command("upload")
@handled
def datasets_upload(source: Annotated[Path, typer.Argument(exists=True, help="a folder of images or a ZIP")],
                    annotations: Annotated[Optional[list[Path]],
                                           typer.Option(help="COCO/YOLO/… file; repeat")] = None,
                    name: Annotated[Optional[str], typer.Option(help="default: the folder's or ZIP's name")] = None,
                    chunk_size: Annotated[int, typer.Option(min=1, help="images per job")] = 100,
                    workers: Annotated[int, typer.Option(min=1, max=64)] = 8,
                    do_import: Annotated[bool, typer.Option("--import/--no-import")] = True,
                    timeout: Timeout = 900.0, json_mode: Json = False) -> int:
    """Upload a folder or ZIP (and annotation files) into a dataset, made if new, then import it."""
    sdk = client()
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    dataset_name = name or source.stem
    dataset = sdk.datasets.find(dataset_name) or sdk.datasets.create(dataset_name)
    document: dict[str, Any] = {"dataset": dump(dataset), "staged": []}
    with output.bars(json_mode) as bars:
        if source.is_dir():
            uploader = Uploader(sdk, workers=workers, on_progress=bars.update, ingest_timeout=timeout)
            try:
                document["images"] = uploader.upload([source], dataset_id=dataset.id).as_dict()
            finally:
                uploader.close()
        for staged in ([] if source.is_dir() else [source]) + list(annotations or []):
            document["staged"].append(dump(MultipartUpload(sdk, dataset.id, staged, workers=min(workers, 8),
                                                           on_progress=bars.update).run()))
    if do_import:
        finished = wait_operation(sdk, sdk.datasets.start_import(dataset.id, chunk_size), json_mode, timeout)
        document["import"] = dump(finished)
    summary = (document.get("import") or {}).get("result") or {}
    output.emit(json_mode, document, lambda: output.stdout.print(
        f"dataset {dataset.name} ({dataset.id}): staged {len(document['staged'])} file(s)"
        + (f", {document['images']['uploaded']} image(s) uploaded" if "images" in document else "")
        + (f"; import {document['import']['status']}: project {summary.get('project_id')}, "
           f"{(summary.get('upload_summary') or {}).get('images_uploaded', 0)} image(s), "
           f"{(summary.get('upload_summary') or {}).get('annotations_imported', 0)} annotation(s), "
           f"{summary.get('problem_count', 0)} problem(s)" if "import" in document else ""), markup=False))
    if "import" in document:
        return operation_code(Operation.model_validate(document["import"]))
    return 0


@datasets_app.command("delete")
@handled
def datasets_delete(name: Annotated[str, typer.Argument(help="the dataset's name (or its id)")],
                    backup: Annotated[bool, typer.Option("--backup/--no-backup",
                                                         help="write a backup ZIP first")] = True,
                    purge: Annotated[bool, typer.Option(help="purge now, not after the retention window")] = False,
                    force: Annotated[bool, typer.Option(help="admins: even if other projects use its images")] = False,
                    timeout: Timeout = 900.0, json_mode: Json = False) -> int:
    """Delete a dataset (restorable until purged), with a backup unless --no-backup."""
    sdk = client()
    dataset = sdk.datasets.find(name) or next((d for d in sdk.datasets.iter() if d.id == name), None)
    if dataset is None:
        raise PixelpoolError(f"no active dataset named {name!r} (`pixelpool datasets ls` lists yours)")
    finished = wait_operation(sdk, sdk.datasets.delete(dataset, backup=backup, purge=purge, force=force),
                              json_mode, timeout)
    result = finished.result or {}
    output.emit(json_mode, dump(finished), lambda: output.stdout.print(
        f"dataset {dataset.name}: {finished.status}, state {result.get('state')}"
        + (f", backup {result.get('backup_path')}" if result.get("backup_path") else ""), markup=False))
    return operation_code(finished)


@operations_app.command("wait")
@handled
def operations_wait(operation_id: str, timeout: Timeout = 900.0, json_mode: Json = False) -> int:
    """Wait for an operation with a progress bar; exit 3 if it failed."""
    sdk = client()
    finished = wait_operation(sdk, sdk.operations.get(operation_id), json_mode, timeout)
    output.emit(json_mode, dump(finished), f"operation {finished.id} ({finished.kind}): {finished.status}"
                + (f": {finished.error}" if finished.error else ""))
    return operation_code(finished)


@operations_app.command("show")
@handled
def operations_show(operation_id: str, json_mode: Json = False) -> int:
    """An operation as it is now."""
    found = client().operations.get(operation_id)
    output.emit(json_mode, dump(found), f"operation {found.id} ({found.kind}): {found.status} "
                f"{found.done}/{found.total if found.total is not None else '?'}")
    return 0
