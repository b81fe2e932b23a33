"""Prediction checks: every shape against the image's displayed size, every problem named at once."""
from __future__ import annotations

import pytest

from chalicelib.errors import ValidationError
from chalicelib.services.predictions import problems, refuse


def check(items: list[dict], width: int, height: int, analysis_id: str) -> None:
    """What a post of one analysis's predictions goes through: every problem, one 422."""
    refuse(problems(items, width, height, analysis_id))


W, H = 100, 50
A = "an-analysis"


def item(kind: str, data: dict, **fields) -> dict:
    base = {"annotation_type": kind, "class_name": "cat", "confidence": 0.5, "data": data, "storage_path": None}
    return {**base, **fields}


VALID = [
    item("bounding_box", {"x_min": 0, "y_min": 0, "x_max": W, "y_max": H}),
    item("polygon", {"points": [[0, 0], [W, 0], [W, H]]}),
    item("keypoints", {"keypoints": [{"x": 1, "y": 2, "name": "nose", "visible": True}]}),
    item("classification", {}),
    item("heatmap", {"width": 512, "height": 512}, class_name=None, confidence=None,
         storage_path=f"ml_outputs/{A}/heat.png"),
    item("caption", {"text": "a tabby cat asleep on a red sofa"}, class_name=None, confidence=None),
    item("caption", {"text": "cat, sofa", "tags": ["cat", "sofa"]}, class_name=None),
]


def fields_of(items: list[dict]) -> set[str]:
    with pytest.raises(ValidationError) as raised:
        check(items, W, H, A)
    return {detail["field"] for detail in raised.value.details}


def test_every_shape_inside_the_image_passes():
    check(VALID, W, H, A)


@pytest.mark.parametrize(("bad", "field"), [
    (item("bounding_box", {"x_min": 0, "y_min": 0, "x_max": W + 1, "y_max": H}), "annotations.0.data.x_max"),
    (item("bounding_box", {"x_min": 5, "y_min": 0, "x_max": 5, "y_max": H}), "annotations.0.data.x_max"),
    (item("bounding_box", {"x_min": 0, "y_min": 0, "x_max": 1}), "annotations.0.data.y_max"),
    (item("bounding_box", {"x_min": True, "y_min": 0, "x_max": 1, "y_max": 1}), "annotations.0.data.x_min"),
    (item("polygon", {"points": [[0, 0], [1, 1]]}), "annotations.0.data.points"),
    (item("polygon", {"points": [[0, 0], [1, 1], [-1, 1]]}), "annotations.0.data.points.2.x"),
    (item("keypoints", {"keypoints": [{"x": 1, "y": H + 0.5}]}), "annotations.0.data.keypoints.0.y"),
    (item("classification", {"x": 1}), "annotations.0.data.x"),
    (item("classification", {}, confidence=None), "annotations.0.confidence"),
    (item("heatmap", {}, storage_path="ml_outputs/other/heat.png"), "annotations.0.storage_path"),
    (item("heatmap", {}, storage_path=f"ml_outputs/{A}/../other/x.png"), "annotations.0.storage_path"),
    (item("heatmap", {"width": 0}, storage_path=f"ml_outputs/{A}/h.png"), "annotations.0.data.width"),
    (item("bounding_box", {"x_min": 0, "y_min": 0, "x_max": 1, "y_max": 1}, storage_path="x"),
     "annotations.0.storage_path"),
    (item("caption", {"text": "a cat"}), "annotations.0.class_name"),
    (item("caption", {}, class_name=None), "annotations.0.data.text"),
    (item("caption", {"text": "  "}, class_name=None), "annotations.0.data.text"),
    (item("caption", {"text": "x" * 2001}, class_name=None), "annotations.0.data.text"),
    (item("caption", {"text": "a", "tags": "a"}, class_name=None), "annotations.0.data.tags"),
    (item("caption", {"text": "a", "box": 1}, class_name=None), "annotations.0.data.box"),
])
def test_each_problem_names_the_item_and_field(bad, field):
    assert fields_of([bad]) == {field}


def test_all_problems_are_reported_at_once_with_their_indexes():
    items = [*VALID, item("bounding_box", {"x_min": -1, "y_min": 0, "x_max": 1, "y_max": H * 2})]
    assert fields_of(items) == {f"annotations.{len(VALID)}.data.x_min", f"annotations.{len(VALID)}.data.y_max"}
