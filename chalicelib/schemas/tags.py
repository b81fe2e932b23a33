
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from chalicelib.schemas.base import PageQuery, RequestModel, ResponseModel, ShortName

DEFAULT_COLOR = "#6B7280"

TagName = ShortName
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9A-Fa-f]{6}$")]
Category = ShortName
Description = Annotated[str, StringConstraints(max_length=500)]


class TagCreate(RequestModel):
    name: TagName
    description: Description | None = None
    color: Color = Field(default=DEFAULT_COLOR, description="#RRGGBB")
    category: Category | None = Field(default=None, description="e.g. 'animal' for 'cat'; classification exports use it")


class TagUpdate(RequestModel):
    name: TagName | None = None
    description: Description | None = None
    color: Color | None = None
    category: Category | None = None


class TagListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=100, description="case-insensitive substring of the name")
    include_usage_count: bool = False
    page_size: int = Field(default=200, ge=1, le=200)


class TagDeleteQuery(RequestModel):
    force: bool = Field(default=False, description="delete even while images carry the tag")


class TagOut(ResponseModel):
    id: str
    name: str
    description: str | None
    color: str
    category: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    usage_count: int | None = Field(default=None, description="present when include_usage_count=true")
