"""Comment ids, thread cursors and the metadata merge loop, without the emulator."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from chalicelib.errors import BadRequestError, ConflictError
from chalicelib.services import cursors
from chalicelib.services.access import Access, Caller
from chalicelib.services.activity import ActivityService
from chalicelib.services.comments import CURSOR_KIND, CommentService, new_comment_id
from chalicelib.services.identity import Identity
from chalicelib.services.invitations import InvitationService
from chalicelib.services.projects import ProjectService
from chalicelib.store.comments import CommentRepository, thread_prefix
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import Project, ProjectRepository
from chalicelib.store.users import UserRepository

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def test_comment_ids_sort_as_their_times():
    times = [NOW + timedelta(microseconds=n) for n in (0, 1, 999_999, 1_000_000)] + [NOW + timedelta(days=40)]
    ids = [new_comment_id(at) for at in times]
    assert sorted(ids) == ids and len(set(ids)) == len(ids)


def test_a_thread_cursor_cannot_reach_another_thread():
    access = mock.create_autospec(Access, instance=True)
    pool = mock.create_autospec(PoolRepository, instance=True)
    pool.present.return_value = {"img"}
    repo = mock.create_autospec(CommentRepository, instance=True)
    repo.page.return_value = ([], None)
    service = CommentService(access, repo, pool, mock.create_autospec(ProjectRepository, instance=True),
                             mock.create_autospec(ActivityService, instance=True))
    actor = Identity(sub="alice", groups=())
    own = cursors.encode(CURSOR_KIND, thread_prefix("img") + "x")
    service.list(actor, "p", "img", 10, own)
    assert repo.page.call_args.args == ("p", "img", 10, thread_prefix("img") + "x")
    with pytest.raises(BadRequestError):
        service.list(actor, "p", None, 10, own)


def test_a_metadata_merge_is_tried_again_on_the_new_revision_then_gives_up():
    projects = mock.create_autospec(ProjectRepository, instance=True)
    start = Project(id="p", name="P", description=None, labels=[], created_by="alice", created_at=NOW,
                    updated_at=NOW, metadata={"a": 1}, rev=4)
    access = mock.create_autospec(Access, instance=True)
    access.require.return_value = Caller(Identity(sub="alice", groups=()), start, "owner")
    service = ProjectService(access, projects, mock.create_autospec(UserRepository, instance=True),
                             mock.create_autospec(ActivityService, instance=True),
                             mock.create_autospec(InvitationService, instance=True))
    # Given every conditional write loses to someone else's change
    projects.update.side_effect = ConflictError("changed")
    projects.get.side_effect = lambda _: Project(**{**start.__dict__, "metadata": {"a": 1, "b": 2}, "rev": 5})
    # Then the merge is applied on each new revision read, three times in all, and the 409 stays
    with pytest.raises(ConflictError):
        service.update(Identity(sub="alice", groups=()), "p", {"metadata": {"c": 3}})
    assert [c.kwargs["expected_rev"] for c in projects.update.call_args_list] == [4, 5, 5]
    assert projects.update.call_args_list[-1].args[1] == {"metadata": {"a": 1, "b": 2, "c": 3}}
