"""Comments, items of their project's partition in ProjectsTable (`pk = <project id>`):
`sk = COMMENT#<thread>#<comment id>`, where the thread is `-` for the project's own comments and
the image id for an image's. A comment id starts with its creation time (to the microsecond), so
a thread read backwards is newest first: a thread's page is one Query, a comment one GetItem.
Deleting a project's partition deletes its comments with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store.dynamo import batch_get_tables, conditional, entity, store_errors, table_meta

COMMENT = "COMMENT#"
PROJECT_THREAD = "-"  # no image id is "-"


class CommentItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    image_id = UnicodeAttribute(null=True)
    parent_id = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)  # None once deleted
    mentions = JSONAttribute(null=True)  # user ids the comment mentions now
    notified = JSONAttribute(null=True)  # user ids ever mentioned (each got one mention entry)
    author_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    edited_at = UTCDateTimeAttribute(null=True)
    edited_by = UnicodeAttribute(null=True)
    deleted_at = UTCDateTimeAttribute(null=True)
    deleted_by = UnicodeAttribute(null=True)


@dataclass(frozen=True)
class Comment:
    id: str
    project_id: str
    image_id: str | None
    parent_id: str | None
    text: str | None
    author_id: str
    created_at: datetime
    mentions: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    edited_at: datetime | None = None
    edited_by: str | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def thread_prefix(image_id: str | None) -> str:
    return f"{COMMENT}{image_id or PROJECT_THREAD}#"


def comment_sk(image_id: str | None, comment_id: str) -> str:
    return thread_prefix(image_id) + comment_id


def _to_comment(item: CommentItem) -> Comment:
    return entity(Comment, item, project_id=item.pk)


def _item(comment: Comment) -> CommentItem:
    return CommentItem(pk=comment.project_id, sk=comment_sk(comment.image_id, comment.id), id=comment.id,
                       image_id=comment.image_id, parent_id=comment.parent_id, text=comment.text,
                       mentions=list(comment.mentions), notified=list(comment.notified), author_id=comment.author_id,
                       created_at=comment.created_at, edited_at=comment.edited_at, edited_by=comment.edited_by,
                       deleted_at=comment.deleted_at, deleted_by=comment.deleted_by)


class CommentRepository:
    def create(self, comment: Comment) -> Comment:
        with conditional("saving a comment", ConflictError(f"Comment '{comment.id}' exists already")):
            _item(comment).save(condition=CommentItem.sk.does_not_exist())
        return comment

    def replace(self, comment: Comment, expected: Comment) -> Comment:
        """Write `comment` over `expected` if nobody changed or deleted it meanwhile (409 otherwise)."""
        condition = CommentItem.sk.exists() & CommentItem.deleted_at.does_not_exist()
        if expected.edited_at is None:
            condition &= CommentItem.edited_at.does_not_exist()
        else:
            condition &= CommentItem.edited_at == expected.edited_at
        with conditional("saving a comment", ConflictError(f"Comment '{comment.id}' changed meanwhile; retry")):
            _item(comment).save(condition=condition)
        return comment

    def get(self, project_id: str, image_id: str | None, comment_id: str) -> Comment:
        try:
            with store_errors("reading a comment"):
                return _to_comment(CommentItem.get(project_id, comment_sk(image_id, comment_id), consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Comment '{comment_id}' not found") from exc

    def page(self, project_id: str, image_id: str | None, limit: int,
             after: str | None) -> tuple[list[Comment], str | None]:
        """One page of a thread, newest first, and the sort key to continue after (or None)."""
        start = {"pk": {"S": project_id}, "sk": {"S": after}} if after else None
        with store_errors("listing comments"):
            result = CommentItem.query(project_id, CommentItem.sk.startswith(thread_prefix(image_id)),
                                       scan_index_forward=False, limit=limit, last_evaluated_key=start,
                                       consistent_read=True)
            comments = [_to_comment(item) for item in result]
            last = result.last_evaluated_key
            return comments, last["sk"]["S"] if last else None

    def find(self, keys: Iterable[tuple[str, str | None, str]]) -> dict[str, Comment]:
        """The comments named by (project, image, comment id) that exist, by comment id (one
        BatchGetItem per 100)."""
        wanted = list(dict.fromkeys((project, comment_sk(image, comment)) for project, image, comment in keys))
        found: dict[str, Comment] = {}
        for start in range(0, len(wanted), 100):
            requests = {CommentItem: [{"pk": pk, "sk": sk} for pk, sk in wanted[start:start + 100]]}
            for raw in batch_get_tables("reading comments", requests)[CommentItem]:
                comment = _to_comment(CommentItem.from_raw_data(raw))
                found[comment.id] = comment
        return found
