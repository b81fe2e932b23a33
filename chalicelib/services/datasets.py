"""Datasets: named collections of uploaded images, and uploads straight to S3.

A dataset's owner and system administrators manage it; other users do not see it (404, as for a
project they are not in). Bytes never pass through the API:
- images go to the share bucket under the dataset's prefix by presigned POSTs (one per file, its
  folders kept), and are registered like any image when they land;
- a ZIP or an annotation file of any size goes to the datasets bucket under `uploads/<dataset>/`
  by S3 multipart upload: the API starts the upload and presigns part URLs, the client PUTs the
  parts (in parallel, again after a failure: a part sent twice keeps the last), then asks the API
  to complete it. `GET …/uploads/parts` tells a client that resumes which parts S3 already has;
  an abandoned upload is aborted by the bucket's lifecycle rule (infra/template.json).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Iterable

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.errors import NotFoundError, ValidationError
from chalicelib.ids import new_id
from chalicelib.services import cursors, paths
from chalicelib.store.datasets import (ACTIVE, DELETED, PURGED, PURGING, Dataset, DatasetRepository, dataset_prefix,
                                       inactive_error)
from chalicelib.store.objects import Bucket

if TYPE_CHECKING:
    from chalicelib.services.activity import ActivityService
    from chalicelib.store.activity import ActivityEntry
    from chalicelib.services.dataset_import import DatasetImportService
    from chalicelib.store.operations import Operation
    from chalicelib.services.access import Access
    from chalicelib.services.identity import Identity
    from chalicelib.services.share import ShareService, Upload

SORTS = {
    "name": lambda d: (d.name.casefold(), d.id),
    "created_at": lambda d: (d.created_at, d.id),
    "size": lambda d: (d.storage_bytes, d.id),
}
MAX_PARTS = 10_000  # S3's limit
PARTS_PER_ANSWER = 100
UPLOAD_CONTENT_TYPES = {".zip": "application/zip", ".json": "application/json", ".yaml": "application/yaml",
                        ".yml": "application/yaml", ".txt": "text/plain", ".names": "text/plain"}


@dataclass(frozen=True)
class PartUpload:
    """A multipart upload the client sends parts of."""

    file_name: str
    key: str
    upload_id: str
    size: int
    part_size: int
    part_count: int
    parts: list[dict[str, Any]]  # [{part_number, url}] for the parts asked for
    expires_at: datetime


def upload_key(dataset_id: str, file_name: str) -> str:
    return f"uploads/{dataset_id}/{file_name}"


class DatasetService:
    def __init__(self, settings: Settings, access: "Access", datasets: DatasetRepository, staging: Bucket,
                 share: "ShareService", importer: "DatasetImportService", activity: "ActivityService") -> None:
        self._settings = settings
        self._importer = importer
        self._activity = activity
        self._access = access
        self._datasets = datasets
        self._staging = staging
        self._share = share

    # The resource ---------------------------------------------------------------------------------

    def create(self, actor: "Identity", name: str, description: str | None) -> Dataset:
        self._access.require_global(actor, "datasets.create", what="creating datasets")
        dataset = self._datasets.create(new_id(), name, description, actor.sub)
        self._activity.audit(actor, dataset.id, "created", summary=f'Created dataset "{name}"',
                             details={"name": name})
        return dataset

    def list(self, actor: "Identity", *, search: str | None, labeled: bool | None, status: str | None, sort: str,
             descending: bool, page: int, page_size: int, state: str = ACTIVE) -> tuple[list[Dataset], int]:
        """The caller's datasets (every dataset for an administrator), filtered, sorted, one page.
        Deleted datasets are left out unless asked for (`state`: deleted is the trash)."""
        found: Iterable[Dataset] = self._datasets.all() if actor.is_admin else self._datasets.of_owner(actor.sub)
        needle = (search or "").casefold()
        states = {ACTIVE: {ACTIVE}, DELETED: {DELETED, PURGING}, PURGED: {PURGED}}.get(state)
        chosen = [d for d in found
                  if needle in d.name.casefold() or needle in (d.description or "").casefold()
                  if (labeled is None or d.labeled == labeled) and (status is None or d.status == status)
                  if states is None or d.state in states]
        chosen.sort(key=SORTS[sort], reverse=descending)
        start = (page - 1) * page_size
        return chosen[start : start + page_size], len(chosen)

    def get(self, actor: "Identity", dataset_id: str) -> Dataset:
        return self._readable(actor, dataset_id)

    def restorable_until(self, dataset: Dataset) -> datetime | None:
        if dataset.state != DELETED or dataset.deleted_at is None:
            return None
        return dataset.deleted_at + timedelta(days=self._settings.dataset_retention_days)

    def deletion_view(self, dataset: Dataset) -> dict[str, Any] | None:
        """The dataset's last deletion, with fresh links to its backup and keys manifest."""
        if not dataset.deletion:
            return None
        shown = {key: value for key, value in dataset.deletion.items() if key not in ("registry", "objects")}
        return {**shown, **deletion_links(self._staging, dataset.deletion, self._settings.presign_ttl_seconds)}

    def update(self, actor: "Identity", dataset_id: str, changes: dict[str, Any]) -> Dataset:
        self._managed(actor, dataset_id)
        return self._datasets.update(dataset_id, changes.get("name"), changes.get("description"),
                                     clear_description="description" in changes and changes["description"] is None)

    # Uploads --------------------------------------------------------------------------------------

    def image_upload_urls(self, actor: "Identity", dataset_id: str, files: list[dict[str, Any]],
                          folder: str | None) -> list["Upload"]:
        """Presigned POSTs of images into the dataset's prefix in the share, folders kept."""
        self._managed(actor, dataset_id)
        base = dataset_prefix(dataset_id) + paths.folder_prefix(folder or "")
        return self._share.upload_urls(actor, files, base)

    def start_upload(self, actor: "Identity", dataset_id: str, file_name: str, size: int,
                     first_parts: int) -> PartUpload:
        """Start a multipart upload of one file into the dataset's staging area."""
        self._managed(actor, dataset_id)
        name, content_type = self._file(file_name)
        if size > self._settings.dataset_upload_max_bytes:
            raise ValidationError(f"size: {size} bytes is over the {self._settings.dataset_upload_max_bytes}-byte "
                                  "limit", [_problem("size", "too large")])
        key = upload_key(dataset_id, name)
        upload_id = self._staging.start_multipart(key, content_type)
        return self._part_urls(name, key, upload_id, size, 1, first_parts)

    def part_urls(self, actor: "Identity", dataset_id: str, file_name: str, upload_id: str, size: int,
                  first: int, count: int) -> PartUpload:
        """More part URLs of an upload (a client that resumes, or one with more than 100 parts)."""
        self._managed(actor, dataset_id)
        name, _ = self._file(file_name)
        key = upload_key(dataset_id, name)
        if self._staging.parts(key, upload_id) is None:
            raise NotFoundError(f"No upload '{upload_id}' of '{name}' in progress for dataset '{dataset_id}'")
        return self._part_urls(name, key, upload_id, size, first, count)

    def received_parts(self, actor: "Identity", dataset_id: str, file_name: str, upload_id: str) -> list[dict]:
        self._managed(actor, dataset_id)
        name, _ = self._file(file_name)
        parts = self._staging.parts(upload_key(dataset_id, name), upload_id)
        if parts is None:
            raise NotFoundError(f"No upload '{upload_id}' of '{name}' in progress for dataset '{dataset_id}'")
        return parts

    def complete_upload(self, actor: "Identity", dataset_id: str, file_name: str, upload_id: str,
                        parts: list[tuple[int, str]]) -> dict[str, Any]:
        self._managed(actor, dataset_id)
        name, _ = self._file(file_name)
        numbers = [number for number, _ in parts]
        if numbers != sorted(set(numbers)):
            raise ValidationError("parts: part numbers must be listed once each, in ascending order",
                                  [_problem("parts", "not ascending or repeated")])
        key = upload_key(dataset_id, name)
        received = self._staging.parts(key, upload_id)
        if received is None:
            raise NotFoundError(f"No upload '{upload_id}' of '{name}' in progress for dataset '{dataset_id}'")
        missing = sorted(set(numbers) - {part["part_number"] for part in received})
        if missing:
            raise ValidationError(f"parts: S3 has not received part(s) {', '.join(map(str, missing[:10]))}",
                                  [_problem("parts", f"part {number} not received") for number in missing[:100]])
        try:
            etag = self._staging.complete_multipart(key, upload_id, parts)
        except ValueError as exc:
            raise ValidationError(f"parts: S3 refused them: {exc}", [_problem("parts", str(exc))]) from exc
        if etag is None:
            raise NotFoundError(f"No upload '{upload_id}' of '{name}' in progress for dataset '{dataset_id}'")
        return {"file_name": name, "key": key, "etag": etag}

    def abort_upload(self, actor: "Identity", dataset_id: str, file_name: str, upload_id: str) -> None:
        self._managed(actor, dataset_id)
        name, _ = self._file(file_name)
        if not self._staging.abort_multipart(upload_key(dataset_id, name), upload_id):
            raise NotFoundError(f"No upload '{upload_id}' of '{name}' in progress for dataset '{dataset_id}'")

    def staged(self, actor: "Identity", dataset_id: str) -> list[dict[str, Any]]:
        """The completed uploads of the dataset that the next import will read."""
        self._readable(actor, dataset_id)
        prefix = upload_key(dataset_id, "")
        return [{"file_name": info.key.removeprefix(prefix), "size": info.size, "etag": info.etag,
                 "uploaded_at": info.last_modified}
                for page in self._staging.walk(prefix) for info in page]

    def remove_staged(self, actor: "Identity", dataset_id: str, file_name: str) -> dict[str, Any]:
        self._managed(actor, dataset_id)
        name, _ = self._file(file_name)
        key = upload_key(dataset_id, name)
        info = self._staging.head(key)
        if info is None:
            raise NotFoundError(f"No completed upload '{name}' in dataset '{dataset_id}'")
        self._staging.delete(key)
        return {"file_name": name, "size": info.size, "etag": info.etag, "uploaded_at": info.last_modified}

    def audit(self, actor: "Identity", dataset_id: str | None, page_size: int,
              cursor: str | None) -> tuple[list["ActivityEntry"], str | None]:
        """A dataset's audit log (None: every dataset's, administrators only), newest first."""
        if dataset_id is None:
            self._access.require_global(actor, "datasets.audit_all", what="reading every dataset's audit log")
        else:
            self._readable(actor, dataset_id)
        after = cursors.decode(cursor, "audit", cursors.text) if cursor else None
        entries, last = self._activity.audit_log(dataset_id, page_size, after)
        return entries, cursors.encode("audit", last) if last else None

    def start_import(self, actor: "Identity", dataset_id: str, chunk_size: int) -> "Operation":
        """Import what the dataset holds (services/dataset_import.py): 202 with the operation."""
        dataset = self._managed(actor, dataset_id)
        return self._importer.start(actor, dataset, chunk_size)

    # Helpers --------------------------------------------------------------------------------------

    def _part_urls(self, name: str, key: str, upload_id: str, size: int, first: int, count: int) -> PartUpload:
        """Presigned PUTs of parts `first`.. (at most `count`, at most 100) of an upload of `size`
        bytes, in parts of the configured size (larger when 10,000 would not hold the file)."""
        part_size = max(self._settings.upload_part_bytes, math.ceil(size / MAX_PARTS / 2**20) * 2**20)
        part_count = max(1, math.ceil(size / part_size))
        ttl = self._settings.upload_url_ttl_seconds
        last = min(part_count, first + min(count, PARTS_PER_ANSWER) - 1)
        urls = [{"part_number": number, "url": self._staging.presign_part(key, upload_id, number, ttl)}
                for number in range(first, last + 1)]
        return PartUpload(file_name=name, key=key, upload_id=upload_id, size=size, part_size=part_size,
                          part_count=part_count, parts=urls, expires_at=utcnow() + timedelta(seconds=ttl))

    @staticmethod
    def _file(file_name: str) -> tuple[str, str]:
        """A staged file's name (one safe path segment) and its content type, from its extension."""
        problem = paths.problem(file_name)
        if problem is None and "/" in file_name:
            problem = "a file name, not a path"
        if problem is not None:
            raise ValidationError(f"file_name: {problem}", [_problem("file_name", problem)])
        extension = ("." + file_name.rsplit(".", 1)[-1].lower()) if "." in file_name else ""
        content_type = UPLOAD_CONTENT_TYPES.get(extension)
        if content_type is None:
            raise ValidationError(
                f"file_name: {file_name!r} is not a ZIP or an annotation file "
                f"({', '.join(sorted(UPLOAD_CONTENT_TYPES))})", [_problem("file_name", "unsupported extension")])
        return file_name, content_type

    def _readable(self, actor: "Identity", dataset_id: str) -> Dataset:
        return readable_dataset(self._access, self._datasets, actor, dataset_id)

    def _managed(self, actor: "Identity", dataset_id: str) -> Dataset:
        dataset = managed_dataset(self._access, self._datasets, actor, dataset_id)
        if dataset.state != ACTIVE:  # a deleted dataset takes no change (409)
            raise inactive_error(dataset)
        return dataset


def readable_dataset(access: "Access", datasets: DatasetRepository, actor: "Identity", dataset_id: str) -> Dataset:
    """The dataset, if the caller may read it; others' datasets stay private (404)."""
    dataset = datasets.get(dataset_id)
    if not access.may_global(actor, "datasets.read", dataset.owner_id):
        raise NotFoundError(f"Dataset '{dataset_id}' not found")
    return dataset


def managed_dataset(access: "Access", datasets: DatasetRepository, actor: "Identity", dataset_id: str) -> Dataset:
    """The dataset, for its owner or an administrator, in any state. A role that manages no dataset
    is told so (403) before anything is read; others' datasets are then 404 to those who may not
    see them."""
    access.require_global(actor, "datasets.manage", actor.sub, what="managing datasets")
    dataset = readable_dataset(access, datasets, actor, dataset_id)
    access.require_global(actor, "datasets.manage", dataset.owner_id, what="managing this dataset")
    return dataset


def deletion_links(documents: Bucket, deletion: dict[str, Any], ttl: int) -> dict[str, str | None]:
    """Fresh presigned links to a deletion's backup and keys manifest (short-lived, never stored)."""
    backup, manifest = deletion.get("backup_key"), deletion.get("manifest_key")
    return {"backup_url": documents.presign_get(backup, ttl) if backup else None,
            "manifest_url": documents.presign_get(manifest, ttl) if manifest else None}


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "location": "body", "message": message, "type": "value_error"}
