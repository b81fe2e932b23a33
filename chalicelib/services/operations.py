"""Long-running operations: started on the `index` state machine, polled by whoever started them.

An operation's working files (its selection, chunks, per-chunk results and a large result) live
under `operations/<id>/` in the cache bucket; the steps that do the work are in `indexing`.
"""
from __future__ import annotations

import json

from typing import TYPE_CHECKING, Any, Callable

from chalicelib.config import Settings
from chalicelib.errors import NotFoundError
from chalicelib.ids import new_id
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.share import Selection
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import Operation, OperationRepository

if TYPE_CHECKING:
    from chalicelib.services.access import Access

# Starts a Step Functions execution: (state machine ARN, execution name, input) -> execution ARN.
WorkflowStarter = Callable[[str, str, dict], str]


def folder(operation_id: str) -> str:
    return f"operations/{operation_id}"


class OperationService:
    def __init__(self, settings: Settings, operations: OperationRepository, cache: Bucket,
                 start_workflow: WorkflowStarter, activity: ActivityService, access: "Access") -> None:
        self._settings = settings
        self._operations = operations
        self._cache = cache
        self._start_workflow = start_workflow
        self._activity = activity
        self._access = access

    def start(self, actor: Identity, kind: str, params: dict[str, Any], selection: Selection | None = None) -> Operation:
        """Record an operation of `kind` and run the `index` state machine on it; a `selection`
        (share keys, plus folders still to walk) is what the machine registers."""
        operation = self._operations.create(new_id(), kind, params, actor.sub)
        if selection is not None:
            self._cache.put_json(f"{folder(operation.id)}/selection.json",
                                 {"keys": selection.keys, "pending": selection.pending})
        self._start_workflow(self._settings.index_state_machine, f"index-{operation.id}",
                             {"operation_id": operation.id})
        return operation

    def get(self, actor: Identity, operation_id: str) -> tuple[Operation, str | None]:
        """The operation and, when its full result is in S3, a presigned URL to it."""
        operation = self._operations.get(operation_id)
        if not self._access.may_global(actor, "operations.read", owner=operation.created_by):
            raise NotFoundError(f"Operation '{operation_id}' not found")
        url = None
        if operation.result_key:
            url = self._cache.presign_get(operation.result_key, self._settings.presign_ttl_seconds,
                                          disposition="inline", content_type="application/json")
        return operation, url


def caught_message(error: dict[str, Any], default: str) -> str:
    """The message of a Step Functions error caught from a Lambda (its Cause is the Lambda's error
    as JSON; a timeout's or a service error's is text), for a failure step to record."""
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorMessage"):
        return str(parsed["errorMessage"])
    return cause or error.get("Error") or default
