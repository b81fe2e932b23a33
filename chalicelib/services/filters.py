"""The one filter model: Explore, saved filters, task creation from a filter and exports use it as is.

It is a pydantic model because the same rules (ranges ordered, ids well formed, unknown fields
refused) must hold wherever a filter comes from: a query string, a saved filter, a request body.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from chalicelib.errors import BadRequestError
from chalicelib.services import paths

Split = Literal["none", "train", "val", "test"]
Mode = Literal["any", "all"]
RANGES = (("min_width", "max_width"), ("min_height", "max_height"), ("min_file_size", "max_file_size"))
IdList = list[str]


# Bounds of a dimension or a size: far above any real one, and within what every store compares
# exactly (2^53: JSON numbers in JavaScript, SQLite's 64-bit integers).
LARGEST = 2**53


class ImageFilter(BaseModel):
    """Which pool images to take. Every condition given must hold (AND); empty means all."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, defer_build=True)

    search: str | None = Field(default=None, max_length=200, description="case-insensitive substring of the filename")
    tag_ids: IdList = Field(default_factory=list, max_length=50, description="include images with these tags")
    tag_mode: Mode = Field(default="any", description="any: at least one of tag_ids; all: every one")
    exclude_tag_ids: IdList = Field(default_factory=list, max_length=50, description="exclude images with these tags")
    exclude_mode: Mode = Field(default="any", description="any: exclude if it has one of them; all: only if all")
    task_id: IdList = Field(default_factory=list, max_length=50, description="in any of these tasks")
    job_id: str | None = Field(default=None, max_length=64, description="in this job")
    is_annotated: bool | None = Field(default=None, description="has at least one annotation in this project")
    split: Split | None = Field(default=None, description="in a task of this split; none: in no split (no task of the image has one)")
    min_width: int | None = Field(default=None, ge=0, le=LARGEST)
    max_width: int | None = Field(default=None, ge=0, le=LARGEST)
    min_height: int | None = Field(default=None, ge=0, le=LARGEST)
    max_height: int | None = Field(default=None, ge=0, le=LARGEST)
    min_file_size: int | None = Field(default=None, ge=0, le=LARGEST, description="bytes")
    max_file_size: int | None = Field(default=None, ge=0, le=LARGEST, description="bytes")
    path_prefix: str | None = Field(default=None, max_length=1024, description="folder or key prefix in the share")
    caption: str | None = Field(default=None, max_length=200, description="case-insensitive substring of the caption")
    has_caption: bool | None = Field(default=None, description="has a caption (true) or none (false)")
    # Predictions of completed ML analyses. Every prediction condition given must hold for one and
    # the same prediction: "yolo_v8 saw a cat with confidence below 0.5".
    prediction_model: str | None = Field(default=None, max_length=100,
                                         description="has a completed ML analysis by this model")
    prediction_model_version: str | None = Field(default=None, max_length=50,
                                                 description="with prediction_model: of this version")
    predicted_class: str | None = Field(default=None, max_length=200,
                                        description="has a prediction of this class (exact name)")
    min_confidence: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False,
                                         description="has a prediction with confidence >= this")
    confidence_below: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False,
                                           description="has a prediction with confidence < this")

    @field_validator("tag_ids", "exclude_tag_ids", "task_id", mode="before")
    @classmethod
    def _listify(cls, value: Any, info: ValidationInfo) -> Any:
        # "a,b" from a query string; a JSON body (validated as JSON) gives a list, as documented.
        if isinstance(value, str) and info.mode == "python":
            return [item for item in value.split(",") if item.strip()]
        return value

    @field_validator("tag_ids", "exclude_tag_ids", "task_id")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not 0 < len(item) <= 64:
                raise ValueError("ids are 1 to 64 characters")
        return list(dict.fromkeys(value))

    @field_validator("search", "path_prefix", "job_id", "caption", "prediction_model", "prediction_model_version",
                     "predicted_class")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("path_prefix")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            paths.check(value.rstrip("/") or value)
        except BadRequestError as exc:
            raise ValueError(exc.message) from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "ImageFilter":
        for low, high in RANGES:
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is greater than {high} ({hi})")
        return self

    # Rules across two fields, checked on the later one so that an error names it.
    @field_validator("prediction_model_version")
    @classmethod
    def _version_of_a_model(cls, version: str | None, info: ValidationInfo) -> str | None:
        # (a prediction_model that failed its own rules is not in `info.data`: that error says it all)
        if version is not None and "prediction_model" in info.data and info.data["prediction_model"] is None:
            raise ValueError("needs prediction_model: it selects a version of that model")
        return version

    @field_validator("confidence_below")
    @classmethod
    def _above_the_minimum(cls, below: float | None, info: ValidationInfo) -> float | None:
        low = info.data.get("min_confidence")
        if below is not None and low is not None and low >= below:
            raise ValueError(f"must be above min_confidence ({low}): no confidence is at least {low} and below {below}")
        return below

    def predicts(self) -> bool:
        """Whether a condition is about one prediction (not only the model of an analysis)."""
        return (self.predicted_class is not None or self.min_confidence is not None
                or self.confidence_below is not None)

    def applied(self) -> dict[str, Any]:
        """The conditions actually set (reported to clients as `filters_applied`)."""
        return self.model_dump(mode="json", exclude_defaults=True)
