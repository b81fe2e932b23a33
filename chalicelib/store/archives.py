"""S3 as a ZIP archive's `RangeSource` (ranged GETs of one object version) and as the `Sink` its
members are streamed into (PutObject below 8 MiB, multipart above), for formats/zip_archive.py."""
from __future__ import annotations

import mimetypes
import threading
from typing import Iterable, Iterator

from botocore.exceptions import ClientError

from chalicelib.clock import utcnow
from chalicelib.errors import StoreError
from chalicelib.store.objects import ObjectInfo
from chalicelib.formats.zip_archive import PART_BYTES, READ_BYTES

def _written(key: str, size: int, response: dict) -> ObjectInfo:
    return ObjectInfo(key=key, size=size, etag=response["ETag"].strip('"'), last_modified=utcnow(),
                      version_id=response.get("VersionId"))


class S3Source:
    """An S3 object read by ranged GETs, every request pinned to one version by its ETag: the one
    given (what an earlier step inspected, its `etag`) or else the one seen first. An archive
    replaced meanwhile fails the read (PreconditionFailed) instead of mixing two archives."""

    def __init__(self, s3, bucket: str, key: str, etag: str | None = None) -> None:
        self._s3, self.bucket, self.key = s3, bucket, key
        self._size: int | None = None
        self._etag = etag

    @property
    def etag(self) -> str:
        self.size()
        return self._etag

    def size(self) -> int:
        if self._size is None:
            pinned = {"IfMatch": self._etag} if self._etag else {}
            head = self._call("head_object", Bucket=self.bucket, Key=self.key, **pinned)
            self._size, self._etag = int(head["ContentLength"]), head["ETag"]
        return self._size

    def read(self, start: int, end: int) -> bytes:
        return b"".join(self.stream(start, end))

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        if end <= start:
            return
        self.size()
        response = self._call("get_object", Bucket=self.bucket, Key=self.key, IfMatch=self._etag,
                              Range=f"bytes={start}-{end - 1}")
        yield from response["Body"].iter_chunks(READ_BYTES)

    def _call(self, operation: str, **params):
        try:
            return getattr(self._s3, operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StoreError(f"reading s3://{self.bucket}/{self.key} failed: {code}") from exc


class WindowedSource:
    """A `RangeSource` that serves small reads from windows of `window` bytes read ahead: the
    members of an extract batch lie one after another in the archive, so a batch of small images
    costs one GET per window instead of one per member (fewer requests on S3; on the emulator,
    whose ranged GET reads the whole object, the difference between minutes and seconds). Reads
    larger than `SMALL_READ` and streams of large members go to `source` as they are. Thread-safe:
    the batch's workers share it; at most `keep` windows are held."""

    SMALL_READ = 1 << 20

    def __init__(self, source: S3Source, window: int = 16 << 20, keep: int = 2) -> None:
        self._source, self._window, self._keep = source, window, keep
        self._windows: list[tuple[int, bytes]] = []  # (start, bytes), most recent last
        self._lock = threading.Lock()

    def size(self) -> int:
        return self._source.size()

    def read(self, start: int, end: int) -> bytes:
        if end - start > self.SMALL_READ:
            return self._source.read(start, end)
        with self._lock:
            for at, data in self._windows:
                if at <= start and end <= at + len(data):
                    return data[start - at:end - at]
            data = self._source.read(start, min(self.size(), start + max(self._window, end - start)))
            self._windows = [*self._windows, (start, data)][-self._keep:]
            return data[:end - start]

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        if end - start <= self.SMALL_READ:
            yield self.read(start, end)
            return
        yield from self._source.stream(start, end)


class S3Sink:
    """Members written to one bucket: one PutObject below `part_bytes`, else a multipart upload
    of `part_bytes` parts, aborted when the member's stream fails."""

    def __init__(self, s3, bucket: str, part_bytes: int = PART_BYTES) -> None:
        self._s3, self.bucket, self.part_bytes = s3, bucket, part_bytes

    def write(self, key: str, chunks: Iterable[bytes], size: int) -> ObjectInfo:
        """Write the member; what S3 then says of the object (its ETag and version)."""
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        if size < self.part_bytes:
            body = bytearray()
            for chunk in chunks:
                body += chunk
            response = self._call("put_object", key, Bucket=self.bucket, Key=key, Body=bytes(body),
                                  ContentType=content_type)
            return _written(key, len(body), response)
        upload_id = self._call("create_multipart_upload", key, Bucket=self.bucket, Key=key,
                               ContentType=content_type)["UploadId"]
        try:
            parts = self._parts(key, upload_id, chunks)
            response = self._call("complete_multipart_upload", key, Bucket=self.bucket, Key=key,
                                  UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError:
                pass  # an upload left open is removed by the bucket's lifecycle rule
            raise
        return _written(key, size, response)

    def _parts(self, key: str, upload_id: str, chunks: Iterable[bytes]) -> list[dict]:
        parts: list[dict] = []
        buffer = bytearray()

        def upload(body: bytearray) -> None:
            number = len(parts) + 1
            response = self._call("upload_part", key, Bucket=self.bucket, Key=key, UploadId=upload_id,
                                  PartNumber=number, Body=body)
            parts.append({"PartNumber": number, "ETag": response["ETag"]})

        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                room = self.part_bytes - len(buffer)
                buffer += view[:room]
                view = view[room:]
                if len(buffer) == self.part_bytes:
                    upload(buffer)
                    buffer = bytearray()
        if buffer or not parts:
            upload(buffer)
        return parts

    def _call(self, operation: str, key: str, **params):
        try:
            return getattr(self._s3, operation)(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise StoreError(f"writing s3://{self.bucket}/{key} failed ({operation}): {code}") from exc
