"""Paths in the share: relative S3 keys that cannot escape it or smuggle control characters."""
from __future__ import annotations

import posixpath
import unicodedata

from chalicelib.errors import BadRequestError

MAX_KEY_BYTES = 1024
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def is_image_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in IMAGE_EXTENSIONS


def _problem(path: str) -> str | None:
    # Category Cc: C0, DEL and the C1 controls (U+0080-U+009F, e.g. the terminal's CSI).
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "is absolute; give a path relative to the share"
    if any(part in (".", "..") for part in path.split("/")):
        return "contains a '.' or '..' segment"
    if "//" in path:
        return "contains an empty segment ('//')"
    if len(path.encode("utf-8")) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    return None


def check(path: str) -> str:
    """`path` as a share key; raises `BadRequestError` naming the path when it is not acceptable."""
    problem = _problem(path)
    if problem:
        raise BadRequestError(f"Path {path!r} {problem}", [{"field": "path", "path": path, "message": problem}])
    return path


def check_all(paths: list[str]) -> list[str]:
    """Every path checked; one error lists all the bad ones."""
    bad = [(path, _problem(path)) for path in paths]
    bad = [(path, problem) for path, problem in bad if problem]
    if bad:
        names = ", ".join(repr(path) for path, _ in bad[:5])
        raise BadRequestError(
            f"Invalid path(s): {names}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
            [{"field": "path", "path": path, "message": problem} for path, problem in bad],
        )
    return paths


def folder_prefix(path: str) -> str:
    """The listing prefix of a folder path: '' for the root, else ending in exactly one '/'."""
    path = check(path).rstrip("/") if path else ""
    return f"{path}/" if path else ""


def split(key: str) -> tuple[str, str]:
    """(folder, filename) of a key; the folder is '' at the root."""
    folder, _, filename = key.rpartition("/")
    return folder, filename
