
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from chalicelib.schemas.base import RequestModel, ResponseModel

CommentText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Mentions = Annotated[list[UserId], Field(max_length=50, description=(
    "user ids of project members this comment mentions (each is told once, in GET /api/v1/me/mentions); "
    "someone not a member is refused with 422"))]


class CommentBody(RequestModel):
    text: CommentText = Field(description="1 to 5,000 characters")
    parent_id: str | None = Field(default=None, min_length=1, max_length=100,
                                  description="the comment this one answers, in the same thread (any depth)")
    mentions: Mentions = Field(default_factory=list)


class CommentPatch(RequestModel):
    text: CommentText | None = None
    mentions: Mentions | None = Field(default=None, description="replaces the list; users new to it are told")

    @model_validator(mode="after")
    def _something(self) -> "CommentPatch":
        if self.text is None and self.mentions is None:
            raise ValueError("give text, mentions or both")
        return self


class CommentQuery(RequestModel):
    page_size: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=2000, description="next_cursor of the previous page")


class CommentOut(ResponseModel):
    id: str
    project_id: str
    image_id: str | None = Field(description="None for a comment on the project itself")
    parent_id: str | None = Field(description="the comment this one answers")
    text: str | None = Field(description="None once deleted")
    mentions: list[str]
    author_id: str
    created_at: datetime
    edited_at: datetime | None
    edited_by: str | None = Field(description="who edited last: the author, or a moderator")
    deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None


class MentionOut(ResponseModel):
    id: str
    project_id: str
    image_id: str | None
    comment_id: str
    mentioned_by: str | None
    mentioned_at: datetime
    comment: CommentOut = Field(description="the comment as it is now")
