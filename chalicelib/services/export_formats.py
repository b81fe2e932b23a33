"""One writer per export format, used by the preview, the summary and the build alike.

A writer says what its format can place (`split_based`: images in no split are left out;
`needs_images`: nothing without the image files), where each image goes in the ZIP
(`placements`), what one shard contributes (`part`, files under the export's work folder) and how
the parts become the artifact's body (`body`). Every ZIP member name goes through `Archive`, which
makes it safe (`formats.member_name`) and unique, whatever writer asked for it.
"""
from __future__ import annotations

import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator

import orjson

from chalicelib.clock import utcnow
from chalicelib.formats import ExportImage, captions, coco, manifests, member_name, yolo

if TYPE_CHECKING:  # types only: the spec module imports this one
    from chalicelib.services.export_spec import ExportSpec
    from chalicelib.store.objects import Bucket


@dataclass(frozen=True)
class Shard:
    """Where one shard's part files go: `<work>/part-<n>` + a suffix per kind."""

    artifacts: Bucket
    share: Bucket
    part: str

    def put(self, suffix: str, data: bytes, content_type: str) -> None:
        self.artifacts.put(self.part + suffix, data, content_type)

    def put_lines(self, suffix: str, lines: Iterable[bytes]) -> None:
        self.artifacts.put(self.part + suffix, b"\n".join(lines), "application/x-ndjson")


@dataclass(frozen=True)
class Parts:
    """Every shard's part files, read back in shard order when the artifact is assembled."""

    artifacts: Bucket
    work: str
    shards: list[int]

    def _key(self, shard: int, suffix: str) -> str:
        return f"{self.work}/part-{shard:05d}{suffix}"

    def lines(self, suffix: str) -> Iterator[bytes]:
        for shard in self.shards:
            for line in self.artifacts.lines(self._key(shard, suffix)):
                if line:
                    yield line

    def chunks(self, suffix: str) -> Iterator[bytes]:
        for shard in self.shards:
            opened = self.artifacts.open(self._key(shard, suffix))
            yield from opened[1] if opened else ()


class Archive:
    """The ZIP being assembled. Member names are made safe and unique here, for every writer: an
    object key is never a member name as it is (zip slip, bidi tricks), and a name a member already
    has (compared case-insensitively, as on macOS and Windows) gets the image id's start."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._zip = archive
        self._used: set[str] = set()

    def claim(self, wanted: str, image_id: str = "") -> str:
        path = member_name(wanted)
        candidate, n = path, 1
        while candidate.casefold() in self._used:
            stem = PurePosixPath(path)
            suffix = f"-{image_id[:8]}" if n == 1 and image_id else f"-{image_id[:8]}-{n}"
            candidate = str(stem.with_name(stem.stem + suffix + stem.suffix))
            n += 1
        self._used.add(candidate.casefold())
        return candidate

    def write(self, wanted: str, data: str | bytes, image_id: str = "") -> str:
        name = self.claim(wanted, image_id)
        self._zip.writestr(name, data)
        return name

    @contextmanager
    def open(self, wanted: str, image_id: str = "", stored: bool = False) -> Iterator[IO[bytes]]:
        info = zipfile.ZipInfo(self.claim(wanted, image_id), date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        with self._zip.open(info, "w", force_zip64=True) as member:
            yield member


class ExportFormat:
    """A format's defaults: images under `images/<path>`, no split needed, images optional."""

    name = ""
    title = ""
    split_based = False
    needs_images = False

    def placements(self, records: list[ExportImage]) -> list[tuple[ExportImage, str]]:
        """Where each record's image goes in the ZIP (a member name to claim), in record order."""
        return [(record, f"images/{record.file_path}") for record in records]

    def part(self, shard: Shard, spec: ExportSpec, categories: list[str], records: list[ExportImage],
             entries: list[list[dict]] | None) -> None:
        """One shard's contribution to the body."""

    def body(self, archive: Archive, parts: Parts, spec: ExportSpec, categories: list[str]) -> dict[int, str]:
        """The artifact's body from every shard's part; returns image number → member name for
        images the body has already named (their `placements` name is then not used)."""
        return {}


class CocoJson(ExportFormat):
    name, title = "coco_json", "COCO JSON"

    def part(self, shard, spec, categories, records, entries):
        shard.put_lines(".images.jsonl", (orjson.dumps(coco.image_entry(record)) for record in records))
        shard.put_lines(".annotations.jsonl", (orjson.dumps(entry) for found in entries or () for entry in found))

    def body(self, archive, parts, spec, categories):
        info = {"description": "pixelpool export", "date_created": utcnow().isoformat()}
        with archive.open("annotations.json") as member:
            writer = coco.CocoWriter(member, info, coco.categories(categories))
            for line in parts.lines(".images.jsonl"):
                writer.add_image(orjson.loads(line))
            for line in parts.lines(".annotations.jsonl"):
                writer.add_annotation(orjson.loads(line))
            writer.close()
        return {}


class Yolo(ExportFormat):
    """Ultralytics layout, flat per split: `images/<split>/<name>`, `labels/<split>/<stem>.txt`.

    Names are the image's file name; a stem an earlier image of the split has (any suffix,
    compared case-insensitively) becomes `<stem>__<image id start>`, the same for image and label."""

    name, title = "yolo", "YOLO"
    split_based = True

    def placements(self, records):
        return [(record, yolo.image_path(record.split, record.file_path)) for record in records]

    def part(self, shard, spec, categories, records, entries):
        index = yolo.class_indexes(categories)
        shard.put_lines(".labels.jsonl", (orjson.dumps([
            record.number, record.image_id, record.split, record.file_path,
            yolo.label_text(record, index, spec.options.bbox_from_polygons)]) for record in records))

    def body(self, archive, parts, spec, categories):
        names = yolo.FlatNames()
        images: dict[int, str] = {}
        splits = set()
        for line in parts.lines(".labels.jsonl"):
            number, image_id, split, file_path, text = orjson.loads(line)
            image, label = names.place(split, file_path, image_id)
            archive.write(label, text)
            splits.add(split)
            if spec.with_images:
                images[number] = image
        archive.write("data.yaml", yolo.data_yaml(categories, splits))
        return images


class ManifestCsv(ExportFormat):
    name, title = "manifest_csv", "CSV"

    def part(self, shard, spec, categories, records, entries):
        shard.put(".csv", "".join(manifests.csv_rows(record) for record in records).encode(), "text/csv")

    def body(self, archive, parts, spec, categories):
        with archive.open("manifest.csv") as member:
            member.write((manifests.CSV_HEADER + "\n").encode())
            for chunk in parts.chunks(".csv"):
                member.write(chunk)
        return {}


class ImageFolder(ExportFormat):
    """`<split>/<class>/<file name>`: an image is placed once per class it has."""

    name, title = "image_folder", "ImageFolder"
    split_based = True
    needs_images = True

    def placements(self, records):
        return manifests.image_folder_paths(records)


class UrlManifest(ExportFormat):
    name, title = "url_manifest", "URL manifest"

    def part(self, shard, spec, categories, records, entries):
        expires = spec.options.url_expires_in
        shard.put(".jsonl", b"".join(
            manifests.url_line(r, shard.share.presign_get(r.file_path, expires)) for r in records),
            "application/x-ndjson")

    def body(self, archive, parts, spec, categories):
        with archive.open("manifest.jsonl") as member:
            for chunk in parts.chunks(".jsonl"):
                member.write(chunk)
        return {}


class ImageText(ExportFormat):
    """Image-text pairs (formats/captions.py): `<split>/<name>` beside `<split>/<stem>.txt`, and a
    `metadata.jsonl` per split folder (at the root when the export's images are in no split).

    Only captioned records reach a writer (`ExportContents.place` leaves the rest out, counted)."""

    name, title = "image_text", "Image-text pairs"
    needs_images = True

    def part(self, shard, spec, categories, records, entries):
        shard.put_lines(".captions.jsonl", (orjson.dumps([
            record.number, record.image_id, record.split, record.file_path, record.caption]) for record in records))

    def body(self, archive, parts, spec, categories):
        names = captions.PairNames()
        images: dict[int, str] = {}
        # Held until every caption file is written: a ZIP takes one member at a time.
        metadata: dict[str, list[bytes]] = {}
        for line in parts.lines(".captions.jsonl"):
            number, image_id, split, file_path, text = orjson.loads(line)
            folder = captions.folder_of(split)
            image, caption = names.place(folder, file_path, image_id)
            archive.write(caption, text)
            images[number] = image
            metadata.setdefault(folder, []).append(captions.metadata_line(image[len(folder):].lstrip("/"), text))
        for folder, lines in sorted(metadata.items()):
            archive.write(captions.metadata_path(folder), b"".join(lines))
        return images


FORMAT_WRITERS: dict[str, ExportFormat] = {writer.name: writer for writer in (
    CocoJson(), Yolo(), ManifestCsv(), ImageFolder(), UrlManifest(), ImageText())}


def writer_of(spec: ExportSpec) -> ExportFormat:
    return FORMAT_WRITERS[spec.output_format]


def placed_images(placements: Iterable[tuple[ExportImage, Any]]) -> int:
    """How many distinct images a list of placements holds (ImageFolder places one per class)."""
    return len({record.image_id for record, _ in placements})
