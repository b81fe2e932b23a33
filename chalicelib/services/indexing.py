"""Registration and reindexing as operations: synchronous when small, a state machine when not.

The `index` state machine runs plan → Map(index chunk) → sweep → finish, each step one of the
functions below. Steps only pass S3 pointers (chunk numbers) between them: the key lists and the
per-chunk results live under `operations/<id>/` in the cache bucket. Every step can run again
without double counting (chunk progress is recorded once per chunk number).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.config import Settings
from chalicelib.errors import ForbiddenError, NotFoundError
from chalicelib.services import paths
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.registry import REGISTER, REINDEX, IndexResult, Listed, RegistryService
from chalicelib.services.share import Selection, ShareService
from chalicelib.store import workflows
from chalicelib.ids import new_id
from chalicelib.store.images import Image
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import Operation, OperationRepository

CHUNK = 500
INLINE_RESULT_ENTRIES = 1000
# Operations that register a selection, then hand it to a finisher (e.g. task creation).
Finisher = Callable[[Operation, list[str], list[dict[str, str]]], dict[str, Any]]


@dataclass(frozen=True)
class Registration:
    """A registration answered now (`result`) or accepted for the background (`operation`)."""

    result: IndexResult | None = None
    operation: Operation | None = None


def _folder(operation_id: str) -> str:
    return f"operations/{operation_id}"


def _image_summary(image: Image) -> dict[str, Any]:
    return {"id": image.id, "file_path": image.file_path, "status": image.status,
            "width": image.width, "height": image.height}


class IndexingService:
    def __init__(self, settings: Settings, registry: RegistryService, share: ShareService,
                 operations: OperationRepository, share_bucket: Bucket, cache: Bucket,
                 activity: ActivityService, finishers: dict[str, Finisher] | None = None,
                 abandoners: dict[str, Callable[[Operation], None]] | None = None) -> None:
        self._finishers = finishers or {}
        self._abandoners = abandoners or {}
        self._settings = settings
        self._activity = activity
        self._registry = registry
        self._share = share
        self._operations = operations
        self._bucket = share_bucket
        self._cache = cache

    # API side -----------------------------------------------------------------------------------

    def register(self, actor: Identity, file_paths: list[str]) -> Registration:
        """Register paths (folders expand recursively); small selections are done before returning."""
        limit = self._settings.register_sync_limit
        selection = self._share.expand(file_paths, recursive=True, max_keys=limit, named_files=True)
        if selection.complete and len(selection.keys) <= limit:
            result = self._registry.index((Listed(key) for key in selection.keys), REGISTER, actor.sub)
            if result.registered or result.refreshed:
                self._activity.record(actor, "shared_images", "register", "registered", details=result.counts())
            return Registration(result=result)
        params = {"paths": file_paths[:100], "path_count": len(file_paths)}
        return Registration(operation=self.start_selection(actor, REGISTER, params, selection))

    def start_selection(self, actor: Identity, kind: str, params: dict[str, Any], selection: Selection) -> Operation:
        """Run the `index` state machine over a selection: register what is unregistered, then
        hand the whole selection to the finisher of `kind` (if any)."""
        operation = self._operations.create(new_id(), kind, params, actor.sub)
        self._cache.put_json(f"{_folder(operation.id)}/selection.json",
                             {"keys": selection.keys, "pending": selection.pending})
        return self._start(operation)

    def reindex(self, actor: Identity, prefix: str) -> Operation:
        if not actor.is_admin:
            raise ForbiddenError("Reindexing is for administrators")
        prefix = paths.check(prefix) if prefix else ""
        operation = self._operations.create(new_id(), REINDEX, {"prefix": prefix}, actor.sub)
        self._activity.record(actor, "operation", operation.id, "reindex_started", details={"prefix": prefix})
        return self._start(operation)

    def get(self, actor: Identity, operation_id: str) -> tuple[Operation, str | None]:
        """The operation and, when its full result is in S3, a presigned URL to it."""
        operation = self._operations.get(operation_id)
        if not actor.is_admin and operation.created_by != actor.sub:
            raise NotFoundError(f"Operation '{operation_id}' not found")
        url = None
        if operation.result_key:
            url = self._cache.presign_get(operation.result_key, self._settings.presign_ttl_seconds)
        return operation, url

    def _start(self, operation: Operation) -> Operation:
        workflows.start(self._settings.index_state_machine, f"index-{operation.id}", {"operation_id": operation.id})
        return operation

    # State machine steps ----------------------------------------------------------------------

    def plan(self, operation_id: str) -> dict[str, Any]:
        """List what to index and cut it into chunks of 1,000 keys in S3."""
        operation = self._operations.get(operation_id)
        if operation.kind != REINDEX:
            entries = [{"key": key} for key in self._resume_selection(operation_id)]
        else:
            prefix = operation.params.get("prefix", "")
            entries = [{"key": info.key, "etag": info.etag}
                       for page in self._bucket.walk(prefix) for info in page if paths.is_image_key(info.key)]
        chunks = []
        for number, start in enumerate(range(0, len(entries), CHUNK)):
            self._cache.put_json(f"{_folder(operation_id)}/chunks/{number:05d}.json", entries[start : start + CHUNK])
            chunks.append(number)
        self._operations.start(operation_id, len(entries))
        return {"operation_id": operation_id, "chunks": chunks}

    def _resume_selection(self, operation_id: str) -> list[str]:
        document = self._cache.get_json(f"{_folder(operation_id)}/selection.json")
        pending = [(prefix, cursor) for prefix, cursor in document["pending"]]
        return self._share.resume(Selection(keys=document["keys"], pending=pending)).keys

    def index_chunk(self, operation_id: str, chunk: int) -> dict[str, int]:
        operation = self._operations.get(operation_id)
        entries = self._cache.get_json(f"{_folder(operation_id)}/chunks/{chunk:05d}.json")
        mode = REINDEX if operation.kind == REINDEX else REGISTER
        result = self._registry.index((Listed(**entry) for entry in entries), mode, operation.created_by)
        self._cache.put_json(f"{_folder(operation_id)}/results/{chunk:05d}.json", {
            "registered": [_image_summary(image) for image in result.registered],
            "refreshed": [_image_summary(image) for image in result.refreshed],
            "already_existed": result.already_existed,
            "failed": result.failed,
        })
        self._operations.advance(operation_id, chunk, len(entries))
        return result.counts()

    def sweep(self, operation_id: str, chunks: list[int]) -> dict[str, int]:
        """Reindex only: records under the prefix whose object the walk did not find become `missing`."""
        operation = self._operations.get(operation_id)
        if operation.kind != REINDEX:
            return {"marked_missing": 0}
        present = {entry["key"] for chunk in chunks
                   for entry in self._cache.get_json(f"{_folder(operation_id)}/chunks/{chunk:05d}.json")}
        marked = self._registry.mark_gone(operation.params.get("prefix", ""), present)
        self._cache.put_json(f"{_folder(operation_id)}/sweep.json", {"marked_missing": marked})
        return {"marked_missing": marked}

    def finish(self, operation_id: str, chunks: list[int]) -> dict[str, Any]:
        operation = self._operations.get(operation_id)
        merged: dict[str, list] = {"registered": [], "refreshed": [], "already_existed": [], "failed": []}
        for chunk in chunks:
            part = self._cache.get_json(f"{_folder(operation_id)}/results/{chunk:05d}.json")
            for name in merged:
                merged[name].extend(part[name])
        totals = {f"total_{name}": len(items) for name, items in merged.items()}
        if operation.kind == REINDEX:
            totals["total_marked_missing"] = self._cache.get_json(f"{_folder(operation_id)}/sweep.json")["marked_missing"]
        document = {**merged, **totals}
        entries = sum(len(items) for items in merged.values())
        finisher = self._finishers.get(operation.kind)
        if finisher is not None:
            keys = [entry["key"] for chunk in chunks
                    for entry in self._cache.get_json(f"{_folder(operation_id)}/chunks/{chunk:05d}.json")]
            document = finisher(operation, keys, merged["failed"])
            totals = {name: value for name, value in document.items() if not isinstance(value, list)}
            entries = sum(len(value) for value in document.values() if isinstance(value, list))
        result_key = None
        if entries > INLINE_RESULT_ENTRIES:
            result_key = f"{_folder(operation_id)}/result.json"
            self._cache.put_json(result_key, document)
            inline = totals
        else:
            inline = document
        self._operations.finish(operation_id, inline, result_key)
        actor = Identity(sub=operation.created_by, email=None, groups=(), is_admin=False) if operation.created_by else None
        self._activity.record(actor, "operation", operation_id, f"{operation.kind}_completed", details=totals)
        return totals

    def fail(self, operation_id: str, error: dict[str, Any]) -> dict[str, str]:
        """The Catch path: the operation ends `failed` with the step's error in plain words."""
        name, cause = error.get("Error", "Error"), error.get("Cause", "")
        operation = self._operations.get(operation_id)
        abandon = self._abandoners.get(operation.kind)
        if abandon is not None:
            abandon(operation)
        self._operations.fail(operation_id, f"{name}: {_cause_message(cause)}")
        return {"error": name, "cause": cause}


def _cause_message(cause: str) -> str:
    """Lambda errors reach Step Functions as a JSON cause; keep its message."""
    try:
        document = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    return document.get("errorMessage", cause) if isinstance(document, dict) else cause
