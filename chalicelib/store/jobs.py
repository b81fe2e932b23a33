"""Jobs and job images.

A job is one item by id (the API addresses jobs directly), in the `by_task` index by sequence
number. Its images are items of the task's partition in their own table (`task_id`,
`key = <job id>#<image id>`), so a job's images are one Query, a task's (for Explore and for
deletion) one Query, and creating a task is nothing but BatchWriteItem. The `by_image` index
(`image_id`, `project_id`, with `job_id` and `annotation_count`) answers "where is this image
used in the project, and is it annotated there?" with one Query.

Deleting an annotated job image and lowering the pool entry's `annotation_count` by its count is
one transaction, so the pool's count stays exact.

A job's status and assignee change only by conditional writes on `rev`: of two concurrent
changes made from the same state, exactly one wins.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store import changes
from chalicelib.store.dynamo import (Transaction, TransactionCancelled, conditional, entity, query_values,
                                     store_errors, table_meta, warm_client)
from chalicelib.store.pool import PoolItem

PARALLEL_READS = 8
# Threads kept for the process, the client built before they read (see store/dynamo.warm_client).
_TASK_READERS = ThreadPoolExecutor(max_workers=PARALLEL_READS, thread_name_prefix="job-images")
TRANSACTION_PAIRS = 50  # TransactWriteItems takes 100 actions: a job image and its pool entry each


class JobsByTask(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_task"
        projection = AllProjection()

    task_id = UnicodeAttribute(hash_key=True)
    sequence_number = NumberAttribute(range_key=True)


class JobItem(Model):
    Meta = table_meta("jobs_table")

    id = UnicodeAttribute(hash_key=True)
    task_id = UnicodeAttribute()
    project_id = UnicodeAttribute()
    sequence_number = NumberAttribute()
    assignee_id = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default="new")
    total_images = NumberAttribute(default=0)
    rev = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_task = JobsByTask()


class JobImagesByImage(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_image"
        projection = IncludeProjection(["job_id", "annotation_count"])

    image_id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute(range_key=True)


class JobImageItem(Model):
    Meta = table_meta("job_images_table")

    task_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute(range_key=True)
    job_id = UnicodeAttribute()
    image_id = UnicodeAttribute()
    project_id = UnicodeAttribute()
    sequence_number = NumberAttribute()
    annotation_count = NumberAttribute(default=0)

    by_image = JobImagesByImage()


@dataclass(frozen=True)
class Job:
    id: str
    task_id: str
    project_id: str
    sequence_number: int
    assignee_id: str | None
    status: str
    total_images: int
    rev: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class JobImage:
    task_id: str
    job_id: str
    image_id: str
    project_id: str
    sequence_number: int
    annotation_count: int = 0

    @property
    def annotated(self) -> bool:
        return self.annotation_count > 0


@dataclass(frozen=True)
class Use:
    """Where an image is used in a project: a job of a task, and its annotation count there."""

    task_id: str
    job_id: str
    image_id: str
    annotation_count: int

    @property
    def annotated(self) -> bool:
        return self.annotation_count > 0


def job_image_key(job_id: str, image_id: str) -> str:
    return f"{job_id}#{image_id}"


def _to_job(item: JobItem) -> Job:
    return entity(Job, item)

IMAGE_FIELDS = ("job_id", "image_id", "project_id", "sequence_number", "annotation_count")


def _job_image_of(task_id: str, values: dict[str, Any]) -> JobImage:
    return JobImage(task_id=task_id, job_id=values["job_id"], image_id=values["image_id"],
                    project_id=values["project_id"], sequence_number=int(values["sequence_number"]),
                    annotation_count=int(values["annotation_count"] or 0))


def _to_job_image(item: JobImageItem) -> JobImage:
    return _job_image_of(item.task_id, {name: getattr(item, name) for name in IMAGE_FIELDS})


class JobRepository:
    def write(self, jobs: list[Job], images: list[JobImage]) -> None:
        """Write new jobs and their images (BatchWriteItem, 25 a request, unprocessed items retried)."""
        with store_errors("writing jobs"):
            with JobItem.batch_write() as batch:
                for job in jobs:
                    batch.save(JobItem(id=job.id, task_id=job.task_id, project_id=job.project_id,
                                       sequence_number=job.sequence_number, assignee_id=job.assignee_id,
                                       status=job.status, total_images=job.total_images, rev=0,
                                       created_at=job.created_at, updated_at=job.updated_at))
            with JobImageItem.batch_write() as batch:
                for image in images:
                    batch.save(JobImageItem(task_id=image.task_id, key=job_image_key(image.job_id, image.image_id),
                                            job_id=image.job_id, image_id=image.image_id,
                                            project_id=image.project_id, sequence_number=image.sequence_number,
                                            annotation_count=image.annotation_count))

    def get(self, job_id: str) -> Job:
        try:
            with store_errors("reading a job"):
                return _to_job(JobItem.get(job_id, consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Job '{job_id}' not found") from exc

    def of_task(self, task_id: str) -> list[Job]:
        with store_errors("listing jobs"):
            return [_to_job(item) for item in JobItem.by_task.query(task_id)]

    def change(self, job: Job, changes: dict) -> Job:
        """Apply `changes` if the job is still at `job.rev`; 409 if someone changed it first."""
        actions = []
        for name, value in changes.items():
            attribute = getattr(JobItem, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        actions += [JobItem.rev.add(1), JobItem.updated_at.set(utcnow())]
        changed = ConflictError(f"Job '{job.id}' was changed by someone else meanwhile; reload and retry")
        with conditional(f"updating job {job.id}", changed):
            JobItem(id=job.id).update(actions=actions, condition=JobItem.id.exists() & (JobItem.rev == job.rev))
        return self.get(job.id)

    def images_of_job(self, job: Job) -> list[JobImage]:
        """A job's images in sequence order."""
        with store_errors("reading job images"):
            items = JobImageItem.query(job.task_id, JobImageItem.key.startswith(f"{job.id}#"), consistent_read=True)
            return sorted((_to_job_image(item) for item in items), key=lambda image: image.sequence_number)

    def job_image(self, job: Job, image_id: str) -> JobImage:
        try:
            with store_errors("reading a job image"):
                return _to_job_image(JobImageItem.get(job.task_id, job_image_key(job.id, image_id),
                                                      consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Image '{image_id}' is not in job '{job.id}'") from exc

    def job_image_of(self, task_id: str, job_id: str, image_id: str) -> JobImage | None:
        """One job image by its key, or None (strongly consistent)."""
        try:
            with store_errors("reading a job image"):
                return _to_job_image(JobImageItem.get(task_id, job_image_key(job_id, image_id), consistent_read=True))
        except DoesNotExist:
            return None

    def images_of_tasks(self, task_ids: Iterable[str]) -> list[JobImage]:
        """Every job image of the given tasks: one paginated Query per task, in parallel."""

        def read(task_id: str) -> list[JobImage]:
            with store_errors("reading job images"):
                return [_job_image_of(task_id, values) for values in query_values(JobImageItem, task_id, IMAGE_FIELDS)]

        task_ids = list(task_ids)
        if len(task_ids) == 1:
            return read(task_ids[0])
        warm_client(JobImageItem)
        return [image for images in _TASK_READERS.map(read, task_ids) for image in images]

    def uses(self, project_id: str, image_ids: Iterable[str]) -> list[Use]:
        """Where each of `image_ids` is used in the project's tasks (one `by_image` Query per
        image, in parallel; eventually consistent, as every index read is)."""

        def read(image_id: str) -> list[Use]:
            with store_errors("reading job images"):
                return [Use(task_id=item.task_id, job_id=item.job_id, image_id=image_id,
                            annotation_count=int(item.annotation_count or 0))
                        for item in JobImageItem.by_image.query(image_id, JobImageItem.project_id == project_id)]

        image_ids = list(dict.fromkeys(image_ids))
        with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
            return [use for uses in pool.map(read, image_ids) for use in uses]

    def in_project_tasks(self, project_id: str, image_id: str) -> bool:
        with store_errors("reading job images"):
            return any(True for _ in JobImageItem.by_image.query(image_id, JobImageItem.project_id == project_id,
                                                                 limit=1))

    def delete_task(self, task_id: str) -> list[str]:
        """Remove a task's jobs and job images; returns the job ids removed. Annotated job images
        go in transactions that also lower their pool entries' counts; the rest by BatchWriteItem."""
        jobs = self.of_task(task_id)
        with store_errors("deleting a task's jobs"):
            items = list(JobImageItem.query(task_id, consistent_read=True, attributes_to_get=[
                "task_id", "key", "image_id", "project_id", "annotation_count"]))
            with JobImageItem.batch_write() as batch:
                for item in items:
                    if not item.annotation_count:
                        batch.delete(JobImageItem(task_id=task_id, key=item.key))
        annotated = [item for item in items if item.annotation_count]
        for start in range(0, len(annotated), TRANSACTION_PAIRS):
            self._delete_counted(annotated[start : start + TRANSACTION_PAIRS])
        for project_id in {item.project_id for item in annotated}:
            changes.record(changes.project_stream(project_id),
                           entries=[item.image_id for item in annotated if item.project_id == project_id])
        with store_errors("deleting a task's jobs"):
            with JobItem.batch_write() as batch:
                for job in jobs:
                    batch.delete(JobItem(id=job.id))
        return [job.id for job in jobs]

    def _delete_counted(self, items: list[JobImageItem], attempts: int = 3) -> None:
        """Delete annotated job images, each with its count taken off its pool entry; an item
        whose count changed meanwhile is read again and retried alone."""
        try:
            with Transaction("deleting annotated job images") as tx:
                for n, item in enumerate(items):
                    count = int(item.annotation_count)
                    tx.delete(JobImageItem(task_id=item.task_id, key=item.key),
                              condition=JobImageItem.annotation_count == count, name=("job image", n))
                    tx.update(PoolItem(project_id=item.project_id, image_id=item.image_id),
                              actions=[PoolItem.annotation_count.add(-count)], condition=PoolItem.image_id.exists(),
                              name=("pool entry", n))
            return
        except TransactionCancelled as exc:
            changed = any(exc.failed(("job image", n)) for n in range(len(items)))
            pool_gone = [item for n, item in enumerate(items) if exc.failed(("pool entry", n))]
            if not (changed or pool_gone) or attempts <= 1:
                raise
        with store_errors("deleting annotated job images"):
            for item in items:
                if item in pool_gone:  # no pool entry to keep exact: the job image just goes
                    JobImageItem(task_id=item.task_id, key=item.key).delete()
                    continue
                try:
                    fresh = JobImageItem.get(item.task_id, item.key, consistent_read=True)
                except DoesNotExist:
                    continue
                if fresh.annotation_count:
                    self._delete_counted([fresh], attempts - 1)
                else:
                    fresh.delete()

    def delete_job_images(self, task_id: str, image_keys: Iterable[str]) -> None:
        """Remove job images by key (undoing a failed task creation: ids known, nothing to read)."""
        with store_errors("removing job images"):
            with JobImageItem.batch_write() as batch:
                for key in image_keys:
                    batch.delete(JobImageItem(task_id=task_id, key=key))

    def adjust_totals(self, job_deltas: dict[str, int]) -> None:
        """Take images off jobs' totals (a purged dataset's images left them): one UpdateItem each."""
        with store_errors("counting job images"):
            for job_id, delta in job_deltas.items():
                if delta:
                    JobItem(id=job_id).update(actions=[JobItem.total_images.add(delta)],
                                              condition=JobItem.id.exists())

    def delete_images(self, images: Iterable[JobImage]) -> int:
        """Delete job images by key (BatchWriteItem, 25 a request, one batch across tasks), without
        touching pool counts: for a purge, whose pool entries go too. Returns how many."""
        removed = 0
        with store_errors("removing job images"):
            with JobImageItem.batch_write() as batch:
                for image in images:
                    batch.delete(JobImageItem(task_id=image.task_id, key=job_image_key(image.job_id, image.image_id)))
                    removed += 1
        return removed

    def delete_jobs(self, job_ids: Iterable[str]) -> None:
        with store_errors("removing jobs"):
            with JobItem.batch_write() as batch:
                for job_id in job_ids:
                    batch.delete(JobItem(id=job_id))
