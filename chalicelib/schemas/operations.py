
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from chalicelib.schemas.base import RequestModel, ResponseModel


class OperationOut(ResponseModel):
    id: str
    kind: str
    status: Literal["pending", "running", "completed", "failed"]
    total: int | None
    done: int
    progress: float | None = Field(description="done / total, once the total is known")
    result: dict[str, Any] | None
    result_url: str | None = Field(default=None, description="presigned GET of the full result when it is large")
    error: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ExploreRebuildBody(RequestModel):
    project_id: str | None = Field(default=None, min_length=1, max_length=64,
                                   description="only this project's index; absent: every project's")


class ReindexBody(RequestModel):
    prefix: str = Field(default="", max_length=1024, description="only keys under this prefix; '' is the whole share")
