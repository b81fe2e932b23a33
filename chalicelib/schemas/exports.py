from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from chalicelib.schemas.base import RequestModel, ResponseModel
from chalicelib.services.export_spec import ExportOptions, Mode
from chalicelib.services.filters import ImageFilter


class ExportBody(RequestModel):
    """An export request: the Explore filter object or a saved filter's id, the mode and its options."""

    export_mode: Mode
    output_format: str | None = Field(default=None, description="coco_json | yolo | manifest_csv | image_folder | "
                                                                "url_manifest; the mode's first format if omitted")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="else 'Detection Export v3'")
    filter: ImageFilter | None = None
    saved_filter_id: str | None = Field(default=None, max_length=64)
    options: ExportOptions = Field(default_factory=ExportOptions)


class PreviewOut(ResponseModel):
    export_mode: str
    output_format: str
    images: int
    annotations: int = Field(description="annotations (or class rows) the artifact will contain")
    annotation_counts: dict[str, int] = Field(description="selected annotations by type (bbox, polygon, classification)")
    split_distribution: dict[str, int]
    class_distribution: dict[str, int]
    excluded: dict[str, int] = Field(description="images the filter selects that the format cannot place, by reason")


class ProgressOut(ResponseModel):
    shards_done: int
    shards_total: int | None


class ExportOut(ResponseModel):
    id: str
    project_id: str
    name: str
    version_number: int
    export_mode: str
    output_format: str
    status: str
    filter: dict[str, Any]
    options: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    image_count: int | None
    annotation_count: int | None
    artifact_size_bytes: int | None
    progress: ProgressOut
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class ClassificationOptionsOut(ResponseModel):
    categories: list[dict[str, Any]] = Field(description="tag categories, each with its tags: the categorized classes")
    uncategorized_tags: list[dict[str, Any]]
    labels: list[str] = Field(description="the project's labels usable as image-level classes")
