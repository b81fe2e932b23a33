"""The process's `Services` as routes see them, with one dependency replaced in one line."""
from __future__ import annotations

import pytest

from chalicelib.services.container import services
from tests.fakes import WorkflowRecorder


@pytest.fixture
def recorder(stack):
    recorder = WorkflowRecorder()
    services().override(start_workflow=recorder)
    yield recorder
    services().reset()


def test_an_export_starts_its_state_machine_through_the_workflow_port(stack, api, recorder):
    # Given a project, and a workflow starter that only records
    project_id = api.post("/api/v1/projects", {"name": "ports"}).json["data"]["id"]

    # When an export is asked for
    created = api.post(f"/api/v1/projects/{project_id}/exports", {"export_mode": "detection"})

    # Then it was handed to the export machine under its deterministic name, and nothing ran it
    assert created.status_code == 202, created.json
    export_id = created.json["data"]["id"]
    assert recorder.started == [(stack.variables["PIXELPOOL_EXPORT_STATE_MACHINE"], f"export-{export_id}",
                                 {"project_id": project_id, "export_id": export_id})]
    assert api.get(f"/api/v1/projects/{project_id}/exports/{export_id}").json["data"]["status"] == "pending"


def test_a_reindex_starts_the_index_machine_through_the_same_port(stack, admin_api, recorder):
    response = admin_api.post("/api/v1/admin/reindex", {"prefix": ""})

    assert response.status_code == 202, response.json
    operation_id = response.json["data"]["id"]
    assert recorder.started == [(stack.variables["PIXELPOOL_INDEX_STATE_MACHINE"], f"index-{operation_id}",
                                 {"operation_id": operation_id})]
