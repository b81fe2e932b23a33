"""Datasets and their per-owner name guards, in one table (`pk`).

Items: the dataset (`pk = DATASET#<id>`; in the `by_owner` index under its owner and in the sparse
`by_kind` index under `kind = DATASET`, both ordered by lower-cased name) and one guard per owner
and lower-cased name (`pk = NAME#<owner>#<name>`), written in the same transaction as the dataset,
so two concurrent creates of `Cats` and `cats` by one owner cannot both succeed.

A dataset's images live in the share bucket under `datasets/<id>/` and are registry images like
any other; what was uploaded to be imported (ZIPs, annotation files) waits in the datasets bucket
under `uploads/<id>/`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from pynamodb.attributes import (JSONAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute,
                                 UTCDateTimeAttribute)
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store import changes
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta

DATASET_KIND = "DATASET"
MAX_HISTORY = 50  # imports kept in a dataset's history
EMPTY, IMPORTING, READY, FAILED = "empty", "importing", "ready", "failed"
# The lifecycle: active → deleted (hidden, restorable) → purging → purged (the record and its audit log stay).
ACTIVE, DELETED, PURGING, PURGED = "active", "deleted", "purging", "purged"
TRASH_KEY = "TRASH"


class DatasetsByOwner(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_owner"
        projection = AllProjection()

    owner_id = UnicodeAttribute(hash_key=True)
    name_lower = UnicodeAttribute(range_key=True)


class DatasetsByKind(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_kind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    name_lower = UnicodeAttribute(range_key=True)


class DatasetItem(Model):
    Meta = table_meta("datasets_table")

    pk = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default=DATASET_KIND)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    name_lower = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    owner_id = UnicodeAttribute()
    status = UnicodeAttribute(default=EMPTY)
    image_count = NumberAttribute(default=0)
    annotation_count = NumberAttribute(default=0)
    bytes_images = NumberAttribute(default=0)
    bytes_annotations = NumberAttribute(default=0)
    bytes_other = NumberAttribute(default=0)
    project_id = UnicodeAttribute(null=True)
    operation_id = UnicodeAttribute(null=True)  # the import running or last run
    folders = JSONAttribute(null=True)  # {"folder/path": image count}
    imports = JSONAttribute(null=True)  # [{operation_id, started_at, status, images, annotations, problems}]
    state = UnicodeAttribute(null=True)  # absent = active
    deleted_at = UTCDateTimeAttribute(null=True)
    deleted_by = UnicodeAttribute(null=True)
    purged_at = UTCDateTimeAttribute(null=True)
    deletion = JSONAttribute(null=True)  # the last deletion: operation_id, backup, purge, summary, error
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_owner = DatasetsByOwner()
    by_kind = DatasetsByKind()


class TrashItem(Model):
    """The ids of the datasets deleted and not yet purged: one small item every reader that hides
    their images reads (services/trash.py), changed with atomic set additions and removals."""

    Meta = table_meta("datasets_table")

    pk = UnicodeAttribute(hash_key=True)
    hidden = UnicodeSetAttribute(null=True)


class DatasetNameGuard(Model):
    Meta = table_meta("datasets_table")

    pk = UnicodeAttribute(hash_key=True)
    dataset_id = UnicodeAttribute()


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    description: str | None
    owner_id: str
    status: str
    image_count: int
    annotation_count: int
    bytes_images: int
    bytes_annotations: int
    bytes_other: int
    project_id: str | None
    operation_id: str | None
    created_at: datetime
    updated_at: datetime
    folders: dict[str, int] = field(default_factory=dict)
    imports: list[dict[str, Any]] = field(default_factory=list)
    state: str = ACTIVE
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    purged_at: datetime | None = None
    deletion: dict[str, Any] = field(default_factory=dict)

    @property
    def labeled(self) -> bool:
        return self.annotation_count > 0

    @property
    def storage_bytes(self) -> int:
        return self.bytes_images + self.bytes_annotations + self.bytes_other

    @property
    def prefix(self) -> str:
        """Where the dataset's images live in the share bucket."""
        return dataset_prefix(self.id)


def dataset_prefix(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/"


def dataset_key(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def _name_key(owner_id: str, name: str) -> str:
    return f"NAME#{owner_id}#{name.casefold()}"


def _to_dataset(item: DatasetItem) -> Dataset:
    return entity(Dataset, item, folders=item.folders or {}, imports=item.imports or [], state=item.state or ACTIVE,
                  deletion=item.deletion or {})


class DatasetRepository:
    def create(self, dataset_id: str, name: str, description: str | None, owner_id: str) -> Dataset:
        """A new empty dataset; its name is unique for its owner ignoring case (409 otherwise)."""
        now = utcnow()
        item = DatasetItem(pk=dataset_key(dataset_id), id=dataset_id, name=name, name_lower=name.casefold(),
                           description=description, owner_id=owner_id, status=EMPTY, created_at=now, updated_at=now)
        guard = DatasetNameGuard(pk=_name_key(owner_id, name), dataset_id=dataset_id)
        try:
            with Transaction("creating a dataset", token=f"dataset-create-{dataset_id}") as tx:
                tx.put(item, condition=DatasetItem.pk.does_not_exist(), name="dataset")
                tx.put(guard, condition=DatasetNameGuard.pk.does_not_exist(), name="guard")
        except TransactionCancelled as exc:
            if exc.failed("guard"):
                raise ConflictError(f"You already have a dataset named '{name}'") from exc
            raise
        return _to_dataset(item)

    def get(self, dataset_id: str) -> Dataset:
        return _to_dataset(self._get_item(dataset_id))

    def _get_item(self, dataset_id: str) -> DatasetItem:
        try:
            with store_errors("reading a dataset"):
                return DatasetItem.get(dataset_key(dataset_id), consistent_read=True)
        except DoesNotExist as exc:
            raise NotFoundError(f"Dataset '{dataset_id}' not found") from exc

    def of_owner(self, owner_id: str) -> Iterator[Dataset]:
        """An owner's datasets by lower-cased name (one Query of `by_owner`)."""
        with store_errors("listing datasets"):
            for item in DatasetItem.by_owner.query(owner_id):
                yield _to_dataset(item)

    def all(self) -> Iterator[Dataset]:
        """Every dataset by lower-cased name (one Query of the sparse `by_kind` index)."""
        with store_errors("listing datasets"):
            for item in DatasetItem.by_kind.query(DATASET_KIND):
                yield _to_dataset(item)

    def update(self, dataset_id: str, name: str | None, description: str | None, clear_description: bool) -> Dataset:
        """Rename and/or describe; a rename moves the name guard in the same transaction."""
        item = self._get_item(dataset_id)
        old_key = _name_key(item.owner_id, item.name)
        if name is not None:
            item.name, item.name_lower = name, name.casefold()
        if description is not None or clear_description:
            item.description = description
        item.updated_at = utcnow()
        new_key = _name_key(item.owner_id, item.name)
        try:
            with Transaction("updating a dataset") as tx:
                tx.put(item, condition=DatasetItem.pk.exists(), name="dataset")
                if new_key != old_key:
                    tx.put(DatasetNameGuard(pk=new_key, dataset_id=dataset_id),
                           condition=DatasetNameGuard.pk.does_not_exist(), name="new guard")
                    tx.delete(DatasetNameGuard(pk=old_key), condition=DatasetNameGuard.dataset_id == dataset_id)
        except TransactionCancelled as exc:
            if exc.failed("dataset"):
                raise NotFoundError(f"Dataset '{dataset_id}' not found") from exc
            if exc.failed("new guard"):
                raise ConflictError(f"You already have a dataset named '{item.name}'") from exc
            raise
        return _to_dataset(item)

    # Imports ---------------------------------------------------------------------------------------

    def begin_import(self, dataset_id: str, operation_id: str, started: dict[str, Any]) -> None:
        """Mark the dataset importing under `operation_id`, unless another import runs (409)."""
        item = self._get_item(dataset_id)
        imports = [*(item.imports or []), started][-MAX_HISTORY:]
        with conditional("starting an import", ConflictError(
                f"Dataset '{dataset_id}' is being imported already (operation '{item.operation_id}'); "
                "wait for it to end")):
            DatasetItem(pk=dataset_key(dataset_id)).update(
                actions=[DatasetItem.status.set(IMPORTING), DatasetItem.operation_id.set(operation_id),
                         DatasetItem.imports.set(imports), DatasetItem.updated_at.set(utcnow())],
                condition=DatasetItem.pk.exists() & (DatasetItem.status != IMPORTING)
                & (DatasetItem.state.does_not_exist() | (DatasetItem.state == ACTIVE)))

    def claim_project(self, dataset_id: str, project_id: str) -> str:
        """The dataset's project: `project_id` if it had none, else the one it has (set once)."""
        with conditional("recording a dataset's project"):
            DatasetItem(pk=dataset_key(dataset_id)).update(
                actions=[DatasetItem.project_id.set(project_id)],
                condition=DatasetItem.pk.exists() & DatasetItem.project_id.does_not_exist())
        return self._get_item(dataset_id).project_id or project_id

    def end_import(self, dataset_id: str, operation_id: str, status: str, outcome: dict[str, Any],
                   facts: dict[str, Any] | None = None) -> Dataset:
        """Record how the import `operation_id` ended (its history entry) and, when it succeeded,
        what the dataset now holds (`facts`: counts, bytes, folders). Re-runnable."""
        item = self._get_item(dataset_id)
        imports = [({**entry, **outcome} if entry.get("operation_id") == operation_id else entry)
                   for entry in item.imports or []]
        actions = [DatasetItem.imports.set(imports), DatasetItem.updated_at.set(utcnow())]
        if item.operation_id == operation_id:
            actions.append(DatasetItem.status.set(status))
        for name, value in (facts or {}).items():
            actions.append(getattr(DatasetItem, name).set(value))
        with store_errors("recording an import"):
            DatasetItem(pk=dataset_key(dataset_id)).update(actions=actions, condition=DatasetItem.pk.exists())
        return self.get(dataset_id)

    # The lifecycle -------------------------------------------------------------------------------

    def hidden(self) -> frozenset[str]:
        """The ids of the datasets whose images are hidden (deleted, not yet purged); consistent."""
        try:
            with store_errors("reading the trash"):
                return frozenset(TrashItem.get(TRASH_KEY, consistent_read=True).hidden or ())
        except DoesNotExist:
            return frozenset()

    def soft_delete(self, dataset_id: str, actor: str, at: datetime, deletion: dict[str, Any]) -> Dataset:
        """Mark an active dataset deleted and hide its images, in one transaction with the change
        record every index reads (so the next Explore on any instance hides them); 409 if it is not
        active (deleted, being purged or purged) or is being imported."""
        try:
            with Transaction("deleting a dataset") as tx:
                tx.update(DatasetItem(pk=dataset_key(dataset_id)), actions=[
                    DatasetItem.state.set(DELETED), DatasetItem.deleted_at.set(at), DatasetItem.deleted_by.set(actor),
                    DatasetItem.deletion.set(deletion), DatasetItem.updated_at.set(at)],
                    condition=DatasetItem.pk.exists() & (DatasetItem.state.does_not_exist() | (DatasetItem.state == ACTIVE))
                    & (DatasetItem.status != IMPORTING), name="dataset")
                tx.update(TrashItem(pk=TRASH_KEY), actions=[TrashItem.hidden.add({dataset_id})])
                changes.put_in(tx, changes.TAGS_STREAM, datasets=[dataset_id])
        except TransactionCancelled as exc:
            if exc.failed("dataset"):
                raise inactive_error(self.get(dataset_id)) from exc
            raise
        return self.get(dataset_id)

    def restore(self, dataset_id: str, at: datetime) -> Dataset:
        """Bring a deleted dataset back (its images shown again): 409 unless it is deleted."""
        try:
            with Transaction("restoring a dataset") as tx:
                tx.update(DatasetItem(pk=dataset_key(dataset_id)), actions=[
                    DatasetItem.state.set(ACTIVE), DatasetItem.deleted_at.remove(), DatasetItem.deleted_by.remove(),
                    DatasetItem.updated_at.set(at)],
                    condition=DatasetItem.pk.exists() & (DatasetItem.state == DELETED), name="dataset")
                tx.update(TrashItem(pk=TRASH_KEY), actions=[TrashItem.hidden.delete({dataset_id})])
                changes.put_in(tx, changes.TAGS_STREAM, datasets=[dataset_id])
        except TransactionCancelled as exc:
            if exc.failed("dataset"):
                dataset = self.get(dataset_id)
                raise (inactive_error(dataset) if dataset.state != ACTIVE
                       else ConflictError(f"Dataset '{dataset_id}' is not deleted")) from exc
            raise
        return self.get(dataset_id)

    def record_deletion(self, dataset_id: str, deletion: dict[str, Any]) -> None:
        """Merge facts into the dataset's deletion record (backup, summary, error)."""
        item = self._get_item(dataset_id)
        with store_errors("recording a deletion"):
            DatasetItem(pk=dataset_key(dataset_id)).update(
                actions=[DatasetItem.deletion.set({**(item.deletion or {}), **deletion})],
                condition=DatasetItem.pk.exists())

    def begin_purge(self, dataset_id: str, operation_id: str, takeover: bool = False) -> Dataset:
        """deleted → purging under `operation_id` (again by the same operation: no change; `takeover`:
        a purge that failed is run again by a new operation); 409 for an active or purged dataset."""
        dataset = self.get(dataset_id)
        if dataset.state == PURGING and dataset.deletion.get("purge_operation_id") == operation_id:
            return dataset
        states = (DELETED, PURGING) if takeover else (DELETED,)
        with conditional("starting a purge", inactive_error(dataset) if dataset.state != ACTIVE
                         else ConflictError(f"Dataset '{dataset_id}' is not deleted; delete it first")):
            DatasetItem(pk=dataset_key(dataset_id)).update(
                actions=[DatasetItem.state.set(PURGING), DatasetItem.deletion.set(
                    {**dataset.deletion, "purge_operation_id": operation_id})],
                condition=DatasetItem.pk.exists() & DatasetItem.state.is_in(*states))
        return self.get(dataset_id)

    def end_purge(self, dataset_id: str, at: datetime, summary: dict[str, Any]) -> Dataset:
        """purging → purged: the name is free again, the images no longer hidden (they are gone);
        the record stays, with its audit log. Re-runnable."""
        item = self._get_item(dataset_id)
        if (item.state or ACTIVE) == PURGED:
            return _to_dataset(item)
        with Transaction("ending a purge") as tx:
            tx.update(DatasetItem(pk=dataset_key(dataset_id)), actions=[
                DatasetItem.state.set(PURGED), DatasetItem.purged_at.set(at), DatasetItem.updated_at.set(at),
                DatasetItem.deletion.set({**(item.deletion or {}), "summary": summary})],
                condition=DatasetItem.state == PURGING)
            tx.delete(DatasetNameGuard(pk=_name_key(item.owner_id, item.name)),
                      condition=DatasetNameGuard.pk.does_not_exist() | (DatasetNameGuard.dataset_id == dataset_id))
            tx.update(TrashItem(pk=TRASH_KEY), actions=[TrashItem.hidden.delete({dataset_id})])
            changes.put_in(tx, changes.TAGS_STREAM, datasets=[dataset_id])
        return self.get(dataset_id)

    def deleted(self) -> Iterator[Dataset]:
        """Datasets deleted and not purged, for the retention sweep: the trash item, then GetItem each."""
        for dataset_id in sorted(self.hidden()):
            try:
                yield self.get(dataset_id)
            except NotFoundError:
                continue


def inactive_error(dataset: Dataset) -> ConflictError:
    """Why a dataset that is not active (or is importing) refuses a change: 409 naming its state and time."""
    if dataset.state == PURGED:
        return ConflictError(f"Dataset '{dataset.id}' was purged at {dataset.purged_at.isoformat()}; "
                             "it cannot be restored or deleted again (its backup, if one was made, can be imported)")
    if dataset.state in (DELETED, PURGING):
        return ConflictError(f"Dataset '{dataset.id}' was deleted at {dataset.deleted_at.isoformat()}"
                             + (" and is being purged" if dataset.state == PURGING else ""))
    if dataset.status == IMPORTING:
        return ConflictError(f"Dataset '{dataset.id}' is being imported (operation '{dataset.operation_id}'); "
                             "wait for the import to end")
    return ConflictError(f"Dataset '{dataset.id}' is not deleted")
