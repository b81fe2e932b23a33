"""Split leaks over a project index of 100,000 pool images (services/project_index.py
`split_leaks`): latency (median of BENCH_LEAKS_RUNS calls) for max_distance 4 and 8 and the pairs
found by kind; then, on 10,000 images, the same answer against a brute-force check comparing every
two images, and the brute force's time; and the time at the largest distance answered for 100,000
(`split_leaks.WORK_LIMIT`).

The index is built in memory (no emulator: the figure is the computation, which `GET …/split-leaks`
and export previews pay on top of bringing the index up to date). Images sit in a train, a val and
a test task (70/15/15). Planted, as a real pool has them: exact copies (the same bytes under
another key, in another split or the same one), near copies (1 to 10 pHash bits flipped: a photo
re-encoded, resized, cropped), bursts (5 shots of one scene, a few bits apart, mostly in one
split), and images put in two tasks. Other hashes are uniform random 64-bit values (a real pool's
are less uniform: its buckets are fuller, and the time grows with them). BENCH_LEAKS_IMAGES
shrinks the large index for a quick check.
"""
from __future__ import annotations

import hashlib
import os
import random
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from chalicelib.services.project_index import ProjectIndex
from chalicelib.services.split_leaks import _agreeing, largest_distance, split_rank
from chalicelib.store.jobs import JobImage
from chalicelib.store.pool import PoolEntry
from chalicelib.store.tasks import Task

SIZE = int(os.environ.get("BENCH_LEAKS_IMAGES", "100000"))
CHECKED = 10_000
RUNS = int(os.environ.get("BENCH_LEAKS_RUNS", "5"))
DISTANCES = (4, 8)
SPLITS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
# Shares of the pool: exact copies, near copies, burst members, images in a second task.
EXACT, NEAR, BURST, TWICE = 0.005, 0.01, 0.02, 0.002
MOMENT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _images(size: int, seed: int) -> list[tuple[str, str, int, str]]:
    """(image id, sha256, phash, split) for `size` images with the planted copies."""
    rng = random.Random(seed)
    names, weights = zip(*SPLITS)

    def split() -> str:
        return rng.choices(names, weights)[0]

    images: list[tuple[str, str, int, str]] = []
    while len(images) < size:
        n = len(images)
        roll = rng.random()
        if images and roll < EXACT:
            _, sha, phash, _ = rng.choice(images)
            images.append((f"img-{n:06d}", sha, phash, split()))
        elif images and roll < EXACT + NEAR:
            _, _, phash, _ = rng.choice(images)
            images.append((f"img-{n:06d}", hashlib.sha256(b"%d" % n).hexdigest(), _flip(phash, rng.randint(1, 10), rng),
                           split()))
        elif roll < EXACT + NEAR + BURST / 5:
            scene, where = rng.getrandbits(64), split()
            for shot in range(5):
                images.append((f"img-{n + shot:06d}", hashlib.sha256(b"%d" % (n + shot)).hexdigest(),
                               _flip(scene, rng.randint(0, 5), rng), where if rng.random() < 0.9 else split()))
        else:
            images.append((f"img-{n:06d}", hashlib.sha256(b"%d" % n).hexdigest(), rng.getrandbits(64), split()))
    return images[:size]


def _task(name: str) -> Task:
    return Task(id=f"task-{name}", project_id="bench", name=name, description=None, assignee_id=None, split=name,
                status="new", state="ready", total_images=0, job_count=1, chunk_size=50,
                distribution_order="sequential", seed=None, source="file_paths", created_by=None,
                created_at=MOMENT, updated_at=MOMENT)


def _index(images: list[tuple[str, str, int, str]], seed: int) -> tuple[ProjectIndex, dict[str, list[str]]]:
    """The index of `images`, each in its split's task and some in a second one; and split → image ids."""
    rng = random.Random(seed)
    index = ProjectIndex()
    index.put_entries(PoolEntry(image_id=image_id, file_path=f"bench/{image_id}.jpg", status="ready", width=640,
                                height=480, size=50_000, created_at=MOMENT + timedelta(seconds=n),
                                added_at=MOMENT, sha256=sha, phash=f"{phash:016x}")
                      for n, (image_id, sha, phash, _) in enumerate(images))
    placed: dict[str, list[str]] = {name: [] for name, _ in SPLITS}
    for image_id, _, _, split in images:
        placed[split].append(image_id)
        if rng.random() < TWICE:
            placed[rng.choice([name for name, _ in SPLITS if name != split])].append(image_id)
    for name, image_ids in placed.items():
        index.put_task(_task(name), [JobImage(f"task-{name}", f"job-{name}-{n // 50}", image_id, "bench", n)
                                     for n, image_id in enumerate(image_ids)])
    return index, placed


def _described(leaks) -> set[tuple]:
    return {(leak.kind, leak.distance, leak.earlier.image_id, leak.earlier.split, leak.later.image_id,
             leak.later.split) for leak in leaks}


def _brute_force(images: list[tuple[str, str, int, str]], placed: dict[str, list[str]],
                 max_distance: int) -> set[tuple]:
    """Every two images in a split compared, from what was seeded: the definition of a leak, no buckets."""
    splits: dict[str, set[str]] = {}
    for split, image_ids in placed.items():
        for image_id in image_ids:
            splits.setdefault(image_id, set()).add(split)
    facts = {image_id: (sha, phash) for image_id, sha, phash, _ in images}
    ids = sorted(facts)
    found = set()

    def pair(kind, distance, a, b):
        for s in splits[a]:
            for t in splits[b]:
                if s != t:
                    (first, fs), (second, ss) = sorted(((a, s), (b, t)), key=lambda side: split_rank(side[1]))
                    found.add((kind, distance, first, fs, second, ss))

    for image_id in ids:
        ordered = sorted(splits[image_id], key=split_rank)
        for x, s in enumerate(ordered):
            for t in ordered[x + 1:]:
                found.add(("same_image", 0, image_id, s, image_id, t))
    hashes = [facts[image_id][1] for image_id in ids]
    for i, a in enumerate(ids):
        value = hashes[i]
        for j in range(i + 1, len(ids)):
            distance = (value ^ hashes[j]).bit_count()
            if distance <= max_distance or facts[a][0] == facts[ids[j]][0]:
                same = facts[a][0] == facts[ids[j]][0]
                pair("exact" if same else "near", 0 if same else distance, a, ids[j])
    return found


def _timed(index: ProjectIndex, max_distance: int, runs: int) -> tuple[float, list]:
    times, leaks = [], []
    for _ in range(runs):
        started = time.perf_counter()
        leaks = index.split_leaks(max_distance)
        times.append(time.perf_counter() - started)
    return statistics.median(times), leaks


def _kinds(leaks) -> str:
    found = Counter(leak.kind for leak in leaks)
    return ", ".join(f"{kind} {found[kind]:,}" for kind in ("same_image", "exact", "near"))


def run() -> list[tuple[str, str, str]]:
    rows = []
    started = time.perf_counter()
    images = _images(SIZE, seed=7)
    index, _ = _index(images, seed=8)
    print(f"  built an index of {SIZE:,} in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    for distance in DISTANCES:
        median, leaks = _timed(index, distance, RUNS)
        rows.append((f"split leaks, {SIZE:,} images, max_distance {distance} (median of {RUNS}; "
                     f"{distance + _agreeing(distance, SIZE)} chunks, keys of {_agreeing(distance, SIZE)})",
                     f"{median * 1000:.0f} ms", ""))
        rows.append((f"  pairs found, max_distance {distance}", f"{len(leaks):,} ({_kinds(leaks)})", ""))
    largest = largest_distance(SIZE)
    median, leaks = _timed(index, largest, 1)
    rows.append((f"split leaks, {SIZE:,} images, the largest max_distance answered ({largest}; more is a 422)",
                 f"{median * 1000:.0f} ms, {len(leaks):,} pairs", ""))

    checked = _images(CHECKED, seed=9)
    small, placed = _index(checked, seed=10)
    for distance in DISTANCES:
        median, leaks = _timed(small, distance, RUNS)
        started = time.perf_counter()
        expected = _brute_force(checked, placed, distance)
        brute = time.perf_counter() - started
        agree = _described(leaks) == expected and len(leaks) == len(expected)
        rows.append((f"split leaks, {CHECKED:,} images, max_distance {distance}: multi-index vs brute force",
                     f"{len(leaks):,} vs {len(expected):,} pairs: {'agree' if agree else 'DIFFER'}", "agree"))
        rows.append((f"  time: multi-index (median of {RUNS}) / brute force (once)",
                     f"{median * 1000:.0f} ms / {brute * 1000:.0f} ms", ""))
    return rows


if __name__ == "__main__":
    from bench.harness import table

    print(table([("figure", "value", "target"), *run()]))
