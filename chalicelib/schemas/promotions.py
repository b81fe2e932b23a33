"""Promoting an analysis's predictions into a job's annotations (drafts for people to review)."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from chalicelib.schemas.analyses import ClassName, ModelName, ModelVersion
from chalicelib.schemas.base import RequestModel, ResponseModel

LabelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
# Bounded like an id: each is a DynamoDB key (an empty or oversized one is a store error, not a 422).
AnalysisId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
MAX_ANALYSES = 100
MAX_LABEL_MAP = 200


class PromoteBody(RequestModel):
    """Which predictions to promote: the given analyses, or every completed analysis of a model (and
    version) of the job's images; one of `analysis_ids` and `model`, not both."""

    analysis_ids: list[AnalysisId] | None = Field(default=None, min_length=1, max_length=MAX_ANALYSES)
    # Validated after `analysis_ids` (field order), so its validator sees whether that was given.
    model: ModelName | None = Field(default=None, validate_default=True,
                                    description="a model name; with it, every completed analysis of that model")
    model_version: ModelVersion | None = Field(default=None, description="with `model` only: that version's")
    min_confidence: float = Field(default=0, ge=0, le=1, allow_inf_nan=False,
                                  description="predictions below this confidence are skipped")
    label_map: dict[ClassName, LabelName] = Field(default_factory=dict, max_length=MAX_LABEL_MAP,
                                                  description="class name → a label of the project's label "
                                                              "set; unmapped classes keep their name if it "
                                                              "is a label")

    @field_validator("model")
    @classmethod
    def _one_selection(cls, model: str | None, info: ValidationInfo) -> str | None:
        given = info.data.get("analysis_ids") is not None
        if model is not None and given:
            raise ValueError("give analysis_ids or model, not both")
        if model is None and not given and "analysis_ids" in info.data:
            raise ValueError("give analysis_ids or model (one of them)")
        return model

    @field_validator("model_version")
    @classmethod
    def _version_of_a_model(cls, version: str | None, info: ValidationInfo) -> str | None:
        if version is not None and info.data.get("model") is None:
            raise ValueError("model_version selects a version of `model`; give model too")
        return version


class PromotionTotals(ResponseModel):
    images: int = Field(description="images whose annotation set was written")
    promoted: int = Field(description="annotations added, as drafts")
    already_present: int = Field(description="predictions whose annotation is there already (left as it is)")
    below_confidence: int
    unmapped: dict[str, int] = Field(description="class name → predictions skipped: no project label for it")
    not_promotable: dict[str, int] = Field(description="prediction type → predictions skipped: keypoints and "
                                                       "heatmaps have no annotation type")
    captions: "CaptionTotals" = Field(description="caption predictions: the most confident per image becomes its "
                                                  "caption, unless a person wrote one")


class CaptionTotals(ResponseModel):
    written: int = Field(description="images whose caption is now a promoted prediction")
    already_present: int = Field(description="images whose caption is that prediction already")
    kept_by_person: int = Field(description="images with a caption a person wrote: left as it is")
    not_allowed: int = Field(description="your global role may not caption images: none written")


PromotionTotals.model_rebuild()


class PromotedImage(ResponseModel):
    image_id: str
    annotation_ids: list[str] = Field(description="the annotations added (`pred-<prediction id>`)")
    rev: int = Field(description="the annotation set's revision after the write")


class PromotionOut(ResponseModel):
    job_id: str
    analysis_ids: list[str] = Field(description="the completed analyses whose predictions were taken")
    totals: PromotionTotals
    images: list[PromotedImage] = Field(description="the images written, in job order")
