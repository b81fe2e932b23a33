
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from chalicelib.schemas.base import RequestModel, ResponseModel
from chalicelib.schemas.split_leaks import ExportLeaksOut
from chalicelib.services.export_spec import (ExportOptions, ExportSpec, Format, Mode, default_format,
                                             format_problem, mapping_problem)
from chalicelib.services.filters import ImageFilter


class ExportBody(RequestModel):
    """An export request: the Explore filter object or a saved filter's id, the mode and its options.

    Every rule of a request is checked here, once, each on its field (a 422 names it): the format
    suits the mode, the class mapping suits the mode, a filter or a saved filter, not both. The
    service gets `spec()` (typed, not validated again) and `saved_filter_id` to resolve."""

    export_mode: Mode
    output_format: Format | None = Field(default=None, validate_default=True,
                                         description="coco_json | yolo | manifest_csv | image_folder | "
                                                     "url_manifest | image_text; the mode's first format "
                                                     "if omitted")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="else 'Detection Export v3'")
    filter: ImageFilter | None = None
    saved_filter_id: str | None = Field(default=None, min_length=1, max_length=64)
    options: ExportOptions = Field(default_factory=ExportOptions, validate_default=True)

    @field_validator("output_format")
    @classmethod
    def _format_suits_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("export_mode")
        if mode is None:  # the mode's own error is reported
            return value
        value = value or default_format(mode)
        problem = format_problem(mode, value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("saved_filter_id")
    @classmethod
    def _filter_or_saved_filter(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("filter") is not None:
            raise ValueError("give either `filter` or `saved_filter_id`, not both")
        return value

    @field_validator("options")
    @classmethod
    def _options_suit_mode(cls, value: ExportOptions, info: ValidationInfo) -> ExportOptions:
        mode = info.data.get("export_mode")
        problem = mapping_problem(mode, value) if mode is not None else None
        if problem:
            raise ValueError(problem)
        return value

    def spec(self) -> ExportSpec:
        """The request as an export spec; its rules were checked when this body was validated."""
        return ExportSpec.model_construct(export_mode=self.export_mode, output_format=self.output_format,
                                          filter=self.filter or ImageFilter(), options=self.options)


class PreviewOut(ResponseModel):
    export_mode: str
    output_format: str
    images: int
    annotations: int = Field(description="annotations (or class rows, or captions) the artifact will contain")
    annotation_counts: dict[str, int] = Field(description="selected annotations by type (bbox, polygon, "
                                                          "classification; caption in a captions export)")
    split_distribution: dict[str, int]
    class_distribution: dict[str, int]
    excluded: dict[str, int] = Field(description="images the filter selects that the export leaves out, by reason "
                                                 "(copy_in_earlier_split: exclude_leaks; without_caption: a "
                                                 "captions export's images with no caption)")
    leaks: ExportLeaksOut = Field(description="copies of one picture in different splits among the exported images")


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
