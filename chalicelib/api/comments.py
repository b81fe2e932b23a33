"""Threaded comments on a project and on the images of its pool; the caller's mentions."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.comments import CommentBody, CommentOut, CommentPatch, CommentQuery, MentionOut
from chalicelib.schemas.projects import CursorMeta
from chalicelib.services.container import services

bp = Blueprint(__name__)
PROJECT = "/api/v1/projects/{project_id}/comments"
IMAGE = "/api/v1/projects/{project_id}/images/{image_id}/comments"


def _create(project_id, image_id, identity, body: CommentBody):
    comment = services().comments.create(identity, project_id, image_id, body.text, body.parent_id, body.mentions)
    return ok(CommentOut.model_validate(comment), "Comment added", 201)


def _list(project_id, image_id, identity, query: CommentQuery):
    comments, cursor = services().comments.list(identity, project_id, image_id, query.page_size, query.cursor)
    return ok([CommentOut.model_validate(comment) for comment in comments], f"Found {len(comments)} comment(s)",
              meta=CursorMeta(page_size=query.page_size, next_cursor=cursor))


def _edit(project_id, image_id, comment_id, identity, body: CommentPatch):
    comment = services().comments.edit(identity, project_id, image_id, comment_id, body.text, body.mentions)
    return ok(CommentOut.model_validate(comment), "Comment edited")


def _delete(project_id, image_id, comment_id, identity):
    comment = services().comments.delete(identity, project_id, image_id, comment_id)
    return ok(CommentOut.model_validate(comment), "Comment deleted")


@endpoint(bp, PROJECT, "POST", body=CommentBody, response=CommentOut, status=201)
def create_project_comment(project_id, identity, body: CommentBody):
    """Comment on the project, or answer a comment of its thread (owners, editors, annotators)."""
    return _create(project_id, None, identity, body)


@endpoint(bp, PROJECT, query=CommentQuery, response=list[CommentOut])
def list_project_comments(project_id, identity, query: CommentQuery):
    """The project's comments, newest first (flat: nest by parent_id); follow meta.next_cursor."""
    return _list(project_id, None, identity, query)


@endpoint(bp, f"{PROJECT}/{{comment_id}}", "PATCH", body=CommentPatch, response=CommentOut)
def edit_project_comment(project_id, comment_id, identity, body: CommentPatch):
    """Edit your comment's text or mentions (editors and owners: anyone's)."""
    return _edit(project_id, None, comment_id, identity, body)


@endpoint(bp, f"{PROJECT}/{{comment_id}}", "DELETE", response=CommentOut)
def delete_project_comment(project_id, comment_id, identity):
    """Delete your comment (editors and owners: anyone's); a tombstone keeps its replies in place."""
    return _delete(project_id, None, comment_id, identity)


@endpoint(bp, IMAGE, "POST", body=CommentBody, response=CommentOut, status=201)
def create_image_comment(project_id, image_id, identity, body: CommentBody):
    """Comment on an image of the project's pool, or answer a comment of its thread."""
    return _create(project_id, image_id, identity, body)


@endpoint(bp, IMAGE, query=CommentQuery, response=list[CommentOut])
def list_image_comments(project_id, image_id, identity, query: CommentQuery):
    """The image's comments in this project, newest first; follow meta.next_cursor."""
    return _list(project_id, image_id, identity, query)


@endpoint(bp, f"{IMAGE}/{{comment_id}}", "PATCH", body=CommentPatch, response=CommentOut)
def edit_image_comment(project_id, image_id, comment_id, identity, body: CommentPatch):
    """Edit your comment on the image (editors and owners: anyone's)."""
    return _edit(project_id, image_id, comment_id, identity, body)


@endpoint(bp, f"{IMAGE}/{{comment_id}}", "DELETE", response=CommentOut)
def delete_image_comment(project_id, image_id, comment_id, identity):
    """Delete your comment on the image (editors and owners: anyone's)."""
    return _delete(project_id, image_id, comment_id, identity)


@endpoint(bp, "/api/v1/me/mentions", query=CommentQuery, response=list[MentionOut])
def list_my_mentions(identity, query: CommentQuery):
    """Where others mentioned you, newest first, with each comment as it is now; follow meta.next_cursor."""
    mentions, cursor = services().comments.mentions(identity, query.page_size, query.cursor)
    return ok([MentionOut.model_validate(mention) for mention in mentions], f"Found {len(mentions)} mention(s)",
              meta=CursorMeta(page_size=query.page_size, next_cursor=cursor))
