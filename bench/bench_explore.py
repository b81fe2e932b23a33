"""Explore over a project of 100,000 pool images with 20 tags and 5 tasks, answered by the index
(services/explore_index.py) and, in the same run, by PoolQuery (DynamoDB, no index): the first page
of 50 and the exact total for four filters — none; two tags ALL + not annotated + width >= 1000; a
task + split; path prefix + name search — median of BENCH_EXPLORE_RUNS warm calls (goal <= 50 ms
each, the FiftyOne peer answers a tag + width count over 100,000 samples in 49-78 ms), their AWS
requests and DynamoDB items read per call (counted, so independent of the emulator's speed), no
Scan; the index's first call in a fresh process (built from DynamoDB), its memory, and how soon a
write made through another instance is visible. BENCH_EXPLORE_IMAGES (default 100,000) and
BENCH_EXPLORE_RUNS shrink it for a quick check.

The index is timed through the API (the Chalice app in process, as `make run` serves it, with
token, routing, validation and the JSON answer; no socket) and at the service; PoolQuery at the
service (a call at 100,000 takes seconds either way). Every index answer is checked equal to
PoolQuery's, and the tag filter's to the same filter computed in memory over what was seeded.

The data is seeded straight through the store (BatchWriteItem only; Pillow and S3 would take far
too long at 100,000): image records with random sizes, tag links (each tag on ~25% of the images)
and the images' tag sets, the pool, and 5 tasks of 10% of the pool each, cut into jobs of 50, with
~30% of their job images annotated (job image and pool entry counts, as the annotation
transaction leaves them).
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

SIZE = int(os.environ.get("BENCH_EXPLORE_IMAGES", "100000"))
POOL_QUERY_RUNS = int(os.environ.get("BENCH_EXPLORE_POOL_QUERY_RUNS", "2"))  # each reads the pool
TAGS, TAG_SHARE = 20, 0.25
TASKS, TASK_SHARE, CHUNK_SIZE, ANNOTATED_SHARE = 5, 0.10, 50, 0.30
RUNS = int(os.environ.get("BENCH_EXPLORE_RUNS", "9"))
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
    task_ids: list[str]
    expected: list[str]  # image ids the tag filter selects, in Explore order


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
    per_task, annotated, started, task_ids = int(size * TASK_SHARE), set(), time.perf_counter(), []
    for number in range(TASKS):
        part = order[number * per_task : (number + 1) * per_task]
        task_id, now = new_id(), utcnow()
        task_ids.append(task_id)
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
    return Seeded(project_id, tag_ids, task_ids, [image.id for image in expected])


def _filters(seeded: Seeded, size: int) -> dict:
    from chalicelib.services.filters import ImageFilter

    return {
        "no filter": ImageFilter(),
        "tags ALL(2) + not annotated + width>=1000": ImageFilter(
            tag_ids=seeded.tag_ids[:2], tag_mode="all", is_annotated=False, min_width=1000),
        "task + split": ImageFilter(task_id=seeded.task_ids[:1], split="train"),
        "path prefix + name search": ImageFilter(path_prefix=f"bench-explore-{size}/00", search="7"),
    }


def _query(image_filter) -> str:
    from urllib.parse import urlencode

    values = image_filter.applied()
    return urlencode({name: ",".join(value) if isinstance(value, list) else str(value).lower()
                      if isinstance(value, bool) else value for name, value in values.items()})


def _summary(requests: Counter, items: Counter) -> str:
    ops = ", ".join(f"{name.split('.', 1)[1]} {count}" for name, count in sorted(requests.items()))
    return f"{sum(requests.values())} ({ops or 'none'}); DynamoDB items read {sum(items.values()):,}"


def _timed(call, runs: int) -> tuple[list[float], Counter, Counter, object]:
    times, requests, items, result = [], Counter(), Counter(), None
    for _ in range(runs):
        with counting() as counted, _items_read() as read:
            started = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - started)
        requests, items = counted, read
    return times, requests, items, result


def _ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.1f} ms (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"


def _measure(stack, actor, seeded: Seeded, size: int) -> list[tuple[str, str, str]]:
    import json

    from chalice.test import Client

    from bench.bench_explore import ROOT_DIR
    from chalicelib.services.container import services
    from chalicelib.services.explore import ExploreService
    from chalicelib.services.explore_index import IndexedExplore
    from chalicelib.store.changes import ChangeLog
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.pool import PoolRepository
    from chalicelib.store.tasks import TaskRepository

    rows: list[tuple[str, str, str]] = []
    label = f"explore {size:,} pool images"

    def fresh_index() -> IndexedExplore:
        return IndexedExplore(PoolRepository(), TaskRepository(), JobRepository(), ImageRepository(), ChangeLog())

    # The first call of a fresh process: the index is built from DynamoDB.
    cold = fresh_index()
    with counting() as requests, _items_read() as items:
        started = time.perf_counter()
        index = cold.current(seeded.project_id)
        built = time.perf_counter() - started
    rows.append((f"{label}: index, first call of a fresh process without a snapshot (built from DynamoDB)",
                 f"{built:.2f} s; requests {_summary(requests, items)}", "once per project, then snapshots"))
    rows.append((f"{label}: index memory (SQLite pages)", f"{index.memory_bytes() / 2**20:.1f} MB", "goal <= 64 MB"))

    # The first call of a fresh process that finds a snapshot (the one the build above left).
    from chalicelib.services.kept_index import snapshot_key

    services().cache_bucket.put(snapshot_key(seeded.project_id), index.snapshot(
        {stream: mark for stream, mark in cold._held[seeded.project_id].watermarks.items()}),
        "application/vnd.sqlite3")
    warm_start = IndexedExplore(PoolRepository(), TaskRepository(), JobRepository(), ImageRepository(), ChangeLog(),
                                services().cache_bucket)
    with counting() as requests, _items_read() as items:
        started = time.perf_counter()
        warm_start.current(seeded.project_id)
        loaded = time.perf_counter() - started
    size_mb = len(services().cache_bucket.read(snapshot_key(seeded.project_id))[0]) / 2**20
    rows.append((f"{label}: index, first call of a fresh process from its snapshot ({size_mb:.1f} MB)",
                 f"{loaded:.2f} s; requests {_summary(requests, items)}", "goal <= 2 s"))

    token = stack.token(sub=actor.sub)
    by_pool_query = ExploreService(services().access, services().pool_query, services().images)
    with Client(stack.app, stage_name="dev", project_dir=ROOT_DIR) as client:
        def over_api(query: str):
            response = client.http.get(f"/api/v1/projects/{seeded.project_id}/explore?{query}&page_size={PAGE_SIZE}",
                                       headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.body[:300]
            return json.loads(response.body)["data"]

        for name, image_filter in _filters(seeded, size).items():
            query = _query(image_filter)
            over_api(query)  # warm: the API's index is built on its first call
            api_times, api_requests, api_items, page = _timed(lambda: over_api(query), RUNS)
            service_times, _, _, _ = _timed(lambda: services().explore.explore(
                actor, seeded.project_id, image_filter, page=1, page_size=PAGE_SIZE), RUNS)
            pq_times, pq_requests, pq_items, reference = _timed(lambda: by_pool_query.explore(
                actor, seeded.project_id, image_filter, page=1, page_size=PAGE_SIZE), POOL_QUERY_RUNS)
            assert page["total"] == reference.total, (name, page["total"], reference.total)
            assert [image["id"] for image in page["images"]] == [item.view.image.id for item in reference.items], name
            if "tags" in name:
                assert page["total"] == len(seeded.expected)
                assert [image["id"] for image in page["images"]] == seeded.expected[:PAGE_SIZE]
            ratio = statistics.median(pq_times) / statistics.median(service_times)
            rows += [
                (f"{label}, {name}: index over the API (total {page['total']:,})", _ms(api_times), "goal <= 50 ms"),
                (f"{label}, {name}: index at the service", _ms(service_times), f"{ratio:.0f}x faster than PoolQuery"),
                (f"{label}, {name}: PoolQuery at the service", _ms(pq_times), ""),
                (f"{label}, {name}: requests per warm call, index", _summary(api_requests, api_items), "goal <= 3"),
                (f"{label}, {name}: requests per call, PoolQuery", _summary(pq_requests, pq_items), ""),
            ]

        rows += _measure_registry(client, token, size)

    # A write made through another instance (the API's), then a call of the cold-built one.
    image = next(iter(cold.current(seeded.project_id).entries("1", [], 0, 1)))
    extra = services().tags.create(actor, "bench-lag", "#112233", None, None).id
    services().tagging.tag(actor, [image.image_id], [extra])
    from chalicelib.services.filters import ImageFilter

    started = time.perf_counter()
    seen = cold.select(seeded.project_id, ImageFilter(tag_ids=[extra])).total
    lag = time.perf_counter() - started
    rows.append((f"{label}: a tag written through another instance, next call of this one",
                 f"visible: {seen == 1}; that call took {lag * 1000:.1f} ms", "read-your-writes"))
    return rows


def _measure_registry(client, token: str, size: int) -> list[tuple[str, str, str]]:
    """The registry routes over the API at `size` registry images, warm: latency and reads per call."""
    import json

    label = f"registry {size:,} images"

    def over_api(path: str):
        response = client.http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.body[:300]
        return json.loads(response.body)

    first = over_api("/api/v1/shared-images?page_size=1")["data"][0]["id"]
    calls = {
        "list, page 1 + total": "/api/v1/shared-images?page_size=50",
        "list, folder + search, page 3 + total": f"/api/v1/shared-images?folder=bench-explore-{size}/007&search=07&page=3",
        "similar (max_distance 10)": f"/api/v1/shared-images/{first}/similar?max_distance=10&limit=50",
        "duplicates, page 1 + total": "/api/v1/shared-images/duplicates",
    }
    rows = []
    for name, path in calls.items():
        over_api(path)  # warm
        times, requests, items, answer = _timed(lambda: over_api(path), RUNS)
        total = answer.get("meta", {}).get("total", len(answer["data"]))
        rows += [(f"{label}, {name} over the API (total {total:,})", _ms(times), "warm"),
                 (f"{label}, {name}: requests per warm call", _summary(requests, items),
                  "goal: the page plus the change log")]
    return rows


ROOT_DIR = str(__import__("pathlib").Path(__file__).resolve().parent.parent)


def run() -> list[tuple[str, str, str]]:
    _install_read_counter()
    stack = LocalStack(retry_delay=0).start()
    try:
        from chalicelib.services.identity import Identity

        actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
        stack.reset()
        started = time.perf_counter()
        seeded = _seed(actor, SIZE, seed=SIZE)
        print(f"  seeded {SIZE:,} in {time.perf_counter() - started:.0f} s; measuring", file=sys.stderr, flush=True)
        _raise_read_timeout()
        return _measure(stack, actor, seeded, SIZE)
    finally:
        stack.stop()
