
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from chalicelib.schemas.base import PageQuery, ShortName, RequestModel, ResponseModel
from chalicelib.schemas.documents import FreeForm

Status = Literal["ready", "failed", "missing"]
Id = Field(min_length=1, max_length=64)


class TagRef(ResponseModel):
    id: str
    name: str
    color: str
    category: str | None = None


class CaptionOut(ResponseModel):
    text: str = Field(description="the caption; with tags only, the tags joined by ', '")
    tags: list[str] = Field(default_factory=list, description="ordered tags, when the caption is a tag list")
    source: Literal["user", "prediction"] = Field(description="written by a person, or promoted from a prediction")
    updated_by: str | None = None
    updated_at: datetime
    analysis_id: str | None = Field(default=None, description="source prediction: its analysis")
    prediction_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None


class ImageOut(ResponseModel):
    id: str
    file_path: str = Field(description="key in the share bucket")
    filename: str
    folder: str
    status: Status = Field(description="ready, failed (see reason) or missing (object removed)")
    reason: str | None = None
    width: int | None = Field(default=None, description="as displayed: EXIF orientation applied")
    height: int | None = None
    file_size_bytes: int | None = None
    mime_type: str | None = None
    format: str | None = None
    frames: int | None = None
    checksum_sha256: str | None = Field(default=None, description="SHA-256 of the bytes")
    perceptual_hash: str | None = Field(default=None, description="64-bit DCT pHash, hex")
    exif: dict[str, Any] | None = None
    etag: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    mask_of: str | None = None
    mask_category: str | None = None
    registered_by: str | None = None
    thumbnail_url: str | None = Field(default=None, description="presigned GET of the 256 px JPEG thumbnail")
    tags: list[TagRef] = Field(default_factory=list)
    caption: CaptionOut | None = Field(default=None, description="for image-text training (PUT …/caption)")
    created_at: datetime = Field(description="when the object landed in the share")
    updated_at: datetime


class ImageListQuery(PageQuery):
    search: str | None = Field(default=None, max_length=200, description="case-insensitive substring of the filename")
    tag_ids: list[str] = Field(default_factory=list, max_length=50, description="images carrying ALL of these tags")
    folder: str | None = Field(default=None, max_length=1024, description="a folder (whole names): its images and those of its sub-folders, e.g. datasets/cats")
    status: Status | None = None


class RegisterBody(RequestModel):
    file_paths: list[str] = Field(min_length=1, max_length=10_000, description="files or folders (expanded recursively)")


class FailedPath(ResponseModel):
    file_path: str
    reason: str


class RegisterOut(ResponseModel):
    registered: list[ImageOut]
    already_existed: list[str]
    failed: list[FailedPath]
    total_registered: int
    total_already_existed: int
    total_failed: int


class MetadataPatch(RequestModel):
    metadata: FreeForm = Field(description="merged into the custom metadata (RFC 7396: null deletes a key)")


class CaptionIn(RequestModel):
    """Free text, ordered tags, or both (tags alone make the text `tag, tag, …`)."""

    text: str | None = Field(default=None, min_length=1, max_length=2000)
    tags: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] | None = Field(
        default=None, min_length=1, max_length=100, validate_default=True,
        description="ordered, as a tagger's caption")

    @field_validator("tags")
    @classmethod
    def _something(cls, tags: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if tags is None and info.data.get("text") is None and "text" in info.data:
            raise ValueError("give text, tags or both")
        return tags


class UrlQuery(RequestModel):
    expires_in: int | None = Field(default=None, ge=1, le=3600, description="seconds, at most one hour")


class UrlOut(ResponseModel):
    url: str
    thumbnail_url: str | None
    expires_in: int
    expires_at: datetime


class SimilarQuery(RequestModel):
    max_distance: int = Field(default=8, ge=0, le=64, description="Hamming distance between perceptual hashes")
    limit: int = Field(default=50, ge=1, le=200)


class SimilarOut(ImageOut):
    distance: int


class DuplicateGroupOut(ResponseModel):
    checksum_sha256: str
    count: int
    images: list[ImageOut]


class MaskBody(RequestModel):
    source_image_id: str | None = Field(default=None, max_length=64, description="null makes it an ordinary image again")
    mask_category: ShortName | None = Field(default=None, description="e.g. person, background")


class TagIdsBody(RequestModel):
    tag_ids: list[str] = Field(min_length=1, max_length=100)


class BulkTagBody(RequestModel):
    shared_image_ids: list[str] = Field(min_length=1, max_length=1000)
    tag_ids: list[str] = Field(min_length=1, max_length=100)


class BulkTagOut(ResponseModel):
    tags_added: int
    images_affected: int


class BulkUntagOut(ResponseModel):
    tags_removed: int
    images_affected: int
