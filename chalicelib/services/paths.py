"""Paths in the share: relative S3 keys that cannot escape it or smuggle control characters.

One rule (`problem`) serves both directions: a path a user sends is refused with 400 (`check`),
and an object S3 already holds under such a key (S3 accepts any key) is recorded `failed` by the
registry with `unsafe_key_reason`, so it is never used as a path (task, Explore, export, ZIP).
"""
from __future__ import annotations

import posixpath
import unicodedata

from chalicelib.errors import BadRequestError

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255  # NAME_MAX of common file systems: a longer name cannot be unpacked anywhere
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def is_image_key(key: str) -> bool:
    return posixpath.splitext(key)[1].lower() in IMAGE_EXTENSIONS


def problem(path: str) -> str | None:
    """What makes `path` unusable as a share path, or None when it is acceptable."""
    # Category Cc: C0, DEL and the C1 controls (U+0080-U+009F, e.g. the terminal's CSI).
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "contains a control character"
    # Category Cf: bidi overrides (U+202E shows 'gnp.exe' as 'exe.png'), zero-width and BOM characters.
    formats = sorted({f"U+{ord(char):04X}" for char in path if unicodedata.category(char) == "Cf"})
    if formats:
        return f"contains an invisible formatting character ({', '.join(formats)})"
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
    if any(len(part.encode("utf-8")) > MAX_SEGMENT_BYTES for part in path.split("/")):
        return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def unsafe_key_reason(key: str) -> str | None:
    """Why an object key in the bucket must not be used as a path (its record's `failed` reason), or None.

    Stricter than `check` on one point: a key naming an object has no trailing '/' and no empty
    last segment.
    """
    found = problem(key) or ("has an empty segment" if not key or key.endswith("/") else None)
    return f"unsafe object key: {key!r} {found}" if found else None


def check(path: str, field: str = "path") -> str:
    """`path` as a share key; raises `BadRequestError` naming the path (and the request `field` it
    came in) when it is not acceptable."""
    found = problem(path)
    if found:
        raise BadRequestError(f"{field} {path!r} {found}" if field != "path" else f"Path {path!r} {found}",
                              [{"field": field, "path": path, "message": found}])
    return path


def check_all(paths: list[str]) -> list[str]:
    """Every path checked; one error lists all the bad ones."""
    bad = [(path, problem(path)) for path in paths]
    bad = [(path, found) for path, found in bad if found]
    if bad:
        names = ", ".join(repr(path) for path, _ in bad[:5])
        raise BadRequestError(
            f"Invalid path(s): {names}" + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""),
            [{"field": "path", "path": path, "message": found} for path, found in bad],
        )
    return paths


def folder_prefix(path: str, field: str = "path") -> str:
    """The listing prefix of a folder path: '' for the root, else ending in exactly one '/'."""
    path = check(path, field).rstrip("/") if path else ""
    return f"{path}/" if path else ""


def split(key: str) -> tuple[str, str]:
    """(folder, filename) of a key; the folder is '' at the root."""
    folder, _, filename = key.rpartition("/")
    return folder, filename
