"""The registry's index: every registered image's listing facts, tags and hashes in memory, so the
registry list, `similar` and `duplicates` never read the whole catalog per call.

`RegistryIndex` is a `ProjectIndex` (the same `img` and `tag` tables, the same filter clauses)
over every image of the registry, with the registry's own orders: by path for the list, by
content (SHA-256) for duplicate groups, and a packed array of perceptual hashes scanned for
`similar` (64-bit XOR and popcount per image: about 60 ms per million images in CPython). The
packed hashes and the duplicate groups are computed on first use after a change.

`IndexedRegistry` keeps it current like every project's index (services/kept_index.py), from the
stream `R` (records registered, re-ingested or marked missing; store/images.py) and the tag
stream, and builds it from the catalog index (one paginated Query per shard) when no snapshot
serves.
"""
from __future__ import annotations

import threading
from array import array
from datetime import datetime
from typing import Iterable

from chalicelib.services.filters import ImageFilter
from chalicelib.services.kept_index import KeptIndexes, TagList
from chalicelib.services.trash import Trash
from chalicelib.services.index_filter import following, where
from chalicelib.services.project_index import EPOCH, LAYOUT, UNSIGNED, ProjectIndex, phash_hex
from chalicelib.store.changes import REGISTRY_STREAM, Change, ChangeLog
from chalicelib.store.images import CatalogEntry, ImageRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import PoolEntry

REGISTRY = "registry"  # the one scope (project ids are generated and never take this value)
EXTRA_SCHEMA = """
CREATE INDEX IF NOT EXISTS img_content ON img (sha256) WHERE sha256 IS NOT NULL AND status = 'ready';
"""


def _entry(entry: CatalogEntry) -> PoolEntry:
    created: datetime = entry.created_at or EPOCH
    return PoolEntry(image_id=entry.id, file_path=entry.file_path, status=entry.status, width=entry.width,
                     height=entry.height, size=entry.size, created_at=created, added_at=created,
                     sha256=entry.sha256, phash=entry.phash)


class RegistryIndex(ProjectIndex):
    layout = f"{LAYOUT}.registry-1"  # the project layout and what the registry adds

    def __init__(self, snapshot: bytes | None = None) -> None:
        super().__init__(snapshot)
        self._db.executescript(EXTRA_SCHEMA)
        self._hashes: tuple[array, array] | None = None  # (phash as unsigned, slot) of ready images
        # (hidden prefixes, [(sha256, count) of repeated content, in order]) as last counted
        self._groups: tuple[tuple[str, ...], list[tuple[bytes, int]]] | None = None
        self._hashes_lock = threading.Lock()

    def put_catalog(self, entries: Iterable[CatalogEntry]) -> None:
        entries = list(entries)
        self.put_entries(_entry(entry) for entry in entries)
        self.set_tags({entry.id: sorted(entry.tag_ids) for entry in entries})

    def put_entries(self, entries: Iterable[PoolEntry]) -> None:
        super().put_entries(entries)
        self._hashes = self._groups = None

    def drop_entries(self, image_ids: Iterable[str]) -> None:
        super().drop_entries(image_ids)
        self._hashes = self._groups = None

    # Reading --------------------------------------------------------------------------------------

    def listing(self, *, search: str | None, tag_ids: list[str], prefix: str, status: str | None,
                hidden: tuple[str, ...] = ()) -> tuple[str, list]:
        """The registry list's filter as a clause (tags: ALL of them), without `hidden` prefixes."""
        clause, params = where(ImageFilter.model_construct(search=search or None, tag_ids=list(tag_ids),
                                                           tag_mode="all", path_prefix=prefix or None), hidden=hidden)
        if status is not None:
            clause, params = f"({clause}) AND status = ?", [*params, status]
        return clause, params

    def page(self, clause: str, params: list, start: int, limit: int) -> list[str]:
        """Image ids of one page of a filter, in path order."""
        with self.lock:
            rows = self._db.execute(f"SELECT image_id FROM img WHERE {clause} ORDER BY file_path, image_id "
                                    "LIMIT ? OFFSET ?", [*params, limit, start]).fetchall()
        return [row[0] for row in rows]

    def duplicate_groups(self, start: int, limit: int,
                         hidden: tuple[str, ...] = ()) -> tuple[list[tuple[str, list[str]]], int]:
        """Groups of ready images with the same SHA-256, largest first (then by hash): one page of
        (sha256, image ids in path order), and how many groups there are; `hidden` prefixes left out."""
        visible, params = where(ImageFilter.model_construct(), hidden=hidden)
        with self._hashes_lock:
            kept = self._groups
            if kept is None or kept[0] != hidden:
                with self.lock:
                    kept = self._groups = (hidden, self._db.execute(
                        f"SELECT sha256, COUNT(*) AS n FROM img WHERE sha256 IS NOT NULL AND status = 'ready' "
                        f"AND {visible} GROUP BY sha256 HAVING n > 1 ORDER BY n DESC, sha256", params).fetchall())
        groups = kept[1]
        chosen = [sha for sha, _ in groups[start : start + limit]]
        members: dict[bytes, list[str]] = {sha: [] for sha in chosen}
        with self.lock:
            for sha, image_id in self._db.execute(
                    f"SELECT sha256, image_id FROM img WHERE sha256 IN ({','.join('?' * len(chosen))}) "
                    f"AND status = 'ready' AND {visible} ORDER BY file_path, image_id", [*chosen, *params]):
                members[sha].append(image_id)
        return [(sha.hex(), members[sha]) for sha in chosen], len(groups)

    def with_content(self, sha256s: list[str]) -> dict[str, list[tuple[str, str]]]:
        """SHA-256 (hex) → (image id, path) of the ready images with those bytes."""
        found: dict[str, list[tuple[str, str]]] = {}
        with self.lock:
            for start in range(0, len(sha256s), 500):
                chunk = [bytes.fromhex(sha) for sha in sha256s[start:start + 500]]
                for sha, image_id, path in self._db.execute(
                        f"SELECT sha256, image_id, file_path FROM img WHERE sha256 IN ({','.join('?' * len(chunk))}) "
                        "AND status = 'ready'", chunk):
                    found.setdefault(sha.hex(), []).append((image_id, path))
        return found

    def totals_under(self, prefix: str) -> tuple[int, int]:
        """(images, bytes) of the records under a path prefix (a dataset's impact)."""
        with self.lock:
            count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM img "
                                           "WHERE file_path >= ? AND file_path < ?",
                                           (prefix, following(prefix))).fetchone()
        return int(count), int(size)

    def hash_of(self, image_id: str) -> tuple[str | None, str] | None:
        """An image's perceptual hash (None when it has none) and status; None for no such image."""
        with self.lock:
            row = self._db.execute("SELECT phash, status FROM img WHERE image_id = ?", (image_id,)).fetchone()
        return None if row is None else (phash_hex(row[0]), row[1])

    def similar(self, phash: str, max_distance: int, limit: int, exclude: str) -> list[tuple[int, str]]:
        """(distance, image id) of ready images within `max_distance` bits of `phash`, closest first
        (then by path), at most `limit`: one pass over the packed hashes."""
        hashes, slots = self._packed()
        query = int(phash, 16)
        close = [(distance, slots[at]) for at, value in enumerate(hashes)
                 if (distance := (value ^ query).bit_count()) <= max_distance]
        if not close:
            return []
        by_slot: dict[int, tuple[str, str]] = {}
        with self.lock:
            ordered = [slot for _, slot in close]
            for chunk_start in range(0, len(ordered), 500):
                chunk = ordered[chunk_start : chunk_start + 500]
                for slot, image_id, path in self._db.execute(
                        f"SELECT slot, image_id, file_path FROM img WHERE slot IN ({','.join('?' * len(chunk))})",
                        chunk):
                    by_slot[slot] = (image_id, path)
        found = sorted((distance, by_slot[slot][1], by_slot[slot][0]) for distance, slot in close
                       if slot in by_slot and by_slot[slot][0] != exclude)
        return [(distance, image_id) for distance, _, image_id in found[:limit]]

    def _packed(self) -> tuple[array, array]:
        with self._hashes_lock:
            packed = self._hashes
            if packed is None:
                hashes, slots = array("Q"), array("q")
                with self.lock:
                    for slot, value in self._db.execute(
                            "SELECT slot, phash FROM img WHERE status = 'ready' AND phash IS NOT NULL"):
                        hashes.append(value & UNSIGNED)
                        slots.append(slot)
                packed = self._hashes = (hashes, slots)
        return packed


class IndexedRegistry(KeptIndexes[RegistryIndex]):
    """The registry's index, brought up to date on every call (see the module's note)."""

    layout = RegistryIndex.layout

    def __init__(self, images: ImageRepository, log: ChangeLog, snapshots: Bucket | None = None,
                 tag_list: TagList | None = None, trash: "Trash | None" = None) -> None:
        super().__init__(log, snapshots, tag_list, trash)
        self._images = images

    def index(self) -> RegistryIndex:
        return self.current(REGISTRY)

    def _own_stream(self, scope: str) -> str:
        return REGISTRY_STREAM

    def _open(self, snapshot: bytes) -> RegistryIndex:
        return RegistryIndex(snapshot)

    def _build_index(self, scope: str) -> RegistryIndex:
        index = RegistryIndex()
        index.put_catalog(self._images.catalog())
        return index

    def _apply(self, scope: str, index: RegistryIndex, records: list[Change]) -> None:
        changed = {image for record in records for image in record.entries}
        tagged = {image for record in records for image in record.tagged} - changed
        if changed:
            present = self._images.catalog_entries(changed)
            index.drop_entries(changed - set(present))
            index.put_catalog(present.values())
        if tagged:
            held = index.members(tagged)
            tags = self._images.tag_sets(held)
            index.set_tags({image_id: sorted(tags.get(image_id, ())) for image_id in held})

