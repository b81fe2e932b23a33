"""Dataset import (issue 14) on the embedded stack: a ZIP of 2,000 real-size JPEGs with a COCO file
of 20,000 boxes through the API flow (create the dataset, multipart upload through presigned part
URLs, `POST …/import` → 202, poll the operation), against the floor of the same work in one plain
process; the peak RSS of every step of the import, for that archive and for a second one of a
quarter of its members; and a 1 GiB multipart upload through the presigned part URLs, with a part
sent again after a failed PUT.

Knobs: BENCH_DATASET_IMAGES (2000), BENCH_DATASET_SECOND (images of the second archive, default a
quarter: 500; 0 skips), BENCH_DATASET_UPLOAD_MB (1024; 0 skips), BENCH_DATASET_IMPORT=0 (skip the
timed import and the floor), BENCH_DATASET_MEMORY=0 (skip the memory runs).

Why the second archive is 4x smaller, not 4x larger (8,000 images) as the issue asks: on the
embedded stack the import's cost per image grows with what the tables hold. moto snapshots every
table a TransactWriteItems touches (a deepcopy, for rollback) and the emulator serialises DynamoDB
requests (infra/local/patches.py), so each registration and each annotation save costs time in
proportion to the images and annotations already stored: the 2,000-image import alone takes
minutes, and 8,000 would take well over an hour on 2 cores. What the comparison is for, a step's
memory against the archive's size, is the same question asked with 500 and 2,000 images of the
same size (1600x1200, so extract's per-image memory is comparable too): BENCH_DATASET_IMAGES=8000
BENCH_DATASET_SECOND=2000 asks it at the issue's scale on a machine with the time.

The archives are synthetic photographs, made once and cached in $TMPDIR/pixelpool-bench-datasets
(keyed by their parameters): a smooth random colour field (bicubic from a coarse grid) with ±1 of
pixel noise, cropped at a random offset and tinted by a random gradient, so every file differs
(bytes and perceptual hash) and JPEG cannot squeeze it to nothing (q90, ~110 KB at 1600x1200); 20
folders of 100; DEFLATE, as most ZIP tools write; 10 boxes per image inside the image, 5
categories, in `annotations/instances_default.json`.

How each figure is measured:
- import images/s: wall time from `POST …/import` to the operation read `completed` (polled every
  0.2 s) on the product's path: the emulator's Step Functions running the ASL, each Lambda served
  in this process by the dispatcher (threads; the Map runs up to 8 extract batches at a time, each
  with 4 workers), on the machine's cores shared with the emulator (moto's S3 and DynamoDB). Step
  times are the dispatcher's Invoke calls. The S3 events of the extracted objects are queued during
  the import (no pump: on AWS the ingest Lambda runs elsewhere); after it they are delivered to the
  ingest handler and timed, with the GetObject calls they make (0: each finds its record current).
- floor: the same per-image work in one thread of this process, no pixelpool around it: each
  member of the same ZIP read with `zipfile`, spooled and SHA-256'd (`imaging.spool`), its facts
  and 256 px thumbnail (`imaging.inspect`, the function the import calls), the image and the
  thumbnail PutObject'd sequentially to the emulator's S3 (boto3). No DynamoDB, no annotations,
  no project: the ratio charges the import for everything beyond the per-image work.
- peak RSS per step: the stack's own run cannot attribute memory to a step (every step, the
  emulator and moto's data share one process, and the Map runs batches concurrently), so the
  import is run a second time, on a fresh stack and dataset, by hand: the operation is created by
  the API (the state machine's start is skipped) and each step's Lambda handler runs in a fresh
  Python process talking to this process's emulator over HTTP, sequentially, in the machine's
  order (inspect; every extract batch in one process, as a warm Lambda reuses its process;
  annotations; project; every store group of jobs in one process; finish). Per step: VmHWM (what Lambda's
  memory limit sees: interpreter and imports included) and the same minus the process's VmHWM
  after imports. No tracemalloc (its bookkeeping would inflate RSS).
- upload MB/s: a 1 GiB file (`big.zip`) whose parts are made on the fly in the worker that PUTs
  them (4 in parallel with `requests`, at most 4 parts in memory), from the first PUT to the last
  answer; then complete and HEAD. Part 2 is first PUT with the wrong, truncated bytes (before the
  timed upload), its received size read back from `GET …/uploads/parts`, then sent again with the
  right bytes in the timed upload; the completed object is checked by HEAD (size) and by a ranged
  GET of part 2 (its bytes are the resent ones).
"""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.harness import Api, counting, requests_line, step_times

ROOT = Path(__file__).resolve().parent.parent
D = "/api/v1/datasets"

IMAGES = int(os.environ.get("BENCH_DATASET_IMAGES", "2000"))
SECOND = int(os.environ.get("BENCH_DATASET_SECOND", str(IMAGES // 4)))
IMPORT = os.environ.get("BENCH_DATASET_IMPORT", "1") != "0"
UPLOAD_MB = int(os.environ.get("BENCH_DATASET_UPLOAD_MB", "1024"))
MEMORY = os.environ.get("BENCH_DATASET_MEMORY", "1") != "0"
SIZE = (1600, 1200)
QUALITY = 90
BOXES_PER_IMAGE = 10
CATEGORIES = ("car", "cat", "dog", "person", "tree")
PER_FOLDER = 100
CHUNK_SIZE = 100  # images per job (the API's default)
PARALLEL_PARTS = 4
POLL_SECONDS = 0.2
RATIO_GOAL = 0.7
MEMORY_GOAL_MB = 300
CACHE = Path(tempfile.gettempdir()) / "pixelpool-bench-datasets"
FORMAT_VERSION = 1  # bump when the archive's making changes
STEPS = ("inspect_import", "extract_import", "annotations_import", "project_import", "store_import", "finish_import")

# One step's Lambda handler, called once per event, in a fresh process against this process's
# emulator (the environment holds the stack's variables). Prints one JSON line.
_STEP = """
import json, sys, time

def status(name):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(name + ":")) / 1024

args = json.loads(sys.argv[1])
from chalice.local import LambdaContext
from app import app

baseline = status("VmHWM")
results = []
started = time.perf_counter()
for event in args["events"]:
    context = LambdaContext(function_name=args["name"], memory_size=1024, max_runtime_ms=900_000)
    results.append(app.handler_map[args["name"]](event, context))
print(json.dumps({"baseline_mb": baseline, "hwm_mb": status("VmHWM"), "seconds": time.perf_counter() - started,
                  "results": results}))
"""


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _mb(count: float) -> str:
    return f"{count / 2**20:.0f} MB"


# The archives -------------------------------------------------------------------------------------

_BASE = None


def _base(width: int, height: int, seed: int):
    """A smooth random colour field larger than one image, made once per worker."""
    import numpy as np
    from PIL import Image

    global _BASE
    if _BASE is None or _BASE[0] != (width, height, seed):
        rng = np.random.default_rng(seed)
        low = rng.integers(32, 224, (height // 200 + 2, width // 200 + 2, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(low).resize((width * 5 // 4, height * 5 // 4), Image.BICUBIC),
                           dtype=np.int16)
        field += rng.integers(-1, 2, field.shape, dtype=np.int16)
        _BASE = ((width, height, seed), field)
    return _BASE[1]


def _photo(args: tuple[int, int, int, int]) -> bytes:
    import numpy as np
    from PIL import Image

    number, width, height, seed = args
    field = _base(width, height, seed)
    rng = np.random.default_rng((seed, number))
    x = int(rng.integers(0, field.shape[1] - width))
    y = int(rng.integers(0, field.shape[0] - height))
    tint = (np.linspace(-1, 1, width, dtype=np.float32)[None, :, None] * rng.uniform(-40, 40, 3)
            + np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * rng.uniform(-40, 40, 3))
    pixels = np.clip(field[y:y + height, x:x + width] + tint.astype(np.int16), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def _member(number: int) -> str:
    return f"images/part{number // PER_FOLDER:03d}/{number:05d}.jpg"


def _coco(count: int, width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    annotations = []
    for image in range(1, count + 1):
        for _ in range(BOXES_PER_IMAGE):
            w, h = round(rng.uniform(8, width / 3), 2), round(rng.uniform(8, height / 3), 2)
            x, y = round(rng.uniform(0, width - w - 1), 2), round(rng.uniform(0, height - h - 1), 2)
            annotations.append({"id": len(annotations) + 1, "image_id": image,
                                "category_id": rng.randrange(len(CATEGORIES)) + 1, "bbox": [x, y, w, h],
                                "area": round(w * h, 2), "iscrowd": 0})
    return json.dumps({
        "info": {"description": "bench_datasets"}, "licenses": [],
        "images": [{"id": n + 1, "file_name": _member(n), "width": width, "height": height} for n in range(count)],
        "annotations": annotations,
        "categories": [{"id": n + 1, "name": name} for n, name in enumerate(CATEGORIES)],
    }).encode()


def _archive(count: int, size: tuple[int, int], seed: int) -> Path:
    """The cached ZIP of `count` photos of `size` with its COCO file; made (2 processes) if absent."""
    width, height = size
    path = CACHE / f"v{FORMAT_VERSION}-{count}-{width}x{height}-q{QUALITY}-b{BOXES_PER_IMAGE}-s{seed}.zip"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        jobs = ((number, width, height, seed) for number in range(count))
        for number, data in enumerate(pool.imap(_photo, jobs, chunksize=16)):
            zf.writestr(_member(number), data)
            if (number + 1) % 1000 == 0:
                _say(f"made {number + 1:,}/{count:,} photos ({time.perf_counter() - started:.0f} s)")
        zf.writestr("annotations/instances_default.json", _coco(count, width, height, seed))
    partial.rename(path)
    return path


def _describe(path: Path) -> tuple[int, float, int]:
    """(images, mean image bytes, COCO bytes) of an archive."""
    with zipfile.ZipFile(path) as zf:
        sizes = [info.file_size for info in zf.infolist() if info.filename.endswith(".jpg")]
        coco = zf.getinfo("annotations/instances_default.json").file_size
    return len(sizes), statistics.mean(sizes), coco


# The API ------------------------------------------------------------------------------------------


def _upload(api: Api, dataset: str, file_name: str, size: int, read_part, *, before=None) -> dict:
    """Start a multipart upload, PUT every part (PARALLEL_PARTS at once; `read_part(number, start,
    length)` makes each part's bytes in the worker that sends it), complete. `before(started)` runs
    after the start, before the timed PUTs. Returns the timings and the upload."""
    started = api.call("POST", f"{D}/{dataset}/uploads", {"file_name": file_name, "size": size}, 201)
    part_size, count = started["part_size"], started["part_count"]
    urls = {part["part_number"]: part["url"] for part in started["parts"]}
    while len(urls) < count:
        more = api.call("GET", f"{D}/{dataset}/uploads/part-urls?file_name={file_name}&upload_id="
                               f"{requests.utils.quote(started['upload_id'])}&size={size}&first={len(urls) + 1}")
        urls.update({part["part_number"]: part["url"] for part in more["parts"]})
    if before is not None:
        before(started)
    session = threading.local()

    def put(number: int) -> dict:
        if not hasattr(session, "http"):
            session.http = requests.Session()
        start = (number - 1) * part_size
        body = read_part(number, start, min(part_size, size - start))
        sent = session.http.put(urls[number], data=body, timeout=300)
        if sent.status_code != 200:
            raise RuntimeError(f"part {number}: {sent.status_code} {sent.text[:300]}")
        return {"part_number": number, "etag": sent.headers["ETag"]}

    clock = time.perf_counter()
    with ThreadPoolExecutor(max_workers=PARALLEL_PARTS, thread_name_prefix="part") as pool:
        parts = list(pool.map(put, range(1, count + 1)))
    sent_seconds = time.perf_counter() - clock
    api.call("POST", f"{D}/{dataset}/uploads/complete",
             {"file_name": file_name, "upload_id": started["upload_id"], "parts": parts})
    return {"seconds": sent_seconds, "total_seconds": time.perf_counter() - clock, "upload": started}


def _upload_file(api: Api, dataset: str, path: Path) -> dict:
    def read_part(_: int, start: int, length: int) -> bytes:
        with open(path, "rb") as file:
            file.seek(start)
            return file.read(length)

    return _upload(api, dataset, path.name, path.stat().st_size, read_part)


def _wait(api: Api, operation_id: str, timeout: float = 1800) -> dict:
    return api.wait(operation_id, timeout, _say, POLL_SECONDS)


# Import, floor, events ----------------------------------------------------------------------------


def _archive_label(path: Path) -> str:
    count, mean, coco = _describe(path)
    with zipfile.ZipFile(path) as zf:
        first = next(info for info in zf.infolist() if info.filename.endswith(".jpg"))
        from PIL import Image

        with Image.open(io.BytesIO(zf.read(first))) as image:
            width, height = image.size
    return (f"{count:,} JPEGs {width}x{height} q{QUALITY} (mean {mean / 1000:.0f} KB), ZIP {_mb(path.stat().st_size)}, "
            f"COCO {count * BOXES_PER_IMAGE:,} boxes ({_mb(coco)})")


def _timed_import(stack, api: Api, path: Path) -> tuple[list[tuple[str, str, str]], float]:
    from bench.bench_exports import StepRecorder

    label = _archive_label(path)
    dataset = api.call("POST", D, {"name": "bench import"}, 201)["id"]
    sent = _upload_file(api, dataset, path)
    probe = _ranged_get_probe(stack, sent["upload"]["key"], path)
    recorder = StepRecorder(stack)
    _say(f"ZIP uploaded in {sent['total_seconds']:.1f} s; importing")
    with counting() as made:
        started = time.perf_counter()
        operation = api.call("POST", f"{D}/{dataset}/import", {"chunk_size": CHUNK_SIZE}, 202)
        operation = _wait(api, operation["id"])
        seconds = time.perf_counter() - started
    images = IMAGES
    steps_and_requests = [
        ("import: steps (Lambda Invoke at the dispatcher)", step_times(recorder, STEPS, "_import"), ""),
        ("import: requests", requests_line(made), ""),
        probe,
    ]
    if operation["status"] != "completed":
        return [
            (f"archive: {label}", "", ""),
            ("import: POST import -> operation failed (embedded stack)",
             f"FAILED after {seconds:.1f} s ({operation['done']}/{operation['total']} done): "
             f"{operation.get('error')}", "must complete"),
            *steps_and_requests,
        ], 0.0
    summary = operation["result"]["upload_summary"]
    assert summary["images_uploaded"] == images, summary
    assert summary["annotations_imported"] == images * BOXES_PER_IMAGE, summary
    problems = operation["result"]["problem_count"]
    rate = images / seconds
    rows = [
        (f"archive: {label}", "", ""),
        ("upload of that ZIP through the presigned part URLs (4 parallel PUTs, then complete)",
         f"{path.stat().st_size / 2**20 / sent['total_seconds']:.0f} MB/s ({sent['total_seconds']:.1f} s)", ""),
        ("import: POST import -> operation completed (embedded stack)",
         f"{seconds:.1f} s, {rate:.1f} images/s ({summary['images_uploaded']:,} images, "
         f"{summary['annotations_imported']:,} annotations, {problems} problems)", ""),
        *steps_and_requests,
    ]
    return rows, rate


def _ranged_get_probe(stack, key: str, path: Path) -> tuple[str, str, str]:
    """What one member's ranged GET of the staged ZIP costs on the emulator (extract makes at least
    one per member), against the same bytes read from a file of the same size on disk."""
    s3 = stack.aws("s3")
    bucket = stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    size, length = path.stat().st_size, 110_000
    rng = random.Random(3)
    emulator, disk = [], []
    with open(path, "rb") as file:
        for _ in range(10):
            start = rng.randrange(0, size - length)
            clock = time.perf_counter()
            s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")["Body"].read()
            emulator.append(time.perf_counter() - clock)
            clock = time.perf_counter()
            file.seek(start)
            file.read(length)
            disk.append(time.perf_counter() - clock)
    return (f"emulator: one 110 KB ranged GET of the staged {_mb(size)} ZIP (median of 10)",
            f"{statistics.median(emulator) * 1000:.0f} ms (the same bytes from a local file: "
            f"{statistics.median(disk) * 1000:.2f} ms)", "moto builds the whole object per GET")


def _events_after_import(stack) -> tuple[str, str, str]:
    """The queued S3 events of the extracted objects, delivered to the ingest handler in batches of 10."""
    from infra.local.pump import take_notifications

    queue = stack.physical["IngestQueue"]
    bodies = take_notifications(stack.aws("sqs"), queue["QueueUrl"])
    started = time.perf_counter()
    with counting() as made:
        failed = 0
        for start in range(0, len(bodies), 10):
            records = [{"messageId": str(n), "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
                        "eventSourceARN": queue["Arn"], "awsRegion": stack.region, "attributes": {},
                        "messageAttributes": {}, "md5OfBody": ""} for n, body in enumerate(bodies[start:start + 10])]
            failed += len(stack.emulator.lambdas.call("ingest", {"Records": records})["batchItemFailures"])
    seconds = time.perf_counter() - started
    return ("the import's S3 events, delivered to ingest afterwards (batches of 10)",
            f"{len(bodies):,} events in {seconds:.1f} s ({len(bodies) / max(seconds, 1e-9):.0f}/s), "
            f"{failed} failed, S3 GetObject {made['s3.GetObject']}, PutObject {made['s3.PutObject']}",
            "GetObject 0: records found current")


def _floor(stack, path: Path) -> float:
    """Images/s of the per-image work alone: read from the ZIP, SHA-256, facts + thumbnail, two PutObjects."""
    from chalicelib import imaging

    s3 = stack.aws("s3")
    share, cache = stack.variables["PIXELPOOL_SHARE_BUCKET"], stack.variables["PIXELPOOL_CACHE_BUCKET"]
    count = 0
    started = time.perf_counter()
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".jpg"):
                continue
            data = zf.read(info)
            spooled = imaging.spool([data])
            try:
                facts = imaging.inspect(spooled)
            finally:
                spooled.file.close()
            s3.put_object(Bucket=share, Key=f"floor/{info.filename}", Body=data, ContentType="image/jpeg")
            s3.put_object(Bucket=cache, Key=f"floor/thumbnails/{facts.sha256}.jpg", Body=facts.thumbnail,
                          ContentType="image/jpeg")
            count += 1
    rate = count / (time.perf_counter() - started)
    stack.aws("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])
    return rate


# Memory -------------------------------------------------------------------------------------------


def _child(name: str, events: list[dict]) -> dict:
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    result = subprocess.run([sys.executable, "-c", _STEP, json.dumps({"name": name, "events": events})],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{name} child failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _memory(api: Api, path: Path) -> dict[str, dict]:
    """The import again, each step by its handler in a fresh process, sequentially (see the docstring)."""
    from chalicelib.services.container import services

    dataset = api.call("POST", D, {"name": f"bench memory {path.stem}"}, 201)["id"]
    _upload_file(api, dataset, path)
    importer = services().dataset_import
    start_workflow = importer._start_workflow
    importer._start_workflow = lambda *args: None  # the operation and the dataset's import begin; no machine
    try:
        operation_id = api.call("POST", f"{D}/{dataset}/import", {"chunk_size": CHUNK_SIZE}, 202)["id"]
    finally:
        importer._start_workflow = start_workflow
    found: dict[str, dict] = {}
    event = {"operation_id": operation_id}
    plan: dict = {}
    for name in STEPS:
        if name == "extract_import":
            events = [{**event, "batch": batch} for batch in plan["batches"]]
        elif name == "store_import":
            events = [{**event, "group": group} for group in plan["groups"]]
        else:
            events = [event]
        _say(f"memory run ({path.name}): {name} x{len(events)}")
        try:
            result = _child(name, events)
        except RuntimeError as exc:
            found["_failed"] = f"{name.removesuffix('_import')} failed: {str(exc).strip().splitlines()[-1][:300]}"
            return found
        found[name] = result
        if name in ("inspect_import", "project_import"):
            plan.update(result["results"][0])
    operation = api.call("GET", f"/api/v1/operations/{operation_id}")
    if operation["status"] != "completed" or operation["result"]["upload_summary"]["images_uploaded"] != \
            _describe(path)[0]:
        found["_failed"] = f"the operation ended {operation['status']}: {operation.get('error') or operation['result']}"
    return found


def _memory_rows(label: str, memory: dict) -> list[tuple[str, str, str]]:
    steps = {name: entry for name, entry in memory.items() if not name.startswith("_")}
    if "_failed" in memory:
        rss = ", ".join(f"{name.removesuffix('_import')} {entry['hwm_mb']:.0f}" for name, entry in steps.items())
        return [(f"{label}: peak RSS per step, MB (fresh process each, sequential)",
                 f"FAILED: {memory['_failed']}; before it: {rss or 'none'}", f"goal <= {MEMORY_GOAL_MB} MB")]
    peak = max(entry["hwm_mb"] for entry in steps.values())
    worst = max(steps, key=lambda name: steps[name]["hwm_mb"]).removesuffix("_import")
    baseline = min(entry["baseline_mb"] for entry in steps.values())
    rss = ", ".join(f"{name.removesuffix('_import')} {entry['hwm_mb']:.0f}" for name, entry in steps.items())
    own = ", ".join(f"{name.removesuffix('_import')} {entry['hwm_mb'] - entry['baseline_mb']:.0f}"
                    for name, entry in steps.items())
    times = ", ".join(f"{name.removesuffix('_import')} {entry['seconds']:.1f}" for name, entry in steps.items())
    return [
        (f"{label}: peak RSS per step, MB (VmHWM, fresh process each, sequential; {baseline:.0f} MB after imports)",
         f"max {peak:.0f} MB ({worst}); {rss}", f"goal <= {MEMORY_GOAL_MB} MB"),
        (f"{label}: the same minus the process's VmHWM after imports, MB", own, "about equal for both archives"),
        (f"{label}: seconds per step in those processes (all batches/jobs of a step in one)", times, ""),
    ]


# Upload of 1 GiB ----------------------------------------------------------------------------------


def _big_upload(stack, api: Api) -> list[tuple[str, str, str]]:
    size = UPLOAD_MB * 2**20
    block = random.Random(7).randbytes(2**20)

    def read_part(number: int, start: int, length: int) -> bytes:
        stamp = f"part {number:05d} ".encode()
        body = bytearray(block * (length // len(block) + 1))[:length]
        body[:len(stamp)] = stamp
        return bytes(body)

    dataset = api.call("POST", D, {"name": "bench upload"}, 201)["id"]
    seen: dict = {}

    def fail_part_two(started: dict) -> None:
        # A PUT of part 2 that went wrong: truncated, wrong bytes. S3 keeps it until it is sent again.
        url = next(part["url"] for part in started["parts"] if part["part_number"] == 2)
        bad = b"wrong bytes " * (2**20 // 12)
        answer = requests.put(url, data=bad, timeout=60)
        assert answer.status_code == 200, answer.text
        received = api.call("GET", f"{D}/{dataset}/uploads/parts?file_name=big.zip&upload_id="
                                   f"{requests.utils.quote(started['upload_id'])}")
        seen["bad"] = next(part["size"] for part in received if part["part_number"] == 2)
        seen["part_size"] = started["part_size"]

    if size < 2 * 5 * 2**20:
        return [("1 GiB upload", "skipped: BENCH_DATASET_UPLOAD_MB too small for 2 parts", "")]
    sent = _upload(api, dataset, "big.zip", size, read_part, before=fail_part_two)
    upload = sent["upload"]
    s3 = stack.aws("s3")
    bucket = stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    head = s3.head_object(Bucket=bucket, Key=upload["key"])
    part_size = upload["part_size"]
    part_two = s3.get_object(Bucket=bucket, Key=upload["key"],
                             Range=f"bytes={part_size}-{2 * part_size - 1}")["Body"].read()
    right = part_two == read_part(2, part_size, part_size)
    s3.delete_object(Bucket=bucket, Key=upload["key"])
    return [
        (f"multipart upload of {_mb(size)} through presigned part URLs ({upload['part_count']} parts of "
         f"{_mb(part_size)}, {PARALLEL_PARTS} PUTs in parallel)",
         f"{size / 2**20 / sent['seconds']:.0f} MB/s ({sent['seconds']:.1f} s; with complete "
         f"{sent['total_seconds']:.1f} s)", ""),
        ("a part re-sent after a failed PUT (part 2: first 1 MiB of wrong bytes, then the right ones)",
         f"S3 had {seen['bad']:,} B of part 2 after the failed PUT; completed, HEAD {head['ContentLength']:,} B "
         f"(= {size:,}: {head['ContentLength'] == size}); part 2's bytes are the resent ones: {right}",
         "completes, size exact"),
    ]


# The bench ----------------------------------------------------------------------------------------


def run() -> list[tuple[str, str, str]]:
    # The app's request log and metrics go to stdout, where the figures are read.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from chalice.test import Client

    from infra.local.stack import LocalStack

    small = _archive(IMAGES, SIZE, seed=1)
    second = _archive(SECOND, SIZE, seed=2) if SECOND and MEMORY else None
    stack = LocalStack(retry_delay=0).start()
    rows: list[tuple[str, str, str]] = []
    try:
        with Client(stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
            api = Api(client, stack.token(sub="bench", email="bench@example.com", groups=[]))
            rate = 0.0
            if IMPORT:
                imported, rate = _timed_import(stack, api, small)
                rows += imported
            if rate:
                rows.append(_events_after_import(stack))
            if IMPORT:
                stack.reset()  # the floor starts, as the import did, on an empty emulator
                _say("floor")
                floor = _floor(stack, small)
                rows += [
                    ("floor: the same per-image work, one plain thread (zipfile, SHA-256, inspect + thumbnail, "
                     "2 PutObject)", f"{floor:.1f} images/s", ""),
                    ("import / floor", f"{rate / floor:.2f}x" if rate else "n/a: the import failed",
                     f"goal >= {RATIO_GOAL}x"),
                ]
            for path in (small, second):
                if path is None or not MEMORY:
                    continue
                stack.reset()
                memory = _memory(api, path)
                count = _describe(path)[0]
                rows += _memory_rows(f"{count:,}-image archive ({_mb(path.stat().st_size)})", memory)
            if UPLOAD_MB:
                stack.reset()
                _say("1 GiB upload")
                rows += _big_upload(stack, api)
    finally:
        stack.stop()
    return rows
