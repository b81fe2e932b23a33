"""The one seam through which the embedded emulator changes moto: every patch of a moto internal
is listed here, with why it exists, and applied, checked and removed only by `MotoPatches`.

The patches were written against one moto release (`MOTO_VERSION`, pinned in
requirements-dev.txt). Before applying anything, `check()` fails with a message naming what
differs if another moto is installed, if a patched attribute is missing, is no longer what it
was, or takes other parameters — so an upgrade stops the emulator at start, not later with
wrong answers. tests/functional/test_emulator_seam.py pins the seam itself, and
tests/functional/test_local_dynamodb.py compares every patched read and write path with moto's
own answers (the seam removes the patches for the comparison).

| moto internal                        | replaced by             | why                                      |
|--------------------------------------|-------------------------|------------------------------------------|
| dynamodb Table.query                 | dynamodb.query          | Query reads one partition, not the table |
| dynamodb Table.all_items             | dynamodb.all_items      | what moto's Query walks: the partition   |
| dynamodb Table.put_item              | dynamodb.put_item       | keeps partitions and index buckets true  |
| dynamodb Table.delete_item           | dynamodb.delete_item    | keeps partitions and index buckets true  |
| dynamodb DynamoDBBackend.update_item | dynamodb.update_item    | keeps index buckets and sizes true       |
| dynamodb DynamoDBBackend.get_item    | dynamodb.get_item       | GetItem/BatchGetItem count as reads      |
| dynamodb Item.__deepcopy__           | dynamodb.item_deepcopy  | no copy of every item a read returns     |
| dynamodb Item.size                   | dynamodb.item_size      | an item's size computed once per read    |
| dynamodb Item.project                | dynamodb.project        | top-level projections share the values   |
| dynamodb DynamoType.cast_value       | dynamodb.cast_value     | a string compares as itself, fast        |
| dynamodb DynamoResult.execute_result | dynamodb.execute_result | item reads written straight as JSON      |
| dynamodb DynamoDBBackend.transact_write_items | dynamodb.transact_write_items | rollback copies items, not tables |
| dynamodb DynamoHandler.call_action   | dynamodb.call_action    | one DynamoDB request at a time (atomic)  |
| s3 notifications._get_s3_event       | s3events.get_s3_event   | S3's `sequencer` and `versionId`         |

The acceleration's own state (partitions, index buckets, item sizes) lives in side tables of
`infra/local/dynamodb.py`, keyed by moto's objects, never in them.
"""
from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterator

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.s3 import notifications

from infra.local import dynamodb, s3events

MOTO_VERSION = "5.2.5"

_MISSING = object()


class EmulatorPatchError(RuntimeError):
    """moto is not the one the emulator's patches were written for."""


@dataclass(frozen=True)
class Patch:
    """One moto attribute replaced: where, by what, what moto's own is, and what it must look like."""

    owner: Any  # a class or a module of moto's
    name: str
    replacement: Any
    original: Any  # moto's own, as the replacement expects to find and call it
    parameters: tuple[str, ...]  # moto's own parameters, as they were when the replacement was written
    why: str

    @property
    def target(self) -> str:
        if isinstance(self.owner, type):
            return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"
        return f"{self.owner.__name__}.{self.name}"

    def problem(self) -> str | None:
        """Why this patch cannot be applied to the moto installed, or None."""
        current = inspect.getattr_static(self.owner, self.name, _MISSING)
        if current is _MISSING:
            return f"{self.target} does not exist"
        if current is self.replacement:
            return None
        if current is not self.original:
            return f"{self.target} is not moto's own (someone else replaced it)"
        found = _parameters(current)
        if found != self.parameters:
            return f"{self.target} takes {found}, the patch was written for {self.parameters}"
        return None


def _parameters(attribute: Any) -> tuple[str, ...] | None:
    function = attribute.fget if isinstance(attribute, property) else attribute
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return None


class MotoPatches:
    """Applies (idempotent), checks and removes a set of patches, restoring moto exactly."""

    def __init__(self, patches: list[Patch], version: str = MOTO_VERSION,
                 installed: Callable[[], str] = lambda: metadata.version("moto"),
                 on_remove: Callable[[], None] = lambda: None) -> None:
        self.patches = patches
        self.version = version
        self._installed = installed
        self._on_remove = on_remove
        self._saved: dict[int, Any] | None = None
        self._lock = threading.RLock()

    @property
    def applied(self) -> bool:
        return self._saved is not None

    def problems(self) -> list[str]:
        installed = self._installed()
        found = [] if installed == self.version else [f"moto {installed} is installed, the patches were written for {self.version}"]
        return found + [problem for patch in self.patches if (problem := patch.problem()) is not None]

    def check(self) -> None:
        """Raise `EmulatorPatchError` naming every difference from the moto the patches expect."""
        problems = self.problems()
        if problems:
            raise EmulatorPatchError(
                "The embedded emulator patches moto internals (infra/local/patches.py) and cannot start:\n  - "
                + "\n  - ".join(problems)
                + f"\nInstall moto[server]=={self.version} (requirements-dev.txt), or port each patch to the new "
                "moto, update MOTO_VERSION and the pinned parameters, and run tests/functional/test_emulator_seam.py "
                "and tests/functional/test_local_dynamodb.py."
            )

    def apply(self) -> None:
        with self._lock:
            if self._saved is not None:
                return
            self.check()
            saved = {}
            for position, patch in enumerate(self.patches):
                saved[position] = vars(patch.owner).get(patch.name, _MISSING)
                setattr(patch.owner, patch.name, patch.replacement)
            self._saved = saved

    def remove(self) -> None:
        """Put back exactly what moto had (an inherited attribute is inherited again)."""
        with self._lock:
            if self._saved is None:
                return
            for position, patch in enumerate(self.patches):
                before = self._saved[position]
                if before is _MISSING:
                    delattr(patch.owner, patch.name)
                else:
                    setattr(patch.owner, patch.name, before)
            self._saved = None
            self._on_remove()

    @contextmanager
    def removed(self) -> Iterator[None]:
        """moto's own behaviour for the duration (the comparison tests' reference answers)."""
        with self._lock:
            was_applied = self.applied
            self.remove()
            try:
                yield
            finally:
                if was_applied:
                    self.apply()


MOTO_PATCHES = MotoPatches([
    Patch(Table, "query", dynamodb.query, dynamodb.MOTO.query,
          ("self", "hash_key", "range_comparison", "range_objs", "limit", "exclusive_start_key",
           "scan_index_forward", "projection_expressions", "index_name", "consistent_read",
           "filter_expression", "hash_key_conditions", "range_key_conditions", "filter_kwargs"),
          "moto's Query walks and sorts the whole table on every call and page; this one hands "
          "moto's own Query only the queried partition's items (and one page of them when no "
          "range-key condition or filter can drop items)"),
    Patch(Table, "all_items", dynamodb.all_items, dynamodb.MOTO.all_items, ("self",),
          "where moto's Query takes its items from: answers a running Query's candidates"),
    Patch(Table, "put_item", dynamodb.put_item, dynamodb.MOTO.put_item,
          ("self", "item_attrs", "expected", "condition_expression", "expression_attribute_names",
           "expression_attribute_values", "overwrite", "return_values_on_condition_check_failure"),
          "every put (PutItem, BatchWriteItem, transactions, PartiQL, update of a new item) forgets "
          "the cached sorted partition and moves the item between index buckets"),
    Patch(Table, "delete_item", dynamodb.delete_item, dynamodb.MOTO.delete_item,
          ("self", "hash_key", "range_key"),
          "every delete forgets the cached sorted partition and removes the item from index buckets"),
    Patch(DynamoDBBackend, "update_item", dynamodb.update_item, dynamodb.MOTO.update_item,
          ("self", "table_name", "key", "update_expression", "expression_attribute_names",
           "expression_attribute_values", "attribute_updates", "expected", "condition_expression",
           "return_values_on_condition_check_failure"),
          "an update changes the stored item in place: its remembered size is forgotten and it "
          "moves between index buckets"),
    Patch(DynamoDBBackend, "get_item", dynamodb.get_item, dynamodb.MOTO.get_item,
          ("self", "table_name", "keys", "projection_expressions"),
          "marks GetItem and BatchGetItem as reads, so they get the read-only shortcuts"),
    Patch(Item, "__deepcopy__", dynamodb.item_deepcopy, dynamodb.MOTO.item_deepcopy, ("self", "memo"),
          "moto deep-copies every Query result; a read's results are only serialized, so during "
          "a read the copy is the item itself (writes and transaction snapshots still copy)"),
    Patch(Item, "size", dynamodb.item_size, dynamodb.MOTO.item_size, ("self",),
          "moto recomputes each item's size for the 1 MB and 16 MB limits on every read; during "
          "a read it is remembered per item (in a side table, forgotten by an update)"),
    Patch(Item, "project", dynamodb.project, dynamodb.MOTO.project, ("self", "projection_expressions"),
          "moto projects by converting the item to plain Python and back; top-level names now "
          "share the stored values (nested paths still go to moto)"),
    Patch(DynamoType, "cast_value", dynamodb.cast_value, dynamodb.MOTO.cast_value, ("self",),
          "moto sorts every Query by key with it; a string's value is the string, without five "
          "type checks"),
    Patch(DynamoResult, "execute_result", dynamodb.execute_result, dynamodb.MOTO.execute_result,
          ("self", "context"),
          "moto's shape-walking serializer costs ~0.6 ms per item; GetItem, BatchGetItem, Query "
          "and Scan answers are written straight as DynamoDB's JSON"),
    Patch(DynamoDBBackend, "transact_write_items", dynamodb.transact_write_items,
          dynamodb.MOTO.transact_write_items, ("self", "transact_items"),
          "moto snapshots each table a transaction touches with a deep copy, for its rollback: a "
          "table's n-th transaction cost O(n); the snapshot is now the items the transaction names"),
    Patch(DynamoHandler, "call_action", dynamodb.call_action, dynamodb.MOTO.call_action, ("self",),
          "moto's transactions snapshot and restore whole tables, so two at once crash or undo "
          "each other: one DynamoDB request at a time, as atomic as DynamoDB's"),
    Patch(notifications, "_get_s3_event", s3events.get_s3_event, s3events.MOTO_GET_S3_EVENT,
          ("event_name", "bucket", "key", "notification_id"),
          "moto's S3 notifications lack the `sequencer` (and `versionId`) S3 sends, by which the "
          "ingest handler drops stale events"),
], on_remove=dynamodb.forget_everything)
