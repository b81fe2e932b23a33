
from datetime import datetime
from typing import Literal

from pydantic import Field

from chalicelib.schemas.base import RequestModel, ResponseModel


class BrowseQuery(RequestModel):
    path: str = Field(default="", max_length=1024, description="folder relative to the share root; '' is the root")
    cursor: str | None = Field(default=None, max_length=2048, description="next_cursor of the previous page")
    page_size: int = Field(default=200, ge=1, le=1000)


class EntryOut(ResponseModel):
    name: str
    path: str
    type: Literal["folder", "file"]
    size: int | None = None
    last_modified: datetime | None = None
    image_id: str | None = Field(default=None, description="registry id when the file is registered")
    status: str | None = None


class BrowseOut(ResponseModel):
    path: str
    entries: list[EntryOut]
    next_cursor: str | None


class ResolveBody(RequestModel):
    paths: list[str] = Field(min_length=1, max_length=1000)
    recursive: bool = True


class ResolveOut(ResponseModel):
    files: list[str]
    total: int
    truncated: bool = Field(description="true when the selection holds more images than one answer lists")


class UploadFile(RequestModel):
    path: str = Field(min_length=1, max_length=1024, description="file path under `folder` (or the share root)")
    content_type: str = Field(min_length=1, max_length=100)
    size: int = Field(gt=0, description="bytes; the upload is refused above it")


class UploadUrlsBody(RequestModel):
    folder: str | None = Field(default=None, max_length=1024)
    files: list[UploadFile] = Field(min_length=1, max_length=100)


class UploadOut(ResponseModel):
    path: str
    method: Literal["POST"]
    url: str
    fields: dict[str, str] = Field(description="form fields to send before the file field")
    expires_at: datetime
    max_bytes: int
