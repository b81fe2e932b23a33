"""Every export format writer through one archive: member names safe for any object key, and
categories chosen by label type. No AWS: the work folder is a dict."""
from __future__ import annotations

import io
import zipfile

import pytest

from chalicelib.formats import ExportImage, Shape
from chalicelib.services.export_contents import categories
from chalicelib.services.export_formats import FORMAT_WRITERS, Archive, Parts, Shard
from chalicelib.services.export_spec import FORMATS, ExportSpec


class Objects:
    """The few Bucket calls writers make, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def lines(self, key: str):
        yield from self.objects.get(key, b"").split(b"\n")

    def open(self, key: str):
        return (None, iter([self.objects[key]])) if key in self.objects else None

    def presign_get(self, key: str, expires_in: int, **kwargs) -> str:
        return f"https://share.example/{key}?X-Amz-Expires={expires_in}"


UNSAFE = ("a/z/../../../../tmp/evil.png", "/etc/cron.d/x.jpg", "..\\..\\win.jpg", "safe/cat\u202egnp.jpg",
          "ctl/\x1b[2Jx.jpg", "c:/drive.jpg")
RECORDS = [ExportImage(n + 1, f"{n:08x}-image", path, 40, 30, "train", ("cat",),
                       (Shape("bbox", "cat", bbox=(1, 1, 10, 10)),)) for n, path in enumerate(UNSAFE)]


def build(output_format: str, mode: str) -> zipfile.ZipFile:
    options = {"include_images": True}
    if mode == "classification":
        options["class_mapping"] = {"kind": "labels"}
    spec = ExportSpec.model_validate({"export_mode": mode, "output_format": output_format, "options": options})
    writer, objects = FORMAT_WRITERS[output_format], Objects()
    entries = None if mode == "classification" else [[{"image_id": r.number, "category_id": 1, "bbox": [1, 1, 10, 10],
                                                       "area": 100, "iscrowd": 0, "segmentation": []}]
                                                     for r in RECORDS]
    writer.part(Shard(objects, objects, "work/part-00000"), spec, ["cat"], RECORDS, entries)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        archive = Archive(zipped)
        named = writer.body(archive, Parts(objects, "work", [0]), spec, ["cat"])
        for record, path in writer.placements(RECORDS):
            archive.write(named.get(record.number, path), b"pixels", record.image_id)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("mode, output_format", [(mode, fmt) for mode, fmts in FORMATS.items() for fmt in fmts])
def test_no_format_writes_an_unsafe_member_name(mode, output_format):
    archive = build(output_format, mode)
    names = archive.namelist()
    assert len(names) == len(set(name.casefold() for name in names))
    for name in names:
        parts = name.split("/")
        assert not name.startswith("/") and "\\" not in name and ":" not in name, name
        assert ".." not in parts and "" not in parts and "." not in parts, name
        assert all(ch.isprintable() and ch not in "\u202e\u202d\u2066\u2067\u2068\u2069" for ch in name), name
    assert len([n for n in names if n.endswith(("jpg", "png", "gnp"))]) >= len(RECORDS)


def test_archive_renames_a_second_member_of_the_same_name():
    with zipfile.ZipFile(io.BytesIO(), "w") as zipped:
        archive = Archive(zipped)
        assert [archive.claim(path, "abcdef123") for path in ("images/x.jpg", "images/X.jpg", "images/x.jpg")] == [
            "images/x.jpg", "images/X-abcdef12.jpg", "images/x-abcdef12-2.jpg"]


LABELS = [{"name": "any", "annotation_type": "any"}, {"name": "box", "annotation_type": "bbox"},
          {"name": "shape", "annotation_type": "polygon"}, {"name": "scene", "annotation_type": "classification"}]


@pytest.mark.parametrize("mode, options, expected", [
    ("detection", {}, ["any", "box"]),
    ("detection", {"bbox_from_polygons": True}, ["any", "box", "shape"]),
    ("segmentation", {}, ["any", "box", "shape"]),
    ("segmentation", {"include_bboxes": False}, ["any", "shape"]),
    ("segmentation", {"include_bboxes": False, "bboxes_as_polygons": True}, ["any", "box", "shape"]),
])
def test_categories_are_the_labels_that_can_hold_what_is_exported(mode, options, expected):
    spec = ExportSpec.model_validate({"export_mode": mode, "output_format": "coco_json", "options": options})
    assert categories(LABELS, spec) == expected
