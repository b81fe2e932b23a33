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


def test_a_multipart_part_that_fails_is_sent_again_alone(tmp_path: Path):
    # Given a 25-byte file in parts of 10 and an S3 that fails part 2 twice
    archive = tmp_path / "set.zip"
    archive.write_bytes(bytes(range(25)))
    failures = {2: 2}
    received: dict[int, bytes] = {}
    completed = {}

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/complete"):
            completed.update(json.loads(request.content))
            return envelope({"file_name": "set.zip", "key": "uploads/d/set.zip", "etag": '"x-3"'})
        return envelope({"file_name": "set.zip", "key": "uploads/d/set.zip", "upload_id": "U", "size": 25,
                         "part_size": 10, "part_count": 3, "expires_at": "2030-01-01T00:00:00Z",
                         "parts": [{"part_number": n, "url": f"http://s3.test/p{n}"} for n in (1, 2, 3)]})

    def s3(request: httpx.Request) -> httpx.Response:
        number = int(request.url.path.removeprefix("/p"))
        if failures.get(number):
            failures[number] -= 1
            return httpx.Response(500, text="<Error><Code>InternalError</Code></Error>")
        received[number] = request.read()
        return httpx.Response(200, headers={"ETag": f'"e{number}"'})

    client = Client("http://api.test", "T", transport=httpx.MockTransport(api))
    waits: list[float] = []
    # When it is uploaded
    done = MultipartUpload(client, "d", archive, workers=3, transport=httpx.MockTransport(s3), sleep=waits.append).run()
    # Then part 2 was sent again alone (two waits), every part arrived intact and the upload was completed with the parts in order
    assert b"".join(received[n] for n in (1, 2, 3)) == bytes(range(25))
    assert completed["parts"] == [{"part_number": n, "etag": f'"e{n}"'} for n in (1, 2, 3)]
    assert done.etag == '"x-3"' and len(waits) == 2


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
