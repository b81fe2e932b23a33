from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from chalicelib.schemas.base import RequestModel, ResponseModel
from chalicelib.services.filters import ImageFilter


class SavedFilterBody(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    filter: ImageFilter


class SavedFilterPut(RequestModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    filter: ImageFilter | None = None


class SavedFilterOut(ResponseModel):
    id: str
    name: str
    filter: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
