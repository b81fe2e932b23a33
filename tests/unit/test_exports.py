"""An export shard's build step with its stores faked: the facts it needs of the shard's images
(captions, EXIF orientations) come from one batched read of their registry records, never one
read per image, and a captions export reads no annotations."""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from unittest import mock

import orjson
from PIL import Image as Pillow

from chalicelib.services.explore import ExploreService
from chalicelib.services.export_contents import ExportContents, Row
from chalicelib.services.exports import ExportService
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.store.exports import PROCESSING, Export, ExportRepository
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import Image, ImageRepository
from chalicelib.store.jobs import JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.tasks import TaskRepository
from chalicelib.store.tags import TagRepository
from tests import imagefiles

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
WORK = "exports/p1/e1/work"


class Objects:
    """The Bucket calls a build step makes, over a dict."""

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects = dict(objects or {})

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def put_json(self, key: str, document) -> None:
        self.objects[key] = json.dumps(document).encode()

    def get_json(self, key: str):
        return json.loads(self.objects[key])

    def lines(self, key: str):
        yield from self.objects.get(key, b"").split(b"\n")

    def open(self, key: str):
        return (None, iter([self.objects[key]])) if key in self.objects else None

    def copy_from(self, source: "Objects", source_key: str, key: str) -> None:
        self.objects[key] = source.objects[source_key]


def record(image_id: str, path: str, caption: str | None, orientation: int | None = None) -> Image:
    return Image(id=image_id, file_path=path, filename=path.rsplit("/", 1)[-1], folder="", status="ready",
                 reason=None, size=1, etag=None, format="JPEG", mime_type="image/jpeg", width=4, height=4,
                 frames=1, sha256=None, phash=None, exif={"orientation": orientation} if orientation else None,
                 thumbnail_key=None, object_modified_at=None, created_at=NOW, updated_at=NOW, registered_by=None,
                 metadata={}, tag_ids=(), mask_of=None, mask_category=None,
                 caption={"text": caption, "source": "user"} if caption is not None else None)


def test_a_captions_shard_reads_its_images_records_once_for_captions_and_orientations():
    # Given a shard of three images: one stored turned (EXIF 6) with a caption, one upright with a
    # caption, one without a caption
    rotated, upright = imagefiles.oriented(120, 80, 6, seed=1), imagefiles.picture(40, 30, seed=2)
    share = Objects({"a/r.jpg": rotated, "a/u.jpg": upright, "a/n.jpg": upright})
    images = mock.create_autospec(ImageRepository, instance=True)
    images.find.side_effect = lambda ids: {image.id: image for image in (
        record("r", "a/r.jpg", "turned", orientation=6), record("u", "a/u.jpg", "upright"),
        record("n", "a/n.jpg", None)) if image.id in set(ids)}
    rows = [Row(n + 1, image_id, path, 4, 4, None, "train", (("job", True),), ())
            for n, (image_id, path) in enumerate((("r", "a/r.jpg"), ("u", "a/u.jpg"), ("n", "a/n.jpg")))]
    artifacts = Objects({f"{WORK}/plan.json": json.dumps({"categories": [], "excluded": {}}).encode(),
                         f"{WORK}/manifest-00000.jsonl": b"\n".join(row.dump() for row in rows)})
    exports = mock.create_autospec(ExportRepository, instance=True)
    exports.get.return_value = Export("e1", "p1", "Captions Export v1", 1, "captions", "image_text", PROCESSING,
                                      {}, {}, None, None, None, None, 1, 0, "alice", NOW, NOW, None)
    annotations = mock.create_autospec(AnnotationRepository, instance=True)
    contents = ExportContents(mock.create_autospec(ExploreService, instance=True),
                              mock.create_autospec(TaskRepository, instance=True),
                              mock.create_autospec(JobRepository, instance=True), annotations,
                              mock.create_autospec(TagRepository, instance=True),
                              mock.create_autospec(ImageTagRepository, instance=True),
                              mock.create_autospec(Bucket, instance=True))
    service = ExportService(None, exports, None, images, contents, None, share, artifacts, None, None, "machine")
    # When the shard is built
    service.build("p1", "e1", 0)
    # Then the records were read in one batched read, never one by one, and no annotation was read
    assert images.find.call_count == 1 and sorted(images.find.call_args.args[0]) == ["n", "r", "u"]
    images.get.assert_not_called()
    assert not annotations.method_calls
    # And the captioned images carry their captions, the uncaptioned one is counted out
    lines = [orjson.loads(line) for line in artifacts.objects[f"{WORK}/part-00000.captions.jsonl"].split(b"\n")]
    assert [(line[1], line[4]) for line in lines] == [("r", "turned"), ("u", "upright")]
    assert json.loads(artifacts.objects[f"{WORK}/summary-00000.json"])["excluded"] == {"without_caption": 1}
    # And the same read told which image to turn into its displayed frame
    assert Pillow.open(io.BytesIO(artifacts.objects[f"{WORK}/files/000000001"])).size == (80, 120)
    assert artifacts.objects[f"{WORK}/files/000000002"] == upright
    assert f"{WORK}/files/000000003" not in artifacts.objects
