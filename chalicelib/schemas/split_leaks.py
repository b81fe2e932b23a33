from typing import Literal

from pydantic import Field

from chalicelib.schemas.base import PageQuery, ResponseModel
from chalicelib.services.split_leaks import DEFAULT_DISTANCE, MAX_DISTANCE


class SplitLeaksQuery(PageQuery):
    max_distance: int = Field(default=DEFAULT_DISTANCE, ge=0, le=MAX_DISTANCE,
                              description=f"near copies: perceptual-hash bits that may differ, 0 to {MAX_DISTANCE}")


class LeakSideOut(ResponseModel):
    image_id: str
    file_path: str
    split: str


class LeakOut(ResponseModel):
    kind: Literal["same_image", "exact", "near"] = Field(
        description="same_image: one image in two splits; exact: same SHA-256; near: pHash within max_distance")
    distance: int = Field(description="perceptual-hash bits that differ (0 for same_image and exact)")
    earlier: LeakSideOut = Field(description="the copy in the earlier split (train < val < test): kept")
    later: LeakSideOut = Field(description="the copy in the later split: what exclude_leaks leaves out of an export")


class SplitLeaksOut(ResponseModel):
    max_distance: int
    counts: dict[str, int] = Field(description="leaks by kind (same_image, exact, near), over every page")
    leaks: list[LeakOut] = Field(description="this page: same_image, exact, then near by distance, then paths")


class ExportLeaksOut(ResponseModel):
    """The split leaks among the images an export holds, on the split each is exported in."""

    max_distance: int
    counts: dict[str, int]
    total: int
    pairs: list[LeakOut] = Field(description="the first pairs, in the order of GET …/split-leaks")
    dropped: list[LeakSideOut] = Field(description="with exclude_leaks: the later-split copies left out (the "
                                                   "first ones; excluded.copy_in_earlier_split counts them all)")
