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

from typing import Any, Iterable, Mapping

from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.formats import Shape
from chalicelib.formats.annotation_common import (
    COCO_SPLIT, DARKNET_NAMES, FORMATS, LABEL_MAX, MAX_PROBLEMS, SPLIT_WORDS, TOLERANCE_PX, ImportedAnnotations, Paths,
    Problem, Result, Size, base_name, box, load_json, none_matched, number, polygon, yaml_files,
)
from chalicelib.formats.yolo_import import parse_darknet, parse_ultralytics

__all__ = ["FORMATS", "MAX_PROBLEMS", "TOLERANCE_PX", "ImportedAnnotations", "Problem", "Paths", "box", "detect",
           "parse", "polygon"]



def _detect(files: Mapping[str, bytes], documents: dict[str, Any]) -> str:
    if not files:
        raise BadRequestError("no annotation file given")
    if yaml_files(files):
        return "yolo"
    if any(base_name(name).lower() in DARKNET_NAMES or name.lower().endswith(".names") for name in files):
        return "darknet"
    kinds = set()
    for name, data in files.items():
        document = documents.get(name)
        if document is None and name.lower().endswith(".json"):
            document = load_json(name, data)
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
        return parse_ultralytics(files, uploaded, sizes)
    return parse_darknet(files, uploaded, sizes)



def _coco_categories(name: str, document: dict, result: Result) -> dict[Any, str] | None:
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
        if entry["id"] in names:
            result.problem(name, f"category id {entry['id']!r:.50} is given twice ({names[entry['id']]!r} and "
                                 f"{label!r}): its annotations are labelled {names[entry['id']]!r}, the first")
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


def _coco_images(name: str, document: dict, paths: Paths, sizes: Mapping[str, Size],
                 result: Result) -> tuple[dict[Any, tuple[str, Size | None] | None], list[str], bool]:
    """image id → (uploaded path, size) or None when it is not imported; the unmatched references;
    and whether each of them matched several uploaded paths (ambiguous, not absent)."""
    images: dict[Any, tuple[str, Size | None] | None] = {}
    taken: dict[str, Any] = {}
    unmatched: list[str] = []
    ambiguous: list[bool] = []
    split = COCO_SPLIT.match(base_name(name))
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
            ambiguous.append(why.startswith("ambiguous"))
            result.problem(name, f"{why}: its annotations are not imported", reference)
            continue
        taken[path] = image_id
        size = sizes.get(path)
        declared = (entry.get("width"), entry.get("height"))
        if size is None and all(number(v) and v > 0 for v in declared):
            size = (declared[0], declared[1])
        elif size is not None and None not in declared and tuple(declared) != tuple(size):
            result.problem(name, f"file says {declared[0]}x{declared[1]}, the uploaded image is {size[0]}x{size[1]}: "
                                 "annotations are checked against the uploaded image", path)
        images[image_id] = (path, size)
        result.image(path)
        if split:
            result.split(name, path, SPLIT_WORDS[split.group(1).lower()])
    return images, unmatched, all(ambiguous) and bool(ambiguous)


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
    result = Result(fmt)
    paths = Paths(uploaded)
    for name in list(files):
        # One document in memory at a time.
        document = documents.pop(name, None) or load_json(name, files[name])
        categories = _coco_categories(name, document, result)
        images, unmatched, ambiguous = _coco_images(name, document, paths, sizes, result)
        if images and len(unmatched) == len(images):
            if ambiguous:
                raise ValidationError(
                    f"{name}: each of its {len(unmatched)} image file_name values matches several uploaded "
                    f"images (e.g. {unmatched[0]!r}): give the paths relative to the upload",
                    [{"file": name, "reason": "ambiguous file_name values", "unmatched": unmatched[:5]}])
            raise none_matched(name, f"its {len(unmatched)} image file_name values", unmatched)
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
