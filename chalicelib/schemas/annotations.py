
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from chalicelib.schemas.base import RequestModel, ResponseModel
from chalicelib.schemas.documents import FreeForm

# A finite JSON number, strictly: JSON readers accept NaN and Infinity (and NaN passes every
# bounds check), and a lax float would take `true` as 1.
Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class AnnotationIn(RequestModel):
    """One annotation; coordinates in pixels of the displayed image (EXIF orientation applied)."""

    id: str | None = Field(default=None, max_length=64, description="kept if given, else assigned")
    type: Literal["bbox", "polygon", "classification"]
    label: str = Field(min_length=1, max_length=100, description="a label name of the project's label set")
    state: Literal["draft", "confirmed"] = "draft"
    bbox: list[Coordinate] | None = Field(default=None, validate_default=True,
                                          description="[x, y, width, height], bbox only")
    points: list[list[Coordinate]] | None = Field(default=None, max_length=10_000, validate_default=True,
                                                  description="[[x, y], ...] at least 3, polygon only")
    attributes: FreeForm | None = Field(default=None, description="free-form, e.g. occluded, confidence")

    # Field validators (not one model validator) so that an error names `annotations.N.bbox`.
    @field_validator("bbox")
    @classmethod
    def _bbox(cls, bbox: list[float] | None, info: ValidationInfo) -> list[float] | None:
        kind = info.data.get("type")
        if kind == "bbox":
            if bbox is None or len(bbox) != 4:
                raise ValueError("a bbox annotation needs bbox = [x, y, width, height]")
            if bbox[2] <= 0 or bbox[3] <= 0:
                raise ValueError("bbox width and height must be positive")
        elif bbox is not None:
            raise ValueError(f"a {kind} annotation has no bbox")
        return bbox

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[list[float]] | None, info: ValidationInfo) -> list[list[float]] | None:
        kind = info.data.get("type")
        if kind == "polygon":
            if points is None or len(points) < 3 or any(len(point) != 2 for point in points):
                raise ValueError("a polygon annotation needs points = [[x, y], ...] with at least 3 points")
        elif points is not None:
            raise ValueError(f"a {kind} annotation has no points")
        return points


class AnnotationsBody(RequestModel):
    annotations: list[AnnotationIn] = Field(max_length=1000, description="the image's whole set in this job; "
                                                                         "ids given are unique")
    expected_rev: int | None = Field(default=None, ge=0, description="rev you read: refused with 409 if it moved")

    @field_validator("annotations")
    @classmethod
    def _unique_ids(cls, annotations: list[AnnotationIn]) -> list[AnnotationIn]:
        seen: dict[str, int] = {}
        for n, annotation in enumerate(annotations):
            if annotation.id is None:
                continue
            if annotation.id in seen:
                raise ValueError(f"annotation id {annotation.id!r} is used twice (annotations {seen[annotation.id]} "
                                 f"and {n}); ids are unique in a set")
            seen[annotation.id] = n
        return annotations


class AnnotationOut(ResponseModel):
    id: str
    type: str
    label: str
    state: str
    bbox: list[float] | None = None
    points: list[list[float]] | None = None
    attributes: dict[str, Any] | None = None


class AnnotationSetOut(ResponseModel):
    job_id: str
    image_id: str
    annotations: list[AnnotationOut]
    rev: int
    is_annotated: bool
    updated_by: str | None
    updated_at: datetime | None


class VersionBody(RequestModel):
    note: str | None = Field(default=None, max_length=500)


class VersionOut(ResponseModel):
    job_id: str
    number: int
    image_count: int
    annotation_count: int
    created_by: str | None
    created_at: datetime
    note: str | None = Field(default=None, description='as given when frozen; "imported" for a dataset import\'s')
