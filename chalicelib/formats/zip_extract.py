"""Streaming a ZIP's members into storage (formats/zip_archive.py inspects the archive first): each
member is one ranged read of its local header and data, inflated chunk by chunk and handed to a
`Sink` as it comes, so no step holds an archive or a large member. The CRC-32 and the declared size
are checked as the bytes pass; a member that writes more than its header declares is stopped there.
`batches` cuts the members into the ranges a Step Functions Map works on."""
from __future__ import annotations

import zlib
from typing import Iterable, Iterator

from chalicelib.formats.zip_archive import (
    DEFLATED, HEADER_SLACK, LOCAL_HEADER, LOCAL_SIGNATURE, MAX_KEY_BYTES, OUTPUT_BYTES, SMALL_MEMBER, STORED,
    Extracted, Member, RangeSource, Refusal, Sink, name_problems,
)


def extract(source: RangeSource, members: Iterable[Member], sink: Sink, prefix: str = "") -> list[Extracted]:
    """Stream each member to `sink` at `prefix + name`. A member whose bytes contradict its headers
    is reported (`ok=False`, `reason`) and leaves nothing; a failed read or write raises."""
    results = []
    for member in members:
        key = prefix + member.name
        refused = unwritable(member, key)
        if refused:
            results.append(Extracted(member.name, key, False, refused))
            continue
        try:
            sink.write(key, member_chunks(source, member), member.size)
        except Refusal as exc:
            results.append(Extracted(member.name, key, False, str(exc)))
        else:
            results.append(Extracted(member.name, key, True))
    return results


def member_chunks(source: RangeSource, member: Member) -> Iterator[bytes]:
    """One member's bytes as a checked stream: raises `Refusal` when they contradict its headers."""
    return _inflated(member, _compressed(source, member))


def unwritable(member: Member, key: str) -> str | None:
    """Checked again here: a batch is a list of members, whoever made it."""
    reasons = name_problems(member.name)
    if member.method not in (STORED, DEFLATED):
        reasons.append(f"unsupported compression method {member.method}")
    if len(key.encode()) > MAX_KEY_BYTES:
        reasons.append(f"key longer than S3's {MAX_KEY_BYTES} bytes")
    return "; ".join(reasons) or None


def _compressed(source: RangeSource, member: Member) -> Iterator[bytes]:
    """The member's compressed bytes: its local header and small data in one read, a large
    member's data then streamed from a second."""
    start = member.header_offset
    guess = LOCAL_HEADER.size + len(member.name.encode()) + HEADER_SLACK
    small = member.compressed_size <= SMALL_MEMBER
    head = source.read(start, min(source.size(), start + guess + (member.compressed_size if small else 0)))
    if len(head) < LOCAL_HEADER.size or head[:4] != LOCAL_SIGNATURE:
        raise Refusal("no local header at the member's offset")
    fields = LOCAL_HEADER.unpack_from(head)
    flags, name_length, extra_length = fields[2], fields[9], fields[10]
    data_start = LOCAL_HEADER.size + name_length + extra_length
    raw_name = head[LOCAL_HEADER.size:LOCAL_HEADER.size + name_length]
    if len(raw_name) == name_length and (raw_name.decode("utf-8", "replace") if flags & 0x800
                                         else raw_name.decode("cp437")) != member.name:
        raise Refusal("the local header names another file")
    if flags & 0x1:
        raise Refusal("encrypted")
    data_end = data_start + member.compressed_size
    if start + data_end > source.size():
        raise Refusal("data lies outside the archive")
    if data_end <= len(head):
        if data_end > data_start:
            yield head[data_start:data_end]
        return
    del head
    yield from source.stream(start + data_start, start + data_end)


def _inflated(member: Member, compressed: Iterator[bytes]) -> Iterator[bytes]:
    """The member's bytes, checked against its declared size (never exceeded) and CRC-32."""
    inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
    crc = produced = 0

    def checked(out: bytes) -> bytes:
        nonlocal crc, produced
        produced += len(out)
        if produced > member.size:
            raise Refusal(f"holds more than the {member.size} bytes its header declares (zip bomb)")
        crc = zlib.crc32(out, crc)
        return out

    try:
        for chunk in compressed:
            if inflater is None:
                yield checked(chunk)
                continue
            data = chunk
            while data and not inflater.eof:
                out = inflater.decompress(data, OUTPUT_BYTES)
                data = inflater.unconsumed_tail
                if out:
                    yield checked(out)
        if inflater is not None:
            # All input is consumed: what zlib still holds is at most a match (258 bytes).
            out = inflater.flush()
            if out:
                yield checked(out)
            if not inflater.eof:
                raise Refusal("the compressed data ends early")
    except zlib.error as exc:
        raise Refusal(f"the compressed data is damaged: {exc}") from exc
    if produced != member.size:
        raise Refusal(f"holds {produced} bytes, not the {member.size} its header declares")
    if crc != member.crc:
        raise Refusal(f"CRC-32 {crc:08x} differs from the declared {member.crc:08x}")


def batches(members: list[Member], max_members: int = 500, max_bytes: int = 2 << 30) -> list[tuple[int, int]]:
    """`[start, end)` ranges of `members` for a Map of extract steps: each at most `max_members`
    members and, unless it holds a single larger member, `max_bytes` uncompressed."""
    ranges, start, size = [], 0, 0
    for index, member in enumerate(members):
        if index > start and (index - start >= max_members or size + member.size > max_bytes):
            ranges.append((start, index))
            start, size = index, 0
        size += member.size
    if start < len(members):
        ranges.append((start, len(members)))
    return ranges
