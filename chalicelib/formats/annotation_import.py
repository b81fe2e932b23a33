"""Annotation files of a dataset import, read into one internal form: pure, no AWS.

Formats (`detect` names them from the files alone):

- ``coco``: COCO JSON (``images``, ``annotations``, ``categories``; detection boxes and polygon
  segmentations). A file named ``instances_train*.json`` / ``instances_val*.json`` /
  ``instances_test*.json`` puts its images in that split. Several COCO files may come together.
- ``dice``: the seed's COCO-like JSON: the same arrays without ``info`` and ``licenses`` (so named
  when neither key is there), read as COCO is. Without ``categories`` (optional in DICE) an
  annotation's ``category_id`` is the label's name.
- ``yolo``: Ultralytics — ``data.yaml`` (``names`` as a list or an index → name mapping; ``train``,
  ``val``, ``test`` as folders or image-list files, relative to the YAML's folder; ``path`` is
  ignored) and ``labels/<split>/<stem>.txt`` beside ``images/<split>/<stem>.<ext>``. An image is in
  the split whose folder its path runs through (an absolute folder by its last two segments).
- ``darknet``: ``obj.names`` (or ``classes.txt``), one ``<stem>.txt`` beside each image, and
  optionally ``train.txt`` / ``valid.txt`` (or ``val.txt``) / ``test.txt`` listing a split's images.

YOLO lines are ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 x3 y3 ...`` (a polygon), all
normalised to the image, so a YOLO annotation needs the uploaded image's size.

Matching a file's image reference to an uploaded path (both NFC, ``/``-separated, as
`member_name` writes them, case-sensitive): the exact relative path; else the one uploaded path
that ends with ``/<reference>``; else the one uploaded path with the reference's basename. YOLO
compares paths without their suffix (``labels/`` read as ``images/``), so ``x.txt`` finds ``x.jpg``.
Two or more candidates at the first step that has any is a problem (ambiguous), never a guess.

Geometry is in pixels of the uploaded image: its size as given to `parse`, else (COCO, DICE) the
file's ``width``/``height``; a file size that differs from the uploaded one is reported. A box or
polygon that runs past the image by at most `TOLERANCE_PX` is clipped to it (rounding in other
tools' exports); further out, or with a non-positive width or height, it is a problem. Without any
size only positivity and the top and left edges are checked.
A COCO polygon of several parts becomes one polygon annotation per part (our annotations hold one
ring). A segmentation present and non-empty makes a polygon; otherwise the ``bbox`` makes a box.
RLE masks and crowd regions (``iscrowd: 1``) are not converted (that needs a mask decoder and a
contour tracer, which the Lambda package does not have): each is a problem. Coordinates are rounded
to 3 decimals.

An image the file names and we match is in the result even with no annotation (annotated, nothing
on it). A *problem* is one unusable thing — an annotation, an image entry, a line, a file the
format does not use — reported with its file and reason and left out; the rest is imported (past
`MAX_PROBLEMS` problems are only counted). An *error* fails
the whole import: files that cannot be read (`BadRequestError`: bad JSON or YAML, an unknown
format) or a file none of whose images matches an uploaded path (`ValidationError`: the
``file_name: '1', '2', '3'`` defect), each naming the file.
"""
from __future__ import annotations

import math
import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.formats import Shape, member_name
from chalicelib.formats.yaml_subset import read_yaml

FORMATS = ("coco", "dice", "yolo", "darknet")
TOLERANCE_PX = 1.0
MAX_PROBLEMS = 10_000  # past this only counted: a broken file of a million annotations stays small
LABEL_MAX = 100  # a project label's name length (schemas/projects.py ShortName)
_DIGITS = 3
_SPLIT_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_COCO_SPLIT = re.compile(r"instances_(train|val|valid|test)", re.IGNORECASE)
_DARKNET_LISTS = {"train.txt": "train", "valid.txt": "val", "val.txt": "val", "test.txt": "test"}
_DARKNET_NAMES = ("obj.names", "classes.txt")
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


class _Result:
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


class _Paths:
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


def _number(value: Any) -> float | None:
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
    numbers = [_number(v) for v in values]
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
    numbers = [_number(v) for v in coordinates]
    if any(n is None for n in numbers):
        return None, "polygon has a value that is not a finite number"
    width, height = size if size else (None, None)
    points = tuple((_clip(x, width), _clip(y, height)) for x, y in zip(numbers[::2], numbers[1::2]))
    if any(x is None or y is None for x, y in points):
        return None, f"polygon runs past {_the_image(size)} by more than {TOLERANCE_PX:g} px"
    return points, ""


def _load_json(name: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"{name}: not valid JSON ({exc})", [{"file": name, "reason": str(exc)}]) from exc


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def _yaml_files(files: Mapping[str, bytes]) -> list[str]:
    return [name for name in files if name.lower().endswith((".yaml", ".yml"))]


def _detect(files: Mapping[str, bytes], documents: dict[str, Any]) -> str:
    if not files:
        raise BadRequestError("no annotation file given")
    if _yaml_files(files):
        return "yolo"
    if any(_base(name).lower() in _DARKNET_NAMES or name.lower().endswith(".names") for name in files):
        return "darknet"
    kinds = set()
    for name, data in files.items():
        document = documents.get(name)
        if document is None and name.lower().endswith(".json"):
            document = _load_json(name, data)
            if len(files) == 1:
                documents[name] = document  # parse reads it again only when there are several
        if not (isinstance(document, dict) and isinstance(document.get("images"), list)
                and isinstance(document.get("annotations"), list)):
            raise BadRequestError(
                f"{name}: not an annotation file we read (COCO or DICE JSON with images and annotations, "
                "YOLO with data.yaml, Darknet with obj.names)", [{"file": name, "reason": "unknown format"}])
        kinds.add("coco" if "info" in document or "licenses" in document else "dice")
    return "coco" if "coco" in kinds else "dice"


def detect(files: Mapping[str, bytes]) -> str:
    """The format of `files` (annotation files by relative path): one of `FORMATS`.

    Raises `BadRequestError` naming the first file that is not of a format we read."""
    return _detect(files, {})


def parse(files: Mapping[str, bytes], uploaded: Iterable[str],
          sizes: Mapping[str, Size] | None = None) -> ImportedAnnotations:
    """`files` (annotation files by relative path) read against the `uploaded` image paths and,
    where known, their (width, height). Problems are in the result; errors are raised (see the
    module docstring)."""
    documents: dict[str, Any] = {}
    fmt = _detect(files, documents)
    uploaded = list(uploaded)
    sizes = sizes or {}
    if fmt in ("coco", "dice"):
        return _parse_coco(fmt, files, documents, uploaded, sizes)
    if fmt == "yolo":
        return _parse_ultralytics(files, uploaded, sizes)
    return _parse_darknet(files, uploaded, sizes)


def _none_matched(file: str, what: str, references: list[str]) -> ValidationError:
    sample = ", ".join(repr(r) for r in references[:_SAMPLE])
    return ValidationError(
        f"{file}: none of {what} matches an uploaded image path (e.g. {sample})",
        [{"file": file, "reason": "no image matches an uploaded path", "unmatched": references[:_SAMPLE]}])


def _coco_categories(name: str, document: dict, result: _Result) -> dict[Any, str] | None:
    """category id → label name, or None when the file has no categories (DICE: the id is the name)."""
    raw = document.get("categories")
    if raw is None:
        return None
    names: dict[Any, str] = {}
    for entry in raw if isinstance(raw, list) else []:
        label = entry.get("name") if isinstance(entry, dict) else None
        label = label.strip() if isinstance(label, str) else ""
        if not 1 <= len(label) <= LABEL_MAX or "id" not in entry:
            result.problem(name, f"category needs an id and a name of 1 to {LABEL_MAX} characters: {entry!r:.200}")
            continue
        if not _is_id(entry["id"]):
            result.problem(name, f"category id {entry['id']!r:.50} is neither a number nor a string")
            continue
        names[entry["id"]] = label
        result.category(label)
    return names


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _coco_label(category_id: Any, categories: dict[Any, str] | None) -> tuple[str | None, str]:
    if categories is None:
        label = str(category_id).strip() if isinstance(category_id, (str, int)) else ""
        if 1 <= len(label) <= LABEL_MAX:
            return label, ""
        return None, f"category_id {category_id!r} is not a label name"
    label = categories.get(category_id) if _is_id(category_id) else None
    return (label, "") if label is not None else (None, f"unknown category id {category_id!r}")


def _coco_images(name: str, document: dict, paths: _Paths, sizes: Mapping[str, Size],
                 result: _Result) -> tuple[dict[Any, tuple[str, Size | None] | None], list[str]]:
    """image id → (uploaded path, size) or None when it is not imported; and the unmatched references."""
    images: dict[Any, tuple[str, Size | None] | None] = {}
    taken: dict[str, Any] = {}
    unmatched = []
    split = _COCO_SPLIT.match(_base(name))
    for entry in document["images"]:
        image_id = entry.get("id") if isinstance(entry, dict) else None
        reference = entry.get("file_name") if isinstance(entry, dict) else None
        if not _is_id(image_id) or not _is_id(reference) or image_id in images:
            reason = "duplicate image id" if image_id in images else "image entry needs an id and a file_name"
            result.problem(name, reason, reference, None)
            continue
        reference = str(reference)
        path, why = paths.find(reference)
        if path is not None and path in taken:
            path, why = None, f"same uploaded image as image id {taken[path]!r}"
        if path is None:
            images[image_id] = None
            unmatched.append(reference)
            result.problem(name, f"{why}: its annotations are not imported", reference)
            continue
        taken[path] = image_id
        size = sizes.get(path)
        declared = (entry.get("width"), entry.get("height"))
        if size is None and all(_number(v) and v > 0 for v in declared):
            size = (declared[0], declared[1])
        elif size is not None and None not in declared and tuple(declared) != tuple(size):
            result.problem(name, f"file says {declared[0]}x{declared[1]}, the uploaded image is {size[0]}x{size[1]}: "
                                 "annotations are checked against the uploaded image", path)
        images[image_id] = (path, size)
        result.image(path)
        if split:
            result.split(name, path, _SPLIT_WORDS[split.group(1).lower()])
    return images, unmatched


def _coco_shapes(entry: dict, label: str, size: Size | None) -> tuple[list[Shape], str]:
    if entry.get("iscrowd") in (1, True):
        return [], "crowd region (iscrowd=1) not imported"
    segmentation = entry.get("segmentation")
    if isinstance(segmentation, dict):
        return [], "RLE mask not imported"
    if segmentation:
        if isinstance(segmentation, list) and not any(isinstance(part, list) for part in segmentation):
            segmentation = [segmentation]  # some tools write one polygon unnested
        if not isinstance(segmentation, list) or not all(isinstance(part, list) for part in segmentation):
            return [], "segmentation is neither polygons nor an RLE mask"
        shapes = []
        for n, part in enumerate(segmentation):
            points, why = polygon(part, size)
            if points is None:
                return [], f"segmentation part {n}: {why}"
            shapes.append(Shape("polygon", label, points=points))
        return shapes, ""
    bbox, why = box(entry.get("bbox"), size)
    return ([Shape("bbox", label, bbox=bbox)], "") if bbox is not None else ([], why)


def _parse_coco(fmt: str, files: Mapping[str, bytes], documents: dict[str, Any], uploaded: list[str],
                sizes: Mapping[str, Size]) -> ImportedAnnotations:
    result = _Result(fmt)
    paths = _Paths(uploaded)
    for name in list(files):
        # One document in memory at a time.
        document = documents.pop(name, None) or _load_json(name, files[name])
        categories = _coco_categories(name, document, result)
        images, unmatched = _coco_images(name, document, paths, sizes, result)
        if images and len(unmatched) == len(images):
            raise _none_matched(name, f"its {len(unmatched)} image file_name values", unmatched)
        for entry in document["annotations"]:
            if not isinstance(entry, dict):
                result.problem(name, "annotation is not an object")
                continue
            annotation_id, image_id = entry.get("id"), entry.get("image_id")
            if not _is_id(image_id) or image_id not in images:
                result.problem(name, f"unknown image id {image_id!r}", None, annotation_id)
                continue
            image = images[image_id]
            if image is None:
                continue  # reported once, with its image entry
            path, size = image
            label, why = _coco_label(entry.get("category_id"), categories)
            shapes: list[Shape] = []
            if label is not None:
                shapes, why = _coco_shapes(entry, label, size)
            if why:
                result.problem(name, why, path, annotation_id)
            for shape in shapes:
                result.add(path, shape)
        del document
    return result.done()


def _yolo_lines(name: str, text: str, names: dict[int, str], size: Size | None, path: str,
                result: _Result) -> None:
    result.image(path)
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"line {number}"
        try:
            cls = int(tokens[0])
            values = [float(token) for token in tokens[1:]]
        except ValueError:
            result.problem(name, "not a YOLO line (class followed by numbers)", path, where)
            continue
        label = names.get(cls)
        if label is None:
            result.problem(name, f"unknown class index {cls}", path, where)
            continue
        if len(values) != 4 and (len(values) < 6 or len(values) % 2):
            result.problem(name, "expected `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...` "
                                 f"(got {len(values)} numbers)", path, where)
            continue
        if size is None:
            result.problem(name, "image size unknown: normalised coordinates cannot be placed", path, where)
            continue
        width, height = size
        if len(values) == 4:
            cx, cy, w, h = values
            bbox, why = box([(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height], size)
            shape = Shape("bbox", label, bbox=bbox) if bbox else None
        else:
            scaled = [v * (width if n % 2 == 0 else height) for n, v in enumerate(values)]
            points, why = polygon(scaled, size)
            shape = Shape("polygon", label, points=points) if points else None
        if shape is None:
            result.problem(name, why, path, where)
        else:
            result.add(path, shape)


def _label_file(name: str, data: bytes, result: _Result) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.problem(name, "not UTF-8 text")
        return None


def _read_labels(label_files: dict[str, str], names: dict[int, str], files: Mapping[str, bytes],
                 uploaded: list[str], sizes: Mapping[str, Size], result: _Result) -> dict[str, str]:
    """Reads each label file (name → the image reference, without suffix); returns reference → uploaded path."""
    paths = _Paths(uploaded, without_suffix=True)
    matched: dict[str, str] = {}
    unmatched = []
    for name, reference in label_files.items():
        path, why = paths.find(reference)
        if path is None:
            unmatched.append(name)
            result.problem(name, f"{why}: its annotations are not imported", reference)
            continue
        text = _label_file(name, files[name], result)
        if text is not None:
            matched[reference] = path
            _yolo_lines(name, text, names, sizes.get(path), path, result)
    if label_files and not matched and len(unmatched) == len(label_files):
        raise _none_matched(posixpath.dirname(unmatched[0]) or unmatched[0], f"the {len(unmatched)} label files",
                            unmatched)
    return matched


def _split_list(name: str, data: bytes, base: str, split: str, paths: _Paths, result: _Result) -> None:
    text = _label_file(name, data, result) or ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path, why = paths.find(_inside(posixpath.join(base, line)))
        if path is None:
            result.problem(name, f"{split} image {why}", line)
        else:
            result.split(name, path, split)


def _parse_darknet(files: Mapping[str, bytes], uploaded: list[str], sizes: Mapping[str, Size]) -> ImportedAnnotations:
    result = _Result("darknet")
    names_file = next(n for n in files if _base(n).lower() in _DARKNET_NAMES or n.lower().endswith(".names"))
    lines = (_label_file(names_file, files[names_file], result) or "").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = _class_names(names_file, dict(enumerate(line.strip() for line in lines)), result)
    label_files, lists = {}, {}
    for name in files:
        base = _base(name).lower()
        if name == names_file:
            continue
        if base in _DARKNET_LISTS:
            lists[name] = _DARKNET_LISTS[base]
        elif base.endswith(".txt") and base not in _DARKNET_NAMES:
            label_files[name] = name
        else:
            result.problem(name, "not used by the Darknet layout (obj.names, <image>.txt, train.txt, valid.txt)")
    _read_labels(label_files, names, files, uploaded, sizes, result)
    paths = _Paths(uploaded)
    for name, split in lists.items():
        # Darknet lists are relative to where darknet runs (often `data/obj_train_data/x.jpg`): the
        # path-ending and basename rules find them.
        _split_list(name, files[name], "", split, paths, result)
    return result.done()


def _class_names(file: str, raw: Any, result: _Result) -> dict[int, str]:
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict):
        raise BadRequestError(f"{file}: names is neither a list nor a mapping", [{"file": file, "reason": "names"}])
    names = {}
    for index, label in raw.items():
        label = str(label).strip() if label is not None else ""
        if not isinstance(index, int) or not 1 <= len(label) <= LABEL_MAX:
            result.problem(file, f"class {index!r}: needs an integer index and a name of 1 to {LABEL_MAX} characters")
            continue
        names[index] = label
        result.category(label)
    return names


def _inside(path: str) -> str:
    """`path` normalised, with the `..` that would leave the dataset's folder dropped ("" for the folder)."""
    path = posixpath.normpath(path)
    while path.startswith("../"):
        path = path[3:]
    return "" if path in (".", "..") else path


def _in_folder(reference: str, folder: str) -> bool:
    """Whether `folder` (or its last segments, at least two: `images/train` of an absolute path on
    its author's disk) is a run of folders of `reference`, anywhere: the upload may hold the dataset
    under a top folder."""
    segments = [s for s in folder.split("/") if s]
    for start in range(max(1, len(segments) - 1)):
        if f"/{'/'.join(segments[start:])}/" in f"/{reference}":
            return True
    return False


def _ultralytics_reference(name: str) -> str | None:
    """The image path (no suffix) a label file belongs to: its last `labels` folder read as `images`."""
    parts = member_name(name).split("/")
    if "labels" not in parts[:-1]:
        return None
    at = len(parts) - 2 - parts[-2::-1].index("labels")
    parts[at] = "images"
    return "/".join(parts).rsplit(".", 1)[0]


def _parse_ultralytics(files: Mapping[str, bytes], uploaded: list[str],
                       sizes: Mapping[str, Size]) -> ImportedAnnotations:
    result = _Result("yolo")
    yaml_name = next((n for n in _yaml_files(files) if _base(n).lower() == "data.yaml"), _yaml_files(files)[0])
    config = read_yaml(yaml_name, files[yaml_name])
    if "names" not in config:
        raise BadRequestError(f"{yaml_name}: no `names`", [{"file": yaml_name, "reason": "no names"}])
    names = _class_names(yaml_name, config["names"], result)
    # `path` is ignored: it names where the dataset was on its author's disk, and the upload is the
    # dataset. Splits are read beside the YAML; `../train/images` (Roboflow) is `train/images`.
    root = posixpath.dirname(member_name(yaml_name))
    split_roots: dict[str, list[str]] = defaultdict(list)
    for key in ("train", "val", "test"):
        values = config.get(key)
        for value in values if isinstance(values, list) else [values] if isinstance(values, str) else []:
            split_roots[key].append(_inside(posixpath.join(root, value)))

    label_files, lists = {}, {}
    for name in files:
        if name == yaml_name:
            continue
        reference = _ultralytics_reference(name) if name.lower().endswith(".txt") else None
        listed = next((k for k, roots in split_roots.items() if member_name(name) in roots), None)
        if listed:
            lists[name] = listed
        elif reference is not None:
            label_files[name] = reference
        else:
            result.problem(name, "not used by the YOLO layout (data.yaml, labels/<split>/<stem>.txt)")
    matched = _read_labels(label_files, names, files, uploaded, sizes, result)
    for reference, path in matched.items():
        split = next((k for k, roots in split_roots.items() for r in roots if _in_folder(reference, r)), None)
        if split:
            result.split(yaml_name, path, split)
    paths = _Paths(uploaded)
    for name, split in lists.items():
        _split_list(name, files[name], root, split, paths, result)
    return result.done()
