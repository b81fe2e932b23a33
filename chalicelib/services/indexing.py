"""Registration and reindexing as operations: synchronous when small, a state machine when not.

The `index` state machine runs plan → Map(index chunk) → sweep → finish, each step one of the
functions below. Steps only pass S3 pointers (chunk numbers) between them: the key lists and the
per-chunk results live under `operations/<id>/` in the cache bucket. Every step can run again
without double counting (chunk progress is recorded once per chunk number).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from chalicelib.config import Settings
from chalicelib.services import paths
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.operations import OperationService, folder
from chalicelib.services.registry import REGISTER, REINDEX, IndexResult, Listed, RegistryService
from chalicelib.services.share import Selection, ShareService
from chalicelib.store.images import Image
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import Operation, OperationRepository

CHUNK = 500
INLINE_RESULT_ENTRIES = 1000


class OperationFinisher(Protocol):
    """What an operation that registers a selection hands it to when done (e.g. task creation)."""

    def complete(self, operation: Operation, keys: list[str], failed: list[dict[str, str]]) -> dict[str, Any]: ...

    def abandon(self, operation: Operation) -> None: ...


@dataclass(frozen=True)
class Registration:
    """A registration answered now (`result`) or accepted for the background (`operation`)."""

    result: IndexResult | None = None
    operation: Operation | None = None


def _image_summary(image: Image) -> dict[str, Any]:
    return {"id": image.id, "file_path": image.file_path, "status": image.status,
            "width": image.width, "height": image.height}


class IndexingService:
    """Registration and reindexing: answered at once when small, else the `index` machine's steps."""

    def __init__(self, settings: Settings, registry: RegistryService, share: ShareService,
                 operations: OperationService, records: OperationRepository, share_bucket: Bucket, cache: Bucket,
                 activity: ActivityService, access: Access,
                 finishers: Mapping[str, OperationFinisher] | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._share = share
        self._operations = operations
        self._records = records
        self._bucket = share_bucket
        self._cache = cache
        self._activity = activity
        self._access = access
        self._finishers = finishers or {}

    # API side -----------------------------------------------------------------------------------

    def register(self, actor: Identity, file_paths: list[str]) -> Registration:
        """Register paths (folders expand recursively); small selections are done before returning.

        The whole share (a '' path) and selections of more than `register_user_limit` keys touch
        everyone's images at once: they are `images.register_all`, an administrator's action.
        """
        self._access.require_global(actor, "images.register")
        if any(not path.strip("/") for path in file_paths):
            self._access.require_global(actor, "images.register_all", what="registering the whole share")
        limit = self._settings.register_sync_limit
        cap = None if self._access.may_global(actor, "images.register_all") else self._settings.register_user_limit
        selection = self._share.expand(file_paths, recursive=True, max_keys=max(limit, cap or 0), named_files=True)
        if cap is not None and (not selection.complete or len(selection.keys) > cap):
            self._access.require_global(actor, "images.register_all",
                                        what=f"registering more than {cap} images in one request")
        if selection.complete and len(selection.keys) <= limit:
            result = self._registry.index((Listed(key) for key in selection.keys), REGISTER, actor.sub)
            if result.registered or result.refreshed:
                self._activity.record(actor, "shared_images", "register", "registered", details=result.counts())
            return Registration(result=result)
        params = {"paths": file_paths[:100], "path_count": len(file_paths)}
        return Registration(operation=self._operations.start(actor, REGISTER, params, selection))

    def reindex(self, actor: Identity, prefix: str) -> Operation:
        self._access.require_global(actor, "images.reindex", what="reindexing")
        prefix = paths.check(prefix) if prefix else ""
        operation = self._operations.start(actor, REINDEX, {"prefix": prefix})
        self._activity.record(actor, "operation", operation.id, "reindex_started", details={"prefix": prefix})
        return operation

    # State machine steps ----------------------------------------------------------------------

    def plan(self, operation_id: str) -> dict[str, Any]:
        """List what to index and cut it into chunks of 1,000 keys in S3."""
        operation = self._records.get(operation_id)
        if operation.kind != REINDEX:
            entries = [{"key": key} for key in self._resume_selection(operation_id)]
        else:
            prefix = operation.params.get("prefix", "")
            entries = [{"key": info.key, "etag": info.etag}
                       for page in self._bucket.walk(prefix) for info in page if paths.is_image_key(info.key)]
        chunks = []
        for number, start in enumerate(range(0, len(entries), CHUNK)):
            self._cache.put_json(f"{folder(operation_id)}/chunks/{number:05d}.json", entries[start : start + CHUNK])
            chunks.append(number)
        self._records.start(operation_id, len(entries))
        return {"operation_id": operation_id, "chunks": chunks}

    def _resume_selection(self, operation_id: str) -> list[str]:
        document = self._cache.get_json(f"{folder(operation_id)}/selection.json")
        pending = [(prefix, cursor) for prefix, cursor in document["pending"]]
        return self._share.resume(Selection(keys=document["keys"], pending=pending)).keys

    def index_chunk(self, operation_id: str, chunk: int) -> dict[str, int]:
        operation = self._records.get(operation_id)
        entries = self._cache.get_json(f"{folder(operation_id)}/chunks/{chunk:05d}.json")
        results = f"{folder(operation_id)}/results/{chunk:05d}.json"
        if self._cache.exists(results):
            # A retry of a chunk whose answer was lost: its first attempt's result stands (indexing
            # again would count what that attempt registered as already there).
            done = self._cache.get_json(results)
            self._records.advance(operation_id, chunk, len(entries))
            return {name: len(done[name]) for name in ("registered", "refreshed", "already_existed", "failed")}
        mode = REINDEX if operation.kind == REINDEX else REGISTER
        result = self._registry.index((Listed(**entry) for entry in entries), mode, operation.created_by)
        self._cache.put_json(results, {
            "registered": [_image_summary(image) for image in result.registered],
            "refreshed": [_image_summary(image) for image in result.refreshed],
            "already_existed": result.already_existed,
            "failed": result.failed,
        })
        self._records.advance(operation_id, chunk, len(entries))
        return result.counts()

    def sweep(self, operation_id: str, chunks: list[int]) -> dict[str, int]:
        """Reindex only: records under the prefix whose object the walk did not find become `missing`."""
        operation = self._records.get(operation_id)
        if operation.kind != REINDEX:
            return {"marked_missing": 0}
        swept = f"{folder(operation_id)}/sweep.json"
        if self._cache.exists(swept):  # a retry whose first attempt marked them: that count stands
            return self._cache.get_json(swept)
        present = {entry["key"] for chunk in chunks
                   for entry in self._cache.get_json(f"{folder(operation_id)}/chunks/{chunk:05d}.json")}
        marked = self._registry.mark_gone(operation.params.get("prefix", ""), present)
        self._cache.put_json(swept, {"marked_missing": marked})
        return {"marked_missing": marked}

    def finish(self, operation_id: str, chunks: list[int]) -> dict[str, Any]:
        operation = self._records.get(operation_id)
        merged: dict[str, list] = {"registered": [], "refreshed": [], "already_existed": [], "failed": []}
        for chunk in chunks:
            part = self._cache.get_json(f"{folder(operation_id)}/results/{chunk:05d}.json")
            for name in merged:
                merged[name].extend(part[name])
        totals = {f"total_{name}": len(items) for name, items in merged.items()}
        if operation.kind == REINDEX:
            totals["total_marked_missing"] = self._cache.get_json(f"{folder(operation_id)}/sweep.json")["marked_missing"]
        document = {**merged, **totals}
        entries = sum(len(items) for items in merged.values())
        finisher = self._finishers.get(operation.kind)
        if finisher is not None:
            keys = [entry["key"] for chunk in chunks
                    for entry in self._cache.get_json(f"{folder(operation_id)}/chunks/{chunk:05d}.json")]
            document = finisher.complete(operation, keys, merged["failed"])
            totals = {name: value for name, value in document.items() if not isinstance(value, list)}
            entries = sum(len(value) for value in document.values() if isinstance(value, list))
        result_key = None
        if entries > INLINE_RESULT_ENTRIES:
            result_key = f"{folder(operation_id)}/result.json"
            self._cache.put_json(result_key, document)
            inline = totals
        else:
            inline = document
        self._records.finish(operation_id, inline, result_key)
        actor = Identity(sub=operation.created_by, email=None, groups=(), is_admin=False) if operation.created_by else None
        self._activity.record(actor, "operation", operation_id, f"{operation.kind}_completed", details=totals)
        return totals

    def fail(self, operation_id: str, error: dict[str, Any]) -> dict[str, str]:
        """The Catch path: the operation ends `failed` with the step's error in plain words."""
        name, cause = error.get("Error", "Error"), error.get("Cause", "")
        operation = self._records.get(operation_id)
        finisher = self._finishers.get(operation.kind)
        if finisher is not None:
            finisher.abandon(operation)
        self._records.fail(operation_id, f"{name}: {_cause_message(cause)}")
        return {"error": name, "cause": cause}


def _cause_message(cause: str) -> str:
    """Lambda errors reach Step Functions as a JSON cause; keep its message."""
    try:
        document = json.loads(cause)
    except (TypeError, ValueError):
        return cause
    return document.get("errorMessage", cause) if isinstance(document, dict) else cause
