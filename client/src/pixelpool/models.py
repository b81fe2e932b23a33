"""The API's answers as typed objects. Fields the server adds later are kept (`extra="allow"`), so an
older client keeps working against a newer API; only what the client relies on is declared."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class TagRef(Model):
    id: str
    name: str
    color: str | None = None


class Tag(Model):
    id: str
    name: str
    color: str | None = None
    category: str | None = None
    description: str | None = None
    usage_count: int | None = None
    created_at: datetime | None = None


class Image(Model):
    """A registry record: one object of the share, `ready`, `failed` (see `reason`) or `missing`."""

    id: str
    file_path: str
    filename: str
    folder: str
    status: str
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    file_size_bytes: int | None = None
    mime_type: str | None = None
    checksum_sha256: str | None = None
    perceptual_hash: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[TagRef] = Field(default_factory=list)
    thumbnail_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ExploreImage(Model):
    id: str
    file_path: str
    filename: str
    status: str
    width: int | None = None
    height: int | None = None
    file_size_bytes: int | None = None
    tags: list[TagRef] = Field(default_factory=list)


class Label(Model):
    name: str
    color: str | None = None
    annotation_type: str = "any"


class Project(Model):
    id: str
    name: str
    description: str | None = None
    labels: list[Label] = Field(default_factory=list)
    role: str | None = None
    created_at: datetime | None = None


class Task(Model):
    id: str
    project_id: str
    name: str
    split: str = "none"
    status: str = "new"
    total_images: int = 0
    job_count: int = 0
    source: str | None = None


class TaskCreated(Model):
    """A task just cut into jobs, with the paths that could not be used and why."""

    task: Task
    jobs: list[dict[str, Any]] = Field(default_factory=list)
    total_images: int = 0
    duplicate_count: int = 0
    failed: list[dict[str, Any]] = Field(default_factory=list)


class Job(Model):
    id: str
    task_id: str | None = None
    status: str | None = None
    images: list[dict[str, Any]] = Field(default_factory=list)


class Operation(Model):
    """A long-running job: `pending → running → completed | failed`, `done` of `total`."""

    id: str
    kind: str
    status: str
    total: int | None = None
    done: int = 0
    progress: float | None = None
    result: dict[str, Any] | None = None
    result_url: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


class ExportProgress(Model):
    shards_done: int = 0
    shards_total: int | None = None


class Export(Model):
    """An export: `pending → processing → completed | failed`, built in shards."""

    id: str
    project_id: str
    name: str
    version_number: int
    export_mode: str
    output_format: str
    status: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    image_count: int | None = None
    annotation_count: int | None = None
    artifact_size_bytes: int | None = None
    progress: ExportProgress = Field(default_factory=ExportProgress)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


class Dataset(Model):
    id: str
    name: str
    description: str | None = None
    status: str
    state: str
    image_count: int = 0
    annotation_count: int = 0
    prefix: str
    project_id: str | None = None


class Activity(Model):
    id: str
    entity_type: str
    entity_id: str
    action: str
    actor: str | None = None
    summary: str | None = None
    created_at: datetime


class PresignedPost(Model):
    """One presigned POST: send `fields` first, then the file, to `url`; the object's key is `path`."""

    path: str
    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


class PartUrl(Model):
    part_number: int
    url: str


class PartUpload(Model):
    """A multipart upload of one file: parts of `part_size` bytes, URLs of some of them."""

    file_name: str
    key: str
    upload_id: str
    size: int
    part_size: int
    part_count: int
    parts: list[PartUrl]
    expires_at: datetime


class ReceivedPart(Model):
    part_number: int
    etag: str
    size: int


class Staged(Model):
    file_name: str
    key: str | None = None
    size: int | None = None
    etag: str


class Me(Model):
    sub: str
    email: str | None = None
    groups: list[str] = Field(default_factory=list)
    is_admin: bool = False
