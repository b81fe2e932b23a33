"""Explore over a project of 10,000 pool images with 20 tags and 5 tasks: the first page of a
three-condition filter (two tags ALL + not annotated + width >= 1000) and its total, median of
several calls on the embedded stack (goal <= 1 s); its DynamoDB requests and items read per call
(counted, so independent of the emulator's speed); no Scan. Then the same at 100,000 pool images
(BENCH_EXPLORE_LARGE, 0 skips it), informational. BENCH_EXPLORE_IMAGES, BENCH_EXPLORE_RUNS and
BENCH_EXPLORE_LARGE_RUNS shrink it for a quick check.

The data is seeded straight through the store (BatchWriteItem only; Pillow and S3 would take far
too long at 100,000): image records with random sizes, tag links (each tag on ~25% of the images)
and the images' tag sets, the pool, and 5 tasks of 10% of the pool each, cut into jobs of 50, with
~30% of their job images annotated (job image and pool entry counts, as the annotation
transaction leaves them). The page and the total are checked against the same filter
computed in memory over what was seeded.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import random
import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator


from bench.harness import counting, on_botocore_event
from infra.local.stack import LocalStack

SMALL = int(os.environ.get("BENCH_EXPLORE_IMAGES", "10000"))
LARGE = int(os.environ.get("BENCH_EXPLORE_LARGE", "100000"))
TAGS, TAG_SHARE = 20, 0.25
TASKS, TASK_SHARE, CHUNK_SIZE, ANNOTATED_SHARE = 5, 0.10, 50, 0.30
RUNS = int(os.environ.get("BENCH_EXPLORE_RUNS", "7"))
LARGE_RUNS = int(os.environ.get("BENCH_EXPLORE_LARGE_RUNS", "2"))  # each call reads ~200,000 items
PAGE_SIZE = 50
SLICE = 5000  # items per progress line while seeding
READ_OPERATIONS = ("GetItem", "BatchGetItem", "Query", "Scan")

# Items read, by table (and index): summed from each response (Count of a Query or Scan, the
# items of a BatchGetItem or GetItem) by an 'after-call' hook, installed like
# harness.install_request_counter's 'before-call' one and local to this script.
_read: Counter = Counter()
_read_lock = threading.Lock()
_hook_installed = False
_timeout_raised = False
_original_timeout = None
READ_TIMEOUT = 600


def _remember_table(params: dict | None = None, context: dict | None = None, **_: object) -> None:
    if context is not None and params:
        table = params.get("TableName", "")
        context["bench_table"] = f"{table}/{params['IndexName']}" if params.get("IndexName") else table


def _count_read(event_name: str, parsed: dict | None = None, context: dict | None = None, **_: object) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    parsed = parsed or {}
    found: Counter = Counter()
    if operation in ("Query", "Scan"):
        found[(context or {}).get("bench_table", "?")] += int(parsed.get("Count", 0))
    elif operation == "BatchGetItem":
        for table, items in parsed.get("Responses", {}).items():
            found[table] += len(items)
    elif operation == "GetItem" and "Item" in parsed:
        found[(context or {}).get("bench_table", "?")] += 1
    with _read_lock:
        _read.update(found)


def _install_read_counter() -> None:
    """Must run before the first DynamoDB client is built (PynamoDB builds them on first use)."""
    global _hook_installed
    if _hook_installed:
        return
    for operation in READ_OPERATIONS:
        on_botocore_event(f"before-parameter-build.dynamodb.{operation}", _remember_table)
        on_botocore_event(f"after-call.dynamodb.{operation}", _count_read)
    _hook_installed = True


@contextmanager
def _items_read() -> Iterator[Counter]:
    with _read_lock:
        before = Counter(_read)
    result: Counter = Counter()
    try:
        yield result
    finally:
        with _read_lock:
            result.update(_read - before)


def _raise_read_timeout() -> None:
    """Give every store model a client with a longer read timeout (bench only, process-wide): the
    emulator answers one DynamoDB request at a time, so a request queued behind a few 1 MB pages
    waits longer than the product's 10 s."""
    global _timeout_raised, _original_timeout
    import chalicelib.store as store
    from pynamodb.models import Model

    for module in pkgutil.iter_modules(store.__path__):
        importlib.import_module(f"chalicelib.store.{module.name}")
    models, todo = [], list(Model.__subclasses__())
    while todo:
        model = todo.pop()
        models.append(model)
        todo += model.__subclasses__()
    from chalicelib.store.dynamo import forget_connections

    models = [model for model in models if getattr(model, "Meta", None) is not None
              and getattr(model.Meta, "table_name", None)]
    for model in models:
        _original_timeout = getattr(model.Meta, "read_timeout_seconds", _original_timeout)
        model.Meta.read_timeout_seconds = READ_TIMEOUT
    forget_connections(models)
    _timeout_raised = True


@dataclass
class Seeded:
    project_id: str
    tag_ids: list[str]
    expected: list[str]  # image ids the measured filter selects, in Explore order


def _progress(what: str, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  {what}: {done:,}/{total:,} ({elapsed:.0f} s, {done / max(elapsed, 1e-9):.0f}/s)",
          file=sys.stderr, flush=True)


def _seed(actor, size: int, seed: int) -> Seeded:
    from chalicelib.clock import utcnow
    from chalicelib.ids import new_id
    from chalicelib.services.container import services
    from chalicelib.store.image_tags import ImageTagItem
    from chalicelib.store.images import Facts, ImageRepository, image_id
    from chalicelib.store.jobs import Job, JobImage, JobRepository
    from chalicelib.store.pool import PoolItem, PoolRepository
    from chalicelib.store.tasks import CREATING, READY, Task, TaskRepository
    from chalicelib.store.tags import TagItem, tag_key

    rng = random.Random(seed)
    project_id = services().projects.create(actor, f"bench explore {size}", None, []).project.id
    tag_ids = [services().tags.create(actor, f"bench-{size}-{n:02d}", "#336699", None, None).id
               for n in range(TAGS)]

    keys = [f"bench-explore-{size}/{n // 1000:03d}/{n:06d}.jpg" for n in range(size)]
    ids = [image_id(key) for key in keys]
    tags_of = {image: {tag for tag in tag_ids if rng.random() < TAG_SHARE} for image in ids}
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    images, started = [], time.perf_counter()
    for start in range(0, size, SLICE):
        records = []
        for n in range(start, min(start + SLICE, size)):
            sha = hashlib.sha256(keys[n].encode()).hexdigest()
            records.append((keys[n], Facts(
                status="ready", size=rng.randint(20_000, 5_000_000), etag=f'"{sha[:32]}"', format="JPEG",
                mime_type="image/jpeg", width=rng.randint(200, 4000), height=rng.randint(200, 4000), frames=1,
                sha256=sha, phash=sha[:16], thumbnail_key=f"thumbnails/{sha[:2]}/{sha}.jpg",
                object_modified_at=landed + timedelta(seconds=rng.randrange(size * 10)))))
        images += ImageRepository().put_new(records, "bench",
                                            {image: tags_of[image] for image in ids[start : start + SLICE]})
        _progress("image records", len(images), size, started)

    links = [(tag, image) for image in ids for tag in sorted(tags_of[image])]
    started, now = time.perf_counter(), utcnow()
    for start in range(0, len(links), SLICE * 4):
        with ImageTagItem.batch_write() as batch:
            for tag, image in links[start : start + SLICE * 4]:
                batch.save(ImageTagItem(tag_id=tag, image_id=image, created_by="bench", created_at=now))
        _progress("tag links", min(start + SLICE * 4, len(links)), len(links), started)
    usage = Counter(tag for tag, _ in links)
    for tag in tag_ids:
        TagItem(pk=tag_key(tag)).update(actions=[TagItem.usage_count.set(usage[tag])])

    started = time.perf_counter()
    for start in range(0, size, SLICE * 2):
        PoolRepository().add(project_id, images[start : start + SLICE * 2], "bench")
        _progress("pool entries", min(start + SLICE * 2, size), size, started)

    order = list(images)
    rng.shuffle(order)
    per_task, annotated, started = int(size * TASK_SHARE), set(), time.perf_counter()
    for number in range(TASKS):
        part = order[number * per_task : (number + 1) * per_task]
        task_id, now = new_id(), utcnow()
        job_count = -(-len(part) // CHUNK_SIZE)
        TaskRepository().put_task(Task(
            id=task_id, project_id=project_id, name=f"task {number}", description=None, assignee_id=None,
            split=("train", "val", "test", "none", "train")[number], status="new", state=CREATING,
            total_images=len(part), job_count=job_count, chunk_size=CHUNK_SIZE, distribution_order="sequential",
            seed=None, source="pool", created_by=actor.sub, created_at=now, updated_at=now))
        jobs, job_images = [], []
        for sequence in range(job_count):
            chunk = part[sequence * CHUNK_SIZE : (sequence + 1) * CHUNK_SIZE]
            job = Job(id=new_id(), task_id=task_id, project_id=project_id, sequence_number=sequence,
                      assignee_id=None, status="new", total_images=len(chunk), rev=0, created_at=now, updated_at=now)
            jobs.append(job)
            for position, image in enumerate(chunk):
                count = 1 if rng.random() < ANNOTATED_SHARE else 0
                if count:
                    annotated.add(image.id)
                job_images.append(JobImage(task_id=task_id, job_id=job.id, image_id=image.id, project_id=project_id,
                                           sequence_number=position, annotation_count=count))
        JobRepository().write(jobs, job_images)
        TaskRepository().update_task(project_id, task_id, {"state": READY})
        _progress("tasks", number + 1, TASKS, started)
    # The counts an annotation transaction keeps on the pool entries ("annotated" in Explore).
    marked, started = sorted(annotated), time.perf_counter()
    for start in range(0, len(marked), SLICE):
        entries = list(PoolItem.batch_get([(project_id, image) for image in marked[start : start + SLICE]]))
        with PoolItem.batch_write() as batch:
            for entry in entries:
                entry.annotation_count = 1
                batch.save(entry)
    _progress("annotated pool entries", len(marked), len(marked), started)

    first, second = tag_ids[:2]
    expected = sorted((image for image in images
                       if first in tags_of[image.id] and second in tags_of[image.id]
                       and image.id not in annotated and image.width >= 1000),
                      key=lambda image: (-image.created_at.timestamp(), image.id))
    return Seeded(project_id, tag_ids, [image.id for image in expected])


def _measure(actor, seeded: Seeded, size: int, runs: int) -> list[tuple[str, str, str]]:
    from chalicelib.config import get_settings
    from chalicelib.errors import StoreError
    from chalicelib.services.container import services
    from chalicelib.services.filters import ImageFilter

    image_filter = ImageFilter(tag_ids=seeded.tag_ids[:2], tag_mode="all", is_annotated=False, min_width=1000)
    explore = services().explore
    failures: list[str] = []

    def explore_once():
        """One Explore call, counted; a call the product's client settings cannot finish is
        recorded, and it and the rest run again with a longer read timeout."""
        while True:
            with counting() as requests, _items_read() as items:
                started = time.perf_counter()
                try:
                    page = explore.explore(actor, seeded.project_id, image_filter, page=1, page_size=PAGE_SIZE)
                except StoreError as exc:
                    if _timeout_raised:
                        raise
                    failures.append(f"failed after {time.perf_counter() - started:.0f} s: {exc.message}")
                    print(f"  {failures[-1]}; raising the client read timeout to {READ_TIMEOUT} s",
                          file=sys.stderr, flush=True)
                    _raise_read_timeout()
                    continue
                elapsed = time.perf_counter() - started
            return page, elapsed, requests, items

    explore_once()  # warm-up, not counted
    times, calls = [], []
    for _ in range(runs):
        page, elapsed, requests, items = explore_once()
        times.append(elapsed)
        calls.append((requests, items))
        got = [item.view.image.id for item in page.items]
        assert page.total == len(seeded.expected), (page.total, len(seeded.expected))
        assert got == seeded.expected[:PAGE_SIZE], "first page differs from the in-memory computation"
    if failures:
        product_settings = f"{len(failures)} call(s) FAILED ({failures[0]}); timeout raised afterwards"
    elif _timeout_raised:
        product_settings = f"not tried (read timeout raised to {READ_TIMEOUT} s at a smaller size)"
    else:
        product_settings = f"all {runs + 1} calls ok"

    requests, items = calls[-1]
    steady = all(counted == calls[-1] for counted in calls)
    dynamodb = {name.split(".", 1)[1]: count for name, count in requests.items() if name.startswith("dynamodb.")}
    others = {name: count for name, count in requests.items() if not name.startswith("dynamodb.")}
    by_operation = ", ".join(f"{name} {count}" for name, count in sorted(dynamodb.items()))
    if others:
        by_operation += "; other: " + ", ".join(f"{name} {count}" for name, count in sorted(others.items()))
    settings = get_settings()
    names = {getattr(settings, name): name.removesuffix("_table") for name in type(settings).model_fields
             if name.endswith("_table")}

    def short(name: str) -> str:
        table, _, index = name.partition("/")
        return names.get(table, table) + (f"/{index}" if index else "")

    by_table = ", ".join(f"{short(name)} {count:,}" for name, count in items.most_common())
    scans = sum(counted_requests["dynamodb.Scan"] for counted_requests, _ in calls)
    label = (f"explore {size:,} pool images ({TAGS} tags, {TASKS} tasks), "
             "tags ALL(2) + not annotated + width>=1000, first page")
    timing = (f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
              f"max {max(times) * 1000:.0f}; {runs} calls after 1 warm-up)")
    note = f" [client read timeout raised from {_original_timeout} s to {READ_TIMEOUT} s]" if _timeout_raised else ""
    return [
        (f"{label}: with the product's client settings", product_settings, "must not fail"),
        (f"{label}: time (embedded stack){note}", timing, "goal <= 1 s" if size == SMALL else "informational"),
        (f"{label}: total / page", f"{page.total:,} / {len(page.items)} items (in-memory check: "
                                   f"{len(seeded.expected):,}, first page identical)", ""),
        (f"{label}: requests per call", f"{sum(requests.values())} ({by_operation})"
                                        + ("" if steady else " [varied between calls]"), ""),
        (f"{label}: DynamoDB items read per call", f"{sum(items.values()):,} ({by_table})", ""),
        (f"{label}: DynamoDB Scan requests ({runs} calls)", str(scans), "goal 0"),
    ]


def run() -> list[tuple[str, str, str]]:
    _install_read_counter()
    stack = LocalStack(retry_delay=0).start()
    try:
        from chalicelib.services.identity import Identity

        actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
        rows = []
        for size, runs in ((SMALL, RUNS), (LARGE, LARGE_RUNS)):
            if size <= 0:
                continue
            stack.reset()
            started = time.perf_counter()
            seeded = _seed(actor, size, seed=size)
            print(f"  seeded {size:,} in {time.perf_counter() - started:.0f} s; measuring", file=sys.stderr, flush=True)
            rows += _measure(actor, seeded, size, runs)
        return rows
    finally:
        stack.stop()
