"""The registry's index in memory at 100,000 and 1,000,000 images (no emulator: the index alone,
as a warm API instance holds it): `similar` (one pass of 64-bit XOR + popcount over the packed
perceptual hashes), a list page with its total, a duplicates page, the build from catalog entries
and the memory it takes. The per-call DynamoDB reads are bench_explore's (the page's images and
the change log): they do not grow with the registry."""
from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

SIZES = [int(size) for size in os.environ.get("BENCH_REGISTRY_SIZES", "100000,1000000").split(",")]
RUNS = 7
DUPLICATE_SHARE = 0.02  # images that are byte-for-byte copies of another


def _entries(size: int, seed: int):
    from chalicelib.store.images import CatalogEntry

    rng = random.Random(seed)
    landed = datetime(2024, 1, 1, tzinfo=timezone.utc)
    tags = [f"tag-{n:02d}" for n in range(20)]
    shas: list[str] = []
    phash = ""
    for n in range(size):
        copy = shas and rng.random() < DUPLICATE_SHARE
        sha = rng.choice(shas) if copy else hashlib.sha256(f"{seed}/{n}".encode()).hexdigest()
        shas.append(sha)
        near = n and rng.random() < 0.01  # a near-duplicate of the one before: a few bits flipped
        flipped = 0
        for _ in range(rng.randint(1, 6)):
            flipped |= 1 << rng.randrange(64)
        phash = f"{int(phash, 16) ^ flipped:016x}" if near else sha[:16]
        yield CatalogEntry(id=f"{n:08d}-{sha[:27]}", file_path=f"share/{n // 1000:04d}/IMG_{n:07d}.jpg",
                           status="ready" if rng.random() > 0.01 else "failed", sha256=sha, phash=phash,
                           width=rng.randint(200, 4000), height=rng.randint(200, 4000),
                           size=rng.randint(20_000, 5_000_000),
                           tag_ids=frozenset(tag for tag in tags if rng.random() < 0.1),
                           created_at=landed + timedelta(seconds=n))


def _ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.1f} ms (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"


def _timed(call) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return times, result


def run() -> list[tuple[str, str, str]]:
    from chalicelib.services.registry_index import RegistryIndex

    rows: list[tuple[str, str, str]] = []
    for size in SIZES:
        label = f"registry index, {size:,} images"
        entries = list(_entries(size, seed=size))
        started = time.perf_counter()
        index = RegistryIndex()
        for start in range(0, size, 50_000):
            index.put_catalog(entries[start : start + 50_000])
        built = time.perf_counter() - started
        probe = next(entry for before, entry in zip(entries[size // 2:], entries[size // 2 + 1:])
                     if entry.phash != entry.sha256[:16] and entry.status == before.status == "ready")
        index.similar(probe.phash, 10, 50, exclude=probe.id)  # packs the hashes once
        memory = index.memory_bytes() + size * 16  # SQLite pages + the packed hashes and slots
        snapshot = len(index.snapshot({"R": "", "G": ""}))
        for distance in (4, 10):
            times, found = _timed(lambda: index.similar(probe.phash, distance, 50, exclude=probe.id))
            rows.append((f"{label}: similar, max_distance {distance} ({len(found)} found)", _ms(times),
                         "interactive: one pass over packed hashes"))
        clause, params = index.listing(search=None, tag_ids=[], prefix="", status=None)
        times, _ = _timed(lambda: (index.page(clause, params, 0, 50), index.count(clause, params)))
        rows.append((f"{label}: list page 1 + total", _ms(times), ""))
        clause, params = index.listing(search="_00", tag_ids=["tag-03", "tag-07"], prefix="share/0", status="ready")
        times, _ = _timed(lambda: (index.page(clause, params, 100, 50), index.count(clause, params)))
        rows.append((f"{label}: list, 2 tags + folder + search + status, page 3 + total", _ms(times), ""))
        times, (groups, total) = _timed(lambda: index.duplicate_groups(0, 50))
        rows.append((f"{label}: duplicates page 1 + total ({total:,} groups)", _ms(times), ""))
        rows.append((f"{label}: built from catalog entries", f"{built:.1f} s", "cold without a snapshot"))
        rows.append((f"{label}: memory", f"{memory / 2**20:.0f} MB; snapshot {snapshot / 2**20:.0f} MB",
                     f"{memory / size:.0f} bytes per image"))
        del index, entries
    return rows


if __name__ == "__main__":
    for row in run():
        print(" | ".join(row))
