"""What a deleted dataset hides: its images, everywhere, from the moment the delete answers.

A soft delete changes nothing but the dataset's state and one small item (store/datasets.py
`TrashItem`: the ids of the datasets deleted and not yet purged), so it takes the same time at ten
images as at a million and a restore brings back exactly what was there. Every reader that lists
images leaves out those under a hidden dataset's prefix (`datasets/<id>/`):
- the Explore index and the registry index (services/explore_index.py, registry_index.py) add one
  range test per hidden dataset to their WHERE clause; they hold the list per instance and drop it
  when their catch-up meets a change record naming a dataset (the deletion's transaction writes
  one to the tag stream, which every index reads on every call), so the next call on any instance
  sees the deletion;
- reads by id (one registry image, pool additions and task creation from explicit ids) ask
  `hidden_now`, which reads the trash item (one consistent GetItem).
"""
from __future__ import annotations

import threading
from typing import Iterable

from chalicelib.store.datasets import DatasetRepository, dataset_prefix


class Trash:
    def __init__(self, datasets: DatasetRepository) -> None:
        self._datasets = datasets
        self._cached: frozenset[str] | None = None
        self._lock = threading.Lock()

    def prefixes(self) -> tuple[str, ...]:
        """The hidden datasets' prefixes as of this instance's last catch-up (read once, then again
        after a change record names a dataset)."""
        with self._lock:
            cached = self._cached
        if cached is None:
            cached = self._datasets.hidden()
            with self._lock:
                self._cached = cached
        return tuple(sorted(dataset_prefix(dataset_id) for dataset_id in cached))

    def drop(self) -> None:
        with self._lock:
            self._cached = None

    def hidden_now(self, paths: Iterable[str]) -> set[str]:
        """Which of `paths` a deleted dataset hides, read from the trash item now (consistent)."""
        paths = list(paths)
        if not any(path.startswith("datasets/") for path in paths):
            return set()
        hidden = self._datasets.hidden()
        with self._lock:
            self._cached = hidden
        prefixes = tuple(dataset_prefix(dataset_id) for dataset_id in hidden)
        return {path for path in paths if prefixes and path.startswith(prefixes)}


def hides(prefixes: tuple[str, ...], path: str) -> bool:
    return bool(prefixes) and path.startswith(prefixes)
