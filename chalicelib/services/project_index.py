"""One project's Explore facts in an in-memory SQLite database, and a filter's answer over it.

`ProjectIndex` holds every pool entry's filterable facts (path, folded file name, dimensions,
size, status, landing time, annotation count), the images' tags and captions, their completed ML
analyses with each prediction's class and confidence, and the ready tasks' placements;
`where` (services/index_filter.py) turns an `ImageFilter` into one WHERE clause, so a total is a
COUNT and a page a LIMIT/OFFSET in Explore order; `split_leaks` finds copies of one picture across
the tasks' splits (services/split_leaks.py). Keeping it current is `IndexedExplore`'s
(services/explore_index.py).
"""
from __future__ import annotations

import functools
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from typing import Iterable

from chalicelib.services.explore import Placement, Selection
from chalicelib.services.filters import ImageFilter
from chalicelib.services.index_filter import following, marks, where
from chalicelib.services.shared_facts import AnalysisFacts
from chalicelib.services.split_leaks import Copy, Leak, find, split_rank
from chalicelib.store.jobs import JobImage
from chalicelib.store.pool import PoolEntry
from chalicelib.store.tasks import Task

SCHEMA = """
CREATE TABLE img (
    slot INTEGER PRIMARY KEY,
    image_id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    added INTEGER NOT NULL,
    file_path TEXT NOT NULL,
    name_folded TEXT NOT NULL,
    status TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    size INTEGER,
    sha256 BLOB,
    phash INTEGER,
    annotation_count INTEGER NOT NULL,
    caption_folded TEXT
);
CREATE INDEX img_order ON img (created DESC, image_id);
CREATE INDEX img_path ON img (file_path);
CREATE TABLE tag_name (tag INTEGER PRIMARY KEY, tag_id TEXT NOT NULL UNIQUE);
CREATE TABLE tag (tag INTEGER NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (tag, slot)) WITHOUT ROWID;
CREATE INDEX tag_slot ON tag (slot);
CREATE TABLE task (task_id TEXT PRIMARY KEY, name TEXT NOT NULL, split TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE job (job INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, task_id TEXT NOT NULL);
CREATE INDEX job_task ON job (task_id);
CREATE TABLE place (job INTEGER NOT NULL, slot INTEGER NOT NULL, annotated INTEGER NOT NULL,
                    PRIMARY KEY (job, slot)) WITHOUT ROWID;
CREATE INDEX place_slot ON place (slot);
CREATE TABLE model (model INTEGER PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL, UNIQUE (name, version));
CREATE TABLE class_name (cls INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE analysis (analysis INTEGER PRIMARY KEY, analysis_id TEXT NOT NULL UNIQUE, slot INTEGER NOT NULL,
                       model INTEGER NOT NULL);
CREATE INDEX analysis_slot ON analysis (slot, model);
CREATE INDEX analysis_model ON analysis (model, slot);
CREATE TABLE pred (analysis INTEGER NOT NULL, slot INTEGER NOT NULL, model INTEGER NOT NULL, cls INTEGER,
                   confidence REAL);
CREATE INDEX pred_slot ON pred (slot, cls, confidence);
CREATE INDEX pred_class ON pred (cls, confidence, slot);
CREATE INDEX pred_analysis ON pred (analysis);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
# A snapshot of another layout is not loaded (the index is built from DynamoDB instead).
LAYOUT = "5"
COLUMNS = "image_id, file_path, status, width, height, size, created, added, annotation_count, sha256, phash"
ORDER = "ORDER BY created DESC, image_id"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
UNSIGNED = (1 << 64) - 1
# The ready images in a split: in a task whose split is not `none` (a `failed` or `missing` image
# is in no export, so it leaks nothing and keeps no copy).
IN_A_SPLIT = ("status = 'ready' AND slot IN (SELECT place.slot FROM place JOIN job USING (job) "
              "JOIN task USING (task_id) WHERE task.split != 'none')")


def _micros(moment: datetime) -> int:
    """A time as whole microseconds since the epoch: exact both ways, and ordered as the times."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _row(entry: PoolEntry) -> tuple:
    return (entry.image_id, _micros(entry.created_at), _micros(entry.added_at), entry.file_path,
            entry.filename.casefold(), entry.status, entry.width, entry.height, entry.size,
            bytes.fromhex(entry.sha256) if entry.sha256 else None, phash_int(entry.phash), entry.annotation_count)


def _entry(row: tuple) -> PoolEntry:
    image_id, file_path, status, width, height, size, created, added, count, sha256, phash = row
    return PoolEntry(image_id=image_id, file_path=file_path, status=status, width=width, height=height, size=size,
                     created_at=_time(created), added_at=_time(added), annotation_count=count,
                     sha256=sha256.hex() if sha256 is not None else None, phash=phash_hex(phash))


def phash_int(phash: str | None) -> int | None:
    """A 64-bit perceptual hash as SQLite's signed 64-bit integer (the same bits)."""
    if not phash:
        return None
    value = int(phash, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_hex(value: int | None) -> str | None:
    return None if value is None else f"{value & UNSIGNED:016x}"


class ProjectIndex:
    """One project's Explore facts. Every method holds the index's lock: instances are shared by
    the threads of one API process. Ids repeated per row (tags, jobs) are stored once, as integers."""

    layout = LAYOUT

    def __init__(self, snapshot: bytes | None = None) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        if snapshot is None:
            self._db.executescript(SCHEMA)
        else:
            self._db.deserialize(snapshot)
        self.lock = threading.RLock()

    def snapshot(self, watermarks: dict[str, str]) -> bytes:
        """The whole index as one SQLite database image, with the watermarks it is current to."""
        with self.lock:
            self._db.execute("DELETE FROM meta")
            self._db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                                 [("layout", self.layout), *((f"watermark:{k}", v) for k, v in watermarks.items())])
            self._db.execute("VACUUM")
            return self._db.serialize()

    def meta(self) -> dict[str, str]:
        with self.lock:
            return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    # Writing --------------------------------------------------------------------------------------

    def put_entries(self, entries: Iterable[PoolEntry]) -> None:
        with self.lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO img (image_id, created, added, file_path, name_folded, status, width, height, size, "
                "sha256, phash, annotation_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (image_id) DO UPDATE SET created = excluded.created, added = excluded.added, "
                "file_path = excluded.file_path, name_folded = excluded.name_folded, status = excluded.status, "
                "width = excluded.width, height = excluded.height, size = excluded.size, sha256 = excluded.sha256, "
                "phash = excluded.phash, annotation_count = excluded.annotation_count",
                [_row(entry) for entry in entries])
            self._db.execute("COMMIT")

    def drop_entries(self, image_ids: Iterable[str]) -> None:
        with self.lock:
            slots = list(self._slots(list(image_ids)).values())
            self._db.execute("BEGIN")
            for table in ("tag", "place", "pred", "analysis", "img"):
                self._db.executemany(f"DELETE FROM {table} WHERE slot = ?", [(slot,) for slot in slots])
            self._db.execute("COMMIT")

    def set_tags(self, tags: dict[str, Iterable[str]]) -> None:
        """Replace the tags of these images (those not in the pool are skipped)."""
        with self.lock:
            slots = self._slots(list(tags))
            self._db.execute("BEGIN")
            numbers = self._numbers("tag_name", "tag", "tag_id", {tag for values in tags.values() for tag in values})
            self._db.executemany("DELETE FROM tag WHERE slot = ?", [(slot,) for slot in slots.values()])
            self._db.executemany("INSERT INTO tag (tag, slot) VALUES (?, ?)",
                                 [(numbers[tag], slots[image]) for image, values in tags.items() if image in slots
                                  for tag in values])
            self._db.execute("COMMIT")

    def set_captions(self, captions: dict[str, str | None]) -> None:
        """The captions of these images (None: none); those not in the pool are skipped."""
        with self.lock:
            self._db.executemany("UPDATE img SET caption_folded = ? WHERE image_id = ?",
                                 [(None if text is None else text.casefold(), image) for image, text in captions.items()])

    def analyses_of(self, image_ids: list[str]) -> dict[str, set[str]]:
        """The completed analyses the index holds for each of these images."""
        found: dict[str, set[str]] = {}
        with self.lock:
            for start in range(0, len(image_ids), 500):
                chunk = image_ids[start : start + 500]
                for image_id, analysis_id in self._db.execute(
                        "SELECT img.image_id, analysis.analysis_id FROM img JOIN analysis USING (slot) "
                        f"WHERE img.image_id IN ({marks(len(chunk))})", chunk):
                    found.setdefault(image_id, set()).add(analysis_id)
        return found

    def put_analyses(self, analyses: Iterable[AnalysisFacts]) -> None:
        """Add completed analyses with their predictions (class, confidence); an analysis already
        held, or of an image not in the pool, is skipped (a completed analysis never changes)."""
        with self.lock:
            self._db.execute("BEGIN")
            for found in analyses:
                slot = self._slot(found.image_id)
                if slot is None or self._db.execute("SELECT 1 FROM analysis WHERE analysis_id = ?",
                                                    (found.analysis_id,)).fetchone():
                    continue
                self._db.execute("INSERT OR IGNORE INTO model (name, version) VALUES (?, ?)",
                                 (found.model_name, found.model_version))
                model = self._db.execute("SELECT model FROM model WHERE name = ? AND version = ?",
                                         (found.model_name, found.model_version)).fetchone()[0]
                analysis = self._db.execute("INSERT INTO analysis (analysis_id, slot, model) VALUES (?, ?, ?)",
                                            (found.analysis_id, slot, model)).lastrowid
                classes = self._numbers("class_name", "cls", "name",
                                        {name for name, _ in found.predictions if name is not None})
                self._db.executemany(
                    "INSERT INTO pred (analysis, slot, model, cls, confidence) VALUES (?, ?, ?, ?, ?)",
                    [(analysis, slot, model, None if name is None else classes[name], confidence)
                     for name, confidence in found.predictions])
            self._db.execute("COMMIT")

    def drop_analyses(self, analysis_ids: Iterable[str]) -> None:
        with self.lock:
            self._db.execute("BEGIN")
            for analysis_id in analysis_ids:
                row = self._db.execute("SELECT analysis FROM analysis WHERE analysis_id = ?", (analysis_id,)).fetchone()
                if row:
                    self._db.execute("DELETE FROM pred WHERE analysis = ?", row)
                    self._db.execute("DELETE FROM analysis WHERE analysis = ?", row)
            self._db.execute("COMMIT")

    def put_task(self, task: Task, job_images: list[JobImage] | None) -> None:
        """Add or update a ready task; `job_images` (when given) replace its placements."""
        with self.lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO task (task_id, name, split) VALUES (?, ?, ?) ON CONFLICT (task_id) DO "
                             "UPDATE SET name = excluded.name, split = excluded.split", (task.id, task.name, task.split))
            if job_images is not None:
                self._drop_places(task.id)
                slots = self._slots([image.image_id for image in job_images])
                jobs = {image.job_id for image in job_images}
                self._db.executemany("INSERT OR IGNORE INTO job (job_id, task_id) VALUES (?, ?)",
                                     [(job, task.id) for job in sorted(jobs)])
                numbers = self._numbers("job", "job", "job_id", jobs)
                self._db.executemany(
                    "INSERT OR REPLACE INTO place (job, slot, annotated) VALUES (?, ?, ?)",
                    [(numbers[image.job_id], slots[image.image_id], int(image.annotated))
                     for image in job_images if image.image_id in slots])
            self._db.execute("COMMIT")

    def drop_task(self, task_id: str) -> None:
        with self.lock:
            self._db.execute("BEGIN")
            self._drop_places(task_id)
            self._db.execute("DELETE FROM job WHERE task_id = ?", (task_id,))
            self._db.execute("DELETE FROM task WHERE task_id = ?", (task_id,))
            self._db.execute("COMMIT")

    def set_use(self, task_id: str, job_id: str, image_id: str, annotated: bool | None) -> None:
        """A job image's annotated flag (None: the job image is gone)."""
        with self.lock:
            slot = self._slot(image_id)
            if slot is None or not self.has_task(task_id):
                return
            self._db.execute("INSERT OR IGNORE INTO job (job_id, task_id) VALUES (?, ?)", (job_id, task_id))
            job = self._db.execute("SELECT job FROM job WHERE job_id = ?", (job_id,)).fetchone()[0]
            if annotated is None:
                self._db.execute("DELETE FROM place WHERE job = ? AND slot = ?", (job, slot))
            else:
                self._db.execute("INSERT OR REPLACE INTO place (job, slot, annotated) VALUES (?, ?, ?)",
                                 (job, slot, int(annotated)))

    def _drop_places(self, task_id: str) -> None:
        self._db.execute("DELETE FROM place WHERE job IN (SELECT job FROM job WHERE task_id = ?)", (task_id,))

    def _numbers(self, table: str, number: str, name: str, values: set[str]) -> dict[str, int]:
        """The integer of each id in an interning table, adding the ids it lacks."""
        if table in ("tag_name", "class_name"):
            self._db.executemany(f"INSERT OR IGNORE INTO {table} ({name}) VALUES (?)", [(v,) for v in sorted(values)])
        found: dict[str, int] = {}
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update((value, key) for key, value in self._db.execute(
                f"SELECT {number}, {name} FROM {table} WHERE {name} IN ({marks(len(chunk))})", chunk))
        return found

    # Reading --------------------------------------------------------------------------------------

    def has_task(self, task_id: str) -> bool:
        with self.lock:
            return self._db.execute("SELECT 1 FROM task WHERE task_id = ?", (task_id,)).fetchone() is not None

    def members(self, image_ids: Iterable[str]) -> set[str]:
        return set(self._slots(list(image_ids)))

    def count(self, clause: str, params: list) -> int:
        with self.lock:
            return self._db.execute(f"SELECT COUNT(*) FROM img WHERE {clause}", params).fetchone()[0]

    def entries(self, clause: str, params: list, start: int = 0, limit: int = -1) -> list[PoolEntry]:
        with self.lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM img WHERE {clause} {ORDER} LIMIT ? OFFSET ?",
                                    [*params, limit, start]).fetchall()
        return [_entry(row) for row in rows]

    def placements(self, image_ids: list[str]) -> dict[str, list[Placement]]:
        found: dict[str, list[Placement]] = {}
        with self.lock:
            for chunk_start in range(0, len(image_ids), 500):
                chunk = image_ids[chunk_start : chunk_start + 500]
                rows = self._db.execute(
                    "SELECT img.image_id, task.task_id, task.name, task.split, job.job_id, place.annotated "
                    "FROM img JOIN place ON place.slot = img.slot JOIN job USING (job) JOIN task USING (task_id) "
                    f"WHERE img.image_id IN ({marks(len(chunk))}) ORDER BY task.task_id, job.job_id", chunk)
                for image_id, task_id, name, split, job_id, annotated in rows:
                    found.setdefault(image_id, []).append(Placement(task_id, name, split, job_id, bool(annotated)))
        return found

    def usage_under(self, prefix: str) -> tuple[int, int, int, list[str]]:
        """What the images under a path prefix take part in: (images, tasks, jobs, job ids) — a
        dataset deletion's impact, from the index instead of the tables."""
        low, high = prefix, following(prefix)
        with self.lock:
            images = self._db.execute("SELECT COUNT(*) FROM img WHERE file_path >= ? AND file_path < ?",
                                      (low, high)).fetchone()[0]
            rows = self._db.execute(
                "SELECT DISTINCT job.job_id, job.task_id FROM img JOIN place ON place.slot = img.slot "
                "JOIN job ON job.job = place.job WHERE img.file_path >= ? AND img.file_path < ?", (low, high)).fetchall()
        return images, len({task for _, task in rows}), len(rows), sorted(job for job, _ in rows)

    def split_leaks(self, max_distance: int) -> list[Leak]:
        """Copies of one picture in different splits (split_leaks.py): an image in two splits, the
        same SHA-256 (grouped here) and perceptual hashes within `max_distance` bits."""
        with self.lock:
            splits: dict[int, list[str]] = {}
            for slot, split in self._db.execute(
                    "SELECT DISTINCT place.slot, task.split FROM place JOIN job USING (job) JOIN task USING (task_id) "
                    "WHERE task.split != 'none'"):
                splits.setdefault(slot, []).append(split)
            rows = self._db.execute(f"SELECT slot, image_id, file_path, sha256, phash FROM img WHERE {IN_A_SPLIT} "
                                    "ORDER BY slot").fetchall()
            groups = self._db.execute(f"SELECT group_concat(slot) FROM img WHERE sha256 IS NOT NULL AND {IN_A_SPLIT} "
                                      "GROUP BY sha256 HAVING COUNT(*) > 1").fetchall()
        position = {row[0]: n for n, row in enumerate(rows)}
        copies = [Copy(image_id, file_path, tuple(splits[slot]) if len(splits[slot]) == 1 else
                       tuple(sorted(splits[slot], key=split_rank)), sha256, None if phash is None else phash & UNSIGNED)
                  for slot, image_id, file_path, sha256, phash in rows]
        same_content = [[position[int(slot)] for slot in group.split(",")] for (group,) in groups]
        return find(copies, max_distance, same_content)

    def size(self) -> int:
        with self.lock:
            return self._db.execute("SELECT COUNT(*) FROM img").fetchone()[0]

    def memory_bytes(self) -> int:
        with self.lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            return pages * self._db.execute("PRAGMA page_size").fetchone()[0]

    def _slot(self, image_id: str) -> int | None:
        row = self._db.execute("SELECT slot FROM img WHERE image_id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def _slots(self, image_ids: list[str]) -> dict[str, int]:
        slots: dict[str, int] = {}
        with self.lock:
            for start in range(0, len(image_ids), 500):
                chunk = image_ids[start : start + 500]
                slots.update(self._db.execute(
                    f"SELECT image_id, slot FROM img WHERE image_id IN ({marks(len(chunk))})", chunk).fetchall())
        return slots


def _cursor_micros(negated_timestamp: float) -> int:
    """A cursor's order key holds `-created_at.timestamp()`; the index orders by whole microseconds."""
    return _micros(datetime.fromtimestamp(-negated_timestamp, tz=timezone.utc))


class IndexedSelection(Selection):
    """A filter's answer over a project index: total, pages and the whole selection are each read
    when first asked for (Explore reads a count and one page; task creation and exports the whole)."""

    def __init__(self, index: ProjectIndex, image_filter: ImageFilter, hidden: tuple[str, ...] = ()) -> None:
        super().__init__([])
        self._index = index
        self._clause, self._params = where(image_filter, hidden=hidden)
        self._paging = where(image_filter, paging=True, hidden=hidden)

    @functools.cached_property
    def entries(self) -> list[PoolEntry]:  # type: ignore[override]
        return self._index.entries(self._clause, self._params)

    @functools.cached_property
    def total(self) -> int:  # type: ignore[override]
        return self._index.count(self._clause, self._params)

    def window(self, start: int, size: int) -> list[PoolEntry]:
        return self._index.entries(*self._paging, start, size)

    def position_after(self, key: tuple[float, str]) -> int:
        created, image_id = _cursor_micros(key[0]), key[1]
        later = self._index.count(f"({self._clause}) AND (created < ? OR (created = ? AND image_id > ?))",
                                  [*self._params, created, created, image_id])
        return self.total - later
