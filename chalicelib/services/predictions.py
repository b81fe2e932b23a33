"""Predictions posted by a pipeline, checked against the image they are about (pure).

Coordinates are pixels of the image as displayed (EXIF orientation applied): `0 ≤ x ≤ width`,
`0 ≤ y ≤ height`. Shapes of `data`:
- `bounding_box`: `{x_min, y_min, x_max, y_max}`, min < max;
- `polygon`: `{points: [[x, y], ...]}`, at least 3 points;
- `keypoints`: `{keypoints: [{x, y, name?, visible?}, ...]}`, at least 1;
- `classification`: `{}` (the class and confidence say it all);
- `heatmap`: `{width, height}` and a `storage_path` under `ml_outputs/<analysis id>/`;
- `caption`: `{text}` (and optionally ordered `tags`) from a captioning model; no class, and its
  `confidence` is optional.
Every other type needs `class_name` and `confidence` (0..1). Every problem is reported at
once, each naming the item's index and field (`annotations.3.data.x_max`).
"""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.errors import ValidationError

Problem = tuple[str, str]  # (field under the item, message)
MAX_CAPTION = 2000  # as a caption a person writes (schemas/images.py CaptionIn)


def artifact_prefix(analysis_id: str) -> str:
    return f"ml_outputs/{analysis_id}/"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coordinate(value: Any, field: str, limit: int) -> list[Problem]:
    """A pixel coordinate: a number within 0..limit (the image's width or height)."""
    if not _number(value):
        return [(field, "must be a number")]
    if not 0 <= value <= limit:
        return [(field, f"{value} is outside the image (0..{limit})")]
    return []


def _point(x: Any, y: Any, where: str, width: int, height: int) -> list[Problem]:
    return _coordinate(x, f"{where}x", width) + _coordinate(y, f"{where}y", height)


def _keys(data: dict, allowed: set[str], required: set[str]) -> list[Problem]:
    problems = [(f"data.{name}", "is required") for name in sorted(required - set(data))]
    extra = sorted(set(data) - allowed)
    return problems + [(f"data.{name}", "is not a field of this annotation type") for name in extra]


def _bounding_box(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    names = {"x_min", "y_min", "x_max", "y_max"}
    problems = _keys(data, names, names)
    if problems:
        return problems
    for name in sorted(names):
        problems += _coordinate(data[name], f"data.{name}", width if name.startswith("x") else height)
    if not problems:
        for low, high in (("x_min", "x_max"), ("y_min", "y_max")):
            if data[low] >= data[high]:
                problems.append((f"data.{high}", f"must be greater than {low}"))
    return problems


def _polygon(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    problems = _keys(data, {"points"}, {"points"})
    points = data.get("points")
    if problems:
        return problems
    if not isinstance(points, list) or len(points) < 3:
        return [("data.points", "needs at least 3 [x, y] points")]
    for index, point in enumerate(points):
        if not isinstance(point, list) or len(point) != 2:
            problems.append((f"data.points.{index}", "must be [x, y]"))
        else:
            problems += _point(point[0], point[1], f"data.points.{index}.", width, height)
    return problems


def _keypoints(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    problems = _keys(data, {"keypoints"}, {"keypoints"})
    points = data.get("keypoints")
    if problems:
        return problems
    if not isinstance(points, list) or not points:
        return [("data.keypoints", "needs at least one {x, y} point")]
    for index, point in enumerate(points):
        where = f"data.keypoints.{index}"
        if not isinstance(point, dict) or not {"x", "y"} <= set(point) or set(point) - {"x", "y", "name", "visible"}:
            problems.append((where, "must be {x, y, name?, visible?}"))
        else:
            problems += _point(point["x"], point["y"], f"{where}.", width, height)
    return problems


def _classification(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    return _keys(data, set(), set())


def _heatmap(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    problems = _keys(data, {"width", "height"}, set())
    for name in ("width", "height"):
        if name in data and not (isinstance(data[name], int) and not isinstance(data[name], bool) and data[name] > 0):
            problems.append((f"data.{name}", "must be a positive integer"))
    return problems


def _caption(data: dict, width: int, height: int, analysis_id: str) -> list[Problem]:
    problems = _keys(data, {"text", "tags"}, {"text"})
    text, tags = data.get("text"), data.get("tags")
    if "text" in data and not (isinstance(text, str) and 0 < len(text.strip()) <= MAX_CAPTION):
        problems.append(("data.text", f"must be text of 1 to {MAX_CAPTION} characters"))
    if "tags" in data and not (isinstance(tags, list) and len(tags) <= 100
                               and all(isinstance(tag, str) and 0 < len(tag) <= 100 for tag in tags)):
        problems.append(("data.tags", "must be a list of up to 100 tags of 1 to 100 characters"))
    return problems


CHECKS: dict[str, Callable[[dict, int, int, str], list[Problem]]] = {
    "bounding_box": _bounding_box,
    "polygon": _polygon,
    "keypoints": _keypoints,
    "classification": _classification,
    "heatmap": _heatmap,
    "caption": _caption,
}


def problems(items: list[dict[str, Any]], width: int, height: int, analysis_id: str,
             positions: list[int] | None = None) -> list[dict[str, Any]]:
    """Every problem of `items` (dicts with the `PredictionIn` fields), each naming the item by its
    place in the request (`positions`, or its index here) and its field."""
    details = []
    prefix = artifact_prefix(analysis_id)
    for index, item in enumerate(items):
        kind, path = item["annotation_type"], item.get("storage_path")
        found = CHECKS[kind](item.get("data") or {}, width, height, analysis_id)
        if kind == "heatmap":
            if not path or not path.startswith(prefix) or ".." in path:
                found.append(("storage_path", f"must be an artifact under {prefix}"))
        elif kind == "caption":
            if item.get("class_name") is not None:
                found.append(("class_name", "a caption has no class"))
            if path is not None:
                found.append(("storage_path", "only heatmaps have one"))
        else:
            if item.get("class_name") is None:
                found.append(("class_name", "is required"))
            if item.get("confidence") is None:
                found.append(("confidence", "is required (0..1)"))
            if path is not None:
                found.append(("storage_path", "only heatmaps have one"))
        place = index if positions is None else positions[index]
        details += [{"field": f"annotations.{place}.{field}", "location": "body", "message": text,
                     "type": "prediction"} for field, text in found]
    return details


def refuse(details: list[dict[str, Any]]) -> None:
    """Raise one 422 listing every problem, if there is any."""
    if details:
        details = sorted(details, key=lambda d: (int(d["field"].split(".")[1]), d["field"]))
        named = ", ".join(f"{d['field']} ({d['message']})" for d in details[:5])
        more = f" and {len(details) - 5} more" if len(details) > 5 else ""
        raise ValidationError(f"Invalid predictions: {named}{more}", details)
