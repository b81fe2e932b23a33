from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """Base of every request body and query: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)


class PageQuery(RequestModel):
    page: int = Field(default=1, ge=1, description="1-based page number")
    page_size: int = Field(default=50, ge=1, le=200, description="items per page, at most 200")


class PageMeta(ResponseModel):
    total: int
    page: int
    page_size: int
