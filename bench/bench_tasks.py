"""Task creation from file paths over 10,000 registered images, chunk 50 (200 jobs), through the
service and the `index` state machine: DynamoDB write requests (goal ≤ 1.1 × ⌈items written/25⌉),
no Scan, and the wall time. Items written are counted from the requests themselves (a
BatchWriteItem carries up to 25, a TransactWriteItems one per action, a Put/Update/DeleteItem one),
so the figure holds whatever the emulator's speed. BENCH_TASK_IMAGES shrinks it for a quick check
(at most `task_sync_limit` images are created synchronously, without an operation)."""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import Counter


from bench.harness import counting, on_botocore_event, tiles, upload_existing
from infra.local.stack import LocalStack

IMAGES = int(os.environ.get("BENCH_TASK_IMAGES", "10000"))
CHUNK_SIZE = 50
PREFIX = "bench-tasks/"
WRITE_OPERATIONS = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")

# Items written, by table: counted from each write request's parameters (a 'before-parameter-build'
# hook installed like harness.install_request_counter's 'before-call' one, local to this script).
_written: Counter = Counter()
_written_lock = threading.Lock()
_hook_installed = False


def _count_items(event_name: str, params: dict | None = None, **_: object) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    params = params or {}
    found: Counter = Counter()
    if operation == "BatchWriteItem":
        for table, requests in params.get("RequestItems", {}).items():
            found[table] += len(requests)
    elif operation == "TransactWriteItems":
        for action in params.get("TransactItems", []):
            (body,) = action.values()
            found[body["TableName"]] += 1
    elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
        found[params["TableName"]] += 1
    with _written_lock:
        _written.update(found)


def _install_item_counter() -> None:
    """Must run before the first DynamoDB client is built (PynamoDB builds them on first use)."""
    global _hook_installed
    if _hook_installed:
        return
    for operation in WRITE_OPERATIONS:
        on_botocore_event(f"before-parameter-build.dynamodb.{operation}", _count_items)
    _hook_installed = True


def _upload(stack: LocalStack) -> None:
    made = tiles(97)
    upload_existing(stack, ((f"{PREFIX}{n // 1000:02d}/{n:05d}.jpg", made[n % len(made)]) for n in range(IMAGES)))


def _wait(operation_id: str):
    from chalicelib.store.operations import OperationRepository

    started, last, polls = time.perf_counter(), None, 0
    while True:
        state = OperationRepository().get(operation_id)
        polls += 1
        if state.status in ("completed", "failed"):
            return state, polls
        if (state.status, state.done) != last:
            last = (state.status, state.done)
            print(f"  {time.perf_counter() - started:6.1f} s  {state.status} {state.done}/{state.total}",
                  file=sys.stderr, flush=True)
        time.sleep(0.5)


def run() -> list[tuple[str, str, str]]:
    _install_item_counter()
    stack = LocalStack(retry_delay=0).start()
    try:
        _upload(stack)
        print(f"  {IMAGES:,} objects uploaded", file=sys.stderr, flush=True)

        from chalicelib.config import get_settings
        from chalicelib.services.container import services
        from chalicelib.services.identity import Identity
        from chalicelib.services.registry import REGISTER, Listed
        from chalicelib.services.tasks import TaskSpec
        from chalicelib.store.jobs import JobRepository
        from chalicelib.store.pool import PoolRepository

        actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
        # Setup, not measured: register every object in-process, create the project.
        keys = [f"{PREFIX}{n // 1000:02d}/{n:05d}.jpg" for n in range(IMAGES)]
        registered = services().registry.index((Listed(key) for key in keys), REGISTER, actor.sub)
        assert len(registered.registered) == IMAGES, registered.counts()
        print(f"  {IMAGES:,} images registered", file=sys.stderr, flush=True)
        project = services().projects.create(actor, "bench tasks", None, []).project

        with _written_lock:
            written_before = Counter(_written)
        with counting() as requests:
            started = time.perf_counter()
            creation = services().tasks.create_with_file_paths(
                actor, project.id, TaskSpec(name="bench", chunk_size=CHUNK_SIZE), [PREFIX])
            if creation.operation is not None:
                state, polls = _wait(creation.operation.id)
                if state.status != "completed":
                    raise RuntimeError(f"task creation failed: {state.error}")
                task_id = state.result["task_id"]
            else:
                task_id, polls = creation.created.task.id, 0
            elapsed = time.perf_counter() - started
        with _written_lock:
            written = _written - written_before

        # Read back what was built.
        jobs = JobRepository().of_task(task_id)
        job_images = JobRepository().images_of_tasks([task_id])
        pool = PoolRepository().entries(project.id)
        expected_jobs = math.ceil(IMAGES / CHUNK_SIZE)
        assert len(jobs) == expected_jobs, len(jobs)
        assert len(job_images) == IMAGES and len({image.image_id for image in job_images}) == IMAGES, len(job_images)
        assert sorted(job.total_images for job in jobs) == sorted(
            Counter(image.job_id for image in job_images).values())
        assert len(pool) == IMAGES, len(pool)

        settings = get_settings()
        names = {getattr(settings, name): name.removesuffix("_table") for name in type(settings).model_fields
                 if name.endswith("_table")}
        items = sum(written.values())
        by_table = ", ".join(f"{names.get(table, table)} {count}" for table, count in written.most_common())
        dynamodb_writes = sum(requests[f"dynamodb.{name}"] for name in WRITE_OPERATIONS)
        budget = math.floor(1.1 * math.ceil(items / 25) + 1e-9)
        core = 1 + expected_jobs + 2 * IMAGES  # task, jobs, job images, pool entries
        core_budget = math.floor(1.1 * math.ceil(core / 25) + 1e-9)
        breakdown = ", ".join(f"{name} {requests[f'dynamodb.{name}']}" for name in WRITE_OPERATIONS
                              if requests[f"dynamodb.{name}"])
        other = ", ".join(f"{name} {count}" for name, count in sorted(requests.items())
                          if name.removeprefix("dynamodb.") not in WRITE_OPERATIONS)
        label = f"task from {IMAGES:,} registered paths, chunk {CHUNK_SIZE}"
        mode = "operation" if creation.operation is not None else "synchronous"
        return [
            (f"{label}: wall time ({mode}, embedded stack)", f"{elapsed:.1f} s", ""),
            (f"{label}: DynamoDB items written", f"{items} ({by_table})",
             f"1 task + {expected_jobs} jobs + {IMAGES} job images + {IMAGES} pool"),
            (f"{label}: DynamoDB write requests", f"{dynamodb_writes} ({breakdown})",
             f"goal <= {budget} (1.1 x ceil({items}/25); {core_budget} on the {core} task items alone)"),
            (f"{label}: DynamoDB Scan requests", str(requests["dynamodb.Scan"]), "goal 0"),
            (f"{label}: other requests", f"{other} (GetItem includes the bench's {polls} polls)", ""),
            (f"{label}: read back", f"{len(jobs)} jobs, {len(job_images)} job images, {len(pool)} pool entries",
             f"{expected_jobs} / {IMAGES} / {IMAGES}"),
        ]
    finally:
        stack.stop()
