"""Classification and URL manifests: a CSV of image classes, ImageFolder ZIP paths, JSON Lines of URLs.

ImageFolder flattens each image to `<split>/<class>/<basename>`, so images from different folders
can collide and class names can contain path separators; both are resolved here, deterministically,
so a ZIP never overwrites an entry or writes outside its root.
"""
from __future__ import annotations

import csv
import io
from pathlib import PurePosixPath
from typing import Iterable

import orjson

from chalicelib.formats import ExportImage

CSV_HEADER = "image_path,class_name,split"


def csv_rows(image: ExportImage) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for name in sorted(set(image.classes)):
        writer.writerow([image.file_path, name, image.split])
    return buffer.getvalue()


def csv_document(images: Iterable[ExportImage]) -> str:
    return CSV_HEADER + "\n" + "".join(csv_rows(image) for image in images)


def safe_segment(name: str) -> str:
    """`name` as one path segment: separators become `_`, and `.`, `..` or an empty name become `_`."""
    name = name.replace("/", "_").replace("\\", "_")
    return "_" if name in ("", ".", "..") else name


def _unique(path: str, stem: str, suffix: str, image_id: str, used: set[str]) -> str:
    if path.casefold() not in used:
        return path
    folder = path.rsplit("/", 1)[0]
    candidate = f"{folder}/{stem}-{image_id[:8]}{suffix}"
    attempt = 2
    while candidate.casefold() in used:
        candidate = f"{folder}/{stem}-{image_id[:8]}-{attempt}{suffix}"
        attempt += 1
    return candidate


def image_folder_paths(images: Iterable[ExportImage]) -> list[tuple[ExportImage, str]]:
    """ZIP path of every (image, class) pair; an image that would take an earlier image's path is renamed.

    Paths are compared case-insensitively, as they land on macOS and Windows file systems.
    """
    used: set[str] = set()
    paths = []
    for image in images:
        base = PurePosixPath(safe_segment(PurePosixPath(image.file_path).name))
        own: set[str] = set()
        for name in sorted(set(image.classes)):
            path = f"{safe_segment(image.split)}/{safe_segment(name)}/{base.name}"
            if path.casefold() in own:
                continue
            own.add(path.casefold())
            path = _unique(path, base.stem, base.suffix, image.image_id, used)
            used.add(path.casefold())
            paths.append((image, path))
    return paths


def url_line(image: ExportImage, url: str) -> bytes:
    labels = sorted({shape.label for shape in image.shapes} | set(image.classes))
    record = {
        "image_id": image.image_id,
        "path": image.file_path,
        "url": url,
        "width": image.width,
        "height": image.height,
        "split": image.split,
        "labels": labels,
    }
    return orjson.dumps(record) + b"\n"
