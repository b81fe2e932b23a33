"""What a dataset's files are: images, annotation files, or other files — for an import's plan.

A ZIP's members (or the files uploaded beside it) are sorted once, by name alone:
- images: the registry's image extensions (services/paths.py);
- annotation files: JSON (COCO, DICE), YAML (Ultralytics `data.yaml`), Darknet's `*.names`,
  `train.txt` / `valid.txt` / `val.txt` / `test.txt`, and a `.txt` that is a YOLO label: under a
  `labels/` folder, or beside an image of the same stem (Darknet);
- other files (a README, a licence): kept out of the registry and counted as other storage. So
  is everything but images under `pixelpool-backup/`: the metadata a dataset's backup carries
  (services/dataset_backup.py), JSON our annotation reader would refuse as an unknown format; its
  COCO files sit outside that folder and are imported as any.
The folders that hold images are counted (the dataset's folder tree), and the bytes of each kind
summed (the dataset's storage by kind).
"""
from __future__ import annotations

import posixpath
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from chalicelib.services.paths import is_image_key

ANNOTATION_EXTENSIONS = frozenset({".json", ".yaml", ".yml", ".names"})
SPLIT_LISTS = frozenset({"train.txt", "valid.txt", "val.txt", "test.txt", "classes.txt"})
BACKUP_METADATA = "pixelpool-backup/"


class Named(Protocol):
    name: str
    size: int


@dataclass(frozen=True)
class File:
    """A file known by its path in the dataset and its size (a staged upload, an object listed)."""

    name: str
    size: int


@dataclass
class Contents:
    images: list[Named] = field(default_factory=list)
    annotation_files: list[Named] = field(default_factory=list)
    other: list[Named] = field(default_factory=list)
    folders: dict[str, int] = field(default_factory=dict)  # folder ('' for the top) → images in it

    @property
    def bytes_images(self) -> int:
        return sum(item.size for item in self.images)

    @property
    def bytes_annotations(self) -> int:
        return sum(item.size for item in self.annotation_files)

    @property
    def bytes_other(self) -> int:
        return sum(item.size for item in self.other)


def _is_annotation(name: str, image_stems: set[str]) -> bool:
    if name.startswith(BACKUP_METADATA):
        return False
    folder, base = posixpath.split(name)
    stem, extension = posixpath.splitext(base)
    extension = extension.lower()
    if extension in ANNOTATION_EXTENSIONS:
        return True
    if extension != ".txt":
        return False
    if base.lower() in SPLIT_LISTS or "labels" in folder.split("/"):
        return True
    return posixpath.join(folder, stem) in image_stems  # Darknet: the label beside its image


def sort(files: Iterable[Named]) -> Contents:
    """Images, annotation files and other files, in the order given, and the folders of images."""
    files = list(files)
    image_stems = {posixpath.splitext(item.name)[0] for item in files if is_image_key(item.name)}
    contents = Contents()
    folders: Counter[str] = Counter()
    for item in files:
        if is_image_key(item.name):
            contents.images.append(item)
            folders[posixpath.dirname(item.name)] += 1
        elif _is_annotation(item.name, image_stems):
            contents.annotation_files.append(item)
        else:
            contents.other.append(item)
    contents.folders = dict(sorted(folders.items()))
    return contents
