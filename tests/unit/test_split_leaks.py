"""Split leaks without the stack: multi-index hashing against brute force on random hashes with
planted near pairs, and a project index holding every kind of leak (and copies that are none)."""
from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import ValidationError
from chalicelib.services.project_index import ProjectIndex
from chalicelib.services.split_leaks import (MAX_DISTANCE, Copy, _agreeing, counts, find, largest_distance,
                                             later_copies, near_pairs)
from chalicelib.store.jobs import JobImage
from chalicelib.store.pool import PoolEntry
from chalicelib.store.tasks import Task

MOMENT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def brute_force(hashes: list[int], max_distance: int) -> list[tuple[int, int, int]]:
    return [(i, j, (hashes[i] ^ hashes[j]).bit_count()) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
            if (hashes[i] ^ hashes[j]).bit_count() <= max_distance]


def flipped(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(0, 120), planted=st.integers(0, 40),
       max_distance=st.integers(0, MAX_DISTANCE), agreeing=st.sampled_from([None, 1, 2, 3]))
def test_multi_index_hashing_finds_exactly_the_brute_force_pairs(seed, count, planted, max_distance, agreeing):
    # Given random hashes and near copies planted at every distance around the limit
    rng = random.Random(seed)
    hashes = [rng.getrandbits(64) for _ in range(count)]
    for _ in range(planted if hashes else 0):
        hashes.append(flipped(rng.choice(hashes), rng.randint(0, max_distance + 2), rng))
    rng.shuffle(hashes)
    # When the pairs are found by buckets over chunks
    found = near_pairs(hashes, max_distance, agreeing)
    # Then they are the pairs comparing every two finds, with their distances
    assert found == brute_force(hashes, max_distance)


def test_clustered_hashes_many_sharing_chunks_still_give_the_brute_force_pairs():
    # Given hashes that differ only in their low 12 bits (one bucket for most chunk keys)
    rng = random.Random(3)
    hashes = [0xF0F0_0000_0000_0000 | rng.getrandbits(12) for _ in range(300)]
    for max_distance in (0, 2, 4, 8):
        assert near_pairs(hashes, max_distance) == brute_force(hashes, max_distance)


def test_the_chunk_count_grows_with_the_number_of_hashes():
    # Small sets want the plain pigeonhole (d + 1 chunks, one per key); large ones longer keys
    assert _agreeing(4, 100) == 1
    assert _agreeing(8, 100_000) > 1
    with pytest.raises(ValueError, match="max_distance"):
        near_pairs([1, 2], 64)


def test_a_distance_too_costly_for_the_number_of_images_is_refused_naming_the_largest_answered():
    # Given 100,000 hashed images in splits
    copies = [Copy(f"i{n}", f"p/{n}.jpg", ("train",), None, n * 0x9E37_79B9_7F4A_7C15 % 2**64) for n in range(100_000)]
    # When their leaks within 16 bits are asked for, Then the distance is refused before any work,
    # naming the field and the largest distance answered for this many
    largest = largest_distance(100_000)
    assert 4 <= largest < MAX_DISTANCE
    with pytest.raises(ValidationError) as refused:
        find(copies, 16, field="options.leak_max_distance")
    assert f"at most {largest}" in refused.value.message
    assert refused.value.details[0]["field"] == "options.leak_max_distance"
    # And fewer images may use every distance
    assert largest_distance(5_000) == MAX_DISTANCE


def test_leaks_pair_copies_in_different_splits_earlier_split_first():
    # Given copies: a and b the same bytes (train, val), c near a (test), d near a but in train too,
    # e in train and val itself, f far from everything
    base = 0x0123_4567_89AB_CDEF
    copies = [Copy("b", "x/b.jpg", ("val",), "s1", base), Copy("a", "x/a.jpg", ("train",), "s1", base),
              Copy("c", "x/c.jpg", ("test",), "s2", base ^ 0b101), Copy("d", "x/d.jpg", ("train",), "s3", base ^ 1),
              Copy("e", "x/e.jpg", ("train", "val"), "s4", ~base & (2**64 - 1)),
              Copy("f", "x/f.jpg", ("test",), "s5", 0x5555_5555_0000_0000)]
    # When the leaks within distance 2 are found
    leaks = find(copies, 2)
    # Then e is its own leak, a/b exact (not also near), and the near pairs across splits by
    # distance; a/d (both train) and f are in none
    described = [(leak.kind, leak.distance, leak.earlier.image_id, leak.earlier.split, leak.later.image_id,
                  leak.later.split) for leak in leaks]
    assert described == [("same_image", 0, "e", "train", "e", "val"),
                         ("exact", 0, "a", "train", "b", "val"),
                         ("near", 1, "d", "train", "b", "val"),
                         ("near", 1, "d", "train", "c", "test"),
                         ("near", 2, "a", "train", "c", "test"),
                         ("near", 2, "b", "val", "c", "test")]
    assert counts(leaks) == {"same_image": 1, "exact": 1, "near": 4}
    # And exclude_leaks leaves out the later copies (not an image that is its own leak)
    assert later_copies(leaks) == {"b", "c"}


def entry(image_id: str, sha256: str | None, phash: int | None) -> PoolEntry:
    return PoolEntry(image_id=image_id, file_path=f"p/{image_id}.jpg", status="ready", width=8, height=8, size=10,
                     created_at=MOMENT, added_at=MOMENT, sha256=sha256, phash=None if phash is None else f"{phash:016x}")


def task(task_id: str, split: str) -> Task:
    return Task(id=task_id, project_id="p", name=task_id, description=None, assignee_id=None, split=split,
                status="new", state="ready", total_images=0, job_count=1, chunk_size=10, distribution_order="sequential",
                seed=None, source="file_paths", created_by=None, created_at=MOMENT, updated_at=MOMENT)


def test_a_project_index_finds_every_kind_of_leak_and_none_within_a_split():
    # Given a project: t1 (train) holds a, c, e, x; t2 (val) holds b, e, y; t3 (test) holds d;
    # t0 (no split) holds n; a = b bytes, c ~ d (3 bits, high bit set: negative in SQLite),
    # x ~ a (1 bit, both train) and so x ~ b; n = a bytes but in no split
    high = 0x8000_0000_0000_0000
    index = ProjectIndex()
    sha = "ab" * 32
    index.put_entries([entry("a", sha, 0x1111), entry("b", sha, 0x1111), entry("c", "c1" * 32, high | 0xF0),
                       entry("d", "d1" * 32, high | 0xF7), entry("e", "e1" * 32, 0x7777_0000_0000_0000),
                       entry("x", "f1" * 32, 0x1113), entry("n", sha, 0x1111)])
    for task_id, split, images in (("t1", "train", "acex"), ("t2", "val", "be"), ("t3", "test", "d"),
                                   ("t0", "none", "n")):
        index.put_task(task(task_id, split), [JobImage(task_id, f"{task_id}-job", image, "p", n)
                                              for n, image in enumerate(images)])
    # When the leaks within 4 bits are asked for
    leaks = index.split_leaks(4)
    # Then: e is in two splits; a/b exact; c/d near (3); x/b near (1, x in train); nothing with n,
    # and a/x (one split) is none
    assert [(leak.kind, leak.distance, leak.earlier.image_id, leak.later.image_id) for leak in leaks] == [
        ("same_image", 0, "e", "e"), ("exact", 0, "a", "b"), ("near", 1, "x", "b"), ("near", 3, "c", "d")]
    assert leaks[1].earlier.file_path == "p/a.jpg" and (leaks[1].earlier.split, leaks[1].later.split) == ("train", "val")
    # And with distance 0 only exact copies remain
    assert [leak.kind for leak in index.split_leaks(0)] == ["same_image", "exact"]
