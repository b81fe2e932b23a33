"""`upload`, `images …` and `tags …`: the registry and its global tags."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pixelpool import output
from pixelpool.commands.base import Json, Timeout, app, client, dump, handled, images_app, tags_app
from pixelpool.uploads import Uploader


def show_upload(result: dict) -> None:
    output.stdout.print(
        f"{result['total']} image(s) under '{result['folder'] or '/'}': {result['uploaded']} uploaded, "
        f"{result['skipped']} already there, {result['ready']} ready, {len(result['failed'])} failed "
        f"({result['bytes_uploaded'] / 1e6:.1f} MB in {result['seconds']:.1f} s)", markup=False)
    for failure in result["failed"]:
        output.stderr.print(f"failed: {failure['path']}: {failure['reason']}", markup=False)


@app.command()
@handled
def upload(sources: Annotated[list[Path], typer.Argument(exists=True, help="folders (kept as sub-folders) and image files")],
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
def images_show(image: Annotated[str, typer.Argument(help="image id or share path")], json_mode: Json = False) -> int:
    """One image: file facts, SHA-256, tags, metadata."""
    sdk = client()
    image = sdk.images.get(sdk.images.resolve(image))
    output.emit(json_mode, dump(image), lambda: output.table(
        ["field", "value"], [(k, v) for k, v in dump(image).items() if k not in ("thumbnail_url",)]))
    return 0


@images_app.command("tag")
@handled
def images_tag(image: Annotated[str, typer.Argument(help="image id or share path")],
               tags: Annotated[list[str], typer.Argument(help="tag names or ids")], json_mode: Json = False) -> int:
    """Tag an image (idempotent)."""
    sdk = client()
    image = sdk.images.tag(sdk.images.resolve(image), sdk.tags.resolve(tags))
    output.emit(json_mode, dump(image), f"{image.file_path}: {', '.join(t.name for t in image.tags)}")
    return 0


@images_app.command("untag")
@handled
def images_untag(image: Annotated[str, typer.Argument(help="image id or share path")],
                 tags: Annotated[list[str], typer.Argument(help="tag names or ids")], json_mode: Json = False) -> int:
    """Remove tags from an image (idempotent)."""
    sdk = client()
    image_id, image = sdk.images.resolve(image), None
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
