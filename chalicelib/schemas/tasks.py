
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from chalicelib.schemas.base import Name, RequestModel, ResponseModel
from chalicelib.schemas.images import FailedPath
from chalicelib.services.filters import ImageFilter

Split = Literal["none", "train", "val", "test"]
Status = Literal["new", "in_progress", "review", "done"]


class TaskSettings(RequestModel):
    name: Name
    description: str | None = Field(default=None, max_length=2000)
    assignee_id: str | None = Field(default=None, max_length=128, description="a project member; every job gets it")
    chunk_size: int = Field(default=50, ge=1, le=1000, description="images per job")
    distribution_order: Literal["sequential", "random"] = "sequential"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="random order: same seed, same jobs")
    split: Split = "none"


class TaskFromPaths(TaskSettings):
    file_paths: list[str] = Field(min_length=1, max_length=10_000, description="files or folders of the share")


class TaskFromPool(TaskSettings):
    shared_image_ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000,
                                               description="pool images, in this order")
    filter: ImageFilter | None = Field(default=None, description="the Explore filter selecting pool images")
    saved_filter_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one_source(self) -> "TaskFromPool":
        given = [name for name in ("shared_image_ids", "filter", "saved_filter_id") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of shared_image_ids, filter or saved_filter_id")
        return self


class TaskPatch(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    assignee_id: str | None = Field(default=None, max_length=128)
    split: Split | None = None
    status: Status | None = None


class TaskOut(ResponseModel):
    id: str
    project_id: str
    name: str
    description: str | None
    assignee_id: str | None
    split: Split
    status: Status
    total_images: int
    job_count: int
    chunk_size: int
    distribution_order: str
    seed: int | None
    source: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class JobOut(ResponseModel):
    id: str
    task_id: str
    project_id: str
    sequence_number: int
    assignee_id: str | None
    status: Status
    total_images: int
    created_at: datetime
    updated_at: datetime


class TaskDetailOut(TaskOut):
    jobs: list[JobOut]


class TaskCreatedOut(ResponseModel):
    task: TaskOut
    jobs: list[JobOut]
    total_images: int
    duplicate_count: int = Field(description="paths that selected an image again (named twice, or inside a folder "
                                             "also given); each image is used once")
    duplicate_filenames: list[str] = Field(description="those paths, in selection order")
    failed: list[FailedPath] = Field(description="each unusable path and why")


class JobPatch(RequestModel):
    assignee_id: str | None = Field(default=None, max_length=128)
    status: Status | None = None


class JobImageOut(ResponseModel):
    image_id: str
    sequence_number: int
    file_path: str | None
    filename: str | None
    width: int | None
    height: int | None
    thumbnail_url: str | None
    annotation_count: int
    is_annotated: bool


class JobDetailOut(JobOut):
    task_name: str
    annotated_images: int | None = None
    images: list[JobImageOut] | None = None
