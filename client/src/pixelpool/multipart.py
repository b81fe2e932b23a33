"""Large files (a dataset's ZIP, an annotation file) by S3 multipart upload: the API starts it and
presigns each part's PUT; parts go straight to S3 in parallel, each retried on its own (with a fresh
URL when one expired); the API joins them. A file that cannot be sent is aborted, not left half-made."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import httpx

from pixelpool.errors import TransferError
from pixelpool.models import PartUpload, Staged

if TYPE_CHECKING:
    from pixelpool.client import Client

ATTEMPTS = 5
URLS_PER_CALL = 100


class MultipartUpload:
    """One file to a dataset's staging area; `transport` carries the part PUTs (tests inject one)."""

    def __init__(self, client: "Client", dataset_id: str, path: Path, *, workers: int = 4,
                 on_progress: Callable[[str, int, "int | None"], None] | None = None,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.dataset_id, self.path = client, dataset_id, Path(path)
        self.workers = max(1, workers)
        self.on_progress = on_progress or (lambda stage, done, total: None)
        self._sleep = sleep
        self._http = httpx.Client(timeout=httpx.Timeout(300.0, connect=30.0), transport=transport)
        self._urls: dict[int, str] = {}
        self._lock = threading.Lock()
        self._sent = 0
        self._base = f"/api/v1/datasets/{dataset_id}/uploads"

    def run(self) -> Staged:
        """Send the file; returns the staged upload (its key and S3 ETag)."""
        size = self.path.stat().st_size
        started = PartUpload.model_validate(self.client.data(
            "POST", self._base, json={"file_name": self.path.name, "size": size}))
        self._remember(started)
        self.on_progress(f"upload:{self.path.name}", 0, size)
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                numbers = range(1, started.part_count + 1)
                etags = list(pool.map(lambda n: self._send_part(started, n), numbers))
        except BaseException:
            try:  # the parts S3 holds are dropped; the bucket's lifecycle rule would do it in two days
                self.client.request("POST", f"{self._base}/abort",
                                    json={"file_name": started.file_name, "upload_id": started.upload_id})
            except Exception:  # noqa: BLE001 - the first failure is the one to report
                pass
            raise
        parts = [{"part_number": number, "etag": etag} for number, etag in enumerate(etags, 1)]
        done = self.client.data("POST", f"{self._base}/complete",
                                json={"file_name": started.file_name, "upload_id": started.upload_id, "parts": parts})
        self._http.close()
        return Staged.model_validate({**done, "size": size})

    def _remember(self, answer: PartUpload) -> None:
        with self._lock:
            self._urls.update({part.part_number: part.url for part in answer.parts})

    def _url(self, upload: PartUpload, number: int, fresh: bool = False) -> str:
        with self._lock:
            known = None if fresh else self._urls.get(number)
        if known:
            return known
        answer = PartUpload.model_validate(self.client.data(
            "GET", f"{self._base}/part-urls",
            params={"file_name": upload.file_name, "upload_id": upload.upload_id, "size": upload.size,
                    "first": number, "count": 1 if fresh else URLS_PER_CALL}))
        self._remember(answer)
        with self._lock:
            return self._urls[number]

    def _send_part(self, upload: PartUpload, number: int) -> str:
        offset = (number - 1) * upload.part_size
        length = min(upload.part_size, upload.size - offset)
        with open(self.path, "rb") as file:
            file.seek(offset)
            body = file.read(length)
        fresh, problem = False, ""
        for attempt in range(ATTEMPTS):
            try:
                response = self._http.put(self._url(upload, number, fresh), content=body)
            except httpx.TransportError as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if response.status_code < 300 and response.headers.get("ETag"):
                    with self._lock:
                        self._sent += length
                        sent = self._sent
                    self.on_progress(f"upload:{self.path.name}", sent, upload.size)
                    return response.headers["ETag"]
                problem = f"S3 answered {response.status_code}: {response.text[:200]}"
                fresh = response.status_code == 403  # an expired URL: ask for this part's again
                if response.status_code < 500 and response.status_code not in (403, 429):
                    break
            if attempt + 1 < ATTEMPTS:
                self._sleep(0.5 * 2 ** attempt)
        raise TransferError(f"{self.path.name} part {number}: {problem}")
