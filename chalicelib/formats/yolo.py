"""Ultralytics YOLO detection layout: `images/<split>/...`, `labels/<split>/....txt`, `data.yaml`.

Ultralytics finds an image's label file by swapping `images/` for `labels/` and the suffix for
`.txt`, so both paths keep the image's sub-folders. `data.yaml` is written by hand (no PyYAML in
the Lambda package); names YAML would misread are double-quoted.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Iterable

from chalicelib.formats import ExportImage

SPLITS = ("train", "val", "test")
_SPECIAL = set(":#'\"{}[],&*?|<>=!%@\\`")
# Plain scalars a YAML 1.1 or 1.2 loader resolves to something other than a string.
_IMPLICIT = re.compile(
    r"""(?ix)
    ~ | null | y | n | yes | no | true | false | on | off
    | [-+]? (\d[\d_]* (\.[\d_]*)? | \.\d[\d_]*) (e[-+]?\d+)?
    | [-+]? 0x[0-9a-f_]+ | [-+]? 0o?[0-7_]+ | [-+]? 0b[01_]+
    | [-+]? \.inf | \.nan
    """
)


def image_path(split: str, file_path: str) -> str:
    return f"images/{split}/{file_path}"


def label_path(split: str, file_path: str) -> str:
    return f"labels/{split}/{PurePosixPath(file_path).with_suffix('.txt')}"


def class_indexes(names: Iterable[str]) -> dict[str, int]:
    return {name: index for index, name in enumerate(sorted(set(names)))}


def _clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def label_text(image: ExportImage, class_index: dict[str, int], bbox_from_polygons: bool = False) -> str:
    """One `cls cx cy w h` line per box, normalized to the image and clipped to it."""
    if image.width <= 0 or image.height <= 0:
        raise ValueError(f"image {image.image_id} has no size ({image.width}x{image.height})")
    lines = []
    for shape in image.shapes:
        cls = class_index.get(shape.label)
        if cls is None:
            continue
        if shape.type == "bbox" and shape.bbox is not None:
            x, y, w, h = shape.bbox
        elif shape.type == "polygon" and bbox_from_polygons and shape.points:
            xs = [px for px, _ in shape.points]
            ys = [py for _, py in shape.points]
            x, y, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
        else:
            continue
        x1, x2 = _clamp(x / image.width), _clamp((x + w) / image.width)
        y1, y2 = _clamp(y / image.height), _clamp((y + h) / image.height)
        lines.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return "".join(line + "\n" for line in lines)


def _needs_quotes(name: str) -> bool:
    return (
        name == ""
        or name != name.strip()
        or any(c in _SPECIAL or not c.isprintable() for c in name)
        or name.startswith("-")
        or _IMPLICIT.fullmatch(name) is not None
    )


def _escape(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable() or char == " ":
        return char
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def yaml_scalar(name: str) -> str:
    if not _needs_quotes(name):
        return name
    return '"' + "".join(_escape(c) for c in name) + '"'


def data_yaml(names: list[str], splits: Iterable[str]) -> str:
    present = set(splits)
    lines = ["path: ."]
    lines += [f"{split}: images/{split}" for split in SPLITS if split in present]
    indexes = class_indexes(names)
    if indexes:
        lines.append("names:")
        lines += [f"  {index}: {yaml_scalar(name)}" for name, index in indexes.items()]
    else:
        lines.append("names: {}")
    return "\n".join(lines) + "\n"
