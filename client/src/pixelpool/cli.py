"""`pixelpool`: the command line of the SDK. Every command takes `--json` (one JSON document on
stdout, no bars); long operations show Rich progress bars on stderr; exit codes are in output.py."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from pixelpool import output
from pixelpool.client import Client
from pixelpool.config import DEFAULT_URL, config_path, read_config, write_config
from pixelpool.downloads import download, unzip
from pixelpool.errors import PixelpoolError
from pixelpool.models import Label, Operation
from pixelpool.multipart import MultipartUpload
from pixelpool.uploads import Uploader

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
FORMATS = {"coco": "coco_json", "yolo": "yolo", "csv": "manifest_csv", "imagefolder": "image_folder",
           "urls": "url_manifest"}


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


# login ----------------------------------------------------------------------------------------------

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


# upload ---------------------------------------------------------------------------------------------

def show_upload(result: dict) -> None:
    output.stdout.print(
        f"{result['total']} image(s) under '{result['folder'] or '/'}': {result['uploaded']} uploaded, "
        f"{result['skipped']} already there, {result['ready']} ready, {len(result['failed'])} failed "
        f"({result['bytes_uploaded'] / 1e6:.1f} MB in {result['seconds']:.1f} s)", markup=False)
    for failure in result["failed"]:
        output.stderr.print(f"failed: {failure['path']}: {failure['reason']}", markup=False)


@app.command()
@handled
def upload(sources: Annotated[list[Path], typer.Argument(help="folders (kept as sub-folders) and image files")],
           prefix: Annotated[str, typer.Option(help="share folder to upload into")] = "",
           workers: Annotated[int, typer.Option(min=1, max=64, help="parallel uploads")] = 8,
           wait: Annotated[bool, typer.Option(help="wait until every image is ready or failed")] = True,
           timeout: Timeout = 900.0, json_mode: Json = False) -> int:
    """Upload images into the share; files the registry already has (same size and SHA-256) are skipped."""
    sdk = client()
    with output.bars(json_mode) as bars:
        uploader = Uploader(sdk, workers=workers, on_progress=bars.update, ingest_timeout=timeout)
        try:
            result = uploader.upload(sources, prefix, wait_ready=wait).as_dict()
        finally:
            uploader.close()
    output.emit(json_mode, result, lambda: show_upload(result))
    return output.EXIT_INCOMPLETE if result["failed"] else 0


# images ---------------------------------------------------------------------------------------------

@images_app.command("ls")
@handled
def images_ls(folder: Annotated[Optional[str], typer.Option()] = None,
              search: Annotated[Optional[str], typer.Option(help="file name contains")] = None,
              status: Annotated[Optional[str], typer.Option(help="ready, failed or missing")] = None,
              tag: Annotated[Optional[list[str]], typer.Option(help="tag name or id (all of them)")] = None,
              limit: Annotated[int, typer.Option(min=1)] = 100, json_mode: Json = False) -> int:
    """List registry images in path order."""
    sdk = client()
    tag_ids = sdk.tags.resolve(tag) if tag else None
    found = list(sdk.images.iter(folder=folder, search=search, status=status, tag_ids=tag_ids, limit=limit))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "path", "status", "size", "bytes", "tags"],
        [(i.id, i.file_path, i.status, f"{i.width}x{i.height}" if i.width else i.reason, i.file_size_bytes,
          ", ".join(t.name for t in i.tags)) for i in found]))
    return 0


@images_app.command("show")
@handled
def images_show(image_id: str, json_mode: Json = False) -> int:
    """One image: file facts, SHA-256, tags, metadata."""
    image = client().images.get(image_id)
    output.emit(json_mode, dump(image), lambda: output.table(
        ["field", "value"], [(k, v) for k, v in dump(image).items() if k not in ("thumbnail_url",)]))
    return 0


@images_app.command("tag")
@handled
def images_tag(image_id: str, tags: Annotated[list[str], typer.Argument(help="tag names or ids")],
               json_mode: Json = False) -> int:
    """Tag an image (idempotent)."""
    sdk = client()
    image = sdk.images.tag(image_id, sdk.tags.resolve(tags))
    output.emit(json_mode, dump(image), f"{image.file_path}: {', '.join(t.name for t in image.tags)}")
    return 0


@images_app.command("untag")
@handled
def images_untag(image_id: str, tags: Annotated[list[str], typer.Argument(help="tag names or ids")],
                 json_mode: Json = False) -> int:
    """Remove tags from an image (idempotent)."""
    sdk = client()
    image = None
    for tag_id in sdk.tags.resolve(tags):
        image = sdk.images.untag(image_id, tag_id)
    output.emit(json_mode, dump(image), f"{image.file_path}: {', '.join(t.name for t in image.tags) or 'no tags'}")
    return 0


# tags -----------------------------------------------------------------------------------------------

@tags_app.command("ls")
@handled
def tags_ls(search: Annotated[Optional[str], typer.Option()] = None, json_mode: Json = False) -> int:
    """List tags by name, with how many images carry each."""
    found = list(client().tags.iter(search))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "category", "color", "images"], [(t.id, t.name, t.category, t.color, t.usage_count)
                                                        for t in found]))
    return 0


@tags_app.command("create")
@handled
def tags_create(name: str, color: Annotated[Optional[str], typer.Option(help="#RRGGBB")] = None,
                category: Annotated[Optional[str], typer.Option()] = None,
                description: Annotated[Optional[str], typer.Option()] = None, json_mode: Json = False) -> int:
    """Create a tag (names are unique ignoring case)."""
    tag = client().tags.create(name, color=color, category=category, description=description)
    output.emit(json_mode, dump(tag), f"tag {tag.name} created: {tag.id}")
    return 0


# projects -------------------------------------------------------------------------------------------

@projects_app.command("ls")
@handled
def projects_ls(json_mode: Json = False) -> int:
    """Your projects with your role."""
    found = client().projects.list()
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "role", "labels"], [(p.id, p.name, p.role, ", ".join(l.name for l in p.labels))
                                          for p in found]))
    return 0


@projects_app.command("create")
@handled
def projects_create(name: str, label: Annotated[Optional[list[str]], typer.Option(
                        help="NAME or NAME:TYPE (bbox, polygon, classification, any); repeat")] = None,
                    description: Annotated[Optional[str], typer.Option()] = None, json_mode: Json = False) -> int:
    """Create a project (you become its owner)."""
    labels = [Label(name=spec.split(":", 1)[0], annotation_type=spec.split(":", 1)[1] if ":" in spec else "any")
              for spec in label or []]
    project = client().projects.create(name, description=description, labels=labels)
    output.emit(json_mode, dump(project), f"project {project.name} created: {project.id}")
    return 0


@projects_app.command("activity")
@handled
def projects_activity(project: str, limit: Annotated[int, typer.Option(min=1)] = 50, json_mode: Json = False) -> int:
    """The project's timeline, newest first."""
    sdk = client()
    entries = list(sdk.projects.activity(sdk.projects.resolve(project).id, limit=limit))
    output.emit(json_mode, dump(entries), lambda: output.table(
        ["when", "actor", "action", "summary"], [(e.created_at, e.actor, f"{e.entity_type}.{e.action}", e.summary)
                                                 for e in entries]))
    return 0


# tasks ----------------------------------------------------------------------------------------------

@tasks_app.command("create")
@handled
def tasks_create(project: Annotated[str, typer.Argument(help="project id or name")],
                 from_folder: Annotated[list[str], typer.Option(help="share folder (or file) to take; repeat")],
                 name: Annotated[Optional[str], typer.Option(help="default: the folder's name")] = None,
                 chunk_size: Annotated[int, typer.Option(min=1, help="images per job")] = 50,
                 split: Annotated[str, typer.Option(help="none, train, val or test")] = "none",
                 order: Annotated[str, typer.Option(help="sequential or random")] = "sequential",
                 seed: Annotated[Optional[int], typer.Option()] = None,
                 timeout: Timeout = 600.0, json_mode: Json = False) -> int:
    """Register share folders, pool them and cut a task into jobs."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    paths = [p if "." in p.rsplit("/", 1)[-1] else p.rstrip("/") + "/" for p in from_folder]
    created = sdk.tasks.create_from_paths(project_id, name or from_folder[0].strip("/").rsplit("/", 1)[-1],
                                          paths, chunk_size=chunk_size, split=split, distribution_order=order,
                                          seed=seed)
    if isinstance(created, Operation):
        finished = wait_operation(sdk, created, json_mode, timeout)
        output.emit(json_mode, dump(finished), f"operation {finished.id}: {finished.status}")
        return operation_code(finished)
    document = dump(created)
    output.emit(json_mode, document, lambda: (
        output.stdout.print(f"task {created.task.name} ({created.task.id}): {created.total_images} image(s) in "
                            f"{len(created.jobs)} job(s), split {created.task.split}", markup=False),
        [output.stderr.print(f"not taken: {f.get('file_path')}: {f.get('reason')}", markup=False)
         for f in created.failed]))
    return 0


@tasks_app.command("ls")
@handled
def tasks_ls(project: str, json_mode: Json = False) -> int:
    """The project's tasks."""
    sdk = client()
    found = sdk.tasks.list(sdk.projects.resolve(project).id)
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "split", "status", "images", "jobs"],
        [(t.id, t.name, t.split, t.status, t.total_images, t.job_count) for t in found]))
    return 0


# explore and export ---------------------------------------------------------------------------------

def image_filter(sdk: Client, tag: list[str] | None, exclude_tag: list[str] | None, tag_mode: str,
                 **bounds: Any) -> dict[str, Any]:
    """Explore's filter from the command line; tags by name or id."""
    built: dict[str, Any] = {key: value for key, value in bounds.items() if value is not None}
    if tag:
        built.update(tag_ids=sdk.tags.resolve(tag), tag_mode=tag_mode)
    if exclude_tag:
        built["exclude_tag_ids"] = sdk.tags.resolve(exclude_tag)
    return built


Tag = Annotated[Optional[list[str]], typer.Option("--tag", help="tag name or id; repeat")]
ExcludeTag = Annotated[Optional[list[str]], typer.Option("--exclude-tag", help="tag name or id; repeat")]
TagMode = Annotated[str, typer.Option(help="any or all of the --tag tags")]
Bound = Annotated[Optional[int], typer.Option(min=0)]
Text = Annotated[Optional[str], typer.Option()]


@app.command()
@handled
def explore(project: Annotated[str, typer.Argument(help="project id or name")], tag: Tag = None,
            exclude_tag: ExcludeTag = None, tag_mode: TagMode = "any", search: Text = None,
            split: Text = None, path_prefix: Text = None, min_width: Bound = None, max_width: Bound = None,
            min_height: Bound = None, max_height: Bound = None,
            limit: Annotated[int, typer.Option(min=1)] = 100, json_mode: Json = False) -> int:
    """The project's pool through Explore's filters, newest first."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    filters = image_filter(sdk, tag, exclude_tag, tag_mode, search=search, split=split, path_prefix=path_prefix,
                           min_width=min_width, max_width=max_width, min_height=min_height, max_height=max_height)
    found = list(sdk.projects.explore(project_id, filters, limit=limit))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "path", "size", "tags"], [(i.id, i.file_path, f"{i.width}x{i.height}", ", ".join(t.name for t in i.tags))
                                         for i in found]))
    return 0


def fetch_export(sdk: Client, project_id: str, export: Any, destination: Path, unzip_to: Path | None,
                 json_mode: bool) -> dict[str, Any]:
    url = sdk.exports.download_url(project_id, export.id)
    with output.bars(json_mode) as bars:
        size = download(url, destination, export.artifact_size_bytes, bars.update)
    fetched: dict[str, Any] = {"path": str(destination), "bytes": size}
    if unzip_to is not None:
        fetched["unzipped"] = {"folder": str(unzip_to), "files": len(unzip(destination, unzip_to))}
    return fetched


@app.command()
@handled
def export(project: Annotated[str, typer.Argument(help="project id or name")],
           mode: Annotated[str, typer.Option(help="classification, detection or segmentation")],
           format: Annotated[Optional[str], typer.Option(help="coco, yolo, csv, imagefolder, urls (or the API's name)")] = None,
           saved_filter: Annotated[Optional[str], typer.Option(help="a saved filter's id")] = None,
           tag: Tag = None, exclude_tag: ExcludeTag = None, tag_mode: TagMode = "any", search: Text = None,
           split: Text = None, path_prefix: Text = None, min_width: Bound = None, min_height: Bound = None,
           name: Text = None, include_images: Annotated[bool, typer.Option(help="put the images in the ZIP")] = True,
           wait: Annotated[bool, typer.Option(help="wait until it is built")] = False,
           download_to: Annotated[Optional[Path], typer.Option("--download", help="save the ZIP here (waits)")] = None,
           unzip_to: Annotated[Optional[Path], typer.Option("--unzip", help="unpack the ZIP here (with --download)")] = None,
           timeout: Timeout = 600.0, json_mode: Json = False) -> int:
    """Export the project's filtered images (and annotations); wait, download, unzip."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    filters = image_filter(sdk, tag, exclude_tag, tag_mode, search=search, split=split, path_prefix=path_prefix,
                           min_width=min_width, min_height=min_height)
    made = sdk.exports.create(project_id, mode, FORMATS.get(format or "", format), name=name,
                              filter=None if saved_filter else filters, saved_filter_id=saved_filter,
                              options={"include_images": include_images})
    document: dict[str, Any] = {"export": dump(made)}
    if wait or download_to is not None:
        with output.bars(json_mode) as bars:
            made = sdk.exports.wait(project_id, made.id, timeout=timeout,
                                    on_progress=lambda done, total: bars.update("export", done, total))
        document["export"] = dump(made)
        if made.status == "failed":
            output.emit(json_mode, document)
            output.stderr.print(f"error: export {made.name} failed: {made.error}", markup=False)
            return output.EXIT_INCOMPLETE
        if download_to is not None:
            document["download"] = fetch_export(sdk, project_id, made, download_to, unzip_to, json_mode)
    output.emit(json_mode, document, lambda: output.stdout.print(
        f"{made.name} ({made.id}): {made.status}, {made.image_count if made.image_count is not None else '?'} "
        f"image(s), {made.annotation_count if made.annotation_count is not None else '?'} annotation(s)"
        + (f"; saved {document['download']['bytes']:,} bytes to {document['download']['path']}"
           if "download" in document else ""), markup=False))
    return 0


@exports_app.command("ls")
@handled
def exports_ls(project: str, json_mode: Json = False) -> int:
    """The project's exports, newest first."""
    sdk = client()
    found = list(sdk.exports.iter(sdk.projects.resolve(project).id))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "format", "status", "images", "bytes"],
        [(e.id, e.name, e.output_format, e.status, e.image_count, e.artifact_size_bytes) for e in found]))
    return 0


@exports_app.command("download")
@handled
def exports_download(project: str, export_id: str, destination: Path,
                     unzip_to: Annotated[Optional[Path], typer.Option("--unzip")] = None,
                     json_mode: Json = False) -> int:
    """Download a completed export's ZIP (size checked)."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    fetched = fetch_export(sdk, project_id, sdk.exports.get(project_id, export_id), destination, unzip_to, json_mode)
    output.emit(json_mode, fetched, f"saved {fetched['bytes']:,} bytes to {fetched['path']}")
    return 0


# datasets -------------------------------------------------------------------------------------------

@datasets_app.command("ls")
@handled
def datasets_ls(state: Text = None, json_mode: Json = False) -> int:
    """Your datasets (`--state deleted`: the trash)."""
    found = list(client().datasets.iter(state=state))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "status", "state", "images", "annotations"],
        [(d.id, d.name, d.status, d.state, d.image_count, d.annotation_count) for d in found]))
    return 0


@datasets_app.command("upload")
@handled
def datasets_upload(source: Annotated[Path, typer.Argument(help="a folder of images or a ZIP")],
                    annotations: Annotated[Optional[list[Path]], typer.Option(help="COCO/YOLO/… file; repeat")] = None,
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
def datasets_delete(name: Annotated[str, typer.Argument(help="the dataset's exact name")],
                    backup: Annotated[bool, typer.Option("--backup/--no-backup", help="write a backup ZIP first")] = True,
                    purge: Annotated[bool, typer.Option(help="purge now instead of after the retention window")] = False,
                    force: Annotated[bool, typer.Option(help="admins: even if other projects use its images")] = False,
                    timeout: Timeout = 900.0, json_mode: Json = False) -> int:
    """Delete a dataset (restorable until purged), with a backup unless --no-backup."""
    sdk = client()
    dataset = sdk.datasets.find(name)
    if dataset is None:
        raise PixelpoolError(f"no active dataset named {name!r} (`pixelpool datasets ls` lists yours)")
    finished = wait_operation(sdk, sdk.datasets.delete(dataset, backup=backup, purge=purge, force=force),
                              json_mode, timeout)
    result = finished.result or {}
    output.emit(json_mode, dump(finished), lambda: output.stdout.print(
        f"dataset {dataset.name}: {finished.status}, state {result.get('state')}"
        + (f", backup {result.get('backup_path')}" if result.get("backup_path") else ""), markup=False))
    return operation_code(finished)


# operations -----------------------------------------------------------------------------------------

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


@app.command()
@handled
def whoami(json_mode: Json = False) -> int:
    """Who the stored token is, and where the config lives."""
    sdk = client()
    me = sdk.data("GET", "/api/v1/me")
    output.emit(json_mode, {"url": sdk.url, "user": me, "config": str(config_path())},
                f"{me.get('sub')} at {sdk.url}{' (admin)' if me.get('is_admin') else ''}")
    return 0


def main() -> None:
    app()
