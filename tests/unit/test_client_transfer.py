"""The SDK's transfers against a fake API and a fake S3 (httpx.MockTransport): the upload skip rule,
multipart parts retried one by one, downloads checked against the size the API gave."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from pixelpool import Client, TransferError
from pixelpool.downloads import download, unzip
from pixelpool.multipart import MultipartUpload
from pixelpool.uploads import Uploader
from tests.imagefiles import picture


def envelope(data, **extra):
    return httpx.Response(200, json={"data": data, "message": "ok", "status_code": 200, **extra})


class FakeShare:
    """The registry routes and presigned POSTs: an object POSTed to S3 is registered at once."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}
        self.posted: list[str] = []

    def api(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/shared-images":
            folder = request.url.params.get("folder", "")
            items = [r for k, r in sorted(self.records.items()) if k.startswith(folder + "/")]
            return envelope(items, meta={"total": len(items), "page": 1, "page_size": 200})
        assert request.url.path == "/api/v1/share/upload-urls"
        wanted = json.loads(request.content)
        return envelope([{"path": f"{wanted['folder']}/{f['path']}", "url": "http://s3.test/share", "method": "POST",
                          "fields": {"key": f"{wanted['folder']}/{f['path']}"}, "expires_at": "2030-01-01T00:00:00Z",
                          "max_bytes": f["size"]} for f in wanted["files"]])

    def s3(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        key = content.split(b'name="key"\r\n\r\n', 1)[1].split(b"\r\n", 1)[0].decode()
        data = content.split(b"Content-Type: image/jpeg\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        self.posted.append(key)
        self.records[key] = {"id": key, "file_path": key, "filename": key.rsplit("/", 1)[1], "folder": "f",
                             "status": "ready", "file_size_bytes": len(data),
                             "checksum_sha256": hashlib.sha256(data).hexdigest()}
        return httpx.Response(204)


def test_an_upload_sends_only_what_the_registry_lacks(tmp_path: Path):
    # Given four photos, two of them already registered with the same bytes, one with other bytes
    for n in range(4):
        (tmp_path / f"{n}.jpg").write_bytes(picture(seed=n))
    share = FakeShare()
    client = Client("http://api.test", "T", transport=httpx.MockTransport(share.api))
    uploader = Uploader(client, workers=2, poll_interval=0, transport=httpx.MockTransport(share.s3))
    share.s3(_post("shots/0.jpg", picture(seed=0)))
    share.s3(_post("shots/1.jpg", picture(seed=1)))
    share.s3(_post("shots/2.jpg", picture(seed=99)))
    share.posted.clear()
    # When the folder is uploaded
    result = uploader.upload([tmp_path], "shots")
    # Then only the changed and the new file are sent, and all four are ready
    assert sorted(share.posted) == ["shots/2.jpg", "shots/3.jpg"]
    assert (result.total, result.skipped, result.uploaded, result.ready, result.failed) == (4, 2, 2, 4, [])


def _post(key: str, data: bytes) -> httpx.Request:
    return httpx.Request("POST", "http://s3.test/share", data={"key": key},
                         files={"file": ("x.jpg", data, "image/jpeg")})


class FakeStaging:
    """The dataset upload routes over a fake S3 that keeps the parts it received."""

    def __init__(self, size: int, part_size: int) -> None:
        self.size, self.part_size = size, part_size
        self.count = -(-size // part_size)
        self.received: dict[int, bytes] = {}
        self.put: list[int] = []
        self.failures: dict[int, int] = {}
        self.completed: dict = {}
        self.started = 0

    def api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/complete"):
            self.completed = json.loads(request.content)
            return envelope({"file_name": "set.zip", "key": "uploads/d/set.zip", "etag": f'"x-{self.count}"'})
        if path.endswith("/parts"):
            assert request.url.params["upload_id"] == "U"
            return envelope([{"part_number": n, "etag": f'"e{n}"', "size": len(body)}
                             for n, body in sorted(self.received.items())])
        first = int(request.url.params.get("first", 1))
        self.started += path.endswith("/uploads")
        return envelope({"file_name": "set.zip", "key": "uploads/d/set.zip", "upload_id": "U", "size": self.size,
                         "part_size": self.part_size, "part_count": self.count, "expires_at": "2030-01-01T00:00:00Z",
                         "parts": [{"part_number": n, "url": f"http://s3.test/p{n}"}
                                   for n in range(first, self.count + 1)]})

    def s3(self, request: httpx.Request) -> httpx.Response:
        number = int(request.url.path.removeprefix("/p"))
        self.put.append(number)
        if self.failures.get(number):
            self.failures[number] -= 1
            return httpx.Response(500, text="<Error><Code>InternalError</Code></Error>")
        self.received[number] = request.read()
        return httpx.Response(200, headers={"ETag": f'"e{number}"'})


def staging_upload(staging: FakeStaging, archive: Path, waits: list[float]) -> MultipartUpload:
    client = Client("http://api.test", "T", transport=httpx.MockTransport(staging.api))
    return MultipartUpload(client, "d", archive, workers=3, transport=httpx.MockTransport(staging.s3),
                           sleep=waits.append)


def test_a_multipart_part_that_fails_is_sent_again_alone(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIXELPOOL_CONFIG", str(tmp_path / "config.json"))
    # Given a 25-byte file in parts of 10 and an S3 that fails part 2 twice
    archive = tmp_path / "set.zip"
    archive.write_bytes(bytes(range(25)))
    staging = FakeStaging(25, 10)
    staging.failures = {2: 2}
    waits: list[float] = []
    # When it is uploaded
    done = staging_upload(staging, archive, waits).run()
    # Then part 2 was sent again alone (two waits), every part arrived intact
    assert b"".join(staging.received[n] for n in (1, 2, 3)) == bytes(range(25))
    assert sorted(staging.put) == [1, 2, 2, 2, 3] and len(waits) == 2
    assert staging.completed["parts"] == [{"part_number": n, "etag": f'"e{n}"'} for n in (1, 2, 3)]
    assert done.etag == '"x-3"'


def test_an_interrupted_multipart_upload_resumes_with_the_missing_parts(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIXELPOOL_CONFIG", str(tmp_path / "config.json"))
    # Given a run that could not send part 3 (S3 kept failing it)
    archive = tmp_path / "set.zip"
    archive.write_bytes(bytes(range(25)))
    staging = FakeStaging(25, 10)
    staging.failures = {3: 100}
    with pytest.raises(TransferError, match="part 3"):
        staging_upload(staging, archive, []).run()
    assert sorted(staging.received) == [1, 2]
    # When the same file is uploaded again, S3 now well
    staging.failures, staging.put = {}, []
    done = staging_upload(staging, archive, []).run()
    # Then only part 3 is sent, into the same upload, and the upload is completed whole
    assert (staging.put, staging.started) == ([3], 1)
    assert staging.completed["upload_id"] == "U" and [p["part_number"] for p in staging.completed["parts"]] == [1, 2, 3]
    assert done.etag == '"x-3"'
    assert not list((tmp_path / "uploads").rglob("*.json"))  # nothing left to resume


def test_a_download_of_the_wrong_size_is_refused(tmp_path: Path):
    s3 = httpx.MockTransport(lambda request: httpx.Response(200, content=b"12345"))
    with pytest.raises(TransferError, match="received 5 bytes, the API said 6"):
        download("http://s3.test/x.zip", tmp_path / "x.zip", expected_size=6, transport=s3)
    assert not (tmp_path / "x.zip").exists()
    assert download("http://s3.test/x.zip", tmp_path / "x.zip", expected_size=5, transport=s3) == 5
    assert (tmp_path / "x.zip").read_bytes() == b"12345"


def test_an_archive_with_a_member_escaping_the_folder_is_not_unpacked(tmp_path: Path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("ok.txt", "fine")
        archive.writestr("../escape.txt", "no")
    with pytest.raises(TransferError, match="escape.txt"):
        unzip(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
