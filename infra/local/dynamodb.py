"""Partition-keyed Query for the emulator's DynamoDB.

moto's `Table.query` starts from `Table.all_items()`, which walks and sorts the whole table on
every call and every page. Here, while one Query runs, `all_items()` answers with only the
candidate items of the queried partition: the base table's own `items[hash]` bucket, or a
per-index bucket kept up to date on every write. moto then runs its own key conditions, sort,
pagination, filters and projections on that list unchanged, so results are the same as moto's
(tests/unit/test_local_dynamodb.py compares both) at a cost that follows the partition size, not
the table size. Only the embedded emulator is patched; code running on AWS never sees this.

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
"""
from __future__ import annotations

import base64
import bisect
import inspect
import json
import threading
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
from moto.dynamodb.responses import DynamoResult

_state = threading.local()
_lock = threading.RLock()
_originals: dict[str, Any] = {}
_QUERY_SIGNATURE: inspect.Signature


def accelerate_queries() -> None:
    """Install the acceleration (idempotent)."""
    with _lock:
        if _originals:
            return
        _originals.update(
            query=Table.query,
            all_items=Table.all_items,
            put_item=Table.put_item,
            delete_item=Table.delete_item,
            update_item=DynamoDBBackend.update_item,
            execute_result=DynamoResult.execute_result,
            cast_value=DynamoType.cast_value,
            get_item=DynamoDBBackend.get_item,
            item_deepcopy=Item.__deepcopy__,
            item_size=Item.size,
            project=Item.project,
        )
        global _QUERY_SIGNATURE
        _QUERY_SIGNATURE = inspect.signature(Table.query)
        Table.query = _query
        Table.all_items = _all_items
        Table.put_item = _put_item
        Table.delete_item = _delete_item
        DynamoDBBackend.update_item = _update_item
        DynamoResult.execute_result = _execute_result
        DynamoType.cast_value = property(_cast_value)
        DynamoDBBackend.get_item = _get_item
        Item.__deepcopy__ = _item_deepcopy
        Item.size = _item_size
        Item.project = _project


_request_lock = threading.Lock()
_serialized = False


def serialize_requests() -> None:
    """Make each emulated DynamoDB request atomic, as DynamoDB's are (idempotent).

    moto's TransactWriteItems snapshots whole tables with deepcopy and restores them when a
    condition fails, so two transactions in flight at once either crash the copy or roll back
    each other's committed writes. One request at a time removes the emulator's own races and
    leaves ours (read, then a conditional write) exactly as they are on AWS.
    """
    global _serialized
    from moto.dynamodb.responses import DynamoHandler

    with _lock:
        if _serialized:
            return
        original = DynamoHandler.call_action

        def call_action(handler: DynamoHandler):
            with _request_lock:
                return original(handler)

        DynamoHandler.call_action = call_action
        _serialized = True


def restore() -> None:
    """Put moto's own methods back (used by the test that compares both answers)."""
    with _lock:
        if not _originals:
            return
        Table.query = _originals["query"]
        Table.all_items = _originals["all_items"]
        Table.put_item = _originals["put_item"]
        Table.delete_item = _originals["delete_item"]
        DynamoDBBackend.update_item = _originals["update_item"]
        DynamoResult.execute_result = _originals["execute_result"]
        DynamoType.cast_value = _originals["cast_value"]
        DynamoDBBackend.get_item = _originals["get_item"]
        Item.__deepcopy__ = _originals["item_deepcopy"]
        Item.size = _originals["item_size"]
        Item.project = _originals["project"]
        _originals.clear()


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


def _key(item: Any) -> tuple:
    return (item.hash_key, item.range_key)


def _sort_key(item: Any) -> Any:
    return (item.hash_key, item.range_key) if item.range_key else item.hash_key


def _index_buckets(table: Table, index_name: str, attr: str) -> _IndexBuckets:
    cache = table.__dict__.setdefault("_pixelpool_indexes", {})
    buckets = cache.get(index_name)
    if buckets is None or buckets.attr != attr:
        buckets = cache[index_name] = _IndexBuckets(attr, _originals["all_items"](table))
    return buckets


def _partition(table: Table, hash_key: Any) -> list:
    """A base-table partition's items in range-key order (kept until a put or delete in it)."""
    cache = table.__dict__.setdefault("_pixelpool_partitions", {})
    found = cache.get(hash_key)
    if found is None:
        with _lock:
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


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any):
    bound = _QUERY_SIGNATURE.bind(self, hash_key, *args, **kwargs).arguments
    candidates = _candidates(self, hash_key, bound.get("index_name"), bound.get("hash_key_conditions"),
                             bound.get("exclusive_start_key"), bound.get("scan_index_forward") is not False)
    if candidates is not None and not bound.get("index_name") and not bound.get("range_comparison") \
            and not bound.get("range_key_conditions") and not bound.get("filter_kwargs"):
        candidates = _one_page(candidates, bound.get("limit"), bound.get("scan_index_forward") is not False)
    if candidates is None:
        return _originals["query"](self, hash_key, *args, **kwargs)
    _state.candidates = (self, candidates)
    try:
        with _reading():
            return _originals["query"](self, hash_key, *args, **kwargs)
    finally:
        _state.candidates = None


@contextmanager
def _reading():
    """Mark this thread's work as one read request's (see the module docstring)."""
    outer = getattr(_state, "reading", False)
    _state.reading = True
    try:
        yield
    finally:
        _state.reading = outer


def _get_item(self: DynamoDBBackend, *args: Any, **kwargs: Any):
    with _reading():
        return _originals["get_item"](self, *args, **kwargs)


def _item_deepcopy(self: Item, memo: dict) -> Item:
    if getattr(_state, "reading", False):
        return self
    return _originals["item_deepcopy"](self, memo)


def _item_size(self: Item) -> int:
    if not getattr(_state, "reading", False):
        return _originals["item_size"](self)
    size = self.__dict__.get("_pixelpool_size")
    if size is None:
        size = self.__dict__["_pixelpool_size"] = _originals["item_size"](self)
    return size


def _project(self: Item, projection_expressions: list[list[str]]) -> Item:
    if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
        return _originals["project"](self, projection_expressions)
    projected = Item.__new__(Item)
    projected.hash_key, projected.range_key = self.hash_key, self.range_key
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    for (name,) in projection_expressions:
        value = self.attrs.get(name)
        if value is not None:
            dict.__setitem__(attrs, name, value)
    projected.attrs = attrs
    return projected


def _all_items(self: Table) -> list:
    current = getattr(_state, "candidates", None)
    if current is not None and current[0] is self:
        return current[1]
    return _originals["all_items"](self)


def _forget_partition(table: Table, hash_key: Any) -> None:
    """A put or delete changes which items a partition holds (an update changes an item in place)."""
    partitions = table.__dict__.get("_pixelpool_partitions")
    if partitions:
        with _lock:
            partitions.pop(hash_key, None)


def _reindex(table: Table, item: Any | None, removed_key: tuple | None = None) -> None:
    indexes = table.__dict__.get("_pixelpool_indexes")
    if not indexes:
        return
    with _lock:
        for buckets in indexes.values():
            if removed_key is not None:
                buckets.remove(removed_key)
            if item is not None:
                buckets.place(item)


def _put_item(self: Table, *args: Any, **kwargs: Any):
    item = _originals["put_item"](self, *args, **kwargs)
    _forget_partition(self, item.hash_key)
    _reindex(self, item)
    return item


def _delete_item(self: Table, hash_key: Any, range_key: Any):
    item = _originals["delete_item"](self, hash_key, range_key)
    if item is not None:
        _forget_partition(self, item.hash_key)
        _reindex(self, None, removed_key=_key(item))
    return item


def _update_item(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any):
    item = _originals["update_item"](self, table_name, *args, **kwargs)
    if item is not None:
        item.__dict__.pop("_pixelpool_size", None)
        _reindex(self.get_table(table_name), item)
    return item


_ITEM_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_JSON_HEADERS = {"Content-Type": "application/x-amz-json-1.0"}


def _binary(value: Any) -> str:
    """Binary attribute values go over the wire as base64, as DynamoDB's JSON protocol has them."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not part of an item read's answer")


def _execute_result(self: DynamoResult, context: Any):
    if context.operation_model.name not in _ITEM_READS:
        return _originals["execute_result"](self, context)
    return 200, dict(_JSON_HEADERS), json.dumps(self.result, separators=(",", ":"), default=_binary)


def _cast_value(self: DynamoType) -> Any:
    if self.type == "S":
        return self.value
    return _originals["cast_value"].fget(self)
