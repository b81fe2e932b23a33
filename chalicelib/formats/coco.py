"""COCO JSON for detection and segmentation exports.

A COCO document keeps images and annotations in two separate arrays, so an export of any size is
written by `CocoWriter` one entry at a time: all images first, then all annotations, never holding
either array in memory. Coordinates and areas are rounded to 2 decimals so the same manifest always
gives the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from typing import Any, BinaryIO, Iterable, Sequence

import orjson

from chalicelib.formats import ExportImage, Shape, member_name

MODES = ("detection", "segmentation")


def categories(names: Iterable[str]) -> list[dict]:
    return [{"id": n, "name": name, "supercategory": ""} for n, name in enumerate(sorted(set(names)), start=1)]


def image_entry(image: ExportImage) -> dict:
    """`file_name` is the image's path relative to the share, as a safe member name (the same path
    the image has under `images/` when the export includes images)."""
    return {"id": image.number, "file_name": member_name(image.file_path), "width": image.width, "height": image.height}


@dataclass(frozen=True)
class CocoOptions:
    bbox_from_polygons: bool = False  # detection: polygons are also exported, as their bounding boxes
    include_bboxes: bool = True  # segmentation: bbox annotations are also exported, as plain boxes
    bboxes_as_polygons: bool = False  # segmentation: bbox annotations become 4-corner polygons


def _round(value: float) -> float:
    return round(float(value), 2)


def _extent(points: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _shoelace(points: Sequence[tuple[float, float]]) -> float:
    twice = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]))
    return abs(twice) / 2


def _entry(image: ExportImage, category_id: int, box: tuple[float, float, float, float], area: float,
           segmentation: list[list[float]]) -> dict:
    return {
        "image_id": image.number,
        "category_id": category_id,
        "bbox": [_round(v) for v in box],
        "area": _round(area),
        "iscrowd": 0,
        "segmentation": segmentation,
    }


def _shape_entry(image: ExportImage, shape: Shape, category_id: int, mode: str, options: CocoOptions) -> dict | None:
    if shape.type == "bbox" and shape.bbox is not None:
        x, y, w, h = shape.bbox
        if mode == "detection" or (not options.bboxes_as_polygons and options.include_bboxes):
            return _entry(image, category_id, shape.bbox, w * h, [])
        if options.bboxes_as_polygons:
            corners = [x, y, x + w, y, x + w, y + h, x, y + h]
            return _entry(image, category_id, shape.bbox, w * h, [[_round(v) for v in corners]])
        return None
    if shape.type == "polygon" and shape.points is not None and len(shape.points) >= 3:
        points = list(shape.points)
        box = _extent(points)
        if mode == "segmentation":
            return _entry(image, category_id, box, _shoelace(points), [[_round(v) for point in points for v in point]])
        if options.bbox_from_polygons:
            return _entry(image, category_id, box, box[2] * box[3], [])
    return None


def annotation_entries(image: ExportImage, category_ids: dict[str, int], mode: str, options: CocoOptions) -> list[dict]:
    """The image's annotations for `mode` ("detection" | "segmentation"), without ids (the writer numbers them)."""
    if mode not in MODES:
        raise ValueError(f"unknown COCO mode {mode!r}")
    entries = []
    for shape in image.shapes:
        category_id = category_ids.get(shape.label)
        if category_id is None:
            continue
        entry = _shape_entry(image, shape, category_id, mode, options)
        if entry is not None:
            entries.append(entry)
    return entries


class CocoWriter:
    """Streams one COCO document to `out`: every `add_image` call must come before any `add_annotation`."""

    def __init__(self, out: BinaryIO, info: dict, categories: list[dict], flush_bytes: int = 1 << 20) -> None:
        # Entries are small: `out` (a compressing ZIP member) gets them in writes of ~flush_bytes.
        self._out = out
        self.flush_bytes = flush_bytes
        self._buffer = bytearray()
        self._categories = categories
        self._phase = "images"
        self._first = True
        self._next_id = 1
        self._write(b'{"info":' + orjson.dumps(info) + b',"licenses":[],"images":[')

    def _write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self.flush_bytes:
            self._flush()

    def _flush(self) -> None:
        self._out.write(bytes(self._buffer))
        self._buffer.clear()

    def _write_item(self, item: Any) -> None:
        if not self._first:
            self._buffer += b","
        self._write(orjson.dumps(item))
        self._first = False

    def add_image(self, entry: dict) -> None:
        if self._phase != "images":
            raise ValueError(f"add_image after {'close' if self._phase == 'closed' else 'add_annotation'}")
        self._write_item(entry)

    def _start_annotations(self) -> None:
        self._write(b'],"annotations":[')
        self._phase = "annotations"
        self._first = True

    def add_annotation(self, entry: dict) -> int:
        if self._phase == "closed":
            raise ValueError("add_annotation after close")
        if self._phase == "images":
            self._start_annotations()
        annotation_id = self._next_id
        self._next_id += 1
        self._write_item({"id": annotation_id, **entry})
        return annotation_id

    def close(self) -> None:
        if self._phase == "closed":
            return
        if self._phase == "images":
            self._start_annotations()
        self._write(b'],"categories":' + orjson.dumps(self._categories) + b"}")
        self._flush()
        self._phase = "closed"


def dumps(info: dict, images: Iterable[dict], annotations: Iterable[dict], categories: list[dict]) -> bytes:
    out = BytesIO()
    writer = CocoWriter(out, info, categories)
    for image in images:
        writer.add_image(image)
    for annotation in annotations:
        writer.add_annotation(annotation)
    writer.close()
    return out.getvalue()
