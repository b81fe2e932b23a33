"""Annotations: one document per job and image, its history, and the job's frozen versions.

Items of a job's partition (`job_id`):
- `sk = CUR#<image id>`: the image's current annotation set (a JSON document, count, revision);
- `sk = REV#<ISO time>#<image id>`: every set ever saved, so an export can rebuild "the state at
  a timestamp" from one Query of the job (`REV#` ≤ `REV#<time>`);
- `sk = VER#<number>`: a frozen version: its document lives in S3, the item points at it.

Saving a set writes, in one transaction: the current document, its history entry, the job
image's `annotation_count` and the pool entry's (what Explore's "annotated" filter reads).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store import changes
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta
from chalicelib.store.jobs import PARALLEL_READS, JobImageItem, job_image_key
from chalicelib.store.pool import PoolItem

# A set is stored twice (current and history item), each within DynamoDB's 400 KB item limit;
# the rest of an item (keys, counts, dates) takes well under the 16 KiB left.
MAX_SET_BYTES = 384 * 1024


class AnnotationItem(Model):
    Meta = table_meta("annotations_table")

    job_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    image_id = UnicodeAttribute(null=True)
    annotations = JSONAttribute(null=True)
    count = NumberAttribute(default=0)
    rev = NumberAttribute(default=0)
    updated_by = UnicodeAttribute(null=True)
    updated_at = UTCDateTimeAttribute()
    # Versions only.
    number = NumberAttribute(null=True)
    document_key = UnicodeAttribute(null=True)
    image_count = NumberAttribute(null=True)
    note = UnicodeAttribute(null=True)


@dataclass(frozen=True)
class AnnotationSet:
    job_id: str
    image_id: str
    annotations: list[dict[str, Any]]
    rev: int
    updated_by: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Version:
    job_id: str
    number: int
    document_key: str
    image_count: int
    annotation_count: int
    created_by: str | None
    created_at: datetime
    note: str | None = None


def _current(image_id: str) -> str:
    return f"CUR#{image_id}"


def _version_sk(number: int) -> str:
    return f"VER#{number:06d}"


def _to_set(item: AnnotationItem) -> AnnotationSet:
    return AnnotationSet(job_id=item.job_id, image_id=item.image_id, annotations=list(item.annotations or []),
                         rev=int(item.rev or 0), updated_by=item.updated_by, updated_at=item.updated_at)


def _to_version(item: AnnotationItem) -> Version:
    return entity(Version, item, annotation_count=int(item.count or 0), created_by=item.updated_by,
                  created_at=item.updated_at)

def stored_size(annotations: list[dict[str, Any]]) -> int:
    """Bytes an annotation set takes in its item, as `AnnotationItem.annotations` writes it."""
    return len(AnnotationItem.annotations.serialize(annotations).encode())


class AnnotationRepository:
    def get(self, job_id: str, image_id: str) -> AnnotationSet | None:
        try:
            with store_errors("reading annotations"):
                return _to_set(AnnotationItem.get(job_id, _current(image_id), consistent_read=True))
        except DoesNotExist:
            return None

    def of_job(self, job_id: str) -> list[AnnotationSet]:
        """Every image's current set in a job (one paginated Query)."""
        with store_errors("reading annotations"):
            return [_to_set(item) for item in AnnotationItem.query(
                job_id, AnnotationItem.sk.startswith("CUR#"), consistent_read=True)]

    def replace(self, project_id: str, task_id: str, job_id: str, image_id: str, annotations: list[dict[str, Any]],
                expected_rev: int, previous_count: int, actor: str | None, now: datetime) -> AnnotationSet:
        """Replace the set if it is still at `expected_rev` (409 otherwise), with its history entry,
        the job image's count and the pool entry's, in one transaction. `previous_count` is the
        size of the set at `expected_rev`: the pool count moves by the difference."""
        rev = expected_rev + 1
        current = AnnotationItem(job_id=job_id, sk=_current(image_id), image_id=image_id, annotations=annotations,
                                 count=len(annotations), rev=rev, updated_by=actor, updated_at=now)
        history = AnnotationItem(job_id=job_id, sk=f"REV#{now.isoformat()}#{image_id}", image_id=image_id,
                                 annotations=annotations, count=len(annotations), rev=rev, updated_by=actor,
                                 updated_at=now)
        if expected_rev == 0:
            guard = AnnotationItem.sk.does_not_exist()
        else:
            guard = AnnotationItem.rev == expected_rev
        try:
            with Transaction("saving annotations") as tx:
                tx.put(current, condition=guard, name="current")
                tx.put(history)
                tx.update(JobImageItem(task_id=task_id, key=job_image_key(job_id, image_id)),
                          actions=[JobImageItem.annotation_count.set(len(annotations))],
                          condition=JobImageItem.key.exists(), name="job image")
                tx.update(PoolItem(project_id=project_id, image_id=image_id),
                          actions=[PoolItem.annotation_count.add(len(annotations) - previous_count)],
                          condition=PoolItem.image_id.exists(), name="pool entry")
                changes.put_in(tx, changes.project_stream(project_id), entries=[image_id],
                               uses=[(task_id, job_id, image_id)])
        except TransactionCancelled as exc:
            if exc.failed("current"):
                raise ConflictError(f"Annotations of image '{image_id}' in job '{job_id}' changed meanwhile; "
                                    "reload and retry") from exc
            if exc.failed("job image") or exc.failed("pool entry"):
                raise NotFoundError(f"Image '{image_id}' is not in job '{job_id}'") from exc
            raise
        return _to_set(current)

    def current_many(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The current sets of (job id, image id) pairs that have one (BatchGetItem, 100 keys a
        request, in parallel)."""
        keys = [(job_id, _current(image_id)) for job_id, image_id in dict.fromkeys(pairs)]
        chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]

        def read(chunk: list[tuple[str, str]]) -> list[AnnotationItem]:
            with store_errors("reading annotations"):
                return list(AnnotationItem.batch_get(chunk, consistent_read=True,
                                                     attributes_to_get=["job_id", "image_id", "annotations"]))

        with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
            return {(item.job_id, item.image_id): item.annotations or []
                    for items in pool.map(read, chunks) for item in items}

    def history(self, job_id: str, until: datetime) -> list[AnnotationSet]:
        """Every set saved in the job up to `until`, oldest first."""
        with store_errors("reading annotation history"):
            return [_to_set(item) for item in AnnotationItem.query(
                job_id, AnnotationItem.sk.between("REV#", f"REV#{until.isoformat()}#~"), consistent_read=True)]

    # Versions ------------------------------------------------------------------------------------

    def versions(self, job_id: str) -> list[Version]:
        with store_errors("listing versions"):
            return [_to_version(item) for item in AnnotationItem.query(
                job_id, AnnotationItem.sk.startswith("VER#"), consistent_read=True)]

    def add_version(self, version: Version) -> bool:
        """Record version `number` unless it exists (False: someone took the number first)."""
        item = AnnotationItem(job_id=version.job_id, sk=_version_sk(version.number), number=version.number,
                              document_key=version.document_key, image_count=version.image_count,
                              count=version.annotation_count, updated_by=version.created_by,
                              updated_at=version.created_at, note=version.note)
        with conditional("saving a version") as write:
            item.save(condition=AnnotationItem.sk.does_not_exist())
        return write.done

    def delete_jobs(self, job_ids: list[str]) -> int:
        """Remove every annotation item of the given jobs (task deletion): one batch across the jobs,
        so each BatchWriteItem carries 25 deletes. Returns how many items went."""
        return self.delete_where(job_ids, lambda sk, image_id: True)

    def delete_images(self, job_ids: Iterable[str], image_ids: set[str]) -> int:
        """Remove the current sets and the history of `image_ids` in the given jobs (a dataset's
        purge; versions stay, see `versions_of_jobs`). Returns how many items went."""
        return self.delete_where(job_ids, lambda sk, image_id: not sk.startswith("VER#") and image_id in image_ids)

    @staticmethod
    def delete_where(job_ids: Iterable[str], chosen: Callable[[str, str | None], bool]) -> int:
        removed = 0
        with store_errors("deleting annotations"):
            with AnnotationItem.batch_write() as batch:
                for job_id in job_ids:
                    for item in AnnotationItem.query(job_id, attributes_to_get=["job_id", "sk", "image_id"]):
                        if chosen(item.sk, item.image_id):
                            batch.delete(AnnotationItem(job_id=job_id, sk=item.sk))
                            removed += 1
        return removed

    def recount_version(self, job_id: str, number: int, image_count: int, annotation_count: int) -> None:
        """A version whose document lost a purged dataset's images says so in its counts."""
        with store_errors("recounting a version"):
            AnnotationItem(job_id=job_id, sk=_version_sk(number)).update(
                actions=[AnnotationItem.image_count.set(image_count), AnnotationItem.count.set(annotation_count)],
                condition=AnnotationItem.sk.exists())
