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

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta

DATASET_KIND = "DATASET"
MAX_HISTORY = 50  # imports kept in a dataset's history
EMPTY, IMPORTING, READY, FAILED = "empty", "importing", "ready", "failed"


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
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_owner = DatasetsByOwner()
    by_kind = DatasetsByKind()


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
    return entity(Dataset, item, folders=item.folders or {}, imports=item.imports or [])


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
                condition=DatasetItem.pk.exists() & (DatasetItem.status != IMPORTING))

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
