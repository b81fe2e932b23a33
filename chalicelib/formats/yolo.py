"""Ultralytics YOLO detection layout, flat per split: `images/<split>/<name>`,
`labels/<split>/<stem>.txt`, `data.yaml`.

Ultralytics finds an image's label file by swapping `images/` for `labels/` and the suffix for
`.txt`; Datumaro's YOLO importers want the images of a split in one folder. So every image of a
split sits in one folder under its file name, and two images whose stems meet (`x.jpg`, `X.png`)
are told apart deterministically (`FlatNames`). `data.yaml` has no `path`: Ultralytics then
resolves `train`/`val` against the YAML's own folder (`check_det_dataset`), wherever the ZIP is
unpacked; it needs both keys, so a missing split points at one that exists. It is written by hand
(no PyYAML in the Lambda package); names YAML would misread are double-quoted.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Iterable

from chalicelib.formats import ExportImage, member_name

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


def file_name(file_path: str) -> str:
    """The image's file name, safe as one path segment."""
    return member_name(file_path).rsplit("/", 1)[-1]


def image_path(split: str, file_path: str) -> str:
    return f"images/{member_name(split)}/{file_name(file_path)}"


def label_path(split: str, file_path: str) -> str:
    return f"labels/{member_name(split)}/{PurePosixPath(file_name(file_path)).stem}.txt"


class FlatNames:
    """Image and label paths of a flat layout, unique per split by stem: the first image with a
    stem keeps it, a later one becomes `<stem>__<image id start>` (then `-2`, `-3`...). Feed images
    in the export's order and the names are the same on every build."""

    def __init__(self) -> None:
        self._used: set[tuple[str, str]] = set()

    def place(self, split: str, file_path: str, image_id: str) -> tuple[str, str]:
        split = member_name(split)
        name = PurePosixPath(file_name(file_path))
        stem, suffix = name.stem, name.suffix
        candidate, n = stem, 1
        while (split, candidate.casefold()) in self._used:
            candidate = f"{stem}__{image_id[:8]}" + (f"-{n}" if n > 1 else "")
            n += 1
        self._used.add((split, candidate.casefold()))
        return f"images/{split}/{candidate}{suffix}", f"labels/{split}/{candidate}.txt"


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


def data_yaml(names: Iterable[str], splits: Iterable[str]) -> str:
    """`train`, `val` (and `test`) relative to the YAML's folder, and `names` as index → name.

    Ultralytics requires `train` and `val`: a split with no image points at the first one that has
    images (val at train when there is no val split), and says so in a comment."""
    present = [split for split in SPLITS if split in set(splits)]
    lines = []
    for split in SPLITS:
        if split in present:
            lines.append(f"{split}: images/{split}")
        elif split != "test":
            stand_in = present[0] if present else "train"
            lines.append(f"{split}: images/{stand_in}  # no {split} images: the {stand_in} images stand in")
    indexes = class_indexes(names)
    if indexes:
        lines.append("names:")
        lines += [f"  {index}: {yaml_scalar(name)}" for name, index in indexes.items()]
    else:
        lines.append("names: {}")
    return "\n".join(lines) + "\n"
