"""ZIP archives read in place: inspect a ZIP's central directory and stream its members out, by
ranged reads of an object that is never downloaded whole.

`inspect(source, limits)` reads the archive's tail (one read of up to ~64 KiB: the End Of Central
Directory record, and the ZIP64 locator and record when the archive needs them), then the central
directory in windows of `WINDOW_BYTES` (none more when the directory lies in the tail already). It
never raises for what the archive holds: every refusal is a `Finding` in `Inventory.problems`, one
per offending entry (or one for the archive, `name=None`), and a caller writes nothing unless
`inventory.ok`. An entry is refused for a name that could leave the prefix (`..`, `.` or empty
segments, a leading `/`, a drive letter, a backslash, a control character) or is too long, for
being a symbolic link, a nested archive (by suffix), encrypted, compressed otherwise than stored or
deflated, a duplicate, over the compression ratio, or overlapping another entry; the archive, for
more entries or uncompressed bytes than `Limits` allow. Structural refusals (no end record, several
disks, too many entries, a damaged directory) stop before the entries are checked. Folders are
not members; `__MACOSX/` and `.DS_Store` entries are `skipped`.

`extract(source, members, sink, prefix)` (formats/zip_extract.py) streams each member: one read of
its local header (and, for a small member, its data), then its compressed bytes as a stream,
inflated `OUTPUT_BYTES` at a time, and handed to a `Sink` as chunks. The CRC-32 and the size are
checked while streaming, and inflating stops as soon as the output passes the declared size (a
lying header is a bomb). A member that fails these checks is reported in its `Extracted` result and
its upload is aborted; a failed read or write raises (the step's retry runs the batch again, which
converges: same keys, same bytes). `S3Sink` writes a member below `PART_BYTES` with one PutObject
and a larger one as a multipart upload of `PART_BYTES` parts, so memory stays near one part
whatever the member's size.

Choices: names are compared NFC-normalized and case-folded, so two members that would collide on
a case-insensitive file system are refused as duplicates; the compression ratio is checked only
for members of at least `Limits.ratio_grace_bytes` (a small, very compressible file cannot be a
bomb); `max_members` counts the central directory's entries, folders and ignored entries included,
so it is checked before the directory is read. Not supported: multi-disk archives, encryption,
compression methods other than stored and deflate, and the Info-ZIP Unicode path field (names are
UTF-8 when flagged, else CP437, as in `zipfile`).

Reading from and writing to S3 (`S3Source`, `S3Sink`) is store/archives.py's.
"""
from __future__ import annotations

import stat
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol


STORED, DEFLATED = 0, 8
PART_BYTES = 8 << 20  # S3 parts are >= 5 MiB but the last; one part is what a member costs in memory
WINDOW_BYTES = 4 << 20  # central directory reads
READ_BYTES = 1 << 20  # chunks of a member's compressed stream
OUTPUT_BYTES = 1 << 20  # most bytes one inflate call may produce
SMALL_MEMBER = 1 << 20  # compressed sizes read with their local header in one request
HEADER_SLACK = 1024  # room for a local extra field longer than the central one
MAX_KEY_BYTES = 1024
NESTED_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".7z", ".rar")
IGNORED_NAMES = (".DS_Store",)
IGNORED_FOLDERS = ("__MACOSX/",)

_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sBBHHHHHIIIHHHHHII")
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_EOCD_SIGNATURE, _ZIP64_LOCATOR_SIGNATURE, _ZIP64_EOCD_SIGNATURE = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_CENTRAL_SIGNATURE, LOCAL_SIGNATURE = b"PK\x01\x02", b"PK\x03\x04"
_TAIL_BYTES = _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size
_ZIP64_EXTRA = 0x0001


class RangeSource(Protocol):
    """Random access to an archive's bytes. Ranges are `[start, end)`: `end` is exclusive, as in
    a slice, and both lie within `[0, size()]`; a read returns exactly `end - start` bytes."""

    def size(self) -> int: ...

    def read(self, start: int, end: int) -> bytes: ...

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        """The bytes of `[start, end)` as chunks of at most `READ_BYTES`, from one request."""
        ...


class Sink(Protocol):
    def write(self, key: str, chunks: Iterable[bytes], size: int) -> object:
        """Store the bytes of `chunks` at `key`; `size` is their declared length. When iterating
        `chunks` raises, nothing new is left at `key` and the exception propagates."""
        ...


@dataclass(frozen=True)
class Limits:
    max_members: int = 100_000  # central directory entries, folders and ignored entries included
    max_total_uncompressed: int = 50 << 30
    max_ratio: float = 100.0  # uncompressed / compressed, per member
    ratio_grace_bytes: int = 1 << 20  # members smaller than this are not ratio-checked
    max_name_bytes: int = 512  # UTF-8; leaves room for the prefix in S3's 1,024-byte keys


@dataclass(frozen=True)
class Member:
    """One file of the archive, as its central directory describes it."""

    name: str
    header_offset: int
    compressed_size: int
    size: int
    method: int
    crc: int


@dataclass(frozen=True)
class Finding:
    name: str | None  # None: the archive as a whole
    reason: str


@dataclass
class Inventory:
    members: list[Member] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_size(self) -> int:
        return sum(member.size for member in self.members)


@dataclass(frozen=True)
class Extracted:
    name: str
    key: str
    ok: bool
    reason: str | None = None


class Refusal(Exception):
    """Why an archive is refused or a member fails: always reported as a finding or a result,
    never raised out of this module."""


@dataclass(frozen=True)
class _Entry:
    member: Member
    flags: int
    external_attr: int


@dataclass(frozen=True)
class _Directory:
    offset: int
    size: int
    entries: int


def inspect(source: RangeSource, limits: Limits = Limits()) -> Inventory:
    """What the archive holds and every reason to refuse it, from its central directory alone."""
    inventory = Inventory()
    total = source.size()
    tail_start = max(0, total - _TAIL_BYTES)
    tail = source.read(tail_start, total)
    try:
        directory = _directory(source, tail, tail_start, total)
    except Refusal as exc:
        inventory.problems.append(Finding(None, str(exc)))
        return inventory
    if directory.entries > limits.max_members:
        inventory.problems.append(Finding(None, f"{directory.entries} entries: more than the "
                                                f"{limits.max_members} allowed"))
        return inventory
    try:
        entries = list(_entries(source, directory, tail, tail_start))
    except Refusal as exc:
        inventory.problems.append(Finding(None, str(exc)))
        return inventory
    seen: dict[str, str] = {}
    for entry in entries:
        name = entry.member.name
        reasons = name_problems(name)
        if name.endswith("/"):
            inventory.problems.extend(Finding(name, reason) for reason in reasons)
            continue
        if _ignored(name):
            inventory.problems.extend(Finding(name, reason) for reason in reasons)
            inventory.skipped.append(Finding(name, "operating system metadata"))
            continue
        reasons += _member_problems(entry, directory.offset, limits)
        if len(name.encode()) > limits.max_name_bytes:
            reasons.append(f"name longer than {limits.max_name_bytes} bytes")
        folded = unicodedata.normalize("NFC", name).casefold()
        if folded in seen:
            first = seen[folded]
            reasons.append(f"duplicate of {first!r}" if first == name
                           else f"collides with {first!r} on a case-insensitive file system")
        else:
            seen[folded] = name
        inventory.problems.extend(Finding(name, reason) for reason in reasons)
        inventory.members.append(entry.member)
    inventory.problems.extend(_overlaps(inventory.members))
    if inventory.total_size > limits.max_total_uncompressed:
        inventory.problems.append(Finding(None, f"{inventory.total_size} bytes uncompressed: more than the "
                                                f"{limits.max_total_uncompressed} allowed"))
    return inventory


def _directory(source: RangeSource, tail: bytes, tail_start: int, total: int) -> _Directory:
    at = _find_end_record(tail)
    if at < 0:
        raise Refusal("not a ZIP archive: no end of central directory record")
    _, disk, cd_disk, _, entries, size, offset, _ = _EOCD.unpack_from(tail, at)
    locator_at = at - _ZIP64_LOCATOR.size
    if locator_at >= 0 and tail[locator_at:locator_at + 4] == _ZIP64_LOCATOR_SIGNATURE:
        _, _, record_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
        if record_offset + _ZIP64_EOCD.size > tail_start + locator_at:
            raise Refusal("the ZIP64 end record lies outside the archive")
        record = _slice(source, tail, tail_start, record_offset, record_offset + _ZIP64_EOCD.size)
        if record[:4] != _ZIP64_EOCD_SIGNATURE:
            raise Refusal("the ZIP64 end record is missing")
        _, _, _, _, disk, cd_disk, _, entries, size, offset = _ZIP64_EOCD.unpack(record)
    if disk or cd_disk:
        raise Refusal("multi-disk archives are not supported")
    if offset + size > total:
        raise Refusal("the central directory lies outside the archive")
    return _Directory(offset=offset, size=size, entries=entries)


def _find_end_record(tail: bytes) -> int:
    """The position of the last end record whose comment ends exactly at the end of the archive."""
    at = tail.rfind(_EOCD_SIGNATURE)
    while at >= 0:
        if at + _EOCD.size <= len(tail) and at + _EOCD.size + _EOCD.unpack_from(tail, at)[7] == len(tail):
            return at
        at = tail.rfind(_EOCD_SIGNATURE, 0, at)
    return -1


def _slice(source: RangeSource, tail: bytes, tail_start: int, start: int, end: int) -> bytes:
    """`[start, end)` of the archive, from the tail already read when it holds it."""
    if start >= tail_start:
        return tail[start - tail_start:end - tail_start]
    return source.read(start, end)


def _entries(source: RangeSource, directory: _Directory, tail: bytes, tail_start: int) -> Iterator[_Entry]:
    """The directory's entries, read a window at a time; a record cut by a window's end waits for
    the next one (records are parsed in place: slicing the window per record is quadratic)."""
    buffer, at, count = b"", 0, 0
    position, end = directory.offset, directory.offset + directory.size
    while True:
        length = _record_length(buffer, at)
        if length is None or len(buffer) - at < length:
            if position >= end:
                break
            upto = min(end, position + WINDOW_BYTES)
            buffer, at = buffer[at:] + _slice(source, tail, tail_start, position, upto), 0
            position = upto
            continue
        count += 1
        if count > directory.entries:
            raise Refusal(f"the central directory holds more than the {directory.entries} entries "
                           "its end record lists")
        yield _parse_entry(buffer, at)
        at += length
    if at < len(buffer) or count != directory.entries:
        raise Refusal(f"the central directory is damaged: {count} entries read of {directory.entries}")


def _record_length(buffer: bytes, at: int) -> int | None:
    """The length of the central record at `at`; None when even its fixed part is not there yet."""
    if len(buffer) - at < _CENTRAL.size:
        return None
    if buffer[at:at + 4] != _CENTRAL_SIGNATURE:
        raise Refusal("the central directory is damaged: a record without its signature")
    name_length, extra_length, comment_length = struct.unpack_from("<HHH", buffer, at + 28)
    return _CENTRAL.size + name_length + extra_length + comment_length


def _parse_entry(buffer: bytes, at: int) -> _Entry:
    (_, _, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
     _, _, _, external_attr, offset) = _CENTRAL.unpack_from(buffer, at)
    start = at + _CENTRAL.size
    raw_name = buffer[start:start + name_length]
    extra = buffer[start + name_length:start + name_length + extra_length]
    size, compressed, offset = _zip64_values(extra, size, compressed, offset)
    name = raw_name.decode("utf-8", "replace") if flags & 0x800 else raw_name.decode("cp437")
    member = Member(name=name, header_offset=offset, compressed_size=compressed, size=size, method=method, crc=crc)
    return _Entry(member, flags, external_attr)


def _zip64_values(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The sizes and offset, read from the ZIP64 extra field for those saturated at 0xFFFFFFFF."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == _ZIP64_EXTRA:
            values = iter(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            try:
                size = next(values) if size == 0xFFFFFFFF else size
                compressed = next(values) if compressed == 0xFFFFFFFF else compressed
                offset = next(values) if offset == 0xFFFFFFFF else offset
            except StopIteration:
                raise Refusal("a ZIP64 extra field is too short") from None
            break
        at += 4 + length
    return size, compressed, offset


def _ignored(name: str) -> bool:
    return name.startswith(IGNORED_FOLDERS) or name.rsplit("/", 1)[-1] in IGNORED_NAMES


def name_problems(name: str) -> list[str]:
    """Why `name` could land outside the dataset's prefix (or name another key than it reads)."""
    reasons = []
    if not name:
        reasons.append("empty name")
    if name.startswith("/"):
        reasons.append("absolute path")
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        reasons.append("drive letter")
    if "\\" in name:
        reasons.append("backslash in name")
    body = name[1:] if name.startswith("/") else name
    segments = body.rstrip("/").split("/")
    if ".." in segments:
        reasons.append("'..' segment escapes the folder")
    if body and any(segment in ("", ".") for segment in segments):
        reasons.append("empty or '.' segment")
    if any(unicodedata.category(char) == "Cc" for char in name):
        reasons.append("control character in name")
    return reasons


def _member_problems(entry: _Entry, directory_offset: int, limits: Limits) -> list[str]:
    member, reasons = entry.member, []
    if stat.S_ISLNK(entry.external_attr >> 16):
        reasons.append("symbolic link")
    if member.name.lower().endswith(NESTED_SUFFIXES):
        reasons.append("nested archive")
    if entry.flags & 0x1:
        reasons.append("encrypted")
    if member.method not in (STORED, DEFLATED):
        reasons.append(f"unsupported compression method {member.method}")
    elif member.method == STORED and member.compressed_size != member.size:
        reasons.append("stored member whose sizes differ")
    if member.size >= limits.ratio_grace_bytes and member.size > limits.max_ratio * member.compressed_size:
        ratio = member.size / max(member.compressed_size, 1)
        reasons.append(f"compression ratio {ratio:.0f} is over {limits.max_ratio:g} (zip bomb)")
    if member.header_offset + LOCAL_HEADER.size + member.compressed_size > directory_offset:
        reasons.append("data lies outside the archive")
    return reasons


def _overlaps(members: list[Member]) -> list[Finding]:
    """Members whose data would overlap the previous one's (overlapping entries are a bomb)."""
    found, end = [], 0
    for member in sorted(members, key=lambda m: m.header_offset):
        if member.header_offset < end:
            found.append(Finding(member.name, "overlaps another member"))
        end = max(end, member.header_offset + LOCAL_HEADER.size + member.compressed_size)
    return found
