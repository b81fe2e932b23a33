"""What an export is asked to be: mode, format, the frozen filter and the options.

The request (schemas/exports.py `ExportBody`) is validated once, at the API edge, with the rules
here (`format_problem`, `mapping_problem`, the options' own validators) and becomes an `ExportSpec`
without a second validation; an export record stores the spec's filter and options and the steps
rebuild it with `ExportSpec.model_validate` (a stored record, not a request).
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chalicelib.services.filters import ImageFilter
from chalicelib.services.split_leaks import DEFAULT_DISTANCE, MAX_DISTANCE

Mode = Literal["classification", "detection", "segmentation", "captions"]
Format = Literal["coco_json", "yolo", "manifest_csv", "image_folder", "url_manifest", "image_text"]
FORMATS: dict[str, tuple[str, ...]] = {
    "classification": ("manifest_csv", "image_folder", "url_manifest"),
    "detection": ("coco_json", "yolo", "url_manifest"),
    "segmentation": ("coco_json", "url_manifest"),
    "captions": ("image_text",),
}
FORMAT_NAMES = {"coco_json": "COCO JSON", "yolo": "YOLO", "manifest_csv": "CSV", "image_folder": "ImageFolder",
                "url_manifest": "URL manifest", "image_text": "Image-text pairs"}


class ClassMapping(BaseModel):
    """Where a classification export's classes come from.

    categorized: the tags of one tag category are the classes (class name = tag name);
    free_form: each class is a list of tags (an image is in the class if it has one of them);
    labels: the image-level `classification` annotations of the project's jobs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    kind: Literal["categorized", "free_form", "labels"]
    category: str | None = Field(default=None, min_length=1, max_length=100)
    classes: dict[str, list[str]] | None = Field(default=None, description="class name → tag ids (free_form)")

    @model_validator(mode="after")
    def _complete(self) -> "ClassMapping":
        if self.kind == "categorized" and not self.category:
            raise ValueError("a categorized class mapping needs `category`")
        if self.kind == "free_form":
            if not self.classes or any(not name.strip() or not tags for name, tags in self.classes.items()):
                raise ValueError("a free_form class mapping needs `classes`: class name → a non-empty tag id list")
        if self.kind != "free_form" and self.classes is not None:
            raise ValueError(f"a {self.kind} class mapping takes no `classes`")
        return self


class ExportOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    labels: list[str] | None = Field(default=None, max_length=500, description="only annotations with these labels")
    version_mode: Literal["latest", "job_version", "timestamp"] = "latest"
    job_versions: dict[str, int] | None = Field(
        default=None, description="job_version mode: job id → version number; other jobs use their newest version")
    timestamp: datetime | None = Field(default=None, description="timestamp mode: annotations as they were then")
    include_images: bool = Field(default=False, description="copy the image files into the artifact")
    raw_images: bool = Field(default=False, description="with images: the stored bytes as they are, EXIF "
                                                        "orientation flag included (default: displayed-frame pixels)")
    bbox_from_polygons: bool = Field(default=False, description="detection: polygons also exported as boxes")
    include_bboxes: bool = Field(default=True, description="segmentation: also export box annotations")
    bboxes_as_polygons: bool = Field(default=False, description="segmentation: boxes exported as 4-point polygons")
    class_mapping: ClassMapping | None = Field(default=None, description="classification: where classes come from")
    url_expires_in: int = Field(default=3600, ge=60, le=604_800, description="url_manifest: URL lifetime, seconds")
    exclude_leaks: bool = Field(default=False, description="leave out the later-split copy of every exact or near "
                                                           "pair in different splits (counted in `excluded`)")
    leak_max_distance: int = Field(default=DEFAULT_DISTANCE, ge=0, le=MAX_DISTANCE,
                                   description="near copies: perceptual-hash bits that may differ")

    @model_validator(mode="after")
    def _modes(self) -> "ExportOptions":
        if self.version_mode == "timestamp" and self.timestamp is None:
            raise ValueError("version_mode timestamp needs `timestamp`")
        if self.version_mode != "timestamp" and self.timestamp is not None:
            raise ValueError("`timestamp` is only for version_mode timestamp")
        if self.version_mode != "job_version" and self.job_versions:
            raise ValueError("`job_versions` is only for version_mode job_version")
        if self.job_versions and any(number < 1 for number in self.job_versions.values()):
            raise ValueError("job version numbers start at 1")
        return self


class ExportSpec(BaseModel):
    """A resolved export request: a filter object (a saved filter is resolved before)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    export_mode: Mode
    output_format: str
    filter: ImageFilter = Field(default_factory=ImageFilter)
    options: ExportOptions = Field(default_factory=ExportOptions)

    @model_validator(mode="after")
    def _consistent(self) -> "ExportSpec":
        problem = format_problem(self.export_mode, self.output_format) or mapping_problem(self.export_mode,
                                                                                           self.options)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def with_images(self) -> bool:
        from chalicelib.services.export_formats import FORMAT_WRITERS

        return self.options.include_images or FORMAT_WRITERS[self.output_format].needs_images

    @property
    def split_based(self) -> bool:
        from chalicelib.services.export_formats import FORMAT_WRITERS

        return FORMAT_WRITERS[self.output_format].split_based


def format_problem(mode: str, output_format: str) -> str | None:
    """Why `output_format` cannot serve `mode` exports, or None."""
    allowed = FORMATS[mode]
    if output_format not in allowed:
        return f"output_format {output_format!r} is not one of {', '.join(allowed)} for {mode} exports"
    return None


def mapping_problem(mode: str, options: ExportOptions) -> str | None:
    """Why `options` do not suit `mode` exports (a class mapping is for classification only), or None."""
    if mode == "classification" and options.class_mapping is None:
        return "classification exports need options.class_mapping"
    if mode != "classification" and options.class_mapping is not None:
        return "options.class_mapping is only for classification exports"
    return None


def default_format(mode: str) -> str:
    return FORMATS[mode][0]
