"""A ZIP uploaded to S3 by multipart upload, inspected by ranged GETs and extracted into a prefix."""
from __future__ import annotations

import io
import random
import zipfile

import pytest
from boto3.s3.transfer import TransferConfig

from chalicelib.errors import StoreError
from chalicelib.formats.zip_archive import inspect
from chalicelib.formats.zip_extract import extract
from chalicelib.store.archives import S3Sink, S3Source
from tests.imagefiles import picture

MiB = 1 << 20


def upload(s3, bucket: str, key: str, data: bytes) -> None:
    """As a browser would send a large archive: a multipart upload (5 MiB parts)."""
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)


class RecordingS3:
    """The emulator's S3 client, recording the Range of every GetObject."""

    def __init__(self, s3) -> None:
        self._s3 = s3
        self.ranges: list[tuple[int, int]] = []

    def get_object(self, **params):
        start, end = params["Range"].removeprefix("bytes=").split("-")
        self.ranges.append((int(start), int(end) + 1))
        return self._s3.get_object(**params)

    def __getattr__(self, name):
        return getattr(self._s3, name)


def test_archive_is_inspected_by_ranged_gets_and_extracted_into_a_prefix(stack):
    # Given a 14 MB archive in the datasets bucket: pictures in folders, and a 9 MiB scan
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    files = {
        "train/cats/1.jpg": picture(seed=1),
        "train/dogs/2.png": picture(seed=2, fmt="PNG"),
        "val/3.jpg": picture(seed=3),
        "scans/big.tif": random.Random(4).randbytes(9 * MiB),
        "noise.bin": random.Random(5).randbytes(5 * MiB),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/", b"")
        archive.writestr("__MACOSX/train/._1.jpg", b"resource fork")
        for name, data in files.items():
            archive.writestr(name, data)
    upload(s3, bucket, "uploads/u1/archive.zip", buffer.getvalue())
    recording = RecordingS3(s3)
    source = S3Source(recording, bucket, "uploads/u1/archive.zip")

    # When it is inspected, then extracted in two batches
    inventory = inspect(source)
    inspected = list(recording.ranges)
    sink = S3Sink(s3, bucket)
    results = extract(source, inventory.members[:2], sink, "datasets/d1/") + \
        extract(source, inventory.members[2:], sink, "datasets/d1/")

    # Then inspecting read the tail alone, and every file is an object under the prefix with the member's bytes
    assert len(inspected) == 1 and inspected[0][1] == len(buffer.getvalue())
    assert inspected[0][1] - inspected[0][0] <= 66 * 1024
    assert inventory.ok and [f.name for f in inventory.skipped] == ["__MACOSX/train/._1.jpg"]
    assert all(result.ok for result in results)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="datasets/d1/")["Contents"]
    assert sorted(entry["Key"] for entry in listed) == sorted(f"datasets/d1/{name}" for name in files)
    for name, data in files.items():
        stored = s3.get_object(Bucket=bucket, Key=f"datasets/d1/{name}")
        assert stored["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="datasets/d1/train/cats/1.jpg")["ContentType"] == "image/jpeg"

    # And a re-run of a batch converges on the same objects, leaving no upload open
    assert extract(source, inventory.members[2:], sink, "datasets/d1/") == results[2:]
    assert s3.get_object(Bucket=bucket, Key="datasets/d1/scans/big.tif")["Body"].read() == files["scans/big.tif"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_archive_replaced_during_an_import_is_not_read(stack):
    # Given an archive inspected, then replaced by another upload to the same key
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    first = io.BytesIO()
    with zipfile.ZipFile(first, "w") as archive:
        archive.writestr("a.jpg", picture(seed=6))
    s3.put_object(Bucket=bucket, Key="uploads/u2/archive.zip", Body=first.getvalue())
    source = S3Source(s3, bucket, "uploads/u2/archive.zip")
    inventory = inspect(source)
    s3.put_object(Bucket=bucket, Key="uploads/u2/archive.zip", Body=first.getvalue() + b"changed")

    # When its members are extracted, by this source or by a later step's pinned to what was inspected
    later = S3Source(s3, bucket, "uploads/u2/archive.zip", etag=source.etag)

    # Then the reads fail (every request names the ETag inspected)
    for reader in (source, later):
        with pytest.raises(StoreError, match="PreconditionFailed|412"):
            extract(reader, inventory.members, S3Sink(s3, bucket), "datasets/d2/")

    # And nothing is written, while an unpinned source reads the new archive
    assert S3Source(s3, bucket, "uploads/u2/archive.zip").size() == len(first.getvalue()) + 7
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="datasets/d2/")


def test_a_batch_of_small_members_is_read_in_windows_not_one_get_per_member(stack):
    from chalicelib.store.archives import WindowedSource

    # Given an archive of 60 small pictures (about 1.5 MB)
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    files = {f"shots/{n:02d}.png": picture(120, 80, seed=n, fmt="PNG") for n in range(60)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    upload(s3, bucket, "uploads/w1/a.zip", buffer.getvalue())
    recording = RecordingS3(s3)
    members = inspect(S3Source(s3, bucket, "uploads/w1/a.zip")).members
    # When a batch is extracted through windows of 512 KiB
    source = WindowedSource(S3Source(recording, bucket, "uploads/w1/a.zip"), window=512 * 1024)
    results = extract(source, members, S3Sink(s3, bucket), "datasets/w1/")
    # Then every member is written with its bytes, from one GET per window (not per member)
    assert all(result.ok for result in results)
    for name, data in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"datasets/w1/{name}")["Body"].read() == data
    assert len(recording.ranges) <= -(-len(buffer.getvalue()) // (512 * 1024)) + 1 < len(members)
