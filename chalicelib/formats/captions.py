"""Image-text pairs: every image beside a `.txt` of the same stem holding its caption (the
kohya-ss/sd-scripts and image-tagger convention), and a `metadata.jsonl` of `{"file_name", "text"}`
lines per folder, which Hugging Face `datasets`' `imagefolder` loader reads as columns `image`
and `text`.

A folder is a split (`train/`, `val/`, `test/`: the loader names them train, validation, test)
or, for an export whose images are in no split, the ZIP's root (the loader's one `train` split).
Images of a folder sit flat in it under their file name, so a caption file is found by swapping the
suffix; two images whose stems meet (`x.jpg`, `X.png`, or `x.jpg` from two share folders) would
share a caption file, so a later one becomes `<stem>__<image id start>`, the same for image and
caption.
"""
from __future__ import annotations

from pathlib import PurePosixPath

import orjson

from chalicelib.formats import member_name

NO_SPLIT = "none"


def folder_of(split: str) -> str:
    """The folder an image of `split` sits in: the split's own, or the root for no split."""
    return "" if split == NO_SPLIT else member_name(split)


class PairNames:
    """Image and caption member names, unique per folder by stem (compared case-insensitively, as
    on macOS and Windows). Feed images in the export's order and the names are the same on every
    build."""

    def __init__(self) -> None:
        self._used: set[tuple[str, str]] = set()

    def place(self, folder: str, file_path: str, image_id: str) -> tuple[str, str]:
        """(image name, caption name) inside `folder`."""
        name = PurePosixPath(member_name(file_path).rsplit("/", 1)[-1])
        stem, suffix = name.stem, name.suffix
        candidate, n = stem, 1
        while (folder, candidate.casefold()) in self._used:
            candidate = f"{stem}__{image_id[:8]}" + (f"-{n}" if n > 1 else "")
            n += 1
        self._used.add((folder, candidate.casefold()))
        prefix = f"{folder}/" if folder else ""
        return f"{prefix}{candidate}{suffix}", f"{prefix}{candidate}.txt"


def metadata_line(file_name: str, text: str) -> bytes:
    """One `metadata.jsonl` line; `file_name` is relative to the metadata file's folder."""
    return orjson.dumps({"file_name": file_name, "text": text}) + b"\n"


def metadata_path(folder: str) -> str:
    return f"{folder}/metadata.jsonl" if folder else "metadata.jsonl"
