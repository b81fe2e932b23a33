"""Threaded comments on a project and on the images of its pool, and the mentions they make.

- Two kinds of thread: the project's own, and one per image of the pool. A comment may answer
  any comment of its thread (`parent_id`, to any depth); a listing is flat, newest first, and
  clients nest by `parent_id`.
- Annotators, editors and owners comment, and edit or delete their own comments; editors and
  owners moderate: they edit or delete anyone's (an edit by someone else keeps `edited_by`).
  Viewers read.
- Deleting leaves a tombstone (text removed, `deleted_at`, `deleted_by`) so the replies keep
  their place in the thread.
- Mentions are a list of user ids given with the text (`mentions`), never parsed from it. Each
  must be a member of the project (422 naming those who are not). A user mentioned for the first
  time in a comment gets one entry in their mentions (ActivityTable `MENTIONS#<user>`); a user an
  edit removes is no longer listed there (the listing shows a mention only while the comment still
  names them and is not deleted); mentioned again, the same entry shows again (no duplicate).
- Every create, edit and delete goes to the project's activity log.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.clock import utcnow
from chalicelib.errors import ForbiddenError, NotFoundError, ValidationError
from chalicelib.ids import new_id
from chalicelib.services import cursors
from chalicelib.services.access import Access, Caller
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.store.comments import Comment, CommentRepository, thread_prefix
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import ProjectRepository

CURSOR_KIND = "comments"
MENTIONS_CURSOR_KIND = "mentions"


def new_comment_id(at: datetime) -> str:
    """Time first, so a thread in key order is a thread in time order."""
    return f"{at:%Y%m%dT%H%M%S%fZ}-{new_id().replace('-', '')[:12]}"


@dataclass(frozen=True)
class Mention:
    """A mention of the caller, with the comment as it is now."""

    id: str
    project_id: str
    image_id: str | None
    comment_id: str
    mentioned_by: str | None
    mentioned_at: datetime
    comment: Comment


class CommentService:
    def __init__(self, access: Access, comments: CommentRepository, pool: PoolRepository,
                 projects: ProjectRepository, activity: ActivityService) -> None:
        self._access = access
        self._comments = comments
        self._pool = pool
        self._projects = projects
        self._activity = activity

    def create(self, actor: Identity, project_id: str, image_id: str | None, text: str,
               parent_id: str | None = None, mentions: list[str] | None = None) -> Comment:
        """A new comment in the project's thread (or the image's), answering `parent_id` if given."""
        self._access.require(actor, project_id, "comments.write")
        self._check_image(project_id, image_id)
        if parent_id is not None:
            parent = self._existing(project_id, image_id, parent_id, "parent_id")
            if parent.deleted:
                raise NotFoundError(f"Comment '{parent_id}' (parent_id) was deleted")
        mentioned = self._members_only(project_id, mentions or [])
        now = utcnow()
        comment = self._comments.create(Comment(
            id=new_comment_id(now), project_id=project_id, image_id=image_id, parent_id=parent_id, text=text,
            author_id=actor.sub, created_at=now, mentions=mentioned, notified=mentioned))
        self._record(actor, comment, "created", f"Commented{self._on(image_id)}")
        self._notify(actor, comment, mentioned)
        return comment

    def list(self, actor: Identity, project_id: str, image_id: str | None, page_size: int,
             cursor: str | None) -> tuple[list[Comment], str | None]:
        """One page of the thread, newest first (deleted comments as tombstones), and the next cursor."""
        self._access.require(actor, project_id, "comments.read")
        prefix = thread_prefix(image_id)
        after = cursors.decode(cursor, CURSOR_KIND, lambda position: _within(position, prefix)) if cursor else None
        self._check_image(project_id, image_id)
        comments, last = self._comments.page(project_id, image_id, page_size, after)
        return comments, cursors.encode(CURSOR_KIND, last) if last else None

    def edit(self, actor: Identity, project_id: str, image_id: str | None, comment_id: str, text: str | None,
             mentions: list[str] | None) -> Comment:
        """New text and/or mentions (None: unchanged). Users first mentioned now are notified."""
        caller = self._access.require(actor, project_id, "comments.write")
        current = self._live(project_id, image_id, comment_id)
        self._may_change(caller, current)
        mentioned = current.mentions if mentions is None else self._members_only(project_id, mentions)
        fresh = [user for user in mentioned if user not in current.notified]
        changed = replace(current, text=current.text if text is None else text, mentions=mentioned,
                          notified=current.notified + fresh, edited_at=utcnow(), edited_by=actor.sub)
        self._comments.replace(changed, current)
        removed = [user for user in current.mentions if user not in mentioned]
        self._record(actor, changed, "edited", f"Edited a comment{self._on(image_id)}",
                     {"mentions_added": [u for u in mentioned if u not in current.mentions],
                      "mentions_removed": removed})
        self._notify(actor, changed, fresh)
        return changed

    def delete(self, actor: Identity, project_id: str, image_id: str | None, comment_id: str) -> Comment:
        """Leave a tombstone: the text and mentions go, the comment's place in the thread stays."""
        caller = self._access.require(actor, project_id, "comments.write")
        current = self._live(project_id, image_id, comment_id)
        self._may_change(caller, current)
        gone = replace(current, text=None, mentions=[], deleted_at=utcnow(), deleted_by=actor.sub)
        self._comments.replace(gone, current)
        self._record(actor, gone, "deleted", f"Deleted a comment{self._on(image_id)}"
                     + ("" if current.author_id == actor.sub else f" by {current.author_id}"))
        return gone

    def mentions(self, actor: Identity, page_size: int, cursor: str | None) -> tuple[list[Mention], str | None]:
        """The caller's mentions, newest first: each with the comment as it is now. A mention is
        left out once an edit removed it, the comment was deleted (or went with its project), or the
        caller is no longer a member there; so a page may hold fewer than `page_size`."""
        after = cursors.decode(cursor, MENTIONS_CURSOR_KIND, cursors.text) if cursor else None
        entries, last = self._activity.mentions(actor.sub, page_size, after)
        member_of = None if actor.is_admin else {m.project_id for m in self._projects.memberships(actor.sub)}
        wanted = [entry for entry in entries if member_of is None or entry.project_id in member_of]
        found = self._comments.find((entry.project_id, entry.details.get("image_id"), entry.entity_id)
                                    for entry in wanted)
        mentions = []
        for entry in wanted:
            comment = found.get(entry.entity_id)
            if comment is None or comment.deleted or actor.sub not in comment.mentions:
                continue
            mentions.append(Mention(id=entry.id, project_id=entry.project_id, image_id=comment.image_id,
                                    comment_id=comment.id, mentioned_by=entry.actor, mentioned_at=entry.created_at,
                                    comment=comment))
        return mentions, cursors.encode(MENTIONS_CURSOR_KIND, last) if last else None

    # Helpers -------------------------------------------------------------------------------------

    def _check_image(self, project_id: str, image_id: str | None) -> None:
        if image_id is not None and not self._pool.present(project_id, [image_id]):
            raise NotFoundError(f"Image '{image_id}' is not in this project's pool")

    def _existing(self, project_id: str, image_id: str | None, comment_id: str, field: str | None = None) -> Comment:
        try:
            return self._comments.get(project_id, image_id, comment_id)
        except NotFoundError:
            where = f" in the thread of image '{image_id}'" if image_id else " in the project's thread"
            named = f" ({field})" if field else ""
            raise NotFoundError(f"Comment '{comment_id}'{named} not found{where}") from None

    def _live(self, project_id: str, image_id: str | None, comment_id: str) -> Comment:
        comment = self._existing(project_id, image_id, comment_id)
        if comment.deleted:
            raise NotFoundError(f"Comment '{comment_id}' was deleted")
        return comment

    @staticmethod
    def _may_change(caller: Caller, comment: Comment) -> None:
        if comment.author_id != caller.identity.sub and not caller.may("comments.moderate"):
            raise ForbiddenError(f"Your role '{caller.role}' allows changing your own comments only, "
                                 f"not those of {comment.author_id}")

    def _members_only(self, project_id: str, mentions: list[str]) -> list[str]:
        wanted = list(dict.fromkeys(mentions))
        if not wanted:
            return []
        members = {member.user_id for member in self._projects.members(project_id)}
        outsiders = [user for user in wanted if user not in members]
        if outsiders:
            raise ValidationError(f"Only members of the project can be mentioned: {', '.join(outsiders)}",
                                  [{"field": "mentions", "location": "body", "message": f"not a member: {user}",
                                    "type": "value_error"} for user in outsiders])
        return wanted

    @staticmethod
    def _on(image_id: str | None) -> str:
        return f" on image {image_id}" if image_id else ""

    def _record(self, actor: Identity, comment: Comment, action: str, summary: str,
                extra: dict | None = None) -> None:
        details = {"image_id": comment.image_id, "parent_id": comment.parent_id, "author_id": comment.author_id,
                   "mentions": list(comment.mentions), **(extra or {})}
        self._activity.record(actor, "comment", comment.id, action, project_id=comment.project_id,
                              summary=summary, details=details)

    def _notify(self, actor: Identity, comment: Comment, users: list[str]) -> None:
        for user in users:
            self._activity.mention(actor, user, comment.project_id, comment.id,
                                   {"image_id": comment.image_id, "parent_id": comment.parent_id})


def _within(position: object, prefix: str) -> str:
    """A cursor of a thread stays in its thread."""
    sort_key = cursors.text(position)
    if not sort_key.startswith(prefix):
        raise ValueError("a cursor of another thread")
    return sort_key
