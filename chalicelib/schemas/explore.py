
from typing import Any, Literal

from pydantic import Field

from chalicelib.schemas.base import ResponseModel
from chalicelib.schemas.images import ImageOut
from chalicelib.services.filters import ImageFilter


class ExploreQuery(ImageFilter):
    page: int = Field(default=1, ge=1, le=10**9)
    page_size: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=500, description="next_cursor of the previous page")

    def image_filter(self) -> ImageFilter:
        return ImageFilter.model_validate(self.model_dump(exclude={"page", "page_size", "cursor"}))


class PlacementOut(ResponseModel):
    task_id: str
    task_name: str
    split: str
    job_id: str
    annotated: bool


class ExploreImageOut(ImageOut):
    tasks: list[PlacementOut] = Field(description="the project's jobs that contain the image")
    is_annotated: bool
    annotation_status: Literal["annotated", "unannotated"]


class ExploreOut(ResponseModel):
    images: list[ExploreImageOut]
    total: int
    page: int
    page_size: int
    next_cursor: str | None
    filters_applied: dict[str, Any]
