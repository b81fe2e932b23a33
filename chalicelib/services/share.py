"""The share bucket as a file system: browse one level, resolve selections, presigned uploads."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings
from chalicelib.errors import ValidationError
from chalicelib.services import cursors, paths
from chalicelib.clock import utcnow
from chalicelib.store.images import ImageRepository
from chalicelib.store.objects import LAST_CHARACTER, MAX_KEY_BYTES, Bucket

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.identity import Identity

CONTENT_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
}


@dataclass(frozen=True)
class Entry:
    name: str
    path: str
    type: str  # "folder" | "file"
    size: int | None = None
    last_modified: datetime | None = None
    image_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Level:
    path: str
    entries: list[Entry]
    next_cursor: str | None


@dataclass
class Selection:
    """A selection expanded to image keys; `pending` what is still to do, in selection order:
    folders to list as (prefix, cursor) and files to take as (key, None)."""

    keys: list[str] = field(default_factory=list)
    pending: list[tuple[str, str | None]] = field(default_factory=list)
    # Keys selected again (a file named twice, or inside a folder also given): used once.
    duplicates: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.pending


@dataclass(frozen=True)
class Upload:
    path: str
    method: str
    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


def _position_under(prefix: str, position: object) -> str:
    """A browse cursor's position: a key (or past a folder) under the folder being listed."""
    after = cursors.text(position)
    # A lone surrogate is in no key: its UnicodeEncodeError is a ValueError, as the codec expects.
    if not after.startswith(prefix) or len(after.encode()) > MAX_KEY_BYTES + len(LAST_CHARACTER.encode()):
        raise ValueError(f"not a position in folder {prefix!r}")
    return after


class ShareService:
    def __init__(self, settings: Settings, share: Bucket, images: ImageRepository, access: "Access") -> None:
        self._access = access
        self._settings = settings
        self._share = share
        self._images = images

    def browse(self, path: str, cursor: str | None, page_size: int) -> Level:
        """One level under `path`: its folders, then its image files with their registry status."""
        prefix = paths.folder_prefix(path)
        after = cursors.decode(cursor, "browse", lambda position: _position_under(prefix, position)) if cursor else None
        listing = self._share.list_page(prefix, after, max_keys=page_size)
        folders = [Entry(name=p[len(prefix):].rstrip("/"), path=p.rstrip("/"), type="folder") for p in listing.prefixes]
        files = [info for info in listing.objects if paths.is_image_key(info.key)]
        registered = self._images.find_by_keys(info.key for info in files)
        entries = folders + [
            Entry(name=info.key[len(prefix):], path=info.key, type="file", size=info.size,
                  last_modified=info.last_modified,
                  image_id=registered[info.key].id if info.key in registered else None,
                  status=registered[info.key].status if info.key in registered else None)
            for info in files
        ]
        next_cursor = cursors.encode("browse", listing.next_cursor) if listing.next_cursor else None
        return Level(path=prefix.rstrip("/"), entries=entries, next_cursor=next_cursor)

    def expand(self, selection: list[str], recursive: bool = True, max_keys: int | None = None,
               named_files: bool = False) -> Selection:
        """Folders in `selection` become the image keys under them, in order, without duplicates.

        With `max_keys`, listing stops once more than that many keys are known; the folders (and
        cursors) not yet listed and the files not yet taken are returned in `pending`, so a
        background job can go on from there without listing anything twice. With `named_files`,
        a file named explicitly that is not an image (`notes.txt`) is kept as a key too, so that
        registration can report it instead of silently dropping it.
        """
        queue: list[tuple[str, str | None]] = []
        # Files go through the queue too, so a file selected after a folder comes after its images.
        for path in paths.check_all(selection):
            if path and not path.endswith("/") and paths.is_image_key(path):
                queue.append((path, None))
                continue
            if named_files and path and not path.endswith("/") and self._share.exists(path):
                queue.append((path, None))
            queue.append((paths.folder_prefix(path), None))
        # A path given twice (or a file and its folder's listing entry) is listed once; a file named
        # again is still a path that selected its image again.
        unique = list(dict.fromkeys(queue))
        again = [key for key, _ in queue if key and not key.endswith("/")]
        for key, _ in unique:
            if key and not key.endswith("/"):
                again.remove(key)
        return self.resume(Selection(pending=unique, duplicates=again), recursive, max_keys)

    def resume(self, selection: Selection, recursive: bool = True, max_keys: int | None = None) -> Selection:
        """Work through `selection.pending` in order, adding image keys not yet in `selection.keys`:
        a file key (no trailing '/') as is, a folder (prefix, cursor) listed page by page."""
        keys = list(selection.keys)
        seen = set(keys)
        duplicates = list(selection.duplicates)
        queue = list(selection.pending)
        while queue:
            if max_keys is not None and len(keys) > max_keys:
                return Selection(keys=keys, pending=queue, duplicates=duplicates)
            prefix, cursor = queue.pop(0)
            if prefix and not prefix.endswith("/"):
                found = [prefix]
            else:
                listing = self._share.list_page(prefix, cursor, recursive=recursive)
                found = [info.key for info in listing.objects if paths.is_image_key(info.key)]
                if listing.next_cursor:
                    queue.insert(0, (prefix, listing.next_cursor))
            for key in found:
                if key in seen:
                    duplicates.append(key)
                else:
                    seen.add(key)
                    keys.append(key)
        return Selection(keys=keys, duplicates=duplicates)

    def upload_urls(self, actor: "Identity", files: list[dict[str, Any]], folder: str | None) -> list[Upload]:
        """One presigned POST per file, for exactly its key, its content type and at most its size."""
        self._access.require_global(actor, "share.upload", what="uploading to the share")
        base = paths.folder_prefix(folder or "")
        keys = paths.check_all([base + item["path"] for item in files])
        problems = []
        for index, (key, item) in enumerate(zip(keys, files)):
            # As `paths.is_image_key` reads it, so '.jpg' (a dot file) is no image, as for ingestion.
            expected = CONTENT_TYPES.get(posixpath.splitext(key)[1].lower())
            if expected is None:
                problems.append((index, "path", f"{key!r} does not end in an image extension "
                                                f"({', '.join(sorted(CONTENT_TYPES))})"))
            elif item["content_type"] != expected and not (expected == "image/jpeg" and item["content_type"] == "image/jpg"):
                problems.append((index, "content_type", f"{item['content_type']!r} does not match {key!r} ({expected})"))
            if item["size"] > self._settings.upload_max_bytes:
                problems.append((index, "size", f"{item['size']} bytes is over the {self._settings.upload_max_bytes}-byte limit"))
        if len(set(keys)) != len(keys):
            problems.append((0, "path", "the same path is listed twice"))
        if problems:
            raise ValidationError(
                "Invalid upload request: " + "; ".join(message for _, _, message in problems[:3]),
                [{"field": f"files.{index}.{name}", "location": "body", "message": message, "type": "value_error"}
                 for index, name, message in problems],
            )
        ttl = self._settings.upload_url_ttl_seconds
        expires_at = utcnow() + timedelta(seconds=ttl)
        uploads = []
        for key, item in zip(keys, files):
            content_type = CONTENT_TYPES[posixpath.splitext(key)[1].lower()]
            post = self._share.presign_post(key, content_type, item["size"], ttl)
            uploads.append(Upload(path=key, method="POST", url=post["url"], fields=post["fields"],
                                  expires_at=expires_at, max_bytes=item["size"]))
        return uploads
