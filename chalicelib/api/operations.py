"""Long-running operations: poll status and progress; start a reindex or an Explore index rebuild
(administrators)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.operations import ExploreRebuildBody, OperationOut, ReindexBody
from chalicelib.services.container import services

bp = Blueprint(__name__)


def operation_out(operation, result_url: str | None = None) -> OperationOut:
    progress = None
    if operation.total is not None:
        progress = 1.0 if operation.total == 0 else round(min(operation.done / operation.total, 1.0), 4)
    return OperationOut(
        id=operation.id, kind=operation.kind, status=operation.status, total=operation.total, done=operation.done,
        progress=progress, result=operation.result, result_url=result_url, error=operation.error,
        created_by=operation.created_by, created_at=operation.created_at, updated_at=operation.updated_at,
        finished_at=operation.finished_at,
    )


@endpoint(bp, "/api/v1/operations/{operation_id}", response=OperationOut)
def get_operation(operation_id, identity):
    """Status, progress and result of a long-running operation you started."""
    operation, url = services().operations.get(identity, operation_id)
    return ok(operation_out(operation, url), f"Operation {operation.status}")


@endpoint(bp, "/api/v1/admin/reindex", "POST", body=ReindexBody, response=OperationOut, status=202)
def reindex(identity, body: ReindexBody):
    """Walk the share and re-derive missing or stale records; records whose object is gone become missing."""
    operation = services().indexing.reindex(identity, body.prefix)
    return ok(operation_out(operation), "Reindex started", 202)


@endpoint(bp, "/api/v1/admin/explore-index/rebuild", "POST", body=ExploreRebuildBody, response=OperationOut,
          status=202)
def rebuild_explore_index(identity, body: ExploreRebuildBody):
    """Rebuild Explore's index of one project (or all) from DynamoDB, and write its snapshot."""
    operation = services().explore_rebuild.start(identity, body.project_id)
    return ok(operation_out(operation), "Explore index rebuild started", 202)
