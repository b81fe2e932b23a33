"""Exports: a detection COCO export (no images) of 100,000 images with 500,000 annotations (5 boxes
per image, 5 labels, 3 split tasks) through the service and the `export` state machine on the
embedded stack: wall time from create to completed (goal <= 60 s) and images/s, the time of each
step, the largest state payload (from the execution's history) and Lambda payload, the artifact
checked box by box against the seed, and the peak memory of every step (goal <= 512 MB). Then an
export with `include_images` of 300 real JPEGs (50-200 KB): bytes staged per second by the build
step's server-side CopyObject, the S3 requests that prove it (CopyObject per image, GetObject
read in bounded chunks), and the steps' peak memory against the total image bytes.
BENCH_EXPORT_IMAGES and BENCH_EXPORT_WITH_IMAGES shrink it (0 skips a part); BENCH_EXPORT_MEMORY=0
skips the memory runs.

The data is seeded straight through the store (BatchWriteItem only): image records, the pool
(entries carry `annotation_count`, as the annotation transaction leaves them), tasks of the
train/val/test splits cut into jobs of 50 that hold every image, and each job image's current
annotation set (`CUR#` items); the JPEGs of the second part are uploaded to the share bucket as
objects that exist already (no ingest).

How each figure is measured:
- time: one run of the pipeline as the product runs it (the emulator's Step Functions, Lambda
  served in-process by the dispatcher), no profiler or tracemalloc; step times are the dispatcher's
  Invoke calls, timed by a wrapper;
- state payloads: the longest `input`/`output`/`parameters` of any event of the execution's
  history; Lambda payloads: bytes of each Invoke request and response at the dispatcher;
- memory: each step is run again, sequentially, by its Lambda handler in a fresh Python process
  that talks to this one's emulator over HTTP (steps are idempotent and re-runnable). In the
  pipeline run the steps share this process with the emulator (moto keeps every item and object in
  this heap and builds every response here) and the Map runs builds concurrently, so neither RSS
  nor tracemalloc could be attributed to one step there. Per step: the process's peak RSS (VmHWM,
  what Lambda's memory limit sees, interpreter and imports included) in one child, and the step's
  own Python heap peak (tracemalloc) in another (tracemalloc's bookkeeping would inflate RSS).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.harness import counting, requests_line, step_times, upload_existing
from infra.local.stack import LocalStack

EMULATOR_BEFORE_AFTER = True  # `make bench` prints this bench on moto's connection-per-request server and on ours
ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "data"
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "camera.png")

IMAGES = int(os.environ.get("BENCH_EXPORT_IMAGES", "100000"))
WITH_IMAGES = int(os.environ.get("BENCH_EXPORT_WITH_IMAGES", "300"))
MEMORY = os.environ.get("BENCH_EXPORT_MEMORY", "1") != "0"
PER_IMAGE = 5
LABELS = ("car", "cat", "dog", "person", "tree")
SPLITS = (("train", 0.7), ("val", 0.2), ("test", 0.1))
CHUNK_SIZE = 50
SLICE = 5000  # items per progress line while seeding
POLL_SECONDS = 0.2
WALL_GOAL_SECONDS = 60
MEMORY_GOAL_MB = 512
JPEG_BYTES = (50_000, 200_000)
STEPS = ("prepare_export", "build_export", "assemble_export", "finalize_export")

# A step's Lambda handler, run in a fresh process against this process's emulator (os.environ
# holds the stack's variables). Prints one JSON line: the peak RSS after imports and per call.
_STEP = """
import json, sys, time, tracemalloc

def status(name):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(name + ":")) / 1024

args = json.loads(sys.argv[1])
from chalice.local import LambdaContext
from app import app

baseline = status("VmHWM")
if args["trace"]:
    # Build every client a step may use before tracing (a warm Lambda has them): the heap figure
    # is then the step's own work, not botocore's service models (PynamoDB builds one client per
    # model class, each from a fresh botocore session).
    import importlib, pkgutil
    import chalicelib.store as store
    from pynamodb.models import Model
    from chalicelib.store.aws import client
    for module in pkgutil.iter_modules(store.__path__):
        importlib.import_module(f"chalicelib.store.{module.name}")
    todo = list(Model.__subclasses__())
    while todo:
        model = todo.pop()
        todo += model.__subclasses__()
        if getattr(getattr(model, "Meta", None), "table_name", None):
            model.describe_table()  # builds the model's connection and client
    client("s3")
calls = []
for name, event in args["calls"]:
    context = LambdaContext(function_name=name, memory_size=1024, max_runtime_ms=900_000)
    if args["trace"]:
        tracemalloc.start()
    started = time.perf_counter()
    app.handler_map[name](event, context)
    seconds = time.perf_counter() - started
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if args["trace"] else None
    tracemalloc.stop()
    calls.append({"name": name, "seconds": seconds, "heap_mb": heap, "hwm_mb": status("VmHWM")})
print(json.dumps({"baseline_mb": baseline, "calls": calls}))
"""


def _progress(what: str, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  {what}: {done:,}/{total:,} ({elapsed:.0f} s, {done / max(elapsed, 1e-9):.0f}/s)",
          file=sys.stderr, flush=True)


def _mb(count: float) -> str:
    return f"{count / 2**20:.1f} MB"


# Seeding ------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    project_id: str
    images: int
    expected: dict[str, list[tuple[str, tuple[float, ...]]]]  # file path → sorted (label, bbox)
    splits: Counter
    classes: Counter
    sizes: dict[str, tuple[int, int]]  # file path → (width, height)
    files: dict[str, bytes] = field(default_factory=dict)  # file path → bytes (the real JPEGs)


def _floor2(value: float) -> float:
    return math.floor(value * 100) / 100


def _boxes(rng: random.Random, width: int, height: int) -> list[dict]:
    """PER_IMAGE valid bbox annotations (inside the image), as the annotation API stores them."""
    made = []
    for _ in range(PER_IMAGE):
        w = _floor2(rng.uniform(4, width / 3))
        h = _floor2(rng.uniform(4, height / 3))
        x = _floor2(rng.uniform(0, width - w))
        y = _floor2(rng.uniform(0, height - h))
        made.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": "bbox",
                     "label": rng.choice(LABELS), "state": "confirmed", "bbox": [x, y, w, h]})
    return made


def _photo_like(size: tuple[int, int], index: int) -> bytes:
    """A real JPEG: a test photo resized, with sensor-like grain (as bench_imaging makes them)."""
    from PIL import Image

    with Image.open(TESTDATA / PHOTOS[index % len(PHOTOS)]) as source:
        image = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 20).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(image, grain, 0.12).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _jpegs(count: int, seed: int) -> list[tuple[str, bytes, int, int]]:
    """`count` distinct JPEGs of JPEG_BYTES: (key, bytes, width, height)."""
    rng, made = random.Random(seed), []
    for n in range(count):
        target = rng.uniform(*JPEG_BYTES)
        per_pixel = 0.17  # bytes per pixel of these photos at quality 85, roughly
        for _ in range(3):  # one correction or two lands inside the range
            pixels = target / per_pixel
            width = int(math.sqrt(pixels * 4 / 3))
            height = int(width * 3 / 4)
            data = _photo_like((width, height), n)
            if JPEG_BYTES[0] <= len(data) <= JPEG_BYTES[1]:
                break
            per_pixel = len(data) / (width * height)
        made.append((f"bench-exports/photos/{n // 100:02d}/{n:05d}.jpg", data, width, height))
    return made


def _seed(actor, size: int, seed: int, files: list[tuple[str, bytes, int, int]] | None = None) -> Seeded:
    from chalicelib.services.container import services
    from chalicelib.store.annotations import AnnotationItem
    from chalicelib.clock import utcnow
    from chalicelib.ids import new_id
    from chalicelib.store.images import Facts, ImageRepository
    from chalicelib.store.jobs import Job, JobImage, JobRepository
    from chalicelib.store.pool import PoolItem, _item as pool_item
    from chalicelib.store.tasks import CREATING, READY, Task, TaskRepository

    rng = random.Random(seed)
    labels = [{"name": name, "annotation_type": "bbox"} for name in LABELS]
    project_id = services().projects.create(actor, f"bench exports {size}", None, labels).project.id

    if files is not None:
        size = len(files)
        keys = [key for key, _, _, _ in files]
        dims = {key: (width, height) for key, _, width, height in files}
        payload = {key: data for key, data, _, _ in files}
    else:
        keys = [f"bench-exports/{n // 1000:03d}/{n:06d}.jpg" for n in range(size)]
        dims = {key: (rng.randint(640, 4000), rng.randint(480, 3000)) for key in keys}
        payload = {}
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    images, started = [], time.perf_counter()
    for start in range(0, size, SLICE):
        records = []
        for key in keys[start : start + SLICE]:
            data = payload.get(key)
            sha = hashlib.sha256(data if data is not None else key.encode()).hexdigest()
            width, height = dims[key]
            records.append((key, Facts(
                status="ready", size=len(data) if data is not None else rng.randint(50_000, 5_000_000),
                etag=f'"{hashlib.md5(data or key.encode()).hexdigest()}"', format="JPEG", mime_type="image/jpeg",
                width=width, height=height, frames=1, sha256=sha, phash=sha[:16],
                thumbnail_key=f"thumbnails/{sha[:2]}/{sha}.jpg",
                object_modified_at=landed + timedelta(seconds=rng.randrange(size * 10)))))
        images += ImageRepository().put_new(records, "bench")
        _progress("image records", len(images), size, started)

    # Pool entries as PoolRepository.add writes them, with the count the annotation
    # transactions would have left (one write per entry instead of add + update).
    started, now = time.perf_counter(), utcnow()
    for start in range(0, size, SLICE * 2):
        with PoolItem.batch_write() as batch:
            for image in images[start : start + SLICE * 2]:
                entry = pool_item(project_id, image, "bench", now)
                entry.annotation_count = PER_IMAGE
                batch.save(entry)
        _progress("pool entries", min(start + SLICE * 2, size), size, started)

    order = list(images)
    rng.shuffle(order)
    expected: dict[str, list] = {}
    splits, classes = Counter(), Counter()
    started, done, offset = time.perf_counter(), 0, 0
    for number, (split, share) in enumerate(SPLITS):
        count = size - offset if number == len(SPLITS) - 1 else round(size * share)
        part, offset = order[offset : offset + count], offset + count
        if not part:
            continue
        task_id, now = new_id(), utcnow()
        job_count = -(-len(part) // CHUNK_SIZE)
        TaskRepository().put_task(Task(
            id=task_id, project_id=project_id, name=f"{split} set", description=None, assignee_id=None,
            split=split, status="new", state=CREATING, total_images=len(part), job_count=job_count,
            chunk_size=CHUNK_SIZE, distribution_order="sequential", seed=None, source="pool",
            created_by=actor.sub, created_at=now + timedelta(milliseconds=number), updated_at=now))
        jobs, job_images, sets = [], [], []
        for sequence in range(job_count):
            chunk = part[sequence * CHUNK_SIZE : (sequence + 1) * CHUNK_SIZE]
            job = Job(id=new_id(), task_id=task_id, project_id=project_id, sequence_number=sequence,
                      assignee_id=None, status="in_progress", total_images=len(chunk), rev=0, created_at=now,
                      updated_at=now)
            jobs.append(job)
            for position, image in enumerate(chunk):
                job_images.append(JobImage(task_id=task_id, job_id=job.id, image_id=image.id, project_id=project_id,
                                           sequence_number=position, annotation_count=PER_IMAGE))
                boxes = _boxes(rng, image.width, image.height)
                sets.append(AnnotationItem(job_id=job.id, sk=f"CUR#{image.id}", image_id=image.id,
                                           annotations=boxes, count=len(boxes), rev=1, updated_by="bench",
                                           updated_at=now))
                expected[image.file_path] = sorted((box["label"], tuple(box["bbox"])) for box in boxes)
                classes.update(box["label"] for box in boxes)
        splits[split] += len(part)
        JobRepository().write(jobs, job_images)
        for start in range(0, len(sets), SLICE):
            with AnnotationItem.batch_write() as batch:
                for item in sets[start : start + SLICE]:
                    batch.save(item)
            done += min(SLICE, len(sets) - start)
            _progress(f"job images + annotation sets ({split})", done, size, started)
        TaskRepository().update_task(project_id, task_id, {"state": READY})
    return Seeded(project_id, size, expected, splits, classes, dims, payload)


# Measuring --------------------------------------------------------------------------------------


@dataclass
class Invoke:
    function: str
    started: float
    seconds: float
    request_bytes: int
    response_bytes: int
    failed: bool


class StepRecorder:
    """Every Lambda Invoke the dispatcher answers: which function, when, how long, payload sizes."""

    def __init__(self, stack: LocalStack) -> None:
        self._dispatcher = stack.emulator.lambdas
        self._lock = threading.Lock()
        self.calls: list[Invoke] = []
        original = type(self._dispatcher).invoke

        def invoke(name_or_arn: str, payload: bytes):
            started = time.perf_counter()
            status, headers, body = original(self._dispatcher, name_or_arn, payload)
            call = Invoke(self._dispatcher.function_name(name_or_arn), started, time.perf_counter() - started,
                          len(payload), len(body), "X-Amz-Function-Error" in headers)
            with self._lock:
                self.calls.append(call)
            return status, headers, body

        self._dispatcher.invoke = invoke  # the WSGI layer calls self.invoke

    def clear(self) -> None:
        with self._lock:
            self.calls = []

    def of(self, function: str) -> list[Invoke]:
        from chalice.utils import to_cfn_resource_name

        names = {function, to_cfn_resource_name(function)}  # the template's GetAtt spelling
        return [call for call in self.calls if call.function in names]


class ImageReads:
    """Bytes the steps read from S3 objects (Bucket.open's chunk streams), by kind, and the
    largest chunk: installed for the images run only."""

    def __init__(self) -> None:
        from chalicelib.store.objects import Bucket

        self._bucket = Bucket
        self._original = Bucket.open
        self.bytes: Counter = Counter()
        self.objects: Counter = Counter()
        self.largest_chunk: Counter = Counter()
        self._lock = threading.Lock()
        reads = self

        def open_(bucket, key: str):
            opened = reads._original(bucket, key)
            if opened is None:
                return None
            kind = "staged image" if "/work/files/" in key else "other"

            def chunks():
                for chunk in opened[1]:
                    with reads._lock:
                        reads.bytes[kind] += len(chunk)
                        reads.largest_chunk[kind] = max(reads.largest_chunk[kind], len(chunk))
                    yield chunk

            with reads._lock:
                reads.objects[kind] += 1
            return opened[0], chunks()

        Bucket.open = open_

    def remove(self) -> None:
        self._bucket.open = self._original


class Staging:
    """Time spent in the build step's server-side copies (ExportService._stage_images)."""

    def __init__(self) -> None:
        from chalicelib.services.exports import ExportService

        self._service = ExportService
        self._original = ExportService._stage_images
        self.seconds = 0.0
        self.images = 0
        self._lock = threading.Lock()
        staging = self

        def stage(service, rows, *rest):
            started = time.perf_counter()
            staging._original(service, rows, *rest)
            with staging._lock:
                staging.seconds += time.perf_counter() - started
                staging.images += len(rows)

        ExportService._stage_images = stage

    def remove(self) -> None:
        self._service._stage_images = self._original


def _run_export(stack: LocalStack, actor, project_id: str, spec_body: dict, recorder: StepRecorder):
    """Create through the service (the state machine runs), poll until it ends; (export, seconds,
    requests)."""
    from chalicelib.services.container import services
    from chalicelib.services.export_spec import ExportSpec
    from chalicelib.store.exports import ExportRepository

    spec = ExportSpec.model_validate(spec_body)
    recorder.clear()
    exports = ExportRepository()
    with counting() as requests:
        started = time.perf_counter()
        export = services().exports.create(actor, project_id, spec, None)
        last = None
        while True:
            export = exports.get(project_id, export.id)
            if export.status in ("completed", "failed"):
                break
            if (export.status, export.shards_done, export.shards_total) != last:
                last = (export.status, export.shards_done, export.shards_total)
                print(f"  {time.perf_counter() - started:6.1f} s  {export.status} shards "
                      f"{export.shards_done}/{export.shards_total or '?'}", file=sys.stderr, flush=True)
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
    print(f"  {seconds:6.1f} s  {export.status}" + (f": {export.error}" if export.error else ""),
          file=sys.stderr, flush=True)
    return export, seconds, requests


def _largest_state_payload(stack: LocalStack, export) -> tuple[int, str]:
    """The longest input/output/parameters (bytes) of any event in the execution's history."""
    from chalicelib.config import get_settings

    machine = get_settings().export_state_machine
    arn = machine.replace(":stateMachine:", ":execution:", 1) + f":export-{export.id}"
    sfn = stack.aws("stepfunctions")
    largest, where, token, state = 0, "none", None, ""
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {}))
        for event in page["events"]:
            for name, details in event.items():
                if not name.endswith("EventDetails") or not isinstance(details, dict):
                    continue
                state = details.get("name", state) if name == "stateEnteredEventDetails" else state
                for key in ("input", "output", "parameters"):
                    value = details.get(key)
                    if isinstance(value, str) and len(value.encode()) > largest:
                        largest = len(value.encode())
                        where = f"{event['type']} {key}, state {details.get('name', state)}"
        token = page.get("nextToken")
        if not token:
            return largest, where


def _artifact(stack: LocalStack, export) -> zipfile.ZipFile:
    body = stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_EXPORTS_BUCKET"],
                                          Key=export.artifact_key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(body))


def _check_coco(archive: zipfile.ZipFile, seeded: Seeded) -> str:
    """annotations.json against the seed: every image once, every box with its label and geometry."""
    import orjson

    document = orjson.loads(archive.read("annotations.json"))
    images, annotations = document["images"], document["annotations"]
    names = {category["id"]: category["name"] for category in document["categories"]}
    assert sorted(names.values()) == sorted(LABELS), names
    assert [image["id"] for image in images] == list(range(1, len(images) + 1)), "image ids are not 1..n"
    by_number = {image["id"]: image for image in images}
    assert {image["file_name"] for image in images} == set(seeded.expected), "images differ from the seed"
    assert all((image["width"], image["height"]) == seeded.sizes[image["file_name"]] for image in images)
    assert [entry["id"] for entry in annotations] == list(range(1, len(annotations) + 1)), "annotation ids"
    got: dict[str, list] = {}
    for entry in annotations:
        image = by_number[entry["image_id"]]
        x, y, w, h = entry["bbox"]
        assert x >= 0 and y >= 0 and x + w <= image["width"] + 0.01 and y + h <= image["height"] + 0.01, entry
        got.setdefault(image["file_name"], []).append((names[entry["category_id"]], tuple(entry["bbox"])))
    assert all(sorted(boxes) == seeded.expected[path] for path, boxes in got.items()) and \
        len(got) == len(seeded.expected), "boxes differ from the seed"
    return f"{len(images):,} images, {len(annotations):,} annotations"


def _check_summary(export, seeded: Seeded) -> None:
    summary = export.summary or {}
    total = seeded.images * PER_IMAGE
    assert summary.get("images") == seeded.images and summary.get("annotations") == total, summary
    assert summary.get("annotation_counts") == {"bbox": total}, summary
    assert summary.get("split_distribution") == dict(sorted(seeded.splits.items())), summary
    assert summary.get("class_distribution") == dict(sorted(seeded.classes.items())), summary


def _child(calls: list[tuple[str, dict]], trace: bool) -> dict:
    result = subprocess.run([sys.executable, "-c", _STEP, json.dumps({"calls": calls, "trace": trace})],
                            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"step child failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _memory(export) -> dict[str, dict]:
    """Each step again, sequentially, in fresh processes: peak RSS (one child per step; the builds of
    all shards in one child, as a warm Lambda reuses its process) and Python heap peak (another)."""
    event = {"project_id": export.project_id, "export_id": export.id}
    shards = list(range(export.shards_total or 1))
    calls = {"prepare_export": [("prepare_export", event)],
             "build_export": [("build_export", {**event, "shard": shard}) for shard in shards],
             "assemble_export": [("assemble_export", {**event, "shards": shards})],
             "finalize_export": [("finalize_export", event)]}
    found: dict[str, dict] = {}
    for trace in (False, True):
        for function in STEPS:
            print(f"  memory run ({'tracemalloc' if trace else 'peak RSS'}): {function} "
                  f"x{len(calls[function])}", file=sys.stderr, flush=True)
            result = _child(calls[function], trace)
            entry = found.setdefault(function, {})
            entry["baseline_mb"] = result["baseline_mb"]
            if trace:
                entry["heap_mb"] = max(call["heap_mb"] for call in result["calls"])
            else:
                entry["rss_mb"] = max(call["hwm_mb"] for call in result["calls"])
                entry["seconds"] = max(call["seconds"] for call in result["calls"])
    return found


def _memory_rows(label: str, memory: dict[str, dict],
                 images: tuple[int, int] | None = None) -> list[tuple[str, str, str]]:
    """`images`: (total bytes, largest image bytes) of an export with its image files."""
    from chalicelib.store.objects import CHUNK_BYTES, PART_BYTES

    rows = []
    peak = max(entry["rss_mb"] for entry in memory.values())
    worst = max(memory, key=lambda name: memory[name]["rss_mb"])
    parts = ", ".join(f"{name.removesuffix('_export')} {entry['rss_mb']:.0f} MB" for name, entry in memory.items())
    baseline = min(entry["baseline_mb"] for entry in memory.values())
    rows.append((f"{label}: peak RSS per step (fresh process, sequential; {baseline:.0f} MB after imports)",
                 f"max {peak:.0f} MB ({worst.removesuffix('_export')}); {parts}", f"goal <= {MEMORY_GOAL_MB} MB"))
    heap = ", ".join(f"{name.removesuffix('_export')} {entry['heap_mb']:.1f} MB" for name, entry in memory.items())
    rows.append((f"{label}: Python heap peak per step (tracemalloc, warm clients, sequential re-run)", heap, ""))
    if images:
        total, largest = images
        held = max(memory[name]["heap_mb"] for name in ("build_export", "assemble_export"))
        rows.append((f"{label}: image bytes held by a step (heap peak of build/assemble vs the images)",
                     f"{held:.1f} MB vs {_mb(total)} of images ({held * 2**20 / total:.2f}x; largest image "
                     f"{largest / 1000:.0f} KB; multipart part {_mb(PART_BYTES)}, read chunk {_mb(CHUNK_BYTES)})",
                     "below the image total"))
    return rows


def _no_images(stack: LocalStack, actor, recorder: StepRecorder) -> list[tuple[str, str, str]]:
    started = time.perf_counter()
    seeded = _seed(actor, IMAGES, seed=IMAGES)
    print(f"  seeded {IMAGES:,} images in {time.perf_counter() - started:.0f} s; exporting", file=sys.stderr,
          flush=True)
    # The project's Explore index snapshot, as the scheduled compactor leaves it for a project of any
    # age; then this process forgets the index, so prepare starts as a fresh Lambda does: from the
    # snapshot (without one it builds the index from DynamoDB: bench_explore, 25 s at 100,000).
    from chalicelib.services.container import services

    services().explore_index.compact(seeded.project_id)
    services().explore_index.forget()
    label = f"export {IMAGES:,} images / {IMAGES * PER_IMAGE:,} boxes, detection COCO, no images"
    export, seconds, requests = _run_export(
        stack, actor, seeded.project_id, {"export_mode": "detection", "output_format": "coco_json"}, recorder)
    if export.status != "completed":
        return [(f"{label}: status", f"FAILED after {seconds:.1f} s: {export.error}", "must complete")]
    _check_summary(export, seeded)
    state_bytes, state_where = _largest_state_payload(stack, export)
    lambda_bytes = max(max(call.request_bytes, call.response_bytes) for call in recorder.calls)
    steps = step_times(recorder, STEPS, "_export")
    with _artifact(stack, export) as archive:
        member = archive.getinfo("annotations.json")
        checked = _check_coco(archive, seeded)
    rows = [
        (f"{label}: wall time create -> completed (embedded stack)",
         f"{seconds:.1f} s ({IMAGES / seconds:,.0f} images/s)", f"goal <= {WALL_GOAL_SECONDS} s"),
        (f"{label}: steps (Lambda Invoke at the dispatcher)", steps, ""),
        (f"{label}: largest state payload (execution history)", f"{state_bytes:,} B ({state_where})", ""),
        (f"{label}: largest Lambda payload (request or response)", f"{lambda_bytes:,} B", ""),
        (f"{label}: artifact", f"{_mb(export.artifact_size_bytes or 0)} ZIP; annotations.json "
                               f"{_mb(member.file_size)}: {checked} (box by box = seed; summary = seed)", ""),
        (f"{label}: requests", requests_line(requests), ""),
    ]
    if MEMORY:
        rows += _memory_rows(label, _memory(export))
    return rows


def _with_images(stack: LocalStack, actor, recorder: StepRecorder) -> list[tuple[str, str, str]]:
    files = _jpegs(WITH_IMAGES, seed=WITH_IMAGES)
    total = sum(len(data) for _, data, _, _ in files)
    upload_existing(stack, ((key, data) for key, data, _, _ in files))
    seeded = _seed(actor, 0, seed=WITH_IMAGES, files=files)
    sizes = [len(data) for _, data, _, _ in files]
    label = f"export {len(files)} JPEGs ({_mb(total)}, {min(sizes) // 1000}-{max(sizes) // 1000} KB), include_images"
    staging, reads = Staging(), ImageReads()
    try:
        export, seconds, requests = _run_export(stack, actor, seeded.project_id, {
            "export_mode": "detection", "output_format": "coco_json", "options": {"include_images": True}}, recorder)
    finally:
        staging.remove()
        reads.remove()
    if export.status != "completed":
        return [(f"{label}: status", f"FAILED after {seconds:.1f} s: {export.error}", "must complete")]
    _check_summary(export, seeded)
    with _artifact(stack, export) as archive:
        checked = _check_coco(archive, seeded)
        stored = {info.filename.removeprefix("images/"): info for info in archive.infolist()
                  if info.filename.startswith("images/")}
        assert set(stored) == set(seeded.files), "image members differ from the seed"
        assert all(archive.read(f"images/{path}") == data for path, data in seeded.files.items()), "image bytes"
        assert all(info.compress_type == zipfile.ZIP_STORED for info in stored.values())
    rows = [
        (f"{label}: wall time create -> completed", f"{seconds:.1f} s; {step_times(recorder, STEPS, '_export')}", ""),
        (f"{label}: bytes staged per second (build's server-side CopyObject)",
         f"{total / staging.seconds / 2**20:.1f} MB/s ({_mb(total)} in {staging.seconds:.2f} s, "
         f"{staging.images} images)", ""),
        (f"{label}: S3 requests", f"CopyObject {requests['s3.CopyObject']} (images {len(files)}), GetObject "
                                  f"{requests['s3.GetObject']}, UploadPart {requests['s3.UploadPart']}, "
                                  f"PutObject {requests['s3.PutObject']}", "CopyObject = images"),
        (f"{label}: object bytes the steps read", f"staged images {_mb(reads.bytes['staged image'])} from "
                                                  f"{reads.objects['staged image']} GetObject streams, largest "
                                                  f"chunk {reads.largest_chunk['staged image'] / 1024:.0f} KiB; work files "
                                                  f"{_mb(reads.bytes['other'])} (largest chunk "
                                                  f"{reads.largest_chunk['other'] / 1024:.0f} KiB)", "bounded chunks"),
        (f"{label}: artifact", f"{_mb(export.artifact_size_bytes or 0)} ZIP; {checked}; {len(stored)} images "
                               "stored, bytes = originals", ""),
    ]
    if MEMORY:
        rows += _memory_rows(label, _memory(export), images=(total, max(sizes)))
    return rows


def run() -> list[tuple[str, str, str]]:
    stack = LocalStack(retry_delay=0).start()
    try:
        from chalicelib.services.identity import Identity

        actor = Identity(sub="bench", email=None, groups=(), is_admin=True)
        recorder = StepRecorder(stack)
        rows = []
        for size, part in ((IMAGES, _no_images), (WITH_IMAGES, _with_images)):
            if size <= 0:
                continue
            stack.reset()
            rows += part(stack, actor, recorder)
        return rows
    finally:
        stack.stop()
