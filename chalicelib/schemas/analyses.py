"""ML analyses: what pipelines post (HMAC routes) and what users read (JWT routes)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from chalicelib.schemas.base import RequestModel, ResponseModel
from chalicelib.services.filters import ImageFilter

ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
ModelVersion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
ArtifactName = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                                pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
ClassName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_BULK = 1000
MAX_BATCH_IMAGES = 100

AnnotationType = Literal["bounding_box", "polygon", "classification", "keypoints", "heatmap", "caption"]
ArtifactType = Literal["heatmap", "mask", "json"]


class AnalysisCreate(RequestModel):
    # The seed repeats the path's image id in the body; accepted when it agrees.
    image_id: str | None = None
    model_name: ModelName
    model_version: ModelVersion
    parameters: dict[str, Any] = Field(default_factory=dict)


class AnalysisBatchCreate(RequestModel):
    image_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH_IMAGES)
    model_name: ModelName
    model_version: ModelVersion
    parameters: dict[str, Any] = Field(default_factory=dict)


class StatusUpdate(RequestModel):
    status: Literal["processing", "failed", "canceled"] = Field(
        description="`completed` is reached through …/finalize, which checks the artifacts")
    error: str | None = Field(default=None, max_length=2000)


class Finalize(RequestModel):
    status: Literal["completed", "failed", "canceled"] = "completed"
    error: str | None = Field(default=None, max_length=2000)


class ArtifactPresign(RequestModel):
    artifact_type: ArtifactType
    filename: ArtifactName
    content_type: str | None = Field(default=None, description="defaults to the type's usual one")
    size: int = Field(gt=0, description="bytes; the upload must be exactly this long")


class PredictionIn(RequestModel):
    annotation_type: AnnotationType
    class_name: ClassName | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    data: dict[str, Any] = Field(default_factory=dict)
    storage_path: str | None = Field(default=None, max_length=1024)


class BulkPredictions(RequestModel):
    annotations: list[PredictionIn] = Field(min_length=1, max_length=MAX_BULK)


class PredictionOfIn(PredictionIn):
    analysis_id: str = Field(min_length=1, max_length=64, description="the analysis (processing) it belongs to")


class BulkPredictionsOfMany(RequestModel):
    """Predictions of several analyses in one post (a pipeline's batch across images)."""

    annotations: list[PredictionOfIn] = Field(min_length=1, max_length=MAX_BULK)


class ExportQuery(RequestModel):
    format: Literal["json", "csv"] = "json"


class ProjectExportQuery(ImageFilter):
    """Explore's filter (the pool images to take) and which of their analyses."""

    format: Literal["json", "csv"] = "json"
    model_name: str | None = Field(default=None, max_length=100)
    model_version: str | None = Field(default=None, max_length=50)
    status: Literal["queued", "processing", "completed", "failed", "canceled"] | None = None

    def image_filter(self) -> ImageFilter:
        return ImageFilter.model_validate(self.model_dump(exclude={"format", "model_name", "model_version", "status"}))


class ArtifactOut(ResponseModel):
    artifact_type: str
    filename: str
    key: str
    content_type: str
    size: int
    url: str | None = Field(default=None, description="presigned GET (user routes only)")


class AnalysisOut(ResponseModel):
    id: str
    image_id: str
    model_name: str
    model_version: str
    parameters: dict[str, Any]
    status: str
    prediction_count: int
    error: str | None
    created_at: datetime
    updated_at: datetime


class BatchCreated(ResponseModel):
    analyses: list[AnalysisOut]


class ArtifactUploadOut(ResponseModel):
    url: str
    method: str
    headers: dict[str, str]
    key: str
    expires_in: int


class PredictionOut(ResponseModel):
    id: str
    annotation_type: str
    class_name: str | None
    confidence: float | None
    data: dict[str, Any]
    storage_path: str | None


class BulkOut(ResponseModel):
    analysis_id: str
    written: int
    prediction_count: int
    replayed: bool = Field(default=False, description="a retry (same Idempotency-Key): nothing written again")


class BulkOfAnalysisOut(ResponseModel):
    analysis_id: str
    written: int
    prediction_count: int


class BulkManyOut(ResponseModel):
    written: int
    analyses: list[BulkOfAnalysisOut] = Field(default_factory=list, description="per analysis, in order of first item")
    replayed: bool = Field(default=False, description="a retry (same Idempotency-Key): nothing written again")


class AnalysisDetail(AnalysisOut):
    artifacts: list[ArtifactOut]
    predictions: list[PredictionOut]


class AnalysisExportOut(ResponseModel):
    format: str
    filename: str
    content_type: str
    document: dict[str, Any] | None = Field(default=None, description="format=json")
    csv: str | None = Field(default=None, description="format=csv: one row per prediction")
