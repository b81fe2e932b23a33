"""The index's filter clauses in both forms (counting and paging) against the filter's meaning,
for what SQLite could get wrong: path prefixes as index ranges at the edges of Unicode, and tag,
task and split tests written two ways."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.services.filters import ImageFilter
from chalicelib.services.project_index import IndexedSelection, ProjectIndex
from chalicelib.store.jobs import JobImage
from chalicelib.store.pool import PoolEntry
from chalicelib.store.tasks import Task

EDGE = ["a", "a/", "a/b", "a/b/c.jpg", "ab.jpg", "a\U0010fffe.jpg", "a\U0010ffff/x.jpg", "a\ud7ff/y.jpg",
        "a\ue000/z.jpg", "b/é.jpg", "b/e\u0301.jpg", "\U0010ffff.jpg", "zz/日本.jpg"]
LANDED = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _entry(n: int, path: str) -> PoolEntry:
    return PoolEntry(image_id=f"img-{n:03d}", file_path=path, status="ready", width=100 * n, height=50, size=n,
                     created_at=LANDED + timedelta(seconds=n % 7), added_at=LANDED)


def _task(task_id: str, split: str) -> Task:
    return Task(id=task_id, project_id="p", name=task_id, description=None, assignee_id=None, split=split,
                status="new", state="ready", total_images=0, job_count=1, chunk_size=10,
                distribution_order="sequential", seed=None, source="pool", created_by="t", created_at=LANDED,
                updated_at=LANDED)


def _ids(selection) -> list[str]:
    return [entry.image_id for entry in selection.entries]


def _page(selection, size: int = 3) -> list[str]:
    return [entry.image_id for start in range(0, selection.total, size) for entry in selection.window(start, size)]


@pytest.fixture(scope="module")
def world():
    rng = random.Random(7)
    entries = [_entry(n, path) for n, path in enumerate(EDGE)]
    index = ProjectIndex()
    index.put_entries(entries)
    tags = {entry.image_id: [tag for tag in ("t1", "t2", "t3") if rng.random() < 0.5] for entry in entries}
    index.set_tags(tags)
    placed = {}
    for task, split in (("k1", "train"), ("k2", "val"), ("k3", "none")):
        chosen = rng.sample([entry.image_id for entry in entries], 5)
        index.put_task(_task(task, split), [JobImage(task_id=task, job_id=f"{task}-j{n % 2}", image_id=image,
                                                     project_id="p", sequence_number=n, annotation_count=0)
                                            for n, image in enumerate(chosen)])
        placed[task] = set(chosen)
    order = [entry.image_id for entry in sorted(entries, key=lambda e: (-e.created_at.timestamp(), e.image_id))]
    return index, entries, tags, placed, order


@pytest.mark.parametrize("prefix", ["a", "a/", "a/b", "a\U0010fffe", "a\U0010ffff", "a\ud7ff", "b/e", "\U0010ffff",
                                    "zz/日", "nothing"])
def test_a_path_prefix_selects_exactly_the_paths_that_start_with_it(world, prefix):
    index, entries, _, _, order = world
    expected = [image for image in order if next(e for e in entries if e.image_id == image).file_path.startswith(prefix)]
    selection = IndexedSelection(index, ImageFilter(path_prefix=prefix))
    assert _ids(selection) == expected
    assert selection.total == len(expected)
    assert _page(selection) == expected


@settings(max_examples=60, deadline=None)
@given(tags=st.lists(st.sampled_from(["t1", "t2", "t3", "t4"]), max_size=3, unique=True),
       mode=st.sampled_from(["any", "all"]), exclude=st.lists(st.sampled_from(["t1", "t2"]), max_size=2, unique=True),
       tasks=st.lists(st.sampled_from(["k1", "k2", "k3", "k9"]), max_size=2, unique=True),
       split=st.sampled_from([None, "train", "val", "test", "none"]))
def test_counting_and_paging_forms_select_the_same_images_as_the_filter_says(world, tags, mode, exclude, tasks, split):
    index, entries, tagged, placed, order = world
    splits = {"k1": "train", "k2": "val", "k3": "none"}

    def keep(image: str) -> bool:
        have = set(tagged[image])
        in_tasks = {task for task, images in placed.items() if image in images}
        return ((not tags or (set(tags) <= have if mode == "all" else bool(set(tags) & have)))
                and (not exclude or not (bool(set(exclude) & have)))
                and (not tasks or bool(in_tasks & set(tasks)))
                and (split is None or split in ({splits[t] for t in in_tasks} - {"none"} or {"none"})))

    image_filter = ImageFilter(tag_ids=tags, tag_mode=mode, exclude_tag_ids=exclude, task_id=tasks, split=split)
    expected = [image for image in order if keep(image)]
    selection = IndexedSelection(index, image_filter)
    assert (_ids(selection), selection.total, _page(selection)) == (expected, len(expected), expected)
