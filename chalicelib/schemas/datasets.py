
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from chalicelib.schemas.base import PageQuery, RequestModel, ResponseModel, ShortName
from chalicelib.schemas.share import UploadFile

Description = Annotated[str, StringConstraints(max_length=2000)]
FileName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
UploadId = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class DatasetCreate(RequestModel):
    name: ShortName = Field(description="unique among your datasets, ignoring case")
    description: Description | None = None


class DatasetUpdate(RequestModel):
    name: ShortName | None = None
    description: Description | None = Field(default=None, description="null clears it")


class DatasetListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=100, description="substring of the name or description")
    labeled: bool | None = Field(default=None, description="true: with annotations; false: without")
    status: Literal["empty", "importing", "ready", "failed"] | None = None
    sort: Literal["name", "created_at", "size"] = "created_at"
    order: Literal["asc", "desc"] = "desc"


class StorageOut(ResponseModel):
    total_bytes: int
    images_bytes: int
    annotations_bytes: int
    other_bytes: int


class DatasetOut(ResponseModel):
    id: str
    name: str
    description: str | None
    owner_id: str
    status: str
    labeled: bool
    image_count: int
    annotation_count: int
    storage: StorageOut
    prefix: str = Field(description="where its images live in the share")
    project_id: str | None = Field(description="the project its import created")
    created_at: datetime
    updated_at: datetime


class FolderOut(ResponseModel):
    path: str
    image_count: int


class DatasetDetailOut(DatasetOut):
    folders: list[FolderOut] = Field(description="every folder holding images, with how many")
    imports: list[dict] = Field(description="the import history, newest first")


class ImageUploadBody(RequestModel):
    folder: str | None = Field(default=None, max_length=1024, description="folder inside the dataset")
    files: list[UploadFile] = Field(min_length=1, max_length=100)


class UploadStart(RequestModel):
    file_name: FileName = Field(description="a ZIP or an annotation file (.json, .yaml, .txt, .names)")
    size: int = Field(gt=0, description="bytes")
    first_parts: int = Field(default=100, ge=1, le=100, description="how many part URLs to answer with")


class UploadRef(RequestModel):
    file_name: FileName
    upload_id: UploadId


class PartUrlsQuery(RequestModel):
    file_name: FileName
    upload_id: UploadId
    size: int = Field(gt=0)
    first: int = Field(default=1, ge=1, le=10_000, description="first part number")
    count: int = Field(default=100, ge=1, le=100)


class ReceivedQuery(RequestModel):
    file_name: FileName
    upload_id: UploadId


class PartIn(RequestModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200, description="the ETag header S3 answered the part's PUT with")


class UploadComplete(UploadRef):
    parts: list[PartIn] = Field(min_length=1, max_length=10_000)


class PartUrlOut(ResponseModel):
    part_number: int
    url: str


class PartUploadOut(ResponseModel):
    file_name: str
    key: str
    upload_id: str
    size: int
    part_size: int
    part_count: int
    parts: list[PartUrlOut]
    expires_at: datetime


class ReceivedPartOut(ResponseModel):
    part_number: int
    etag: str
    size: int


class UploadedOut(ResponseModel):
    file_name: str
    key: str
    etag: str


class StagedOut(ResponseModel):
    file_name: str
    size: int
    etag: str
    uploaded_at: datetime = Field(description="when the upload was completed")


class ImportBody(RequestModel):
    chunk_size: int = Field(default=100, ge=1, le=10_000,
                            description="images per job of the tasks the import creates")
