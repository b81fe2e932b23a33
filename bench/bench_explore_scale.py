"""Explore's index in memory at 100,000, 300,000 and 1,000,000 pool images: the per-call work of a
warm call (the filter's COUNT and one page of 50) for bench_explore's four filters, the index's
memory and its snapshot. No emulator: at any size a warm call adds the same three DynamoDB
requests (two change-log Queries, one BatchGetItem of the access check and the page), which
bench_explore measures at 100,000 over the embedded stack; a call's cost at size N is this
bench's figure at N plus that constant."""
from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from bench.bench_explore import ANNOTATED_SHARE, CHUNK_SIZE, TAG_SHARE, TAGS, TASK_SHARE, TASKS

SIZES = [int(size) for size in os.environ.get("BENCH_EXPLORE_SCALE_SIZES", "100000,300000,1000000").split(",")]
RUNS = 7
PAGE = 50


def _index(size: int, seed: int):
    from chalicelib.services.project_index import ProjectIndex
    from chalicelib.store.jobs import JobImage
    from chalicelib.store.pool import PoolEntry
    from chalicelib.store.tasks import Task

    rng = random.Random(seed)
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    tags = [f"tag-{n:02d}" for n in range(TAGS)]
    index = ProjectIndex()
    ids = []
    for start in range(0, size, 50_000):
        entries, tagged = [], {}
        for n in range(start, min(start + 50_000, size)):
            sha = hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()
            image = f"{sha[:8]}-{sha[8:12]}-{sha[12:16]}-{sha[16:20]}-{sha[20:32]}"
            ids.append(image)
            annotated = rng.random() < ANNOTATED_SHARE
            entries.append(PoolEntry(
                image_id=image, file_path=f"bench-explore-{size}/{n // 1000:03d}/{n:07d}.jpg", status="ready",
                width=rng.randint(200, 4000), height=rng.randint(200, 4000), size=rng.randint(20_000, 5_000_000),
                created_at=landed + timedelta(seconds=rng.randrange(size * 10)), added_at=landed,
                annotation_count=int(annotated), sha256=sha, phash=sha[:16]))
            tagged[image] = [tag for tag in tags if rng.random() < TAG_SHARE]
        index.put_entries(entries)
        index.set_tags(tagged)
    order = list(ids)
    rng.shuffle(order)
    per_task = int(size * TASK_SHARE)
    task_ids = []
    for number in range(TASKS):
        part = order[number * per_task : (number + 1) * per_task]
        task = Task(id=f"task-{number}", project_id="p", name=f"task {number}", description=None, assignee_id=None,
                    split=("train", "val", "test", "none", "train")[number], status="new", state="ready",
                    total_images=len(part), job_count=-(-len(part) // CHUNK_SIZE), chunk_size=CHUNK_SIZE,
                    distribution_order="sequential", seed=None, source="pool", created_by="bench",
                    created_at=landed, updated_at=landed)
        index.put_task(task, [JobImage(task_id=task.id, job_id=f"{task.id}-job-{at // CHUNK_SIZE}", image_id=image,
                                       project_id="p", sequence_number=at % CHUNK_SIZE, annotation_count=0)
                              for at, image in enumerate(part)])
        task_ids.append(task.id)
    return index, tags, task_ids


def run() -> list[tuple[str, str, str]]:
    from chalicelib.services.filters import ImageFilter
    from chalicelib.services.project_index import IndexedSelection

    rows: list[tuple[str, str, str]] = []
    for size in SIZES:
        started = time.perf_counter()
        index, tags, task_ids = _index(size, seed=size)
        built = time.perf_counter() - started
        filters = {
            "no filter": ImageFilter(),
            "tags ALL(2) + not annotated + width>=1000": ImageFilter(
                tag_ids=tags[:2], tag_mode="all", is_annotated=False, min_width=1000),
            "task + split": ImageFilter(task_id=task_ids[:1], split="train"),
            "path prefix + name search": ImageFilter(path_prefix=f"bench-explore-{size}/00", search="7"),
        }
        label = f"explore index in memory, {size:,} pool images"
        for name, image_filter in filters.items():
            times = []
            for _ in range(RUNS):
                began = time.perf_counter()
                selection = IndexedSelection(index, image_filter)
                total = selection.total
                selection.window(0, PAGE)
                times.append(time.perf_counter() - began)
            rows.append((f"{label}, {name}: COUNT + first page (total {total:,})",
                         f"median {statistics.median(times) * 1000:.1f} ms (max {max(times) * 1000:.1f})",
                         "plus 3 DynamoDB requests"))
        snapshot = len(index.snapshot({"P#p": "", "G": ""}))
        rows.append((f"{label}: memory", f"{index.memory_bytes() / 2**20:.0f} MB; snapshot {snapshot / 2**20:.0f} MB",
                     f"goal <= {64 * size / 100_000:.0f} MB"))
        rows.append((f"{label}: built in memory", f"{built:.1f} s", ""))
        del index
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
