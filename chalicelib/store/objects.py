"""S3 objects: the share bucket (listing, reading, presigned uploads), small documents and
thumbnails kept in the cache bucket, and export artifacts (server-side copies, streamed multipart
writes). The only module that talks to S3."""
from __future__ import annotations

import io
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator
from urllib.parse import quote

from botocore.exceptions import ClientError

from chalicelib.errors import BadRequestError, StoreError
from chalicelib.store.aws import client

CHUNK_BYTES = 1 << 20
PART_BYTES = 8 << 20  # multipart part size: S3 needs >= 5 MiB but the last; memory stays ~ one part
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
LAST_CHARACTER = "\U0010ffff"
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None = None


@dataclass(frozen=True)
class Listing:
    """One level of a prefix: its sub-prefixes and objects, and the cursor of the next page."""

    prefixes: list[str]
    objects: list[ObjectInfo]
    next_cursor: str | None


def _etag(value: str) -> str:
    return value.strip('"')


def _info(entry: dict) -> ObjectInfo:
    return ObjectInfo(key=entry["Key"], size=int(entry["Size"]), etag=_etag(entry["ETag"]),
                      last_modified=entry["LastModified"])


def _disposition(kind: str, filename: str | None) -> str:
    """A Content-Disposition value (RFC 6266): an ASCII `filename` fallback and the exact UTF-8 `filename*`."""
    if not filename:
        return kind
    fallback = "".join(char if " " <= char < "\x7f" and char not in '"\\' else "_" for char in filename)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _position_after(contents: list[dict], prefixes: list[str]) -> str | None:
    """The StartAfter that continues after this page. A common prefix `p/` stands for every key
    under it, so the position after it is `p/` followed by the highest code point (S3 orders
    keys by UTF-8 bytes, which is code-point order)."""
    candidates = [entry["Key"] for entry in contents[-1:]] + [prefix + LAST_CHARACTER for prefix in prefixes[-1:]]
    return max(candidates) if candidates else None


class Bucket:
    def __init__(self, name: str) -> None:
        self.name = name

    def list_page(self, prefix: str, after: str | None = None, max_keys: int = 1000,
                  recursive: bool = False) -> Listing:
        """One ListObjectsV2 page under `prefix`: direct children only (a '/' delimiter) unless
        `recursive`. The page's `next_cursor` is the `after` of the next page: a position in key
        order (S3's StartAfter) rather than S3's continuation token, so any position a caller
        hands back is one S3 accepts."""
        params: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": max_keys}
        if not recursive:
            params["Delimiter"] = "/"
        if after:
            params["StartAfter"] = after
        try:
            page = client("s3").list_objects_v2(**params)
        except ClientError as exc:
            if _code(exc) in ("InvalidArgument", "InvalidToken"):
                raise BadRequestError(f"cursor is not valid for this listing: {_code(exc)}",
                                      [{"field": "cursor", "message": _code(exc)}]) from exc
            raise StoreError(f"listing s3://{self.name}/{prefix} failed: {_code(exc)}") from exc
        prefixes = [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]
        contents = page.get("Contents", [])
        return Listing(
            prefixes=prefixes,
            objects=[_info(entry) for entry in contents if not entry["Key"].endswith("/")],
            next_cursor=_position_after(contents, prefixes) if page.get("IsTruncated") else None,
        )

    def walk(self, prefix: str) -> Iterator[list[ObjectInfo]]:
        """Every object under `prefix`, a page (up to 1,000) at a time: one ListObjectsV2 per page."""
        paginator = client("s3").get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
                yield [_info(entry) for entry in page.get("Contents", []) if not entry["Key"].endswith("/")]
        except ClientError as exc:
            raise StoreError(f"listing s3://{self.name}/{prefix} failed: {_code(exc)}") from exc

    def head(self, key: str) -> ObjectInfo | None:
        found = self._fetch("head_object", key)
        return found[0] if found else None

    def open(self, key: str) -> tuple[ObjectInfo, Iterator[bytes]] | None:
        """The object's facts and its bytes as a stream of chunks; None when there is no such object."""
        found = self._fetch("get_object", key)
        return (found[0], found[1]["Body"].iter_chunks(CHUNK_BYTES)) if found else None

    def _fetch(self, operation: str, key: str) -> tuple[ObjectInfo, dict] | None:
        try:
            response = getattr(client("s3"), operation)(Bucket=self.name, Key=key)
        except ClientError as exc:
            if _code(exc) in MISSING_CODES:
                return None
            raise StoreError(f"reading s3://{self.name}/{key} failed: {_code(exc)}") from exc
        info = ObjectInfo(key=key, size=int(response["ContentLength"]), etag=_etag(response["ETag"]),
                          last_modified=response["LastModified"], version_id=response.get("VersionId"))
        return info, response

    def read(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        """The whole object and its user metadata; None when there is no such object."""
        found = self._fetch("get_object", key)
        if found is None:
            return None
        return b"".join(found[1]["Body"].iter_chunks(CHUNK_BYTES)), dict(found[1].get("Metadata") or {})

    def metadata(self, key: str) -> dict[str, str] | None:
        """The object's user metadata (HeadObject); None when there is no such object."""
        found = self._fetch("head_object", key)
        return dict(found[1].get("Metadata") or {}) if found else None

    def delete(self, key: str) -> None:
        try:
            client("s3").delete_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            raise StoreError(f"deleting s3://{self.name}/{key} failed: {_code(exc)}") from exc

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def put(self, key: str, data: bytes, content_type: str, cache_control: str | None = None,
            metadata: dict[str, str] | None = None) -> None:
        params: dict[str, Any] = {"Bucket": self.name, "Key": key, "Body": data, "ContentType": content_type}
        if cache_control:
            params["CacheControl"] = cache_control
        if metadata:
            params["Metadata"] = metadata
        try:
            client("s3").put_object(**params)
        except ClientError as exc:
            raise StoreError(f"writing s3://{self.name}/{key} failed: {_code(exc)}") from exc

    def put_json(self, key: str, document: Any) -> None:
        self.put(key, json.dumps(document, separators=(",", ":"), default=str).encode(), "application/json")

    def get_json(self, key: str) -> Any:
        opened = self.open(key)
        if opened is None:
            raise StoreError(f"s3://{self.name}/{key} is missing")
        return json.loads(b"".join(opened[1]))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (DeleteObjects, 1,000 keys a request); returns how many."""
        deleted = 0
        for page in self.walk(prefix):
            if not page:
                continue
            try:
                client("s3").delete_objects(Bucket=self.name, Delete={
                    "Objects": [{"Key": info.key} for info in page], "Quiet": True})
            except ClientError as exc:
                raise StoreError(f"deleting under s3://{self.name}/{prefix} failed: {_code(exc)}") from exc
            deleted += len(page)
        return deleted

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Delete these objects (DeleteObjects, 1,000 keys a request); returns how many were asked."""
        return self._delete_objects([{"Key": key} for key in dict.fromkeys(keys)], "objects")

    def delete_versions(self, *prefixes: str) -> int:
        """Delete every version and delete marker under each prefix (a versioned bucket keeps the old
        bytes of a deleted or replaced object otherwise): ListObjectVersions pages, then DeleteObjects
        of 1,000 versions a request across the prefixes. Returns how many versions went."""
        found: list[dict[str, str]] = []
        paginator = client("s3").get_paginator("list_object_versions")
        for prefix in prefixes:
            try:
                for page in paginator.paginate(Bucket=self.name, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
                    found += [{"Key": entry["Key"], "VersionId": entry["VersionId"]}
                              for kind in ("Versions", "DeleteMarkers") for entry in page.get(kind, ())]
            except ClientError as exc:
                raise StoreError(f"listing versions under s3://{self.name}/{prefix} failed: {_code(exc)}") from exc
        return self._delete_objects(found, ", ".join(prefixes[:3]))

    def delete_earlier_versions(self, prefix: str, keys: set[str]) -> int:
        """Delete the noncurrent versions of `keys` (their earlier bytes in a versioned bucket), all
        found under `prefix`: ListObjectVersions pages, then DeleteObjects of 1,000 a request."""
        old: list[dict[str, str]] = []
        paginator = client("s3").get_paginator("list_object_versions")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
                old += [{"Key": entry["Key"], "VersionId": entry["VersionId"]} for entry in page.get("Versions", ())
                        if entry["Key"] in keys and not entry.get("IsLatest")]
        except ClientError as exc:
            raise StoreError(f"listing versions under s3://{self.name}/{prefix} failed: {_code(exc)}") from exc
        return self._delete_objects(old, prefix)

    def _delete_objects(self, objects: list[dict[str, str]], what: str) -> int:
        for start in range(0, len(objects), 1000):
            try:
                answer = client("s3").delete_objects(Bucket=self.name, Delete={
                    "Objects": objects[start : start + 1000], "Quiet": True})
            except ClientError as exc:
                raise StoreError(f"deleting {what} in s3://{self.name} failed: {_code(exc)}") from exc
            errors = answer.get("Errors") or []
            if errors:
                raise StoreError(f"deleting {what} in s3://{self.name} failed: {errors[0].get('Code')} "
                                 f"for {errors[0].get('Key')}")
        return len(objects)

    def presign_get(self, key: str, expires_in: int, filename: str | None = None, disposition: str = "attachment",
                    content_type: str | None = None) -> str:
        """A presigned GET that makes S3 answer with the headers given here, not the stored ones.

        An object's stored Content-Type is whatever its uploader said (`text/html` on `x.png`), so
        the answer is always `application/octet-stream` as an attachment unless the caller vouches
        for the bytes with `content_type`; only then may `disposition` be `inline`.
        """
        inline = disposition == "inline" and content_type is not None
        params: dict[str, Any] = {
            "Bucket": self.name, "Key": key,
            "ResponseContentType": content_type or "application/octet-stream",
            "ResponseContentDisposition": _disposition("inline" if inline else "attachment", filename),
        }
        return client("s3").generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def presign_put(self, key: str, content_type: str, size: int, expires_in: int) -> str:
        """A presigned PUT of exactly `key`; Content-Type and Content-Length are signed, so S3 refuses
        an upload of another type or length."""
        params = {"Bucket": self.name, "Key": key, "ContentType": content_type, "ContentLength": size}
        return client("s3").generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)

    def presign_post(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A browser-style POST upload of exactly `key`, refused by S3 above `max_bytes` or with another type."""
        return client("s3").generate_presigned_post(
            Bucket=self.name,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )


    # Multipart uploads (datasets: clients PUT the parts straight to S3) ---------------------------

    def start_multipart(self, key: str, content_type: str) -> str:
        """A new multipart upload of `key`; returns its upload id."""
        try:
            return client("s3").create_multipart_upload(Bucket=self.name, Key=key, ContentType=content_type)["UploadId"]
        except ClientError as exc:
            raise StoreError(f"starting an upload of s3://{self.name}/{key} failed: {_code(exc)}") from exc

    def presign_part(self, key: str, upload_id: str, part_number: int, expires_in: int) -> str:
        """A presigned PUT of one part of a multipart upload."""
        return client("s3").generate_presigned_url(
            "upload_part", Params={"Bucket": self.name, "Key": key, "UploadId": upload_id, "PartNumber": part_number},
            ExpiresIn=expires_in)

    def parts(self, key: str, upload_id: str) -> list[dict[str, Any]] | None:
        """The parts received so far ({part_number, etag, size}), or None if there is no such upload."""
        found: list[dict[str, Any]] = []
        marker = 0
        try:
            while True:
                page = client("s3").list_parts(Bucket=self.name, Key=key, UploadId=upload_id, PartNumberMarker=marker)
                found += [{"part_number": part["PartNumber"], "etag": part["ETag"], "size": part["Size"]}
                          for part in page.get("Parts", ())]
                if not page.get("IsTruncated"):
                    return found
                marker = page["NextPartNumberMarker"]
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return None
            raise StoreError(f"listing the parts of s3://{self.name}/{key} failed: {_code(exc)}") from exc

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str | None:
        """Join the parts (number, ETag) into the object; returns its ETag, or None if there is no
        such upload. A part S3 does not have, or a part too small, is a ValueError naming it."""
        try:
            answer = client("s3").complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]})
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchUpload":
                return None
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise ValueError(exc.response.get("Error", {}).get("Message") or code) from exc
            raise StoreError(f"completing the upload of s3://{self.name}/{key} failed: {code}") from exc
        return answer.get("ETag")

    def abort_multipart(self, key: str, upload_id: str) -> bool:
        """Abort an upload and drop its parts; False if there was no such upload."""
        try:
            client("s3").abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                return False
            raise StoreError(f"aborting the upload of s3://{self.name}/{key} failed: {_code(exc)}") from exc
        return True

    def lines(self, key: str) -> Iterator[bytes]:
        """The object's lines (without the newline), read as a stream."""
        opened = self.open(key)
        if opened is None:
            raise StoreError(f"s3://{self.name}/{key} is missing")
        rest = b""
        for chunk in opened[1]:
            rest += chunk
            *complete, rest = rest.split(b"\n")
            yield from complete
        if rest:
            yield rest

    def copy_from(self, source: "Bucket", source_key: str, key: str) -> None:
        """Server-side copy (CopyObject): the bytes never pass through this process."""
        try:
            client("s3").copy_object(Bucket=self.name, Key=key, CopySource={"Bucket": source.name, "Key": source_key})
        except ClientError as exc:
            raise StoreError(f"copying s3://{source.name}/{source_key} failed: {_code(exc)}") from exc

    @contextmanager
    def writer(self, key: str, content_type: str) -> Iterator["MultipartWriter"]:
        """A write-only stream to `key` uploaded in parts as it fills; completed on a clean exit,
        aborted (nothing left behind) on an error."""
        out = MultipartWriter(self.name, key, content_type)
        try:
            yield out
        except BaseException:
            out.abort()
            raise
        out.complete()


class MultipartWriter(io.RawIOBase):
    """Buffers writes and uploads every `PART_BYTES` as one part of a multipart upload. Not
    seekable (zipfile then writes data descriptors), but tells its position."""

    def __init__(self, bucket: str, key: str, content_type: str) -> None:
        super().__init__()
        self.bucket, self.key = bucket, key
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._position = 0
        try:
            self._upload_id = client("s3").create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type)["UploadId"]
        except ClientError as exc:
            raise StoreError(f"starting an upload to s3://{bucket}/{key} failed: {_code(exc)}") from exc

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data) -> int:
        self._buffer += data
        self._position += len(data)
        while len(self._buffer) >= PART_BYTES:
            part = bytes(self._buffer[:PART_BYTES])
            del self._buffer[:PART_BYTES]
            self._upload(part)
        return len(data)

    def _upload(self, part: bytes) -> None:
        number = len(self._parts) + 1
        try:
            response = client("s3").upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                PartNumber=number, Body=part)
        except ClientError as exc:
            raise StoreError(f"uploading part {number} of s3://{self.bucket}/{self.key} failed: {_code(exc)}") from exc
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))
            self._buffer.clear()
        try:
            client("s3").complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                                   MultipartUpload={"Parts": self._parts})
        except ClientError as exc:
            raise StoreError(f"completing s3://{self.bucket}/{self.key} failed: {_code(exc)}") from exc

    def abort(self) -> None:
        try:
            client("s3").abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        except ClientError:
            pass  # an upload left open is removed by the bucket's lifecycle rule
