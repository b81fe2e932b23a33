
from datetime import datetime
from typing import Any


from chalicelib.schemas.base import Name, RequestModel, ResponseModel
from chalicelib.services.filters import ImageFilter


class SavedFilterBody(RequestModel):
    name: Name
    filter: ImageFilter


class SavedFilterPut(RequestModel):
    name: Name | None = None
    filter: ImageFilter | None = None


class SavedFilterOut(ResponseModel):
    id: str
    name: str
    filter: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
