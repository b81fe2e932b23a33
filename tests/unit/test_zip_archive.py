"""ZIP archives read in place: inspect by ranged reads, refusals, streamed and checked extraction."""
from __future__ import annotations

import io
import random
import stat
import subprocess
import struct
import time
import tracemalloc
import zipfile
import hashlib
import zlib
from dataclasses import dataclass

import pytest

from chalicelib.formats import zip_archive
from chalicelib.formats.zip_archive import Limits, inspect
from chalicelib.formats.zip_extract import batches, extract
from chalicelib.store.archives import S3Sink
from tests.imagefiles import picture

MiB = 1 << 20


class BytesSource:
    """A `RangeSource` over bytes that counts its requests and the bytes they return."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests = 0
        self.bytes_read = 0

    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int) -> bytes:
        assert 0 <= start <= end <= len(self.data)
        self.requests += 1
        self.bytes_read += end - start
        return self.data[start:end]

    def stream(self, start: int, end: int):
        assert 0 <= start <= end <= len(self.data)
        self.requests += 1
        for at in range(start, end, zip_archive.READ_BYTES):
            chunk = self.data[at:min(end, at + zip_archive.READ_BYTES)]
            self.bytes_read += len(chunk)
            yield chunk


class MemorySink:
    """A `Sink` keeping whole objects; an object is stored only once its stream has ended cleanly."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.received = 0

    def write(self, key, chunks, size) -> None:
        body = bytearray()
        for chunk in chunks:
            self.received += len(chunk)
            body += chunk
        self.objects[key] = bytes(body)


class FakeS3:
    """The S3 calls `S3Sink` makes, recorded; part bodies are kept only when `keep`."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.objects: dict[str, bytes] = {}
        self.parts: list[tuple[int, int]] = []  # (part number, size)
        self.crc = 0
        self.calls: list[str] = []
        self._bodies: list[bytes] = []

    def put_object(self, Bucket, Key, Body, ContentType):
        self.calls.append("put_object")
        self.objects[Key] = Body
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}

    def create_multipart_upload(self, Bucket, Key, ContentType):
        self.calls.append("create_multipart_upload")
        return {"UploadId": "upload-1"}

    def upload_part(self, Bucket, Key, UploadId, PartNumber, Body):
        self.calls.append("upload_part")
        self.parts.append((PartNumber, len(Body)))
        self.crc = zlib.crc32(Body, self.crc)
        if self.keep:
            self._bodies.append(bytes(Body))
        return {"ETag": f'"etag-{PartNumber}"'}

    def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload):
        self.calls.append("complete_multipart_upload")
        assert [part["PartNumber"] for part in MultipartUpload["Parts"]] == [n for n, _ in self.parts]
        if self.keep:
            self.objects[Key] = b"".join(self._bodies)
        return {"ETag": f'"multipart-{len(self.parts)}"'}

    def abort_multipart_upload(self, Bucket, Key, UploadId):
        self.calls.append("abort_multipart_upload")


def build(entries: list[tuple[str | zipfile.ZipInfo, bytes]], compression=zipfile.ZIP_DEFLATED, **options) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression, **options) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class Crafted:
    """One entry of a hand-made archive; `size`, `crc` and `flags` override what the data says."""

    name: str
    data: bytes = b"x"
    method: int = zipfile.ZIP_STORED
    flags: int = 0
    external_attr: int = 0
    size: int | None = None
    crc: int | None = None


def craft(entries: list[Crafted], zip64: bool = False) -> bytes:
    """An archive written byte by byte, to say what `zipfile` will not write: lies, duplicates,
    encrypted flags, and ZIP64 everywhere (extra fields, end record and locator) when `zip64`."""
    body, central = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode()
        data = entry.data
        if entry.method == zipfile.ZIP_DEFLATED:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = packer.compress(data) + packer.flush()
        crc = zlib.crc32(entry.data) if entry.crc is None else entry.crc
        size = len(entry.data) if entry.size is None else entry.size
        offset = len(body)
        flags = entry.flags | 0x800
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, size, len(data))
            body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, flags, entry.method, 0, 0x21, crc,
                                0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)) + name + extra + data
            extra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset)
            central += struct.pack("<4sBBHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 3, 45, flags, entry.method, 0, 0x21,
                                   crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0,
                                   entry.external_attr, 0xFFFFFFFF) + name + extra
        else:
            body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, entry.method, 0, 0x21, crc,
                                len(data), size, len(name), 0) + name + data
            central += struct.pack("<4sBBHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 3, 20, flags, entry.method, 0, 0x21,
                                   crc, len(data), size, len(name), 0, 0, 0, 0, entry.external_attr, offset) + name
    end = bytearray()
    count, cd_offset = len(entries), len(body)
    if zip64:
        record_offset = cd_offset + len(central)
        end += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset)
        end += struct.pack("<4sIQI", b"PK\x06\x07", 0, record_offset, 1)
        end += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        end += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(body + central + end)


def reasons(inventory) -> list[tuple[str | None, str]]:
    return [(finding.name, finding.reason) for finding in inventory.problems]


# Inspecting


def test_folders_stored_and_deflated_members_inspected_in_one_request_and_extracted():
    # Given an archive with nested folders, a deflated and a stored image, an empty file, folder entries
    jpeg, png = picture(seed=1), picture(seed=2, fmt="PNG")
    data = build([("cats/", b""), ("cats/indoor/tabby.jpg", jpeg), ("cats/empty.txt", b""),
                  (zipfile.ZipInfo("dogs/rex.png"), png)])  # a ZipInfo keeps its own method: stored
    source = BytesSource(data)

    # When it is inspected
    inventory = inspect(source)

    # Then the files are members with their sizes, folders are not, and one read of the tail sufficed
    assert inventory.ok and inventory.skipped == []
    assert [(m.name, m.size, m.method) for m in inventory.members] == [
        ("cats/indoor/tabby.jpg", len(jpeg), zipfile.ZIP_DEFLATED), ("cats/empty.txt", 0, zipfile.ZIP_DEFLATED),
        ("dogs/rex.png", len(png), zipfile.ZIP_STORED)]
    assert source.requests == 1

    # And extracting writes each under the prefix with its folders, one read per small member
    source.requests = 0
    sink = MemorySink()
    results = extract(source, inventory.members, sink, prefix="datasets/d1/")
    assert all(result.ok for result in results)
    assert sink.objects == {"datasets/d1/cats/indoor/tabby.jpg": jpeg, "datasets/d1/cats/empty.txt": b"",
                            "datasets/d1/dogs/rex.png": png}
    assert source.requests == 3


def test_central_directory_read_costs_a_bounded_number_of_requests():
    # Given 3,000 members behind 6 MiB of data, so the central directory is not in the tail
    rng = random.Random(7)
    entries = [("blob.bin", rng.randbytes(6 * MiB))] + [(f"images/{n:05}.jpg", b"j" * 10) for n in range(3000)]
    data = build(entries, compression=zipfile.ZIP_STORED)
    source = BytesSource(data)

    # When it is inspected
    inventory = inspect(source)

    # Then the tail and the directory cost two requests and about the directory's bytes
    directory = struct.unpack_from("<I", data, data.rfind(b"PK\x05\x06") + 12)[0]
    print(f"\ninspect of {len(data)} bytes, {len(inventory.members)} members: {source.requests} requests, "
          f"{source.bytes_read} bytes read")
    assert len(inventory.members) == 3001 and inventory.ok
    assert source.requests == 2
    assert source.bytes_read <= directory + zip_archive._TAIL_BYTES


def test_the_most_members_allowed_are_inspected_in_a_few_requests():
    # Given 100,000 members (the default limit), a central directory of about 7 MB
    names = [f"images/{n // 1000:03}/{n:06}.jpg" for n in range(100_000)]
    data = build([(name, b"") for name in names], compression=zipfile.ZIP_STORED)
    source = BytesSource(data)

    # When it is inspected
    started = time.perf_counter()
    inventory = inspect(source)
    elapsed = time.perf_counter() - started

    # Then it is accepted after reading the directory a window at a time
    print(f"\ninspect of {len(inventory.members)} members: {source.requests} requests, "
          f"{source.bytes_read} bytes read, {elapsed:.2f} s")
    assert inventory.ok and len(inventory.members) == 100_000
    assert source.requests == 3  # the tail, then the directory in two windows of 4 MiB
    assert elapsed < 10


def test_zip64_local_headers_written_by_zipfile():
    # Given members written by zipfile with forced ZIP64 local headers (sizes 0xFFFFFFFF there)
    buffer = io.BytesIO()
    jpeg = picture(seed=3)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name in ("a/one.jpg", "b/two.jpg"):
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(jpeg)
    source = BytesSource(buffer.getvalue())

    # When it is inspected and extracted
    inventory = inspect(source)
    sink = MemorySink()
    results = extract(source, inventory.members, sink)

    # Then the longer local extra fields are skipped and the bytes are right
    assert inventory.ok
    assert all(result.ok for result in results)
    assert sink.objects == {"a/one.jpg": jpeg, "b/two.jpg": jpeg}


def test_zip64_extra_fields_end_record_and_locator():
    # Given an archive whose every size and offset is in ZIP64 fields (as a > 4 GiB archive has them)
    jpeg = picture(seed=4)
    data = craft([Crafted("x/a.jpg", jpeg, zipfile.ZIP_DEFLATED), Crafted("x/b.jpg", jpeg)], zip64=True)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None  # Python's reader agrees it is a good ZIP64

    # When it is inspected and extracted
    source = BytesSource(data)
    inventory = inspect(source)
    sink = MemorySink()
    extract(source, inventory.members, sink)

    # Then the ZIP64 values were read
    assert inventory.ok
    assert [(m.name, m.size) for m in inventory.members] == [("x/a.jpg", len(jpeg)), ("x/b.jpg", len(jpeg))]
    assert inventory.members[1].header_offset > 0
    assert sink.objects == {"x/a.jpg": jpeg, "x/b.jpg": jpeg}


def test_archive_comment_holding_an_end_signature_is_read_past():
    # Given an archive whose comment looks like another end record
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jpg", b"a")
        archive.comment = b"PK\x05\x06" + bytes(18) + b" and more" * 100

    inventory = inspect(BytesSource(buffer.getvalue()))

    assert inventory.ok and [m.name for m in inventory.members] == ["a.jpg"]


def test_archive_made_by_info_zip_with_a_symlink(tmp_path):
    # Given a folder with an image and a symbolic link, zipped by Info-ZIP keeping links (-y)
    jpeg = picture(seed=13)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(jpeg)
    (tmp_path / "photos" / "link.jpg").symlink_to("/etc/passwd")
    subprocess.run(["zip", "-q", "-r", "-y", "out.zip", "photos"], cwd=tmp_path, check=True)
    source = BytesSource((tmp_path / "out.zip").read_bytes())

    # When it is inspected
    inventory = inspect(source)

    # Then the link is refused, and the image (with Info-ZIP's extra fields) reads back
    assert reasons(inventory) == [("photos/link.jpg", "symbolic link")]
    image = [m for m in inventory.members if m.name == "photos/a.jpg"]
    sink = MemorySink()
    assert extract(source, image, sink)[0].ok and sink.objects == {"photos/a.jpg": jpeg}


def test_macos_metadata_is_skipped_and_reported():
    data = build([("photos/a.jpg", b"a"), ("__MACOSX/", b""), ("__MACOSX/photos/._a.jpg", b"m"),
                  ("photos/.DS_Store", b"d")])

    inventory = inspect(BytesSource(data))

    assert inventory.ok
    assert [m.name for m in inventory.members] == ["photos/a.jpg"]
    assert [f.name for f in inventory.skipped] == ["__MACOSX/photos/._a.jpg", "photos/.DS_Store"]


# Refusals: each names the member and the reason; a refused archive has problems, so nothing is written


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, reason", [
    ("../x.jpg", "'..' segment escapes the folder"),
    ("a/../../x.jpg", "'..' segment escapes the folder"),
    ("/abs.jpg", "absolute path"),
    ("C:/x.jpg", "drive letter"),
    ("a\\b.jpg", "backslash in name"),
    ("a/./b.jpg", "empty or '.' segment"),
    ("a//b.jpg", "empty or '.' segment"),
    ("bad\x01.jpg", "control character in name"),
    (symlink("link.jpg"), "symbolic link"),
    ("more/inner.zip", "nested archive"),
    ("more/inner.TAR", "nested archive"),
    ("more/inner.tgz", "nested archive"),
    ("deep/" + "x" * 600 + ".jpg", "name longer than 512 bytes"),
])
def test_refused_member_is_named_with_its_reason(member, reason):
    # Given an archive with one good and one offending member
    data = build([("ok/good.jpg", b"fine"), (member, b"target")])

    # When it is inspected
    inventory = inspect(BytesSource(data))

    # Then the archive is refused for that member alone
    name = member.filename if isinstance(member, zipfile.ZipInfo) else member
    assert not inventory.ok
    assert reasons(inventory) == [(name, reason)]


def test_encrypted_member_is_refused():
    data = craft([Crafted("ok.jpg"), Crafted("secret.jpg", flags=0x1)])

    assert reasons(inspect(BytesSource(data))) == [("secret.jpg", "encrypted")]


def test_unsupported_compression_method_is_refused():
    data = build([("ok.jpg", b"x"), ("b.jpg", b"y" * 100)], compression=zipfile.ZIP_BZIP2)

    assert reasons(inspect(BytesSource(data))) == [("ok.jpg", "unsupported compression method 12"),
                                                   ("b.jpg", "unsupported compression method 12")]


def test_duplicates_exact_and_ignoring_case_are_refused():
    # Given exact duplicates, names equal but for case, and names equal but for Unicode form (NFC, NFD)
    data = craft([Crafted("a/Cat.jpg"), Crafted("a/Cat.jpg"), Crafted("a/cat.JPG"), Crafted("b/cat.jpg"),
                  Crafted("a/caf\u00e9.jpg"), Crafted("a/cafe\u0301.jpg")])

    # When it is inspected
    inventory = inspect(BytesSource(data))

    # Then each later one is refused, naming the first
    collides = "collides with {!r} on a case-insensitive file system"
    assert reasons(inventory) == [("a/Cat.jpg", "duplicate of 'a/Cat.jpg'"),
                                  ("a/cat.JPG", collides.format("a/Cat.jpg")),
                                  ("a/cafe\u0301.jpg", collides.format("a/caf\u00e9.jpg"))]


def test_too_many_entries_refuses_the_archive_before_reading_its_directory():
    data = build([(f"{n}.jpg", b"x") for n in range(5)])
    source = BytesSource(data)

    inventory = inspect(source, Limits(max_members=4))

    assert reasons(inventory) == [(None, "5 entries: more than the 4 allowed")]
    assert inventory.members == [] and source.requests == 1


def test_total_uncompressed_size_over_the_limit_is_refused():
    data = build([("a.jpg", b"x" * 600), ("b.jpg", b"y" * 600)])

    inventory = inspect(BytesSource(data), Limits(max_total_uncompressed=1000))

    assert reasons(inventory) == [(None, "1200 bytes uncompressed: more than the 1000 allowed")]


def test_compression_ratio_over_100_is_refused_as_a_bomb():
    # Given 10 MB of zeros (deflate shrinks them about 1,000 times)
    data = build([("ok.jpg", picture(seed=5)), ("zeros.jpg", bytes(10_000_000))])

    inventory = inspect(BytesSource(data))

    [(name, reason)] = reasons(inventory)
    assert name == "zeros.jpg" and reason.startswith("compression ratio ") and reason.endswith("is over 100 (zip bomb)")


def test_small_members_are_not_ratio_checked_unless_asked():
    # Given 500 KB of zeros: over the ratio, but below the 1 MiB grace (a small file cannot be a bomb)
    data = build([("blank.bmp", bytes(500_000))])

    assert inspect(BytesSource(data)).ok
    assert [name for name, _ in reasons(inspect(BytesSource(data), Limits(ratio_grace_bytes=0)))] == ["blank.bmp"]


def test_every_offending_member_is_reported():
    data = craft([Crafted("../up.jpg"), Crafted("x/ok.jpg"), Crafted("/abs.zip", flags=0x1),
                  Crafted("link", external_attr=(stat.S_IFLNK | 0o777) << 16), Crafted("X/OK.jpg")])

    assert reasons(inspect(BytesSource(data))) == [
        ("../up.jpg", "'..' segment escapes the folder"),
        ("/abs.zip", "absolute path"), ("/abs.zip", "nested archive"), ("/abs.zip", "encrypted"),
        ("link", "symbolic link"),
        ("X/OK.jpg", "collides with 'x/ok.jpg' on a case-insensitive file system"),
    ]


@pytest.mark.parametrize("data, reason", [
    (b"", "not a ZIP archive: no end of central directory record"),
    (b"GIF89a" + bytes(100), "not a ZIP archive: no end of central directory record"),
])
def test_not_a_zip_is_refused(data, reason):
    assert reasons(inspect(BytesSource(data))) == [(None, reason)]


def test_truncated_central_directory_is_refused():
    data = bytearray(build([("a.jpg", b"a"), ("b.jpg", b"b")]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 3, 3)  # the end record claims a third entry

    assert reasons(inspect(BytesSource(bytes(data)))) == [
        (None, "the central directory is damaged: 2 entries read of 3")]


def test_overlapping_members_are_refused():
    # Given two central entries pointing at the same local header (how overlapping bombs multiply)
    data = bytearray(craft([Crafted("a.jpg", b"a" * 50), Crafted("b.jpg", b"a" * 50)]))
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<I", data, second + 42, 0)  # the second entry's local header offset

    source = BytesSource(bytes(data))

    inventory = inspect(source)

    assert reasons(inventory) == [("b.jpg", "overlaps another member")]
    # and, were it extracted, its local header would not name it
    assert [r.reason for r in extract(source, inventory.members, MemorySink())] == [
        None, "the local header names another file"]


def test_member_data_past_the_directory_is_refused():
    data = bytearray(craft([Crafted("a.jpg", b"a" * 50, zipfile.ZIP_DEFLATED)]))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 20, 5000)  # compressed size

    assert reasons(inspect(BytesSource(bytes(data)))) == [("a.jpg", "data lies outside the archive")]


def test_extracting_data_past_the_archive_fails_the_member():
    source = BytesSource(craft([Crafted("a.jpg", b"a" * 50)]))
    member = zip_archive.Member("a.jpg", 0, 5000, 5000, zipfile.ZIP_STORED, 0)

    [result] = extract(source, [member], MemorySink())

    assert result.reason == "data lies outside the archive"


# Extracting: checked while streaming


def test_lying_header_stops_inflating_at_the_declared_size():
    # Given a member declaring 1,000 bytes whose data inflates to 50 MB
    data = craft([Crafted("liar.jpg", bytes(50_000_000), zipfile.ZIP_DEFLATED, size=1000)])
    source = BytesSource(data)
    inventory = inspect(source)
    assert inventory.ok  # a small declared size passes the ratio check: only the stream can tell

    # When it is extracted
    sink = MemorySink()
    [result] = extract(source, inventory.members, sink)

    # Then it fails, nothing is written, and inflating stopped after one output chunk
    assert not result.ok and result.reason == "holds more than the 1000 bytes its header declares (zip bomb)"
    assert sink.objects == {} and sink.received == 0


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_crc_mismatch_fails_the_member_alone(method):
    jpeg = picture(seed=6)
    data = craft([Crafted("bad.jpg", jpeg, method, crc=zlib.crc32(jpeg) ^ 1), Crafted("good.jpg", jpeg, method)])
    source = BytesSource(data)
    sink = MemorySink()

    results = extract(source, inspect(source).members, sink)

    assert [(r.name, r.ok, r.reason) for r in results] == [
        ("bad.jpg", False, f"CRC-32 {zlib.crc32(jpeg):08x} differs from the declared {zlib.crc32(jpeg) ^ 1:08x}"),
        ("good.jpg", True, None)]
    assert list(sink.objects) == ["good.jpg"]


def test_member_shorter_than_declared_fails():
    data = craft([Crafted("short.jpg", b"abc", size=3), Crafted("deflated.jpg", b"abc" * 100, zipfile.ZIP_DEFLATED,
                                                                 size=400)])
    source = BytesSource(data)

    results = extract(source, inspect(source).members, MemorySink())

    assert [r.reason for r in results] == [None, "holds 300 bytes, not the 400 its header declares"]


def test_large_member_is_uploaded_in_parts():
    # Given a 20 MiB member
    blob = random.Random(8).randbytes(20 * MiB)
    source = BytesSource(build([("big/scan.tif", blob)], compression=zipfile.ZIP_STORED))
    s3 = FakeS3()

    # When it is extracted to S3
    [result] = extract(source, inspect(source).members, S3Sink(s3, "bucket"), prefix="d/")

    # Then it went as a multipart upload of 8 MiB parts, and the object is the member
    assert result.ok
    assert s3.parts == [(1, 8 * MiB), (2, 8 * MiB), (3, 4 * MiB)]
    assert s3.calls[0] == "create_multipart_upload" and s3.calls[-1] == "complete_multipart_upload"
    assert s3.objects == {"d/big/scan.tif": blob}


def test_small_member_is_one_put():
    s3 = FakeS3()
    source = BytesSource(build([("a.jpg", b"jpeg")]))

    extract(source, inspect(source).members, S3Sink(s3, "bucket"))

    assert s3.calls == ["put_object"] and s3.objects == {"a.jpg": b"jpeg"}


def test_failed_large_member_aborts_its_upload():
    blob = random.Random(9).randbytes(10 * MiB)
    data = craft([Crafted("big.bin", blob, zipfile.ZIP_DEFLATED, crc=1)])
    source = BytesSource(data)
    s3 = FakeS3()

    [result] = extract(source, inspect(source).members, S3Sink(s3, "bucket"))

    assert not result.ok and result.reason.startswith("CRC-32")
    assert s3.calls[-1] == "abort_multipart_upload" and "complete_multipart_upload" not in s3.calls


def test_extracting_a_40_mb_member_holds_about_one_part_in_memory():
    # Given a 40 MB deflated member
    blob = random.Random(10).randbytes(40 * MiB)
    source = BytesSource(build([("huge.tif", blob)]))
    members = inspect(source).members
    s3 = FakeS3(keep=False)
    source.requests = 0

    # When it is extracted while tracing allocations
    tracemalloc.start()
    try:
        [result] = extract(source, members, S3Sink(s3, "bucket"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then the peak stays near one 8 MiB part, and the parts are the member's bytes
    print(f"\nextract of a {len(blob)} byte member: peak {peak} bytes traced, {source.requests} requests")
    assert result.ok
    assert peak < 20 * MiB
    assert s3.crc == zlib.crc32(blob) and sum(size for _, size in s3.parts) == len(blob)
    assert source.requests == 2


def test_extracting_again_converges():
    data = build([("a/b.jpg", picture(seed=11)), ("c.png", picture(seed=12, fmt="PNG"))])
    source, sink = BytesSource(data), MemorySink()
    members = inspect(source).members

    first = extract(source, members, sink, "p/")
    objects = dict(sink.objects)
    second = extract(source, members, sink, "p/")

    assert first == second and sink.objects == objects


@pytest.mark.parametrize("member, reason", [
    (zip_archive.Member("../up.jpg", 0, 1, 1, zipfile.ZIP_STORED, 0), "'..' segment escapes the folder"),
    (zip_archive.Member("a.jpg", 0, 1, 1, zipfile.ZIP_BZIP2, 0), "unsupported compression method 12"),
    (zip_archive.Member("a" * 1023, 0, 1, 1, zipfile.ZIP_STORED, 0), "key longer than S3's 1024 bytes"),
])
def test_extract_refuses_a_member_inspect_would_have_refused(member, reason):
    source, sink = BytesSource(craft([Crafted("a.jpg")])), MemorySink()

    [result] = extract(source, [member], sink, "p/")

    assert (result.ok, result.reason) == (False, reason)
    assert sink.objects == {} and source.requests == 0


def test_batches_bound_members_and_bytes():
    members = [zip_archive.Member(f"{n}", n, 1, size, 0, 0) for n, size in enumerate([5, 5, 5, 20, 1, 1, 1])]

    assert batches(members, max_members=3, max_bytes=12) == [(0, 2), (2, 3), (3, 4), (4, 7)]
    assert batches([], max_members=3) == []
