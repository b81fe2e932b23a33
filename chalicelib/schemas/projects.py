
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from chalicelib.schemas.base import Name, RequestModel, ResponseModel, ShortName

Role = Literal["owner", "editor", "annotator", "viewer"]
AnnotationType = Literal["bbox", "polygon", "classification", "any"]


class Label(RequestModel):
    name: ShortName
    color: str = Field(default="#3B82F6", pattern=r"^#[0-9A-Fa-f]{6}$", description="#RRGGBB")
    annotation_type: AnnotationType = Field(default="any", description="what this label may annotate")


class ProjectCreate(RequestModel):
    name: Name
    description: str | None = Field(default=None, max_length=2000)
    labels: list[Label] = Field(default_factory=list, max_length=500)


class ProjectPatch(RequestModel):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    labels: list[Label] | None = Field(default=None, max_length=500, description="replaces the label set")
    metadata: dict[str, Any] | None = Field(
        default=None, description="RFC 7396 merge patch into the project's custom metadata: a key set to null "
                                  "is removed; at most 16 KiB once merged")


class LabelOut(ResponseModel):
    name: str
    color: str
    annotation_type: AnnotationType


class ProjectOut(ResponseModel):
    id: str
    name: str
    description: str | None
    labels: list[LabelOut]
    role: Role = Field(description="the caller's role in this project")
    metadata: dict[str, Any] = Field(default_factory=dict, description="custom metadata (PATCH merges into it)")
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class MemberBody(RequestModel):
    """Exactly one of `user_id` and `email`. A user the API has seen becomes a member at once;
    anyone else is invited and joins with this role on their first call."""

    user_id: str | None = Field(default=None, min_length=1, max_length=128, description="the user's `sub`")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$",
                              description="matched, ignoring case, against the verified e-mail of the user's token")
    role: Role

    @model_validator(mode="after")
    def _one_invitee(self) -> "MemberBody":
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id or email")
        return self


class MemberRoleBody(RequestModel):
    role: Role


class MemberOut(ResponseModel):
    user_id: str | None = Field(description="None for an invitation by e-mail")
    email: str | None = Field(default=None, description="the invited e-mail (invitations by e-mail)")
    role: Role
    status: Literal["active", "invited"] = Field(
        description="`invited`: not a member yet (no access) until that user's first call")
    added_by: str | None
    added_at: datetime = Field(description="when they joined, or for an invitation when it was made")


class PoolAddBody(RequestModel):
    shared_image_ids: list[str] = Field(min_length=1, max_length=1000)


class PoolAddOut(ResponseModel):
    added: list[str]
    already_in_pool: list[str]
    unknown: list[str]
    not_ready: list[str] = Field(description="registered but `failed` or `missing`: not added")
    total_added: int
    total_already_in_pool: int
    total_unknown: int
    total_not_ready: int


class ActivityQuery(RequestModel):
    page_size: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=2000, description="next_cursor of the previous page")


class ActivityOut(ResponseModel):
    id: str
    entity_type: str
    entity_id: str
    action: str
    actor: str | None
    summary: str | None
    details: dict[str, Any]
    created_at: datetime


class CursorMeta(ResponseModel):
    page_size: int
    next_cursor: str | None
