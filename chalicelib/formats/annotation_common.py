"""What every annotation importer shares (formats/annotation_import.py reads COCO and DICE,
formats/yolo_import.py YOLO and Darknet): the result and its problems, matching a file's image
references to the uploaded paths, and the geometry checks."""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.formats import Shape, member_name

FORMATS = ("coco", "dice", "yolo", "darknet")
TOLERANCE_PX = 1.0
MAX_PROBLEMS = 10_000  # past this only counted: a broken file of a million annotations stays small
LABEL_MAX = 100  # a project label's name length (schemas/projects.py ShortName)
_DIGITS = 3
SPLIT_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
COCO_SPLIT = re.compile(r"instances_(train|val|valid|test)", re.IGNORECASE)
DARKNET_LISTS = {"train.txt": "train", "valid.txt": "val", "val.txt": "val", "test.txt": "test"}
DARKNET_NAMES = ("obj.names", "classes.txt")
_SAMPLE = 5
_PLAIN = re.compile(r"(?:[A-Za-z0-9_.+=@,()-]+/)*[A-Za-z0-9_.+=@,()-]+")

Size = tuple[int, int]


@dataclass(frozen=True)
class Problem:
    """One unusable thing, left out of the import: `image` and `annotation` say where, when known."""

    file: str
    reason: str
    image: str | None = None  # the uploaded path when the image was matched, else the file's reference
    annotation: str | None = None  # the annotation's id in the file, or "line N"

    def as_dict(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value is not None}


@dataclass
class ImportedAnnotations:
    format: str
    categories: dict[str, str] = field(default_factory=dict)  # label → "bbox" | "polygon" | "any" (both or none)
    images: dict[str, list[Shape]] = field(default_factory=dict)  # uploaded path → its annotations
    splits: dict[str, str] = field(default_factory=dict)  # uploaded path → "train" | "val" | "test"
    problems: list[Problem] = field(default_factory=list)  # the first MAX_PROBLEMS
    problem_count: int = 0  # all of them


class Result:
    """An `ImportedAnnotations` being built."""

    def __init__(self, fmt: str) -> None:
        self.out = ImportedAnnotations(fmt)
        self._kinds: dict[str, set[str]] = {}

    def problem(self, file: str, reason: str, image: Any = None, annotation: Any = None) -> None:
        self.out.problem_count += 1
        if len(self.out.problems) < MAX_PROBLEMS:
            self.out.problems.append(Problem(file, reason, _text(image), _text(annotation)))

    def category(self, name: str) -> None:
        self._kinds.setdefault(name, set())

    def image(self, path: str) -> None:
        self.out.images.setdefault(path, [])

    def add(self, path: str, shape: Shape) -> None:
        self._kinds.setdefault(shape.label, set()).add(shape.type)
        self.out.images.setdefault(path, []).append(shape)

    def split(self, file: str, path: str, split: str) -> None:
        known = self.out.splits.setdefault(path, split)
        if known != split:
            self.problem(file, f"image is in both {known} and {split}: kept in {known}", path)

    def done(self) -> ImportedAnnotations:
        self.out.categories = {name: kinds.pop() if len(kinds) == 1 else "any" for name, kinds in self._kinds.items()}
        return self.out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class Paths:
    """The uploaded paths, looked up by a file's reference (see the module's matching rules)."""

    def __init__(self, uploaded: Iterable[str], without_suffix: bool = False) -> None:
        self._without_suffix = without_suffix
        self._exact: dict[str, list[str]] = defaultdict(list)
        self._by_base: dict[str, list[str]] = defaultdict(list)
        # Per basename, every path ending (`b/c.jpg`, `a/b/c.jpg`) → its paths, built on the first
        # lookup of that basename: a dataset of `*/image.jpg` is not scanned once per reference.
        self._endings: dict[str, dict[str, list[str]]] = {}
        for path in uploaded:
            key = self.key(path)
            self._exact[key].append(path)
            self._by_base[key.rsplit("/", 1)[-1]].append(path)

    def key(self, reference: str) -> str:
        # Most paths are plain ASCII that member_name would not change, and it reads every character.
        plain = _PLAIN.fullmatch(reference) and "/./" not in f"/{reference}/" and "/../" not in f"/{reference}/"
        key = reference if plain else member_name(reference)
        if self._without_suffix:
            head, _, base = key.rpartition("/")
            stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
            key = f"{head}/{stem}" if head else stem
        return key

    def find(self, reference: str) -> tuple[str | None, str]:
        """(the uploaded path, "") or (None, why not)."""
        key = self.key(reference)
        base = key.rsplit("/", 1)[-1]
        candidates = self._by_base.get(base, [])
        for rule, found in (
            ("path", self._exact.get(key, [])),
            ("path ending", self._ending(base).get(key, []) if candidates else []),
            ("basename", candidates if "/" in key else []),
        ):
            if len(found) == 1:
                return found[0], ""
            if found:
                sample = ", ".join(repr(p) for p in sorted(found)[:_SAMPLE])
                return None, f"ambiguous: {len(found)} uploaded images match by {rule} ({sample})"
        return None, "not among the uploaded images"

    def _ending(self, base: str) -> dict[str, list[str]]:
        endings = self._endings.get(base)
        if endings is None:
            endings = self._endings[base] = defaultdict(list)
            for path in self._by_base[base]:
                segments = self.key(path).split("/")
                for start in range(1, len(segments)):
                    endings["/".join(segments[start:])].append(path)
        return endings


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _clip(value: float, limit: float | None) -> float | None:
    """`value` inside [0, limit], or None when it is further out than the tolerance."""
    if value < -TOLERANCE_PX or (limit is not None and value > limit + TOLERANCE_PX):
        return None
    value = max(value, 0.0)
    return round(min(value, limit) if limit is not None else value, _DIGITS)


def _the_image(size: Size | None) -> str:
    return f"the {size[0]}x{size[1]} image" if size else "the image's top or left edge"


def box(values: Any, size: Size | None) -> tuple[tuple[float, float, float, float] | None, str]:
    """A `[x, y, w, h]` pixel box checked against the image (`size` = width, height): (box, "") or (None, why)."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None, "bbox is not [x, y, width, height]"
    numbers = [number(v) for v in values]
    if any(n is None for n in numbers):
        return None, "bbox has a value that is not a finite number"
    x, y, w, h = numbers
    if w <= 0 or h <= 0:
        return None, f"bbox width and height must be positive (got {w:g} x {h:g})"
    width, height = size if size else (None, None)
    corners = (_clip(x, width), _clip(y, height), _clip(x + w, width), _clip(y + h, height))
    if any(c is None for c in corners):
        return None, f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] runs past {_the_image(size)} by more than {TOLERANCE_PX:g} px"
    x1, y1, x2, y2 = corners
    if x2 <= x1 or y2 <= y1:
        return None, "bbox has no area inside the image"
    return (x1, y1, round(x2 - x1, _DIGITS), round(y2 - y1, _DIGITS)), ""


def polygon(coordinates: Any, size: Size | None) -> tuple[tuple[tuple[float, float], ...] | None, str]:
    """A flat `[x1, y1, x2, y2, ...]` pixel polygon checked against the image: (points, "") or (None, why)."""
    if not isinstance(coordinates, (list, tuple)):
        return None, "polygon is not a list of coordinates"
    if len(coordinates) % 2:
        return None, f"polygon has an odd number of coordinates ({len(coordinates)})"
    if len(coordinates) < 6:
        return None, f"polygon has fewer than 3 points ({len(coordinates) // 2})"
    numbers = [number(v) for v in coordinates]
    if any(n is None for n in numbers):
        return None, "polygon has a value that is not a finite number"
    width, height = size if size else (None, None)
    points = tuple((_clip(x, width), _clip(y, height)) for x, y in zip(numbers[::2], numbers[1::2]))
    if any(x is None or y is None for x, y in points):
        return None, f"polygon runs past {_the_image(size)} by more than {TOLERANCE_PX:g} px"
    return points, ""


def load_json(name: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"{name}: not valid JSON ({exc})", [{"file": name, "reason": str(exc)}]) from exc


def base_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def none_matched(file: str, what: str, references: list[str]) -> ValidationError:
    sample = ", ".join(repr(r) for r in references[:_SAMPLE])
    return ValidationError(
        f"{file}: none of {what} matches an uploaded image path (e.g. {sample})",
        [{"file": file, "reason": "no image matches an uploaded path", "unmatched": references[:_SAMPLE]}])


def yaml_files(files: Mapping[str, bytes]) -> list[str]:
    return [name for name in files if name.lower().endswith((".yaml", ".yml"))]
