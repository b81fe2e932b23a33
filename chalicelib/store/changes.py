"""The change log (`stream`, `at`): what changed among Explore's facts, written with the change.

Explore answers from an in-memory index (services/explore_index.py) that every API instance keeps
and brings up to date on each call by reading the records after its watermark. A record is written
in the same DynamoDB write as the change it names (one action of the change's transaction), or
right after a batch write, before the request answers: a client that got a 2xx finds it.

Three kinds of stream:
- `P#<project>`: the project's pool entries (membership, facts, annotation count), its tasks
  (state, split, their job images) and single job images (annotated or not);
- `R`: registry images whose record changed (registered, re-ingested, missing);
- `G`: images whose tags, caption or completed ML analyses changed, tags created, changed or
  deleted, and datasets deleted, restored or purged (a deleted dataset's images are hidden
  everywhere: services/trash.py). Those are facts of the image, shared by every project that holds
  it: one record reaches all of them, and each index takes the images it holds.

A record names what changed, not the new value: the reader re-reads those items from their tables
(the source of truth), so a record applied late, twice or out of order does no harm. `at` is the
writer's clock (ISO time to the microsecond, then a random suffix); records commit in about that
order, and readers re-read a margin before their watermark to catch one that committed late.
Records expire after `RETENTION` (TTL); index snapshots must be younger than that.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.store.dynamo import Transaction, connection, store_errors, table_meta

RETENTION = timedelta(days=7)
TAGS_STREAM = "G"
REGISTRY_STREAM = "R"
RECORD_IDS = 2000  # ids per record written outside a transaction (an item holds at most 400 KB)


def project_stream(project_id: str) -> str:
    return f"P#{project_id}"


class ChangeItem(Model):
    Meta = table_meta("changes_table")

    stream = UnicodeAttribute(hash_key=True)
    at = UnicodeAttribute(range_key=True)
    entries = UnicodeSetAttribute(null=True)  # image ids whose pool entry (P) or record (R) changed
    tagged = UnicodeSetAttribute(null=True)  # image ids whose tags, caption or completed analyses changed
    tasks = UnicodeSetAttribute(null=True)  # task ids whose state, split or job images changed
    uses = UnicodeSetAttribute(null=True)  # "<task>#<job>#<image>": a job image's annotated flag changed
    tags = UnicodeSetAttribute(null=True)  # tag ids created, renamed, recoloured or deleted (G)
    datasets = UnicodeSetAttribute(null=True)  # dataset ids deleted, restored or purged (G): what is hidden
    expires_at = NumberAttribute()


@dataclass(frozen=True)
class Change:
    stream: str
    at: str
    entries: frozenset[str] = field(default_factory=frozenset)
    tagged: frozenset[str] = field(default_factory=frozenset)
    tasks: frozenset[str] = field(default_factory=frozenset)
    uses: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)
    tags: frozenset[str] = field(default_factory=frozenset)
    datasets: frozenset[str] = field(default_factory=frozenset)


def stamp() -> str:
    """A change's sort key: the writer's time to the microsecond, unique by a random suffix."""
    return f"{utcnow().strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{secrets.token_hex(4)}"


def item(stream: str, *, entries: Iterable[str] = (), tagged: Iterable[str] = (), tasks: Iterable[str] = (),
         uses: Iterable[tuple[str, str, str]] = (), tags: Iterable[str] = (),
         datasets: Iterable[str] = ()) -> ChangeItem:
    """A change record, to be put in the transaction (or after the batch) that makes the change."""
    return ChangeItem(
        stream=stream, at=stamp(),
        entries=set(entries) or None, tagged=set(tagged) or None, tasks=set(tasks) or None,
        uses={"#".join(use) for use in uses} or None, tags=set(tags) or None,
        datasets=set(datasets) or None, expires_at=int((utcnow() + RETENTION).timestamp()),
    )


def put_in(tx: Transaction, stream: str, **what: Iterable) -> None:
    """Add the record of a change to the transaction that makes it."""
    tx.put(item(stream, **what), name="change")


def record(stream: str, **what: Iterable) -> None:
    """Append records after a write that no transaction could carry them in (batch writes),
    `RECORD_IDS` ids to a record."""
    chunks: list[dict[str, list]] = []
    for name, values in what.items():
        values = list(dict.fromkeys(values))
        for start in range(0, len(values), RECORD_IDS):
            chunks.append({name: values[start : start + RECORD_IDS]})
    if not chunks:
        return
    with store_errors("recording a change"):
        if len(chunks) == 1:
            item(stream, **chunks[0]).save()
            return
        with ChangeItem.batch_write() as batch:
            for chunk in chunks:
                batch.save(item(stream, **chunk))


class ChangeLog:

    def since(self, stream: str, after: str) -> list[Change]:
        """The records of `stream` after `after` (strongly consistent), oldest first."""
        table = connection(ChangeItem)
        records: list[Change] = []
        start = None
        with store_errors("reading the change log"):
            while True:
                page = table.query(stream, ChangeItem.at > after, consistent_read=True, exclusive_start_key=start)
                for raw in page.get("Items", ()):
                    records.append(_change(raw))
                start = page.get("LastEvaluatedKey")
                if not start:
                    return records

    def latest(self, stream: str) -> str | None:
        """The newest record's `at`, if any."""
        table = connection(ChangeItem)
        with store_errors("reading the change log"):
            page = table.query(stream, consistent_read=True, scan_index_forward=False, limit=1)
        items = page.get("Items", ())
        return items[0]["at"]["S"] if items else None

    def clear(self, stream: str) -> int:
        """Delete every record of a stream (rebuild tests, project deletion)."""
        removed = 0
        with store_errors("clearing the change log"):
            with ChangeItem.batch_write() as batch:
                for record in ChangeItem.query(stream, attributes_to_get=["stream", "at"]):
                    batch.delete(record)
                    removed += 1
        return removed


def _strings(raw: dict, name: str) -> frozenset[str]:
    value = raw.get(name)
    return frozenset(value["SS"]) if value and "SS" in value else frozenset()


def _change(raw: dict) -> Change:
    uses = frozenset(tuple(use.split("#", 2)) for use in _strings(raw, "uses"))
    return Change(stream=raw["stream"]["S"], at=raw["at"]["S"], entries=_strings(raw, "entries"),
                  tagged=_strings(raw, "tagged"), tasks=_strings(raw, "tasks"), uses=uses,  # type: ignore[arg-type]
                  tags=_strings(raw, "tags"), datasets=_strings(raw, "datasets"))
