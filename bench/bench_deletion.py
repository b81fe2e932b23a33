"""Dataset deletion (issue 15) on the embedded stack: the soft delete (how soon the dataset's images
are gone from another project's Explore, and what the DELETE request itself costs), the cascade
purge through the real `delete-dataset` state machine (DynamoDB write requests against the batch
floor, S3 delete requests against the DeleteObjects floor, wall time) and the peak RSS of each
purge step's Lambda handler in a fresh process.

The world: a dataset of BENCH_DELETION_IMAGES (100,000) images used by 3 projects —
- its own project (the one its import would have made, `claim_project`): every image in the pool,
  one task cut into jobs of 500, 3/5 of BENCH_DELETION_ANNOTATIONS (500,000) on its images (3 per
  image at the defaults), a frozen version per job;
- "whole": another project holding every image (pool, one task, jobs of 500), 1/5 of the
  annotations (1 per image), a frozen version per job;
- "half": another project holding every other image, 1/5 of the annotations (2 per image), a frozen
  version per job;
and 20 tags, each image linked to one of them (round robin; the tags' usage counts set).

Seeding 100,000 images through the import would take hours on moto, so the world is written
straight through the store, as bench_explore does: registry records by BatchWriteItem
(`ImageRepository.put_new`: sha256 unique per image, size, width/height, status ready,
thumbnail_key, tag set), the share objects under `datasets/<id>/…` and their thumbnails in the
cache bucket (`thumbnails/<sha[:2]>/<sha>.jpg`; tiny bodies, PutObject from 12 threads, the share's
notifications off and the ingest queue purged after), pool entries with `dataset_id` (so the
sparse `by_dataset` index finds them) and their exact `annotation_count`, tasks (ready), jobs and
job images (BatchWriteItem), the `CUR#` annotation items (one per job image, its annotations a
JSON list), one `VER#000001` item per job with its document in the datasets bucket (the purge
rewrites the other projects' documents), the tag links. Projects, tags and the dataset are made by
the services/API. `GET …/deletion-impact` checks the world (its counts and time are printed).

How each figure is measured:
- soft delete: Explore of "whole" is warmed first (its index's cold build); then `DELETE
  /datasets/{id}` {purge: false} is timed (and its AWS requests counted: the same handful at any
  size), then Explore of "whole" is called back to back until its total is 0 (every pool image of
  "whole" is the dataset's). The figure is from the DELETE's 202 to that answer.
- purge: once the deletion's operation completed, `POST …/purge` (202) starts the state machine;
  wall time to the operation read `completed` (polled every 0.2 s), step times at the Lambda
  dispatcher. A botocore hook (`before-parameter-build`, the request's own parameters) counts
  every DynamoDB write request (BatchWriteItem, PutItem, UpdateItem, DeleteItem,
  TransactWriteItems) and the DeleteRequest entries of the BatchWriteItems (items deleted), and
  every S3 DeleteObjects with its keys, per bucket. Floors: ⌈items deleted / 25⌉ DynamoDB write
  requests, ⌈keys deleted / 1,000⌉ DeleteObjects per bucket. The writes that are not batch deletes
  are listed by operation and table (change records, job/task totals, version recounts, tag usage,
  the operation's and dataset's own records…) so the excess is visible.
- peak RSS per step: the stack is reset and the world seeded again; deleted through the API, then
  the purge operation created by `POST …/purge` with the state machine's start stubbed; each step's
  handler runs in a fresh Python process against this process's emulator (bench_datasets' `_child`),
  in the machine's order: plan, each project (as the Map would), registry, objects, finish. VmHWM
  per step, and the same minus the VmHWM after imports.

Knobs: BENCH_DELETION_IMAGES (100000), BENCH_DELETION_ANNOTATIONS (500000),
BENCH_DELETION_MEMORY=0 (skip the memory run and its second seeding).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.harness import Api, counting, on_botocore_event, requests_line, step_times

ROOT = Path(__file__).resolve().parent.parent
D = "/api/v1/datasets"
P = "/api/v1/projects"

IMAGES = int(os.environ.get("BENCH_DELETION_IMAGES", "100000"))
ANNOTATIONS = int(os.environ.get("BENCH_DELETION_ANNOTATIONS", "500000"))
MEMORY = os.environ.get("BENCH_DELETION_MEMORY", "1") != "0"
CHUNK = 500  # images per job
TAGS = 20
S3_THREADS = 12
SLICE = 5000
RATIO_GOAL = 1.05
VISIBLE_GOAL = 2.0
MEMORY_GOAL_MB = 300
STEPS = ("purge_plan_dataset", "purge_project_dataset", "purge_registry_dataset", "purge_objects_dataset",
         "purge_finish_dataset")
WRITES = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# Counting what the purge deletes ------------------------------------------------------------------

_tally: Counter = Counter()
_tally_lock = threading.Lock()
_table_names: dict[str, str] = {}


def _short(table: str) -> str:
    return _table_names.get(table, table)


def _dynamodb_write(event_name: str, params: dict | None = None, **_: object) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    params = params or {}
    found: Counter = Counter()
    found["dynamodb.requests"] += 1
    if operation == "BatchWriteItem":
        deletes = puts = 0
        tables = set()
        for table, requests in params.get("RequestItems", {}).items():
            tables.add(_short(table))
            for request in requests:
                if "DeleteRequest" in request:
                    deletes += 1
                else:
                    puts += 1
        found["dynamodb.items_deleted"] += deletes
        if puts or not deletes:
            found[f"other: BatchWriteItem (puts) {'+'.join(sorted(tables))}"] += 1
            found["dynamodb.items_put"] += puts
        else:
            found["dynamodb.batch_deletes"] += 1
    elif operation == "TransactWriteItems":
        tables = sorted({_short(action[kind]["TableName"]) for action in params.get("TransactItems", [])
                         for kind in action})
        found[f"other: TransactWriteItems {'+'.join(tables)}"] += 1
    else:
        found[f"other: {operation} {_short(params.get('TableName', '?'))}"] += 1
    with _tally_lock:
        _tally.update(found)


def _s3_delete(params: dict | None = None, **_: object) -> None:
    params = params or {}
    bucket = _short(params.get("Bucket", "?"))
    with _tally_lock:
        _tally[f"s3.requests {bucket}"] += 1
        _tally[f"s3.keys {bucket}"] += len(params.get("Delete", {}).get("Objects", []))


def _s3_single_delete(params: dict | None = None, **_: object) -> None:
    with _tally_lock:
        _tally[f"s3.DeleteObject {_short((params or {}).get('Bucket', '?'))}"] += 1


def _install_hooks() -> None:
    for operation in WRITES:
        on_botocore_event(f"before-parameter-build.dynamodb.{operation}", _dynamodb_write)
    on_botocore_event("before-parameter-build.s3.DeleteObjects", _s3_delete)
    on_botocore_event("before-parameter-build.s3.DeleteObject", _s3_single_delete)


def _tally_since(before: Counter) -> Counter:
    with _tally_lock:
        return _tally - before


def _name_resources(stack) -> None:
    """Physical table and bucket names to short ones, for the rows."""
    for name, value in stack.variables.items():
        if name.endswith("_TABLE") or name.endswith("_BUCKET"):
            short = name.removeprefix("PIXELPOOL_").lower()
            _table_names[value] = short


# The API ------------------------------------------------------------------------------------------


def _wait(api: Api, operation_id: str, timeout: float = 3600) -> dict:
    return api.wait(operation_id, timeout, _say, 0.2)


# The world ----------------------------------------------------------------------------------------


def _progress(what: str, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    _say(f"{what}: {done:,}/{total:,} ({elapsed:.0f} s, {done / max(elapsed, 1e-9):.0f}/s)")


def _per_image() -> tuple[int, int, int]:
    """Annotations per image in the own project, "whole" and "half" (3/5, 1/5, 1/5 of the total)."""
    own = max(1, round(ANNOTATIONS * 3 / 5 / IMAGES))
    whole = max(1, round(ANNOTATIONS / 5 / IMAGES))
    half = max(1, round(ANNOTATIONS / 5 / (IMAGES / 2)))
    return own, whole, half


def _seed(stack, api: Api, actor, label: str) -> dict:
    from chalicelib.clock import utcnow
    from chalicelib.ids import new_id
    from chalicelib.services.container import services
    from chalicelib.services.registry import thumbnail_key
    from chalicelib.store.annotations import AnnotationItem
    from chalicelib.store.datasets import DatasetRepository
    from chalicelib.store.image_tags import ImageTagItem
    from chalicelib.store.images import Facts, ImageRepository, image_id
    from chalicelib.store.jobs import Job, JobImage, JobRepository
    from chalicelib.store.pool import PoolItem, _item as pool_item
    from chalicelib.store.tags import TagItem, tag_key
    from chalicelib.store.tasks import READY, Task, TaskRepository

    seeding = time.perf_counter()
    rng = random.Random(IMAGES)
    dataset = api.call("POST", D, {"name": f"bench deletion {label}"}, 201)["id"]
    projects = {name: services().projects.create(actor, f"bench deletion {label} {name}", None, []).project.id
                for name in ("own", "whole", "half")}
    DatasetRepository().claim_project(dataset, projects["own"])
    tag_ids = [services().tags.create(actor, f"bench-deletion-{label}-{n:02d}", "#336699", None, None).id
               for n in range(TAGS)]

    keys = [f"datasets/{dataset}/images/part{n // 1000:03d}/{n:06d}.jpg" for n in range(IMAGES)]
    ids = [image_id(key) for key in keys]
    shas = [hashlib.sha256(f"{dataset}/{n}".encode()).hexdigest() for n in range(IMAGES)]
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)

    # Registry records (with their tag sets) and tag links.
    images, started = [], time.perf_counter()
    for start in range(0, IMAGES, SLICE):
        records = []
        for n in range(start, min(start + SLICE, IMAGES)):
            sha = shas[n]
            records.append((keys[n], Facts(
                status="ready", size=rng.randint(50_000, 500_000), etag=f'"{sha[:32]}"', format="JPEG",
                mime_type="image/jpeg", width=rng.randint(640, 4000), height=rng.randint(480, 3000), frames=1,
                sha256=sha, phash=sha[:16], thumbnail_key=thumbnail_key(sha),
                object_modified_at=landed + timedelta(seconds=n))))
        images += ImageRepository().put_new(records, "bench", {ids[n]: {tag_ids[n % TAGS]}
                                                               for n in range(start, min(start + SLICE, IMAGES))})
    _progress("image records", len(images), IMAGES, started)
    started, now = time.perf_counter(), utcnow()
    with ImageTagItem.batch_write() as batch:
        for n, image in enumerate(ids):
            batch.save(ImageTagItem(tag_id=tag_ids[n % TAGS], image_id=image, created_by="bench", created_at=now))
    usage = Counter(tag_ids[n % TAGS] for n in range(IMAGES))
    for tag in tag_ids:
        TagItem(pk=tag_key(tag)).update(actions=[TagItem.usage_count.set(usage[tag])])
    _progress("tag links", IMAGES, IMAGES, started)

    # S3: the share objects and their thumbnails (tiny bodies), notifications off meanwhile.
    s3 = stack.aws("s3")
    share, cache = stack.variables["PIXELPOOL_SHARE_BUCKET"], stack.variables["PIXELPOOL_CACHE_BUCKET"]
    documents = stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    notifications = s3.get_bucket_notification_configuration(Bucket=share)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=share, NotificationConfiguration={})
    started = time.perf_counter()

    def put(n: int) -> None:
        s3.put_object(Bucket=share, Key=keys[n], Body=b"\xff\xd8bench" + shas[n].encode(), ContentType="image/jpeg")
        s3.put_object(Bucket=cache, Key=thumbnail_key(shas[n]), Body=b"\xff\xd8thumb", ContentType="image/jpeg")

    with ThreadPoolExecutor(max_workers=S3_THREADS) as pool:
        for done, _ in enumerate(pool.map(put, range(IMAGES)), 1):
            if done % 20_000 == 0:
                _progress("S3 objects (share + thumbnail)", done, IMAGES, started)
    s3.put_bucket_notification_configuration(Bucket=share, NotificationConfiguration=notifications)
    stack.aws("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])
    _progress("S3 objects (share + thumbnail)", IMAGES, IMAGES, started)

    # Projects: pool, a task, jobs of CHUNK, job images, CUR# items, a version per job.
    own_n, whole_n, half_n = _per_image()
    members = {"own": (images, own_n), "whole": (images, whole_n), "half": (images[::2], half_n)}
    annotations_total, versions_total = 0, 0
    for name, (held, per_image) in members.items():
        project_id = projects[name]
        started, now = time.perf_counter(), utcnow()
        with PoolItem.batch_write() as batch:
            for image in held:
                item = pool_item(project_id, image, "bench", now)
                item.annotation_count = per_image
                batch.save(item)
        task_id = new_id()
        job_count = -(-len(held) // CHUNK)
        TaskRepository().put_task(Task(
            id=task_id, project_id=project_id, name=f"{name} task", description=None, assignee_id=None,
            split="train", status="new", state=READY, total_images=len(held), job_count=job_count,
            chunk_size=CHUNK, distribution_order="sequential", seed=None, source="pool", created_by=actor.sub,
            created_at=now, updated_at=now))
        jobs, job_images = [], []
        for sequence in range(job_count):
            chunk = held[sequence * CHUNK : (sequence + 1) * CHUNK]
            job = Job(id=new_id(), task_id=task_id, project_id=project_id, sequence_number=sequence,
                      assignee_id=None, status="new", total_images=len(chunk), rev=0, created_at=now, updated_at=now)
            jobs.append((job, chunk))
            job_images += [JobImage(task_id=task_id, job_id=job.id, image_id=image.id, project_id=project_id,
                                    sequence_number=position, annotation_count=per_image)
                           for position, image in enumerate(chunk)]
        JobRepository().write([job for job, _ in jobs], job_images)

        def boxes(image_id_: str) -> list[dict]:
            return [{"id": f"{image_id_[:8]}-{k}", "type": "bbox", "label": "cat", "state": "confirmed",
                     "bbox": [10 + k, 10 + k, 40, 30]} for k in range(per_image)]

        with AnnotationItem.batch_write() as batch:
            for job, chunk in jobs:
                for image in chunk:
                    batch.save(AnnotationItem(job_id=job.id, sk=f"CUR#{image.id}", image_id=image.id,
                                              annotations=boxes(image.id), count=per_image, rev=1,
                                              updated_by="bench", updated_at=now))
                    annotations_total += per_image

        def freeze(entry) -> None:
            job, chunk = entry
            key = f"projects/{project_id}/tasks/{task_id}/jobs/{job.id}/versions/{new_id()}.json"
            s3.put_object(Bucket=documents, Key=key, ContentType="application/json", Body=json.dumps({
                "job_id": job.id, "task_id": task_id, "project_id": project_id, "note": "bench",
                "created_by": "bench", "created_at": now.isoformat(),
                "images": [{"image_id": image.id, "rev": 1, "annotations": boxes(image.id)}
                           for image in sorted(chunk, key=lambda image: image.id)]}).encode())
            AnnotationItem(job_id=job.id, sk="VER#000001", number=1, document_key=key, image_count=len(chunk),
                           count=len(chunk) * per_image, updated_by="bench", updated_at=now, note="bench").save()

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(freeze, jobs))
        versions_total += len(jobs)
        _progress(f"project {name} (pool, task, {len(jobs)} jobs, job images, annotations, versions)",
                  len(held), len(held), started)
    _say(f"seeded {IMAGES:,} images in {time.perf_counter() - seeding:.0f} s")
    return {"dataset": dataset, "name": f"bench deletion {label}", "projects": projects, "tags": tag_ids,
            "annotations": annotations_total, "versions": versions_total,
            "seconds": time.perf_counter() - seeding}


# The figures --------------------------------------------------------------------------------------


def _impact(api: Api, world: dict) -> list[tuple[str, str, str]]:
    started = time.perf_counter()
    impact = api.call("GET", f"{D}/{world['dataset']}/deletion-impact")
    seconds = time.perf_counter() - started
    names = {value: key for key, value in world["projects"].items()}
    projects = "; ".join(f"{names.get(p['project_id'], p['project_id'])}: {p['action']}, {p['images']:,} images, "
                         f"{p['annotations']:,} annotations, {p['tasks']} task(s), {p['jobs']} jobs"
                         for p in impact["projects"])
    expected_annotations = world["annotations"]
    right = (impact["images"] == IMAGES and impact["annotations"] == expected_annotations
             and impact["annotation_versions"] == world["versions"] and len(impact["projects"]) == 3)
    return [(f"world: GET …/deletion-impact ({seconds:.1f} s, cold indexes)",
             f"{impact['images']:,} images, {impact['annotations']:,} annotations, "
             f"{impact['annotation_versions']:,} versions, {impact['tasks']} tasks, {impact['jobs']:,} jobs, "
             f"{impact['storage_bytes'] / 2**30:.1f} GiB; {projects}",
             "as seeded" if right else f"MISMATCH: seeded {expected_annotations:,} annotations, "
                                       f"{world['versions']:,} versions")]


def _soft_delete(api: Api, world: dict) -> list[tuple[str, str, str]]:
    whole = world["projects"]["whole"]
    explore = f"{P}/{whole}/explore?page_size=50"
    started = time.perf_counter()
    before = api.call("GET", explore)["total"]
    cold = time.perf_counter() - started
    warm_started = time.perf_counter()
    api.call("GET", explore)
    warm = time.perf_counter() - warm_started
    _say(f"explore of 'whole' warmed ({cold:.1f} s cold, {warm * 1000:.0f} ms warm, total {before:,})")
    with counting() as made:
        clock = time.perf_counter()
        operation = api.call("DELETE", f"{D}/{world['dataset']}", {
            "confirm_dataset_name": world["name"], "create_backup": False, "force_delete": False, "purge": False}, 202)
        answered = time.perf_counter()
    delete_seconds = answered - clock
    calls, total = 0, None
    while True:
        total = api.call("GET", explore)["total"]
        calls += 1
        if total == 0 or time.perf_counter() - answered > 120:
            break
    hidden = time.perf_counter() - answered
    deletion = _wait(api, operation["id"])
    operations = sum(made.values())
    return [
        (f"soft delete: Explore of another project ('whole', {before:,} pool images) warmed",
         f"first call {cold:.1f} s (its index was built by the impact call before), then {warm * 1000:.0f} ms "
         "a call", ""),
        ("soft delete: the DELETE request (202)",
         f"{delete_seconds * 1000:.0f} ms; {operations} AWS requests: {requests_line(made)}",
         "a handful, independent of size"),
        ("soft delete: from the DELETE's 202 to the images invisible in that Explore",
         f"{hidden:.2f} s ({calls} Explore call(s); total {before:,} -> {total:,})"
         if total == 0 else f"NOT HIDDEN after {hidden:.0f} s (total {total:,})", f"goal <= {VISIBLE_GOAL:.0f} s"),
        ("soft delete: the deletion's operation (state machine: Deleted step, result)",
         f"{deletion['status']}", "completed"),
    ]


def _purge(stack, api: Api, world: dict) -> list[tuple[str, str, str]]:
    from bench.bench_exports import StepRecorder

    recorder = StepRecorder(stack)
    with _tally_lock:
        before = Counter(_tally)
    with counting() as made:
        started = time.perf_counter()
        operation = api.call("POST", f"{D}/{world['dataset']}/purge", None, 202)
        operation = _wait(api, operation["id"])
        seconds = time.perf_counter() - started
    tally = _tally_since(before)
    rows: list[tuple[str, str, str]] = []
    if operation["status"] != "completed":
        return [("purge: POST …/purge -> operation", f"FAILED after {seconds:.1f} s: {operation.get('error')}",
                 "must complete")]
    summary = operation["result"]["deletion_summary"]
    rows.append((f"purge: POST …/purge (202) -> operation completed ({IMAGES:,} images, 3 projects, "
                 f"{world['annotations']:,} annotations; embedded stack, real state machine)",
                 f"{seconds:.1f} s", ""))
    rows.append(("purge: steps (Lambda Invoke at the dispatcher)", step_times(recorder, STEPS, "_dataset"), ""))
    rows.append(("purge: the operation's summary", ", ".join(
        f"{key} {value:,}" for key, value in summary.items() if isinstance(value, int)), ""))
    deleted, requests = tally["dynamodb.items_deleted"], tally["dynamodb.requests"]
    floor = math.ceil(deleted / 25)
    others = {key.removeprefix("other: "): count for key, count in tally.items() if key.startswith("other: ")}
    rows.append(("purge: DynamoDB write requests / floor ⌈items deleted / 25⌉",
                 f"{requests:,} / {floor:,} = {requests / max(floor, 1):.3f}x ({deleted:,} items deleted by "
                 f"{tally['dynamodb.batch_deletes']:,} BatchWriteItem of deletes, {sum(others.values()):,} other writes)",
                 f"goal <= {RATIO_GOAL}x"))
    rows.append(("purge: the DynamoDB writes that are not batch deletes, by operation and table",
                 "; ".join(f"{name} {count:,}" for name, count in sorted(others.items(), key=lambda kv: -kv[1]))
                 or "none", ""))
    buckets = sorted({key.split(" ", 1)[1] for key in tally if key.startswith("s3.requests ")})
    worst = 0.0
    parts = []
    for bucket in buckets:
        keys, sent = tally[f"s3.keys {bucket}"], tally[f"s3.requests {bucket}"]
        s3_floor = math.ceil(keys / 1000)
        worst = max(worst, sent / max(s3_floor, 1))
        parts.append(f"{bucket}: {sent:,} / {s3_floor:,} ({keys:,} keys) = {sent / max(s3_floor, 1):.2f}x")
    singles = {key.split(" ", 1)[1]: count for key, count in tally.items() if key.startswith("s3.DeleteObject ")}
    if singles:
        parts.append("single DeleteObject: " + ", ".join(f"{b} {c:,}" for b, c in singles.items()))
    rows.append(("purge: S3 DeleteObjects requests / floor ⌈keys / 1,000⌉, per bucket", "; ".join(parts) or "none",
                 f"goal <= {RATIO_GOAL}x"))
    rows.append(("purge: all requests (state machine's polling of the operation included)", requests_line(made), ""))
    dataset = api.call("GET", f"{D}/{world['dataset']}")
    listed = stack.aws("s3").list_objects_v2(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"],
                                             Prefix=f"datasets/{world['dataset']}/", MaxKeys=1)
    rows.append(("purge: afterwards", f"dataset state {dataset['state']}; share objects left under its prefix: "
                 f"{listed.get('KeyCount', 0)}", "purged, 0"))
    return rows


# Memory -------------------------------------------------------------------------------------------


def _memory(api: Api, world: dict) -> list[tuple[str, str, str]]:
    from bench.bench_datasets import _child
    from chalicelib.services.container import services

    operation = api.call("DELETE", f"{D}/{world['dataset']}", {
        "confirm_dataset_name": world["name"], "create_backup": False, "force_delete": False, "purge": False}, 202)
    _wait(api, operation["id"])
    deletion = services().dataset_deletion
    start_workflow = deletion._start_workflow
    deletion._start_workflow = lambda *args: None  # the purge's operation and state begin; no machine
    try:
        operation_id = api.call("POST", f"{D}/{world['dataset']}/purge", None, 202)["id"]
    finally:
        deletion._start_workflow = start_workflow
    event = {"operation_id": operation_id}
    names = {value: key for key, value in world["projects"].items()}
    found: list[tuple[str, dict]] = []
    failed = None
    plan = None
    try:
        _say("memory run: purge_plan_dataset")
        result = _child("purge_plan_dataset", [event])
        found.append(("plan", result))
        plan = result["results"][0]
        for project in plan["projects"]:
            label = f"project {names.get(project['project_id'], '?')}"
            _say(f"memory run: purge_project_dataset ({label})")
            found.append((label, _child("purge_project_dataset", [{**event, **project}])))
        for name in STEPS[2:]:
            _say(f"memory run: {name}")
            found.append((name.removeprefix("purge_").removesuffix("_dataset"), _child(name, [event])))
    except RuntimeError as exc:
        failed = str(exc).strip().splitlines()[-1][:300]
    final = api.call("GET", f"/api/v1/operations/{operation_id}")
    rss = ", ".join(f"{label} {entry['hwm_mb']:.0f}" for label, entry in found)
    own = ", ".join(f"{label} {entry['hwm_mb'] - entry['baseline_mb']:.0f}" for label, entry in found)
    times = ", ".join(f"{label} {entry['seconds']:.1f}" for label, entry in found)
    label = f"purge of {IMAGES:,} images: peak RSS per step, MB (VmHWM, fresh process each, sequential)"
    if failed or final["status"] != "completed":
        return [(label, f"FAILED: {failed or final.get('error') or final['status']}; before it: {rss or 'none'}",
                 f"goal <= {MEMORY_GOAL_MB} MB")]
    peak = max(entry["hwm_mb"] for _, entry in found)
    worst = max(found, key=lambda pair: pair[1]["hwm_mb"])[0]
    baseline = min(entry["baseline_mb"] for _, entry in found)
    return [
        (f"{label}; {baseline:.0f} MB after imports", f"max {peak:.0f} MB ({worst}); {rss}",
         f"goal <= {MEMORY_GOAL_MB} MB"),
        ("the same minus the process's VmHWM after imports, MB", own, ""),
        ("seconds per step in those processes", times, f"operation {final['status']}"),
    ]


# The bench ----------------------------------------------------------------------------------------


def _shown(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Rows as they are measured, to stderr too: a long run stopped early keeps what it measured."""
    for row in rows:
        _say(" | ".join(row))
    return rows


def run() -> list[tuple[str, str, str]]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    _install_hooks()
    from chalice.test import Client

    from bench.bench_explore import _raise_read_timeout
    from chalicelib.services.identity import Identity
    from infra.local.stack import LocalStack

    stack = LocalStack(retry_delay=0).start()
    _name_resources(stack)
    rows: list[tuple[str, str, str]] = []
    actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
    try:
        _raise_read_timeout()
        with Client(stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
            api = Api(client, stack.token(sub="bench", email="bench@example.com", groups=[]))
            world = _seed(stack, api, actor, "a")
            own_n, whole_n, half_n = _per_image()
            rows.append((f"world: {IMAGES:,} images in 1 dataset, 3 projects (own: all, {own_n}/image; whole: all, "
                         f"{whole_n}/image; half: every other, {half_n}/image), jobs of {CHUNK}, {TAGS} tags",
                         f"{world['annotations']:,} annotations, {world['versions']:,} versions; seeded through "
                         f"the store in {world['seconds']:.0f} s", ""))
            for part in (lambda: _impact(api, world), lambda: _soft_delete(api, world),
                         lambda: _purge(stack, api, world)):
                rows += _shown(part())
            if MEMORY:
                stack.reset()
                _name_resources(stack)
                world = _seed(stack, api, actor, "b")
                rows += _shown(_memory(api, world))
    finally:
        stack.stop()
    return rows
