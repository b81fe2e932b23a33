"""ML predictions at volume on the embedded stack: a pipeline bulk-posts BENCH_ANALYSES_PREDICTIONS
(100,000) predictions over BENCH_ANALYSES_IMAGES (10,000) images in signed posts of 1,000 (the
route's limit) through `POST /api/v1/analyses/annotations:bulk`, then finalizes every analysis; Explore
then answers prediction conditions over them.

The world, written straight through the store as the other benches do (registering 10,000 images
through S3 events would measure ingest, not this): image records with their sizes, one project
holding every image, one `processing` analysis of `yolo_v8` per image.

Figures:
- the bulk post: HTTP requests against the floor (⌈predictions / 1,000⌉), DynamoDB requests by
  operation with BatchWriteItem against its floor (⌈predictions / 25⌉) and all DynamoDB requests
  per prediction, wall time and predictions/s — every request signed and verified (HMAC, replay
  record), checked against the image's size, through the Chalice app in process (no socket);
- finalizing: every analysis finalized `completed` through the service (8 threads): wall time and
  DynamoDB requests per analysis (each is noted on its image for Explore);
- Explore with prediction conditions at that volume: the project's index built cold from DynamoDB
  (the images' records, then each completed analysis's predictions), the index's memory, then warm
  calls of the API (`GET …/explore`, page of 50 with the total) with no condition and with three
  prediction conditions — median and p95 of RUNS calls — with the index's own share (the service's
  `select`: total and one page, including the change-log catch-up), and the same filter answered by
  PoolQuery (DynamoDB, no index) once.

Knobs: BENCH_ANALYSES_IMAGES (10000), BENCH_ANALYSES_PREDICTIONS (100000).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.harness import Api, counting, requests_line

ROOT = Path(__file__).resolve().parent.parent
IMAGES = int(os.environ.get("BENCH_ANALYSES_IMAGES", "10000"))
PREDICTIONS = int(os.environ.get("BENCH_ANALYSES_PREDICTIONS", "100000"))
BATCH = 1000
CLASSES = ["cat", "dog", "car", "person", "bicycle", "bird", "boat", "bus", "truck", "horse"]
SECRET = "bench-analyses-secret"
RUNS = 21
WIDTH, HEIGHT = 640, 480
FILTERS = {
    "no condition (baseline)": "",
    "yolo_v8 saw a cat below 0.5": "prediction_model=yolo_v8&predicted_class=cat&confidence_below=0.5",
    "any prediction >= 0.95": "min_confidence=0.95",
    "class bus 0.3..0.6": "predicted_class=bus&min_confidence=0.3&confidence_below=0.6",
}


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _seed(api: Api, actor) -> tuple[str, list[str], list[str]]:
    from chalicelib.clock import utcnow
    from chalicelib.services.container import services
    from chalicelib.store.analyses import Analysis, AnalysisRepository
    from chalicelib.store.images import Facts, ImageRepository
    from chalicelib.store.pool import PoolItem, _item as pool_item

    started = time.perf_counter()
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    records = []
    for n in range(IMAGES):
        sha = hashlib.sha256(f"bench-analyses/{n}".encode()).hexdigest()
        records.append((f"bench-analyses/{n // 1000:03d}/{n:06d}.jpg", Facts(
            status="ready", size=100_000 + n, etag=f'"{sha[:32]}"', format="JPEG", mime_type="image/jpeg",
            width=WIDTH, height=HEIGHT, frames=1, sha256=sha, phash=sha[:16],
            object_modified_at=landed + timedelta(seconds=n))))
    images = ImageRepository().put_new(records, "bench")
    project = services().projects.create(actor, "bench analyses", None, []).project.id
    now = utcnow()
    with PoolItem.batch_write() as batch:
        for image in images:
            batch.save(pool_item(project, image, "bench", now))
    analyses = [Analysis(id=f"bench-{n:06d}", image_id=image.id, model_name="yolo_v8", model_version="8.1",
                         parameters={}, status="processing", key_id="default", artifacts=[], prediction_count=0,
                         error=None, created_at=now, updated_at=now) for n, image in enumerate(images)]
    AnalysisRepository().create(analyses)
    _say(f"seeded {IMAGES:,} images, a project and {IMAGES:,} processing analyses in "
         f"{time.perf_counter() - started:.0f} s")
    return project, [image.id for image in images], [analysis.id for analysis in analyses]


def _batches(analysis_ids: list[str]) -> list[list[dict]]:
    """PREDICTIONS boxes spread evenly over the analyses, in posts of BATCH (image after image)."""
    rng = random.Random(7)
    items = []
    for n in range(PREDICTIONS):
        analysis = analysis_ids[n * len(analysis_ids) // PREDICTIONS]
        x, y = rng.randint(0, WIDTH - 50), rng.randint(0, HEIGHT - 50)
        items.append({"analysis_id": analysis, "annotation_type": "bounding_box", "class_name": rng.choice(CLASSES),
                      "confidence": round(rng.random(), 3),
                      "data": {"x_min": x, "y_min": y, "x_max": x + rng.randint(5, 50), "y_max": y + rng.randint(5, 50)}})
    return [items[start : start + BATCH] for start in range(0, len(items), BATCH)]


def _post(client, path: str, body: dict) -> dict:
    from chalicelib.services.pipelines import sign

    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    response = client.http.request("POST", path, body=raw, headers={
        "Content-Type": "application/json", "X-ML-Timestamp": stamp,
        "X-ML-Signature": sign(SECRET, stamp, "POST", path, "", raw)})
    if response.status_code != 200:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.body[:500]!r}")
    return json.loads(response.body)["data"]


def _bulk(client, analysis_ids: list[str]) -> list[tuple[str, str, str]]:
    batches = _batches(analysis_ids)
    with counting() as requests:
        started = time.perf_counter()
        for number, batch in enumerate(batches, 1):
            written = _post(client, "/api/v1/analyses/annotations:bulk", {"annotations": batch})
            assert written["written"] == len(batch), written
            if number % 20 == 0:
                _say(f"posted {number}/{len(batches)} batches ({time.perf_counter() - started:.0f} s)")
        seconds = time.perf_counter() - started
    dynamodb = sum(count for name, count in requests.items() if name.startswith("dynamodb."))
    batch_writes = requests["dynamodb.BatchWriteItem"]
    floor = math.ceil(PREDICTIONS / 25)
    return [
        (f"bulk post: {PREDICTIONS:,} predictions over {IMAGES:,} images, {BATCH:,} a request",
         f"{len(batches)} HTTP requests (floor {math.ceil(PREDICTIONS / BATCH)}, "
         f"{len(batches) / PREDICTIONS:.4f} per prediction); {seconds:.1f} s, {PREDICTIONS / seconds:,.0f} predictions/s",
         "floor"),
        ("bulk post: DynamoDB requests",
         f"BatchWriteItem {batch_writes:,} ({batch_writes / floor:.3f}x floor {floor:,}); all DynamoDB "
         f"{dynamodb:,} ({dynamodb / PREDICTIONS:.3f} per prediction); {requests_line(requests)}", ""),
    ]


def _finalize(analysis_ids: list[str]) -> list[tuple[str, str, str]]:
    from chalicelib.services.container import services
    from chalicelib.services.pipelines import Pipeline

    pipeline = Pipeline(key_id="default")
    with counting() as requests:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda a: services().analyses.finalize(pipeline, a, "completed"), analysis_ids))
        seconds = time.perf_counter() - started
    dynamodb = sum(count for name, count in requests.items() if name.startswith("dynamodb."))
    return [(f"finalize {len(analysis_ids):,} analyses (service, 8 threads)",
             f"{seconds:.1f} s; {dynamodb / len(analysis_ids):.1f} DynamoDB requests per analysis; "
             f"{requests_line(requests)}", "")]


def _explore(api: Api, project: str) -> list[tuple[str, str, str]]:
    from chalicelib.services.container import services
    from chalicelib.services.filters import ImageFilter

    rows = []
    index = services().explore_index
    index.forget(project)
    services().cache_bucket.delete(f"explore-index/{project}.sqlite")
    with counting() as requests:
        started = time.perf_counter()
        built = index.current(project)
        seconds = time.perf_counter() - started
    rows.append(("Explore index built cold (images, tags, captions, analyses, predictions)",
                 f"{seconds:.1f} s, {built.memory_bytes() / 2**20:.1f} MiB in memory; {requests_line(requests)}", ""))
    for name, query in FILTERS.items():
        path = f"/api/v1/projects/{project}/explore?page_size=50&{query}"
        api.call("GET", path)  # warm
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            answer = api.call("GET", path)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        rows.append((f"Explore warm, {name} (page of 50 + total), {RUNS} calls",
                     f"median {statistics.median(times):.1f} ms, p95 {times[int(0.95 * (RUNS - 1))]:.1f} ms; "
                     f"total {answer['total']:,}", ""))
        if query:  # the index's own share of the call: the filter's total and one page, no rendering
            image_filter = ImageFilter.model_validate(dict(pair.split("=") for pair in query.split("&")))
            index_times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                selection = services().explore_index.select(project, image_filter)
                selection.total, selection.window(0, 50)
                index_times.append((time.perf_counter() - started) * 1000)
            rows.append((f"  of which the index (select: total + page of 50), {name}",
                         f"median {statistics.median(index_times):.1f} ms", ""))
    conditions = dict(pair.split("=") for pair in FILTERS["yolo_v8 saw a cat below 0.5"].split("&"))
    image_filter = ImageFilter.model_validate(conditions)
    started = time.perf_counter()
    reference = services().pool_query.select(project, image_filter)
    seconds = time.perf_counter() - started
    indexed = services().explore_index.select(project, image_filter)
    assert [e.image_id for e in reference.entries] == [e.image_id for e in indexed.entries], "index and DynamoDB differ"
    rows.append(("PoolQuery (DynamoDB, no index), yolo_v8 cat below 0.5, once",
                 f"{seconds:.1f} s, same {reference.total:,} images as the index", ""))
    return rows


def run() -> list[tuple[str, str, str]]:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from chalice.test import Client

    from bench.bench_explore import _raise_read_timeout
    from chalicelib.services.container import services
    from chalicelib.services.identity import Identity
    from infra.local.stack import LocalStack

    stack = LocalStack(retry_delay=0).start()
    actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
    rows: list[tuple[str, str, str]] = []
    try:
        _raise_read_timeout()
        settings = services().settings
        services().override(settings=settings.model_copy(update={
            "ml_analysis_enabled": True, "ml_callback_hmac_secret": SECRET, "ml_allowed_models": "yolo_v8"}))
        with Client(stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
            api = Api(client, stack.token(sub="bench", email="bench@example.com", groups=[]))
            project, _, analysis_ids = _seed(api, actor)
            rows += _bulk(client, analysis_ids)
            rows += _finalize(analysis_ids)
            rows += _explore(api, project)
    finally:
        stack.stop()
    for row in rows:
        _say(" | ".join(row))
    return rows
