"""What a deleted dataset hides: the range its prefix makes in an index's WHERE clause (and nothing
beside it), the paths a read by id refuses, and which dataset a path belongs to."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.services.filters import ImageFilter
from chalicelib.services.project_index import IndexedSelection, ProjectIndex
from chalicelib.services.trash import Trash
from chalicelib.store.pool import PoolEntry, dataset_of

LANDED = datetime(2025, 1, 1, tzinfo=timezone.utc)
PATHS = ["datasets/a/x.jpg", "datasets/a/deep/y.jpg", "datasets/a", "datasets/ab/z.jpg", "datasets/a0/w.jpg",
         "datasets/b/v.jpg", "elsewhere/datasets/a/u.jpg", "datasets/a.jpg"]


def _index(paths: list[str]) -> ProjectIndex:
    index = ProjectIndex()
    index.put_entries(PoolEntry(image_id=f"img-{n}", file_path=path, status="ready", width=10, height=10, size=n,
                                created_at=LANDED, added_at=LANDED) for n, path in enumerate(paths))
    return index


def _paths(selection: IndexedSelection) -> list[str]:
    return sorted(entry.file_path for entry in selection.entries)


def test_a_hidden_prefix_leaves_out_its_images_and_only_those():
    index = _index(PATHS)
    selection = IndexedSelection(index, ImageFilter(), ("datasets/a/",))
    assert _paths(selection) == sorted(set(PATHS) - {"datasets/a/x.jpg", "datasets/a/deep/y.jpg"})
    assert selection.total == len(PATHS) - 2
    assert [entry.file_path for entry in selection.window(0, 100)] == [entry.file_path for entry in selection.entries]


@settings(max_examples=60, deadline=None)
@given(hidden=st.lists(st.sampled_from(["a", "ab", "a0", "b", "c"]), unique=True, max_size=4),
       folder=st.sampled_from([None, "datasets/", "datasets/a/", "elsewhere/"]))
def test_hiding_composes_with_any_filter_as_a_path_test(hidden, folder):
    index = _index(PATHS)
    prefixes = tuple(f"datasets/{name}/" for name in sorted(hidden))
    image_filter = ImageFilter(path_prefix=folder) if folder else ImageFilter()
    expected = sorted(path for path in PATHS
                      if (folder is None or path.startswith(folder)) and not path.startswith(prefixes or ("\0",)))
    selection = IndexedSelection(index, image_filter, prefixes)
    assert _paths(selection) == expected
    assert selection.total == len(expected)


class _Datasets:
    """The trash item as the repository reads it, and how often it was read."""

    def __init__(self, hidden: set[str]) -> None:
        self.hidden_ids = hidden
        self.reads = 0

    def hidden(self) -> frozenset[str]:
        self.reads += 1
        return frozenset(self.hidden_ids)


def test_reads_by_id_ask_the_trash_only_for_dataset_paths_and_see_a_change_at_once():
    datasets = _Datasets({"a"})
    trash = Trash(datasets)  # type: ignore[arg-type]
    assert trash.hidden_now(["elsewhere/x.jpg"]) == set() and datasets.reads == 0
    assert trash.hidden_now(["datasets/a/x.jpg", "datasets/ab/y.jpg"]) == {"datasets/a/x.jpg"}
    datasets.hidden_ids = set()  # restored
    assert trash.hidden_now(["datasets/a/x.jpg"]) == set() and datasets.reads == 2


def test_the_indexes_list_is_kept_until_dropped():
    datasets = _Datasets({"b", "a"})
    trash = Trash(datasets)  # type: ignore[arg-type]
    assert trash.prefixes() == ("datasets/a/", "datasets/b/")
    datasets.hidden_ids = {"a"}
    assert trash.prefixes() == ("datasets/a/", "datasets/b/") and datasets.reads == 1
    trash.drop()  # a change record named a dataset
    assert trash.prefixes() == ("datasets/a/",)


@pytest.mark.parametrize(("path", "dataset"), [
    ("datasets/a/x.jpg", "a"), ("datasets/a/deep/y.jpg", "a"), ("datasets/a", None), ("datasets//x.jpg", None),
    ("elsewhere/datasets/a/x.jpg", None), ("datasets.jpg", None)])
def test_the_dataset_of_a_path(path, dataset):
    assert dataset_of(path) == dataset
