"""Partition-keyed Query for the emulator's DynamoDB: the replacements that `infra/local/patches.py`
installs over moto's own methods (that module lists each one, and is the only one that patches).

moto's `Table.query` starts from `Table.all_items()`, which walks and sorts the whole table on
every call and every page. Here, while one Query runs, `all_items()` answers with only the
candidate items of the queried partition: the base table's own `items[hash]` bucket, or a
per-index bucket kept up to date on every write. moto then runs its own key conditions, sort,
pagination, filters and projections on that list unchanged, so results are the same as moto's
(tests/functional/test_local_dynamodb.py compares both) at a cost that follows the partition
size, not the table size. Only the embedded emulator is patched; code running on AWS never sees
this.

Comparing string attribute values (moto sorts every Query's results by key with them) takes a
shortcut for strings: `DynamoType.cast_value` of an `S` value is the value itself, which moto's
own property returns only after five type checks.

The answers of the item-reading operations (GetItem, BatchGetItem, Query, Scan) are also written
straight to DynamoDB's JSON wire format instead of through moto's generic, shape-walking response
serializer, which costs ~0.6 ms per item and made reading 10,000 items take seconds. The
comparison test checks both paths parse to the same response for every attribute type.

Reads also skip three per-item costs of moto's that change nothing in an answer: the defensive
deep copy of every Query result (the results are only read and serialized), the projection of
top-level attribute names through a full conversion to plain Python and back (a projected item
now shares the stored attribute values, which nothing mutates: writes replace or update the
stored item, never a read's copy), and recomputing each item's size for the 1 MB and 16 MB
answer limits (remembered per item during reads, forgotten when an update changes the item in
place; a put stores a new item).

The acceleration's state lives in side tables of this module, keyed by moto's objects and gone
with them (a table deleted, reset or restored by a failed transaction starts with none), never
in moto's objects themselves.
"""
from __future__ import annotations

import base64
import bisect
import inspect
import json
import threading
import weakref
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
from moto.dynamodb.responses import DynamoHandler, DynamoResult

# moto's own attributes, taken before anything is patched: the replacements fall back to them,
# and the seam puts them back.
MOTO = SimpleNamespace(
    query=inspect.getattr_static(Table, "query"),
    all_items=inspect.getattr_static(Table, "all_items"),
    put_item=inspect.getattr_static(Table, "put_item"),
    delete_item=inspect.getattr_static(Table, "delete_item"),
    update_item=inspect.getattr_static(DynamoDBBackend, "update_item"),
    get_item=inspect.getattr_static(DynamoDBBackend, "get_item"),
    execute_result=inspect.getattr_static(DynamoResult, "execute_result"),
    cast_value=inspect.getattr_static(DynamoType, "cast_value"),
    item_deepcopy=inspect.getattr_static(Item, "__deepcopy__"),
    item_size=inspect.getattr_static(Item, "size"),
    project=inspect.getattr_static(Item, "project"),
    call_action=inspect.getattr_static(DynamoHandler, "call_action"),
    transact_write_items=inspect.getattr_static(DynamoDBBackend, "transact_write_items"),
)
_QUERY_SIGNATURE = inspect.signature(MOTO.query)

_state = threading.local()
_lock = threading.RLock()


class _ItemSizes:
    """Item → its size, by identity: moto's `Item` defines `__eq__` (so it is unhashable and a
    WeakKeyDictionary cannot hold it); an entry is dropped when its item is."""

    class _Ref(weakref.ref):
        __slots__ = ("key", "size")

    def __init__(self) -> None:
        self._entries: dict[int, _ItemSizes._Ref] = {}

    def get(self, item: Item) -> int | None:
        ref = self._entries.get(id(item))
        return ref.size if ref is not None and ref() is item else None

    def put(self, item: Item, size: int) -> None:
        ref = self._Ref(item, self._dropped)
        ref.key, ref.size = id(item), size
        self._entries[ref.key] = ref

    def forget(self, item: Item) -> None:
        ref = self._entries.get(id(item))
        if ref is not None and ref() is item:
            self._entries.pop(ref.key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _dropped(self, ref: "_ItemSizes._Ref") -> None:
        # An item's id can be reused only after it is freed, which is after this callback.
        if self._entries.get(ref.key) is ref:
            self._entries.pop(ref.key, None)


class _IndexBuckets:
    """For one secondary index: index-hash value → {item key → item}, and item key → its value."""

    def __init__(self, attr: str, items: list) -> None:
        self.attr = attr
        self.buckets: dict[Any, dict[tuple, Any]] = {}
        self.placed: dict[tuple, Any] = {}
        for item in items:
            self.place(item)

    def place(self, item: Any) -> None:
        key = _key(item)
        self.remove(key)
        value = item.attrs.get(self.attr)
        if value is not None:
            self.buckets.setdefault(value, {})[key] = item
            self.placed[key] = value

    def remove(self, key: tuple) -> None:
        value = self.placed.pop(key, None)
        if value is not None:
            bucket = self.buckets.get(value, {})
            bucket.pop(key, None)
            if not bucket:
                self.buckets.pop(value, None)


# The side tables. Table objects hash by identity; a table dropped by moto takes its entries along.
_partitions: "weakref.WeakKeyDictionary[Table, dict[Any, list]]" = weakref.WeakKeyDictionary()
_indexes: "weakref.WeakKeyDictionary[Table, dict[str, _IndexBuckets]]" = weakref.WeakKeyDictionary()
_sizes = _ItemSizes()


def forget_everything() -> None:
    """Drop every cached partition, index bucket and item size (the seam calls it when it removes
    the patches: writes made meanwhile do not maintain them)."""
    with _lock:
        _partitions.clear()
        _indexes.clear()
        _sizes.clear()


def _key(item: Any) -> tuple:
    return (item.hash_key, item.range_key)


def _sort_key(item: Any) -> Any:
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _index_buckets(table: Table, index_name: str, attr: str) -> _IndexBuckets:
    cache = _indexes.setdefault(table, {})
    buckets = cache.get(index_name)
    if buckets is None or buckets.attr != attr:
        buckets = cache[index_name] = _IndexBuckets(attr, MOTO.all_items(table))
    return buckets


def _partition(table: Table, hash_key: Any) -> list:
    """A base-table partition's items in range-key order (kept until a put or delete in it)."""
    with _lock:
        cache = _partitions.setdefault(table, {})
        found = cache.get(hash_key)
        if found is None:
            found = cache[hash_key] = sorted(table.items[hash_key].values(), key=lambda item: item.range_key)
    return found


def _candidates(table: Table, hash_key: Any, index_name: str | None, hash_conditions: list | None,
                start_key: dict | None = None, forward: bool = True) -> list | None:
    if not index_name:
        if hash_key is None:
            return None
        bucket = table.items.get(hash_key) if hash_key in table.items else None
        if bucket is None:
            return []
        if not table.range_key_attr:
            return [bucket]
        ordered = _partition(table, hash_key)
        start = (start_key or {}).get(table.range_key_attr)
        if start is None:
            return list(ordered)
        # Later pages: only the items past the start key, so a partition read page by page costs
        # its size once, not once per page (moto walks from the first item to the start key).
        start = DynamoType(start)
        if forward:
            return ordered[bisect.bisect_right(ordered, start, key=lambda item: item.range_key):]
        return ordered[: bisect.bisect_left(ordered, start, key=lambda item: item.range_key)]
    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    if index is None:
        return None  # moto raises the proper validation error
    hash_attrs = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    if not hash_attrs:
        return None
    wanted = dict(hash_conditions or {}).get(hash_attrs[0], hash_key if len(hash_attrs) == 1 else None)
    if wanted is None:
        return None
    with _lock:
        found = list(_index_buckets(table, index_name, hash_attrs[0]).buckets.get(wanted, {}).values())
    return sorted(found, key=_sort_key)


def _one_page(candidates: list, limit: int | None, forward: bool) -> list:
    """With no condition on the range key, one page ends at the item that reaches `limit` or the
    1 MB cap: hand moto just the items up to and including it, in order, instead of the whole
    rest of the partition (moto re-sorts and re-filters all it is given, on every page)."""
    ordered = candidates if forward else candidates[::-1]
    with _reading():
        size, end = 0, len(ordered)
        for position, item in enumerate(ordered):
            size += item.size()
            if size > RESULT_SIZE_LIMIT or (limit and position >= limit):
                end = position + 1
                break
    page = ordered[:end]
    return page if forward else page[::-1]


@contextmanager
def _reading():
    """Mark this thread's work as one read request's (see the module docstring)."""
    outer = getattr(_state, "reading", False)
    _state.reading = True
    try:
        yield
    finally:
        _state.reading = outer


def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any):
    """`Table.query`: moto's own, run on the queried partition's items instead of the table's."""
    bound = _QUERY_SIGNATURE.bind(self, hash_key, *args, **kwargs).arguments
    candidates = _candidates(self, hash_key, bound.get("index_name"), bound.get("hash_key_conditions"),
                             bound.get("exclusive_start_key"), bound.get("scan_index_forward") is not False)
    if candidates is not None and not bound.get("index_name") and not bound.get("range_comparison") \
            and not bound.get("range_key_conditions") and not bound.get("filter_kwargs"):
        candidates = _one_page(candidates, bound.get("limit"), bound.get("scan_index_forward") is not False)
    if candidates is None:
        return MOTO.query(self, hash_key, *args, **kwargs)
    _state.candidates = (self, candidates)
    try:
        with _reading():
            return MOTO.query(self, hash_key, *args, **kwargs)
    finally:
        _state.candidates = None


def all_items(self: Table) -> list:
    """`Table.all_items`: inside a Query, that Query's candidates; otherwise moto's own."""
    current = getattr(_state, "candidates", None)
    if current is not None and current[0] is self:
        return current[1]
    return MOTO.all_items(self)


def get_item(self: DynamoDBBackend, *args: Any, **kwargs: Any):
    """`DynamoDBBackend.get_item` (GetItem and BatchGetItem): moto's own, as a read."""
    with _reading():
        return MOTO.get_item(self, *args, **kwargs)


def item_deepcopy(self: Item, memo: dict) -> Item:
    """`Item.__deepcopy__`: a read's results are the stored items themselves."""
    if getattr(_state, "reading", False):
        return self
    return MOTO.item_deepcopy(self, memo)


def item_size(self: Item) -> int:
    """`Item.size`: during a read, remembered per item."""
    if not getattr(_state, "reading", False):
        return MOTO.item_size(self)
    size = _sizes.get(self)
    if size is None:
        size = MOTO.item_size(self)
        _sizes.put(self, size)
    return size


def project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """`Item.project`: top-level names share the stored values; nested paths go to moto."""
    if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
        return MOTO.project(self, projection_expressions)
    projected = Item.__new__(Item)
    projected.hash_key, projected.range_key = self.hash_key, self.range_key
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    for (name,) in projection_expressions:
        value = self.attrs.get(name)
        if value is not None:
            dict.__setitem__(attrs, name, value)
    projected.attrs = attrs
    return projected


def _forget_partition(table: Table, hash_key: Any) -> None:
    """A put or delete changes which items a partition holds (an update changes an item in place)."""
    partitions = _partitions.get(table)
    if partitions:
        with _lock:
            partitions.pop(hash_key, None)


def _reindex(table: Table, item: Any | None, removed_key: tuple | None = None) -> None:
    indexes = _indexes.get(table)
    if not indexes:
        return
    with _lock:
        for buckets in indexes.values():
            if removed_key is not None:
                buckets.remove(removed_key)
            if item is not None:
                buckets.place(item)


def put_item(self: Table, *args: Any, **kwargs: Any):
    """`Table.put_item`: moto's own, then the item's partition and index buckets follow."""
    item = MOTO.put_item(self, *args, **kwargs)
    _forget_partition(self, item.hash_key)
    _reindex(self, item)
    return item


def delete_item(self: Table, hash_key: Any, range_key: Any):
    """`Table.delete_item`: moto's own, then the item leaves its partition and index buckets."""
    item = MOTO.delete_item(self, hash_key, range_key)
    if item is not None:
        _forget_partition(self, item.hash_key)
        _reindex(self, None, removed_key=_key(item))
    return item


def _same_table(self: Table, memo: dict) -> Table:
    return self


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """`DynamoDBBackend.transact_write_items`: moto's own, but what a failed transaction rolls back
    to is a copy of each item it names, not a deep copy of each whole table it touches (which made
    a table's n-th transaction cost O(n)). Requests run one at a time (`call_action`), so the
    tables' copying is switched off for moto's call alone; its rollback then puts back the same
    table, and the named items are restored here through the patched put and delete (which keep
    partitions and index buckets right)."""
    saved = []
    for entry in transact_items[:100]:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        key = op.get("Key") or {name: op.get("Item", {}).get(name)
                                for name in (table.hash_key_attr, table.range_key_attr) if name}
        try:
            current = table.get_item(DynamoType(key[table.hash_key_attr]),
                                     DynamoType(key[table.range_key_attr]) if table.range_key_attr else None)
        except Exception:  # a malformed key: moto's own checks answer it
            continue
        # A copy taken now: an update changes the stored item (and nested values) in place.
        saved.append((table, key, None if current is None else json.loads(json.dumps(current.to_json()["Attributes"]))))
    Table.__deepcopy__ = _same_table
    try:
        MOTO.transact_write_items(self, transact_items)
    except BaseException:
        for table, key, attributes in reversed(saved):
            if attributes is not None:
                table.put_item(attributes)
            else:
                table.delete_item(DynamoType(key[table.hash_key_attr]),
                                  DynamoType(key[table.range_key_attr]) if table.range_key_attr else None)
        raise
    finally:
        del Table.__deepcopy__


def update_item(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any):
    """`DynamoDBBackend.update_item`: moto's own (in place), then the item's size is forgotten
    and its index buckets follow."""
    item = MOTO.update_item(self, table_name, *args, **kwargs)
    if item is not None:
        _sizes.forget(item)
        _reindex(self.get_table(table_name), item)
    return item


_ITEM_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}


def _binary(value: Any) -> str:
    """Binary attribute values go over the wire as base64, as DynamoDB's JSON protocol has them."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not part of an item read's answer")


def execute_result(self: DynamoResult, context: Any):
    """`DynamoResult.execute_result`: item reads written straight to DynamoDB's JSON."""
    if context.operation_model.name not in _ITEM_READS:
        return MOTO.execute_result(self, context)
    return 200, dict(_JSON_HEADERS), json.dumps(self.result, separators=(",", ":"), default=_binary)


def _cast_value(self: DynamoType) -> Any:
    if self.type == "S":
        return self.value
    return MOTO.cast_value.fget(self)


cast_value = property(_cast_value, doc="`DynamoType.cast_value`: a string is itself.")

_request_lock = threading.Lock()


def call_action(handler: DynamoHandler):
    """`DynamoHandler.call_action`: one emulated DynamoDB request at a time, atomic as DynamoDB's are.

    moto's TransactWriteItems snapshots whole tables with deepcopy and restores them when a
    condition fails, so two transactions in flight at once either crash the copy or roll back
    each other's committed writes. One request at a time removes the emulator's own races and
    leaves ours (read, then a conditional write) exactly as they are on AWS.
    """
    with _request_lock:
        return MOTO.call_action(handler)
