"""Folder uploads that resume: hash the files, ask the registry which are already there with the
same size and SHA-256, upload only the rest by presigned POSTs in parallel, then wait until each
uploaded image is `ready` or `failed` in the registry.

Bytes go straight to S3; the API only hands out the presigned POSTs (100 per call) and answers
the registry listing. An interrupted upload run again skips whatever the registry already holds.
"""
from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Iterable

import httpx

from pixelpool.errors import ApiError, TimeoutError, TransferError
from pixelpool.models import Image, PresignedPost

if TYPE_CHECKING:
    from pixelpool.client import Client

# What the share accepts as images (the API refuses any other extension).
CONTENT_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
}
URLS_PER_CALL = 100  # the most `upload-urls` hands out at once
ATTEMPTS = 4
HASH_CHUNK = 1 << 20

# on_progress(stage, done, total): stages "hash" and "upload" count bytes, "ingest" images.
OnProgress = Callable[[str, int, "int | None"], None]


@dataclass
class LocalFile:
    path: Path
    relative: str  # the path under the upload's folder, '/'-separated
    size: int
    sha256: str = ""
    key: str = ""  # the object's key, as the API presigned it


@dataclass
class UploadResult:
    """What an upload did: `skipped` were already registered with the same bytes; `failed` lists the
    images the registry refused (with its reason) or that could not be sent."""

    folder: str
    total: int
    skipped: int
    uploaded: int
    ready: int
    failed: list[dict[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    seconds: float = 0.0
    waited: bool = True
    phases: dict[str, float] = field(default_factory=dict)  # seconds: hash, check, send, ingest

    def as_dict(self) -> dict:
        return {"folder": self.folder, "total": self.total, "skipped": self.skipped, "uploaded": self.uploaded,
                "ready": self.ready, "failed": self.failed, "ignored": self.ignored,
                "bytes_uploaded": self.bytes_uploaded, "seconds": round(self.seconds, 3), "waited": self.waited,
                "phases": {name: round(seconds, 3) for name, seconds in self.phases.items()}}


def collect(sources: Iterable[Path]) -> tuple[list[LocalFile], list[str]]:
    """The image files of folders (recursively, folders kept in their relative paths) and of single
    files (by name), in path order; and what was left out (not an image, or empty)."""
    found: dict[str, LocalFile] = {}
    ignored: list[str] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            candidates = [(p, p.relative_to(source).as_posix()) for p in sorted(source.rglob("*")) if p.is_file()]
        elif source.is_file():
            candidates = [(source, source.name)]
        else:
            raise FileNotFoundError(f"{source}: no such file or folder")
        for path, relative in candidates:
            size = path.stat().st_size
            if path.suffix.lower() not in CONTENT_TYPES or path.name.startswith(".") or size == 0:
                ignored.append(str(path))
            elif relative in found:
                raise ValueError(f"{relative}: given twice ({found[relative].path} and {path})")
            else:
                found[relative] = LocalFile(path, relative, size)
    return [found[key] for key in sorted(found)], ignored


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_prefix(folder: str) -> str:
    folder = folder.strip("/")
    return f"{folder}/" if folder else ""


class Uploader:
    """Uploads files into the share (or into a dataset's prefix) and waits for their ingestion;
    `transport` carries the S3 POSTs (tests inject one)."""

    def __init__(self, client: "Client", *, workers: int = 8, on_progress: OnProgress | None = None,
                 poll_interval: float = 0.5, ingest_timeout: float = 900.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.client = client
        self.workers = max(1, workers)
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self.poll_interval, self.ingest_timeout = poll_interval, ingest_timeout
        self._lock = threading.Lock()
        self._sent = 0
        self._s3 = httpx.Client(timeout=httpx.Timeout(300.0, connect=30.0), transport=transport,
                                limits=httpx.Limits(max_connections=self.workers,
                                                    max_keepalive_connections=self.workers))

    def close(self) -> None:
        self._s3.close()

    def upload(self, sources: Iterable[Path], folder: str = "", *, dataset_id: str | None = None,
               wait_ready: bool = True) -> UploadResult:
        """Upload the images of `sources` under `folder` of the share (or of dataset `dataset_id`)."""
        started = time.monotonic()
        phases: dict[str, float] = {}
        files, ignored = collect(sources)
        base = folder_prefix(folder)
        if dataset_id is not None:
            base = folder_prefix(self.client.datasets.get(dataset_id).prefix) + base
        self._hash(files)
        phases["hash"] = time.monotonic() - started
        registered = self._registered(base)
        todo, kept = [], []
        for item in files:
            record = registered.get(base + item.relative)
            same = (record is not None and record.status != "missing" and record.file_size_bytes == item.size
                    and record.checksum_sha256 == item.sha256)
            (kept if same else todo).append(item)
        phases["check"] = time.monotonic() - started - sum(phases.values())
        failed_to_send = self._send(todo, folder, dataset_id)
        phases["send"] = time.monotonic() - started - sum(phases.values())
        sent = [item for item in todo if item.relative not in failed_to_send]
        result = UploadResult(folder=base.rstrip("/"), total=len(files), skipped=len(kept), uploaded=len(sent),
                              ready=0, ignored=ignored, bytes_uploaded=self._sent, waited=wait_ready, phases=phases)
        result.failed = [{"path": base + rel, "reason": reason} for rel, reason in failed_to_send.items()]
        if wait_ready:
            records = self._wait_ingested(base, sent)
            phases["ingest"] = time.monotonic() - started - sum(phases.values())
            fresh = {item.relative for item in sent}
            for item in kept + sent:
                record = records.get(item.key) if item.relative in fresh else registered[base + item.relative]
                if record is not None and record.status == "ready":
                    result.ready += 1
                elif record is not None:
                    result.failed.append({"path": record.file_path, "reason": record.reason or record.status})
        result.seconds = time.monotonic() - started
        return result

    # Steps -----------------------------------------------------------------------------------------

    def _hash(self, files: list[LocalFile]) -> None:
        total, done = sum(item.size for item in files), 0
        self.on_progress("hash", 0, total)
        with ThreadPoolExecutor(self.workers) as pool:
            for item, digest in zip(files, pool.map(lambda f: sha256_of(f.path), files)):
                item.sha256 = digest
                done += item.size
                self.on_progress("hash", done, total)

    def _registered(self, base: str) -> dict[str, Image]:
        """The registry's records under the upload's folder (the whole registry for the share root)."""
        folder = base.rstrip("/") or None
        return {image.file_path: image for image in self.client.images.iter(folder=folder)}

    def _send(self, todo: list[LocalFile], folder: str, dataset_id: str | None) -> dict[str, str]:
        """Presigned POSTs of every file, `workers` at a time; URLs are asked for a batch at a time,
        no sooner than needed (they expire). Returns the files that could not be sent, with why."""
        total = sum(item.size for item in todo)
        self.on_progress("upload", 0, total)
        failed: dict[str, str] = {}
        pending: set[Future] = set()
        pool = ThreadPoolExecutor(self.workers)
        try:
            for start in range(0, len(todo), URLS_PER_CALL):
                batch = todo[start:start + URLS_PER_CALL]
                while len(pending) > self.workers * 2:
                    _, pending = wait(pending, return_when=FIRST_COMPLETED)
                posts = self._presign(batch, folder, dataset_id)
                for item, post in zip(batch, posts):
                    item.key = post.path
                    future = pool.submit(self._post, item, post, folder, dataset_id, total)
                    future.add_done_callback(lambda f, rel=item.relative: _note_failure(f, rel, failed))
                    pending.add(future)
            wait(pending)
        finally:  # on Ctrl-C or an API error, files not yet started are not sent
            pool.shutdown(wait=True, cancel_futures=True)
        return failed

    def _presign(self, batch: list[LocalFile], folder: str, dataset_id: str | None) -> list[PresignedPost]:
        path = (f"/api/v1/datasets/{dataset_id}/upload-urls" if dataset_id else "/api/v1/share/upload-urls")
        body = {"folder": folder.strip("/") or None,
                "files": [{"path": item.relative, "size": item.size,
                           "content_type": CONTENT_TYPES[PurePosixPath(item.relative).suffix.lower()]}
                          for item in batch]}
        body = {key: value for key, value in body.items() if value is not None}
        return [PresignedPost.model_validate(post) for post in self.client.data("POST", path, json=body)]

    def _post(self, item: LocalFile, post: PresignedPost, folder: str, dataset_id: str | None, total: int) -> None:
        """One file to S3, retried on connection errors, 5xx and an expired URL (asked for again)."""
        content_type = CONTENT_TYPES[PurePosixPath(item.relative).suffix.lower()]
        for attempt in range(ATTEMPTS):
            try:
                with open(item.path, "rb") as file:
                    response = self._s3.post(post.url, data=post.fields,
                                             files={"file": (PurePosixPath(item.relative).name, file, content_type)})
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code < 300:
                    with self._lock:
                        self._sent += item.size
                        sent = self._sent
                    self.on_progress("upload", sent, total)
                    return
                problem = f"S3 answered {response.status_code}: {_s3_message(response.text)}"
                if response.status_code == 403 and "expired" in response.text.lower():
                    post = self._presign([item], folder, dataset_id)[0]
                elif response.status_code < 500 and response.status_code != 429:
                    raise TransferError(problem)
            if attempt + 1 < ATTEMPTS:
                time.sleep(0.5 * 2 ** attempt)
        raise TransferError(f"{item.relative}: {problem} (after {ATTEMPTS} attempts)")

    def _wait_ingested(self, base: str, sent: list[LocalFile]) -> dict[str, Image]:
        """Poll the registry until every sent file has a record of its bytes (`ready` or `failed`)."""
        wanted = {item.key: item.sha256 for item in sent}
        deadline = time.monotonic() + self.ingest_timeout
        self.on_progress("ingest", 0, len(wanted))
        while True:
            polled = time.monotonic()
            records = self._registered(base) if wanted else {}
            polled = time.monotonic() - polled
            settled = sum(1 for key, digest in wanted.items()
                          if key in records and records[key].checksum_sha256 == digest
                          and records[key].status in ("ready", "failed"))
            self.on_progress("ingest", settled, len(wanted))
            if settled == len(wanted):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(wanted) - settled} of {len(wanted)} uploaded image(s) not ingested "
                                   f"after {self.ingest_timeout:.0f} s")
            # Each poll lists the folder (200 records a request). The same server ingests what was
            # sent: polls spaced at least three times their own length keep them to a quarter of it.
            time.sleep(max(self.poll_interval, 3 * polled))


def _note_failure(future: Future, relative: str, failed: dict[str, str]) -> None:
    if future.cancelled():
        failed[relative] = "not sent: the upload was stopped"
        return
    exc = future.exception()
    if isinstance(exc, (TransferError, ApiError)):
        failed[relative] = str(exc)
    elif exc is not None:
        failed[relative] = f"{exc.__class__.__name__}: {exc}"


def _s3_message(text: str) -> str:
    """S3's XML error, as its <Code> and <Message>."""
    import re

    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text)
    if code or message:
        return " ".join(m.group(1) for m in (code, message) if m)
    return text[:200]
