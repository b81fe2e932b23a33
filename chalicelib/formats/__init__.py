"""Export and import formats: pure readers and writers, no AWS, no HTTP.

Every export writer takes `ExportImage` records — one image of a frozen export manifest with what
its format needs — and produces bytes or lines; the export pipeline (services/exports.py) decides
where they go (shard parts in S3, then one streamed ZIP).
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shape:
    """One annotation in the image's displayed frame (pixels, EXIF orientation applied)."""

    type: str  # "bbox" | "polygon" | "classification"
    label: str
    bbox: tuple[float, float, float, float] | None = None  # x, y, width, height (bbox only)
    points: tuple[tuple[float, float], ...] | None = None  # polygon only, >= 3 points


@dataclass(frozen=True)
class ExportImage:
    number: int  # 1-based position in the export's frozen manifest: the COCO image id
    image_id: str
    file_path: str  # the image's real path relative to the share (COCO `file_name`)
    width: int
    height: int
    split: str  # "train" | "val" | "test" | "none"
    classes: tuple[str, ...] = ()  # classification exports: the image's class names
    shapes: tuple[Shape, ...] = field(default_factory=tuple)
    caption: str | None = None  # captions exports: the image's caption text


# Characters a member name never carries: control (Cc) and format (Cf: bidi overrides such as
# U+202E, zero-width marks) characters, which hide or reorder what a person reads.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def member_name(path: str) -> str:
    """`path` as a ZIP member name no extractor can place outside its folder, nor show differently
    than it is: NFC, `/`-separated (a backslash is a separator), no empty, `.` or `..` segment (`..`
    becomes `_`), relative, and every colon, control, bidi or unassigned character replaced by `_`."""
    text = unicodedata.normalize("NFC", path).replace("\\", "/")
    # A colon makes `C:` a drive and `x:y` an NTFS stream on Windows.
    text = "".join("_" if char == ":" or unicodedata.category(char) in _HIDDEN else char for char in text)
    segments = []
    for segment in text.split("/"):
        segment = segment.strip()
        if segment in ("", "."):
            continue
        segments.append("_" if segment == ".." else segment)
    return "/".join(segments) or "_"
