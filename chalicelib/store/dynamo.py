"""The DynamoDB plumbing every repository shares, on PynamoDB's and botocore's public API.

- `table_meta(setting)`: a model's `Meta`, bound to its table, region and endpoint at first use
  (importing a model reads no settings);
- `connection(model)`: a `TableConnection` of our own for raw reads and transactions;
- `conditional(...)`: a conditional put/update/delete whose failed condition becomes the domain
  error the caller names, and any other SDK failure a `StoreError`;
- `Transaction`: TransactWriteItems sent in the order its actions were added, so a cancellation
  reason is looked up by the action's name;
- `query_values(...)`: a whole partition as plain values, no model per item;
- the fast item decoder of `wire`, installed on every PynamoDB client through PynamoDB's
  `pre_dynamodb_send` signal, switched by `Settings.fast_item_reads`.

What this module assumes of the libraries, each pinned by tests/unit/test_dynamo.py or
tests/unit/test_wire.py: PynamoDB reads `Meta.table_name` before `Meta.region` and `Meta.host`
when it builds a model's connection, keeps that connection in the model's `_connection` (the one
private name used here, by `forget_connections`), and sends `pre_dynamodb_send` (blinker) with the
`Connection` before every request; botocore emits `before-parse` with the arguments
`wire.before_parse` takes and merges `customized_response_dict` into the parsed answer.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, Sequence, TypeVar, get_args, get_origin, get_type_hints

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import MapAttribute
from pynamodb.connection import Connection, TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.exceptions import DoesNotExist, PynamoDBException, VerboseClientError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.signals import pre_dynamodb_send

from chalicelib.config import get_settings
from chalicelib.errors import PixelpoolError, StoreError
from chalicelib.store import wire
from chalicelib.store.aws import endpoint_url

CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"
CLIENT_OPTIONS = {"max_retry_attempts": 5, "connect_timeout_seconds": 5, "read_timeout_seconds": 10}


class _LazyMeta(type):
    """The type of a model's `Meta`: `table_name` comes from the settings when first read, and
    reading it binds `region` and `host` too (again whenever the settings object changes)."""

    def __set_name__(meta, owner: type[Model], name: str) -> None:
        meta.model = owner

    @property
    def table_name(meta) -> str:
        settings = get_settings()
        if meta.bound_to is not settings:
            region, host = settings.region, endpoint_url("dynamodb")
            if meta.bound_to is not None and (region, host) != (meta.region, meta.host):
                forget_connections([meta.model])  # PynamoDB would keep it while the table name stays
            meta.region, meta.host = region, host
            meta.bound_name = getattr(settings, meta.setting)
            meta.bound_to = settings
        return meta.bound_name


def table_meta(setting: str) -> type:
    """A PynamoDB `Meta` for the table named by `Settings.<setting>`, bound at first use."""
    return _LazyMeta("Meta", (), {"setting": setting, "model": None, "bound_to": None, "bound_name": None,
                                  "region": None, "host": None, **CLIENT_OPTIONS})


def _meta_table(model: type[Model], name: str) -> MetaTable:
    keys = [attribute for attribute in model.get_attributes().values()
            if attribute.is_hash_key or attribute.is_range_key]
    return MetaTable({
        "TableName": name,
        "KeySchema": [{"AttributeName": key.attr_name, "KeyType": "HASH" if key.is_hash_key else "RANGE"}
                      for key in keys],
        "AttributeDefinitions": [{"AttributeName": key.attr_name, "AttributeType": key.attr_type} for key in keys],
    })


_connections: dict[type[Model], tuple[tuple, TableConnection]] = {}


def connection(model: type[Model]) -> TableConnection:
    """A connection to `model`'s table, built from its `Meta` (one per model and binding)."""
    meta = model.Meta
    binding = (meta.table_name, meta.region, meta.host)
    cached = _connections.get(model)
    if cached is None or cached[0] != binding:
        options = {name: getattr(meta, name) for name in CLIENT_OPTIONS}
        built = TableConnection(binding[0], region=binding[1], host=binding[2],
                                meta_table=_meta_table(model, binding[0]), **options)
        cached = _connections[model] = (binding, built)
    return cached[1]


def warm_client(model: type[Model]) -> None:
    """Build `model`'s botocore client on this thread before reads fan out to others: PynamoDB
    builds it on first use, and threads that find none at once each load a botocore session of
    their own (~9 MB each, kept by the thread) to build one."""
    model._get_connection().connection.client  # noqa: B018 (the property builds it)


def forget_connections(models: Sequence[type[Model]]) -> None:
    """Drop the connections of `models`, ours and PynamoDB's, so that the next request builds them
    from the `Meta` again (a benchmark that changes timeouts, a process whose endpoint changed)."""
    for model in models:
        _connections.pop(model, None)
        # PynamoDB caches a model's connection here and rebuilds it only when the table name changes.
        model._connection = None


def _decode_item_reads(sender: Connection, **_: Any) -> None:
    if get_settings().fast_item_reads:
        wire.install(sender.client)
    else:
        wire.uninstall(sender.client)


pre_dynamodb_send.connect(_decode_item_reads)


@dataclass(frozen=True)
class ItemKeys:
    """Items of one table to read in the same request as others (`batch_get_tables`)."""

    model: type[Model]
    keys: list[dict[str, str]]


def batch_get_tables(action: str, requests: dict[type[Model], list[dict[str, str]]],
                     consistent_read: bool = True) -> dict[type[Model], list[dict]]:
    """One BatchGetItem across several tables (keys of string attributes, at most 100 in all),
    unprocessed keys retried: the raw items found, per model (`Model.from_raw_data` reads them)."""
    tables = {connection(model).table_name: model for model in requests}
    pending = {connection(model).table_name: {"Keys": [{name: {"S": value} for name, value in key.items()}
                                                       for key in keys], "ConsistentRead": consistent_read}
               for model, keys in requests.items() if keys}
    found: dict[type[Model], list[dict]] = {model: [] for model in requests}
    base = connection(next(iter(requests))).connection
    for attempt in range(6):
        if not pending:
            return found
        try:
            answer = base.dispatch("BatchGetItem", {"RequestItems": pending})
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"{action} failed: {exc}") from exc
        for table, items in answer.get("Responses", {}).items():
            found[tables[table]] += items
        pending = answer.get("UnprocessedKeys") or {}
        if pending:
            time.sleep(0.05 * 2**attempt)
    raise StoreError(f"{action} failed: DynamoDB left keys unprocessed after 6 attempts")


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Re-raise SDK failures the caller cannot act on as a domain `StoreError`."""
    try:
        yield
    except DoesNotExist:
        raise  # a lookup answer, for the repository to turn into NotFoundError
    except PynamoDBException as exc:
        raise StoreError(f"{action} failed: {exc.msg}") from exc


@dataclass
class Write:
    """The outcome of a `conditional` block: `done` is False when the condition did not hold."""

    done: bool = True


@contextmanager
def conditional(action: str, failed: PixelpoolError | None = None) -> Iterator[Write]:
    """Run one conditional put, update or delete. A condition that does not hold raises `failed`
    (or, without one, sets `Write.done` to False); any other failure is a `StoreError`."""
    write = Write()
    try:
        yield write
    except PynamoDBException as exc:
        if exc.cause_response_code != f"{CONDITION_FAILED}Exception":
            raise StoreError(f"{action} failed: {exc.msg}") from exc
        if failed is not None:
            raise failed from exc
        write.done = False


class TransactionCancelled(StoreError):
    """DynamoDB cancelled a transaction; `failed(name)` says whether that action's condition failed."""

    def __init__(self, action: str, reasons: dict[Hashable, str | None]) -> None:
        codes = sorted({code for code in reasons.values() if code})
        super().__init__(f"{action} failed: transaction cancelled ({', '.join(codes) or 'no reason given'})")
        self.reasons = reasons

    def failed(self, name: Hashable) -> bool:
        return self.reasons.get(name) == CONDITION_FAILED

    @property
    def conflicted(self) -> bool:
        """Whether another transaction touched the same items (a retry may succeed)."""
        return TRANSACTION_CONFLICT in self.reasons.values()


class Transaction:
    """TransactWriteItems, sent in the order actions are added; commits on a clean `with` exit.

    Each action has a name (its position unless given), by which `TransactionCancelled.failed`
    finds its cancellation reason.
    """

    def __init__(self, action: str, *, token: str | None = None) -> None:
        self.action = action
        self.token = token
        self._items: list[dict[str, Any]] = []
        self._names: list[Hashable] = []
        self._connection: Connection | None = None

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()

    def _add(self, kind: str, model: type[Model], kwargs: dict[str, Any], name: Hashable | None) -> Hashable:
        name = len(self._items) if name is None else name
        if name in self._names:
            raise ValueError(f"two actions named {name!r} in one transaction")
        if self._connection is None:
            self._connection = connection(model).connection
        self._items.append({kind: kwargs})
        self._names.append(name)
        return name

    def put(self, item: Model, condition: Condition | None = None, *, name: Hashable | None = None) -> Hashable:
        return self._add("Put", type(item), item.get_save_kwargs_from_instance(condition=condition), name)

    def update(self, item: Model, actions: list, condition: Condition | None = None, *,
               name: Hashable | None = None) -> Hashable:
        kwargs = item.get_update_kwargs_from_instance(actions=actions, condition=condition)
        return self._add("Update", type(item), kwargs, name)

    def delete(self, item: Model, condition: Condition | None = None, *, name: Hashable | None = None) -> Hashable:
        return self._add("Delete", type(item), item.get_delete_kwargs_from_instance(condition=condition), name)

    def commit(self) -> None:
        if not self._items:
            return
        request: dict[str, Any] = {"TransactItems": self._items}
        if self.token:
            request["ClientRequestToken"] = self.token
        try:
            self._connection.dispatch("TransactWriteItems", request)
        except VerboseClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                codes = [reason.code if reason is not None else None for reason in exc.cancellation_reasons]
                raise TransactionCancelled(self.action, dict(zip(self._names, codes))) from exc
            raise StoreError(f"{self.action} failed: {exc}") from exc
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{self.action} failed: {exc}") from exc


def query_values(model: type[Model], hash_key: str, names: Sequence[str], *,
                 consistent_read: bool = True) -> Iterator[dict[str, Any]]:
    """A whole partition's items as {name: value} of `names` (projected: only those are read).

    For reads of thousands of items: the values are decoded by the model's own attributes, but no
    model is built per item, which costs PynamoDB ~0.08 ms an item (more than the read itself)."""
    attributes = model.get_attributes()
    plan = [(name, attributes[name].attr_name, attributes[name].attr_type, attributes[name].deserialize)
            for name in names]
    table = connection(model)
    start = None
    while True:
        page = table.query(hash_key, attributes_to_get=[stored for _, stored, _, _ in plan],
                           consistent_read=consistent_read, exclusive_start_key=start)
        for raw in page.get("Items", ()):
            values = {}
            for name, stored, kind, deserialize in plan:
                value = raw.get(stored)
                values[name] = None if value is None or "NULL" in value else deserialize(value[kind])
            yield values
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def plain(value: Any) -> Any:
    """A raw `MapAttribute` as plain JSON-able Python (whole-number floats back to int)."""
    if isinstance(value, MapAttribute):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


E = TypeVar("E")


def entity(kind: type[E], item: Model, **given: Any) -> E:
    """The store's frozen dataclass `kind` made from `item`: each field read from the item's
    attribute of the same name (or taken from `given`, for keys and renamed fields) and shaped by
    the field's annotation — numbers as int, maps and lists as plain JSON values, an absent
    collection as an empty one, sets as sorted tuples. Adding a field to an entity is then one
    attribute and one dataclass field, side by side, and no converter."""
    values = {}
    for name, (shape, has_default) in _shapes(kind).items():
        if name in given:
            values[name] = given[name]
        else:
            value = shape(getattr(item, name))
            if value is not None or not has_default:  # an unset attribute takes the field's default
                values[name] = value
    return kind(**values)



@functools.cache
def _shapes(kind: type) -> dict[str, tuple[Callable[[Any], Any], bool]]:
    hints = get_type_hints(kind)
    return {field.name: (_shape(hints[field.name]), field.default is not dataclasses.MISSING)
            for field in dataclasses.fields(kind)}


def _shape(annotation: Any) -> Callable[[Any], Any]:
    arguments = [argument for argument in get_args(annotation) if argument is not type(None)]
    optional = len(arguments) < len(get_args(annotation))
    base = arguments[0] if optional and len(arguments) == 1 else annotation
    origin = get_origin(base) or base
    if origin is int:
        convert: Callable[[Any], Any] = int
    elif origin is dict or origin is list:
        convert = plain
    elif origin is tuple or origin is frozenset:
        convert = lambda value: origin(sorted(value))  # noqa: E731 (a DynamoDB set has no order)
    else:
        return lambda value: value
    if optional:
        return lambda value: None if value is None else convert(value)
    empty = origin()  # a required int, dict, list, tuple or frozenset absent from the item
    return lambda value: empty if value is None else convert(value)
