"""`export` and `exports …`: make an export, wait for it, download and unpack it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pixelpool import output
from pixelpool.client import Client
from pixelpool.commands.base import Json, Timeout, app, client, dump, exports_app, handled
from pixelpool.commands.projects import (Bound, Confidence, ExcludeTag, HasCaption, Model, PredictedClass, Tag, TagMode,
                                       Text, image_filter)
from pixelpool.downloads import download, unzip


FORMATS = {"coco": "coco_json", "yolo": "yolo", "csv": "manifest_csv", "imagefolder": "image_folder",
           "urls": "url_manifest"}


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
           mode: Annotated[str, typer.Option(help="classification, detection, segmentation or captions")],
           format: Annotated[Optional[str],
                             typer.Option(help="coco, yolo, csv, imagefolder, urls (or the API's name)")] = None,
           saved_filter: Annotated[Optional[str], typer.Option(help="a saved filter's id")] = None,
           tag: Tag = None, exclude_tag: ExcludeTag = None, tag_mode: TagMode = "any", search: Text = None,
           split: Text = None, path_prefix: Text = None, min_width: Bound = None, min_height: Bound = None,
           caption: Text = None, has_caption: HasCaption = None, model: Model = None, model_version: Text = None,
           predicted_class: PredictedClass = None, min_confidence: Confidence = None,
           confidence_below: Confidence = None, name: Text = None, include_images: Annotated[bool, typer.Option(help="put the images in the ZIP")] = True,
           wait: Annotated[bool, typer.Option(help="wait until it is built")] = False,
           download_to: Annotated[Optional[Path], typer.Option("--download", help="save the ZIP here (waits)")] = None,
           unzip_to: Annotated[Optional[Path],
                               typer.Option("--unzip", help="unpack the ZIP here (with --download)")] = None,
           timeout: Timeout = 600.0, json_mode: Json = False) -> int:
    """Export the project's filtered images (and annotations); wait, download, unzip."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    filters = image_filter(sdk, tag, exclude_tag, tag_mode, search=search, split=split, path_prefix=path_prefix,
                           min_width=min_width, min_height=min_height, caption=caption, has_caption=has_caption,
                           prediction_model=model, prediction_model_version=model_version,
                           predicted_class=predicted_class, min_confidence=min_confidence,
                           confidence_below=confidence_below)
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
