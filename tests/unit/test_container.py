"""`Services`: built once, on first use, with dependencies a test can replace in one line; services
tested alone with small fakes in place of their ports and repositories (no emulator)."""
from __future__ import annotations

from datetime import datetime, timezone
from unittest import mock

import pytest

from chalicelib.config import Settings
from chalicelib.services.access import Access, Caller
from chalicelib.services.activity import ActivityService
from chalicelib.services.container import Services
from chalicelib.services.identity import Identity
from chalicelib.services.invitations import InvitationService
from chalicelib.services.operations import OperationService
from chalicelib.services.projects import ProjectService
from chalicelib.services.share import Selection
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import Operation, OperationRepository
from chalicelib.store.projects import Project, ProjectRepository
from chalicelib.store.users import UserRepository
from tests.fakes import WorkflowRecorder

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
ALICE = Identity(sub="alice", email=None, groups=(), is_admin=False)


def test_a_service_is_built_once_and_shared_by_its_dependents():
    services = Services(Settings(index_state_machine="arn:index"))

    assert services.activity is services.activity
    assert services.operations._activity is services.activity


def test_an_override_replaces_the_dependency_in_every_service_built_after_it():
    services = Services(Settings(index_state_machine="arn:index"))
    before = services.operations
    recorder = WorkflowRecorder()

    services.override(start_workflow=recorder)

    assert services.start_workflow is recorder
    assert services.operations is not before
    assert services.operations._start_workflow is recorder


def test_an_unknown_override_is_refused_by_name():
    with pytest.raises(AttributeError, match="no dependency named start_worfklow"):
        Services().override(start_worfklow=WorkflowRecorder())


def test_reset_forgets_overrides():
    services = Services(start_workflow=WorkflowRecorder())

    services.reset()

    from chalicelib.store import workflows
    assert services.start_workflow is workflows.start


def test_starting_an_operation_records_it_stores_its_selection_and_starts_the_index_machine():
    # Given an operation service whose repository, bucket and workflow starter are fakes
    repository = mock.create_autospec(OperationRepository, instance=True)
    repository.create.side_effect = lambda operation_id, kind, params, created_by: Operation(
        id=operation_id, kind=kind, status="pending", total=None, done=0, params=params, result=None,
        result_key=None, error=None, created_by=created_by, created_at=NOW, updated_at=NOW, finished_at=None)
    cache = mock.create_autospec(Bucket, instance=True)
    recorder = WorkflowRecorder()
    service = OperationService(Settings(index_state_machine="arn:index"), repository, cache, recorder,
                               mock.create_autospec(ActivityService, instance=True),
                               mock.create_autospec(Access, instance=True))

    # When a selection is handed to it
    operation = service.start(ALICE, "register", {"paths": ["a/"]}, Selection(keys=["a/1.jpg"], pending=[]))

    # Then the selection is in S3 under the operation, and the machine runs under a deterministic name
    cache.put_json.assert_called_once_with(f"operations/{operation.id}/selection.json",
                                           {"keys": ["a/1.jpg"], "pending": []})
    assert recorder.started == [("arn:index", f"index-{operation.id}", {"operation_id": operation.id})]
    assert operation.created_by == "alice"


def test_deleting_a_project_asks_every_purger_before_the_partition_goes():
    # Given a project service whose purgers (the owners of tasks and exports) are fakes
    calls: list[str] = []
    project = Project(id="p1", name="P", description=None, labels=[], created_by="alice", created_at=NOW,
                      updated_at=NOW)
    access = mock.create_autospec(Access, instance=True)
    access.require.return_value = Caller(ALICE, project, "owner")
    projects = mock.create_autospec(ProjectRepository, instance=True)
    projects.delete_partition.side_effect = lambda project_id: calls.append(f"partition {project_id}")

    class Purger:
        def __init__(self, name: str) -> None:
            self.name = name

        def purge_project(self, project_id: str) -> None:
            calls.append(f"{self.name} {project_id}")

    service = ProjectService(access, projects, mock.create_autospec(UserRepository, instance=True),
                             mock.create_autospec(ActivityService, instance=True),
                             mock.create_autospec(InvitationService, instance=True),
                             purgers=(Purger("tasks"), Purger("exports")))

    # When the owner deletes it
    service.delete(ALICE, "p1")

    # Then each purger removed its part first, and only then the project's partition went
    assert calls == ["tasks p1", "exports p1", "partition p1"]
    access.require.assert_called_once_with(ALICE, "p1", "project.delete")
