
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
    state: Literal["active", "deleted", "purged", "all"] = Field(
        default="active", description="active (the default), deleted (the trash: restorable), purged, or all")


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
    state: Literal["active", "deleted", "purging", "purged"] = Field(
        description="active → deleted (hidden, restorable) → purging → purged")
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    restorable_until: datetime | None = Field(default=None, description="when the retention sweep purges it")
    purged_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class FolderOut(ResponseModel):
    path: str
    image_count: int


class DatasetDetailOut(DatasetOut):
    folders: list[FolderOut] = Field(description="every folder holding images, with how many")
    imports: list[dict] = Field(description="the import history, newest first")
    deletion: dict | None = Field(default=None, description="the last deletion: operation, backup (with a fresh "
                                  "presigned backup_url), purge summary, keys manifest (manifest_url), error")


class DeleteDatasetBody(RequestModel):
    confirm_dataset_name: str = Field(min_length=1, max_length=200, description="the dataset's exact name")
    create_backup: bool = Field(default=True, description="one ZIP of its images, annotations (every version) "
                                "and projects' metadata before anything is removed")
    force_delete: bool = Field(default=False, description="administrators: delete although projects you do not "
                               "manage use its images")
    purge: bool = Field(default=False, description="purge at once instead of keeping it restorable for the "
                        "retention window")


class BulkDeleteBody(RequestModel):
    dataset_ids: list[str] = Field(min_length=1, max_length=100)
    confirm: bool = Field(description="must be true")
    create_backup: bool = True
    force_delete: bool = False
    purge: bool = False


class BulkDeleteResultOut(ResponseModel):
    dataset_id: str
    status: Literal["accepted", "refused"]
    operation_id: str | None = None
    error: str | None = None
    message: str | None = None


class ImpactProjectOut(ResponseModel):
    project_id: str
    name: str
    own: bool = Field(description="the project the dataset's import created: deleted with it")
    action: Literal["deleted", "loses images"]
    images: int = Field(description="of its pool")
    annotations: int
    tasks: int
    jobs: int


class ImpactExportOut(ResponseModel):
    project_id: str
    export_id: str
    name: str
    status: str


class DeletionImpactOut(ResponseModel):
    dataset_id: str
    dataset_name: str
    state: str
    images: int
    annotations: int
    annotation_versions: int
    projects: list[ImpactProjectOut]
    tasks: int
    jobs: int
    exports: list[ImpactExportOut] = Field(description="built exports holding its images: their artifacts go "
                                           "with the purge")
    storage_bytes: int = Field(description="its images and staged uploads")
    needs_force_delete: bool = Field(description="projects you do not manage use its images")
    retention_days: int


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
