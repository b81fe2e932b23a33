"""Large files (a dataset's ZIP, an annotation file) by S3 multipart upload: the API starts it and
presigns each part's PUT; parts go straight to S3 in parallel, each retried on its own (with a fresh
URL when one expired); the API joins them.

An upload that stops half-way (Ctrl-C, a killed process, a part that kept failing) resumes: its
upload id is noted in the config folder (`uploads/<dataset>/<file>.json`, with the file's size and
modification time), and the next run for the same unchanged file asks S3 which parts it already has
(`…/uploads/parts`) and sends only the others. An upload never resumed is aborted after two days by
the bucket's lifecycle rule.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import httpx

from pixelpool.config import config_path
from pixelpool.errors import ApiError, TransferError
from pixelpool.models import PartUpload, ReceivedPart, Staged

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
        """Send the file (what S3 does not have yet of an earlier, interrupted run); returns the
        staged upload (its key and S3 ETag)."""
        stat = self.path.stat()
        upload, received = self._resumed(stat.st_size, stat.st_mtime_ns)
        if upload is None:
            upload = PartUpload.model_validate(self.client.data(
                "POST", self._base, json={"file_name": self.path.name, "size": stat.st_size}))
            self._remember(upload)
            self._note({"upload_id": upload.upload_id, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "part_size": upload.part_size, "part_count": upload.part_count})
        self._sent = sum(part.size for part in received.values())
        self.on_progress(f"upload:{self.path.name}", self._sent, stat.st_size)
        with ThreadPoolExecutor(self.workers) as pool:
            numbers = range(1, upload.part_count + 1)
            etags = list(pool.map(lambda n: received[n].etag if n in received else self._send_part(upload, n),
                                  numbers))
        parts = [{"part_number": number, "etag": etag} for number, etag in enumerate(etags, 1)]
        done = self.client.data("POST", f"{self._base}/complete",
                                json={"file_name": upload.file_name, "upload_id": upload.upload_id, "parts": parts})
        self._state().unlink(missing_ok=True)
        self._http.close()
        return Staged.model_validate({**done, "size": stat.st_size})

    def _state(self) -> Path:
        return config_path().parent / "uploads" / self.dataset_id / f"{self.path.name}.json"

    def _note(self, state: dict) -> None:
        path = self._state()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state))

    def _resumed(self, size: int, mtime_ns: int) -> tuple[PartUpload | None, dict[int, ReceivedPart]]:
        """The earlier upload of this same file and the parts S3 holds of it, if there is one."""
        try:
            state = json.loads(self._state().read_text())
        except (OSError, ValueError):
            return None, {}
        if (state.get("size"), state.get("mtime_ns")) != (size, mtime_ns):
            return None, {}  # the file changed: its parts are not these bytes
        try:
            listed = self.client.data("GET", f"{self._base}/parts",
                                      params={"file_name": self.path.name, "upload_id": state["upload_id"]})
        except ApiError as exc:
            if exc.status == 404:  # completed, aborted or expired since
                return None, {}
            raise
        upload = PartUpload(file_name=self.path.name, key="", upload_id=state["upload_id"], size=size,
                            part_size=state["part_size"], part_count=state["part_count"], parts=[],
                            expires_at="1970-01-01T00:00:00Z")
        received = {}
        for part in (ReceivedPart.model_validate(item) for item in listed):
            offset = (part.part_number - 1) * upload.part_size
            if part.size == min(upload.part_size, size - offset):
                received[part.part_number] = part
        return upload, received

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
