"""YOLO annotations, for formats/annotation_import.py: Ultralytics (`data.yaml` and `labels/`) and
Darknet (`obj.names`, a `.txt` beside each image, `train.txt` / `valid.txt` lists). Boxes are
normalised `class cx cy w h`, segments `class x1 y1 x2 y2 …`; both become pixels of the uploaded
image they name (the rules are in annotation_import.py's docstring)."""
from __future__ import annotations

import posixpath
from collections import defaultdict
from typing import Any, Mapping

from chalicelib.errors import BadRequestError
from chalicelib.formats import Shape, member_name
from chalicelib.formats.annotation_common import (
    DARKNET_LISTS, DARKNET_NAMES, LABEL_MAX, ImportedAnnotations, Paths, Result, Size, base_name, box,
    none_matched, polygon, yaml_files,
)
from chalicelib.formats.yaml_subset import read_yaml


def _yolo_lines(name: str, text: str, names: dict[int, str], size: Size | None, path: str,
                result: Result) -> None:
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


def _label_file(name: str, data: bytes, result: Result) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        result.problem(name, "not UTF-8 text")
        return None


def _read_labels(label_files: dict[str, str], names: dict[int, str], files: Mapping[str, bytes],
                 uploaded: list[str], sizes: Mapping[str, Size], result: Result) -> dict[str, str]:
    """Reads each label file (name → the image reference, without suffix); returns reference → uploaded path."""
    paths = Paths(uploaded, without_suffix=True)
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
        raise none_matched(posixpath.dirname(unmatched[0]) or unmatched[0], f"the {len(unmatched)} label files",
                            unmatched)
    return matched


def _split_list(name: str, data: bytes, base: str, split: str, paths: Paths, result: Result) -> None:
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


def parse_darknet(files: Mapping[str, bytes], uploaded: list[str], sizes: Mapping[str, Size]) -> ImportedAnnotations:
    result = Result("darknet")
    names_file = next(n for n in files if base_name(n).lower() in DARKNET_NAMES or n.lower().endswith(".names"))
    lines = (_label_file(names_file, files[names_file], result) or "").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = _class_names(names_file, dict(enumerate(line.strip() for line in lines)), result)
    label_files, lists = {}, {}
    for name in files:
        base = base_name(name).lower()
        if name == names_file:
            continue
        if base in DARKNET_LISTS:
            lists[name] = DARKNET_LISTS[base]
        elif base.endswith(".txt") and base not in DARKNET_NAMES:
            label_files[name] = name
        else:
            result.problem(name, "not used by the Darknet layout (obj.names, <image>.txt, train.txt, valid.txt)")
    _read_labels(label_files, names, files, uploaded, sizes, result)
    paths = Paths(uploaded)
    for name, split in lists.items():
        # Darknet lists are relative to where darknet runs (often `data/obj_train_data/x.jpg`): the
        # path-ending and basename rules find them.
        _split_list(name, files[name], "", split, paths, result)
    return result.done()


def _class_names(file: str, raw: Any, result: Result) -> dict[int, str]:
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


def parse_ultralytics(files: Mapping[str, bytes], uploaded: list[str],
                       sizes: Mapping[str, Size]) -> ImportedAnnotations:
    result = Result("yolo")
    yaml_name = next((n for n in yaml_files(files) if base_name(n).lower() == "data.yaml"), yaml_files(files)[0])
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
    paths = Paths(uploaded)
    for name, split in lists.items():
        _split_list(name, files[name], root, split, paths, result)
    return result.done()
