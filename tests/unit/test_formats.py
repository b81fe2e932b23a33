"""Export format writers: COCO, YOLO, CSV, ImageFolder and URL manifests, checked against hand-written output."""
from __future__ import annotations

import io
import json

import pytest
from pycocotools.coco import COCO

from chalicelib.formats import ExportImage, Shape, member_name
from chalicelib.formats import coco, manifests, yolo

CAT_BOX = Shape("bbox", "cat", bbox=(10, 20, 100, 50))
DOG_TRIANGLE = Shape("polygon", "dog", points=((100, 100), (200, 100), (150, 150)))
DOG_SLIVER = Shape("polygon", "dog", points=((0.5, 0), (30.333, 0), (0.5, 40)))
BIRD_BOX = Shape("bbox", "bird", bbox=(5, 5, 10, 10))  # "bird" is not an export category
DOG_EDGE_BOX = Shape("bbox", "dog", bbox=(700, 500, 200, 200))  # runs past the 800x600 image
CAT_FULL_BOX = Shape("bbox", "cat", bbox=(0, 0, 100, 100))

IMAGES = (
    ExportImage(1, "aaaaaaaa-0001", "cats/photo.jpg", 640, 480, "train", ("cat",),
                (CAT_BOX, DOG_TRIANGLE, Shape("classification", "cat"))),
    ExportImage(2, "bbbbbbbb-0002", "dogs/photo.jpg", 800, 600, "train", ("dog", "cat"),
                (DOG_SLIVER, BIRD_BOX, DOG_EDGE_BOX)),
    ExportImage(3, "cccccccc-0003", "top.png", 100, 100, "val", ("a/b", ".."), (CAT_FULL_BOX,)),
    ExportImage(4, "dddddddd-0004", "misc/deep/x.jpeg", 50, 50, "test"),
)
CATEGORY_NAMES = ["dog", "cat", "dog"]
INFO = {"description": "pets", "version": "1"}

EXPECTED_CATEGORIES = [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}]
EXPECTED_IMAGES = [
    {"id": 1, "file_name": "cats/photo.jpg", "width": 640, "height": 480},
    {"id": 2, "file_name": "dogs/photo.jpg", "width": 800, "height": 600},
    {"id": 3, "file_name": "top.png", "width": 100, "height": 100},
    {"id": 4, "file_name": "misc/deep/x.jpeg", "width": 50, "height": 50},
]


def ann(id, image_id, category_id, bbox, area, segmentation):
    return {"id": id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "area": area, "iscrowd": 0,
            "segmentation": segmentation}


def coco_document(mode: str, options: coco.CocoOptions) -> bytes:
    categories = coco.categories(CATEGORY_NAMES)
    category_ids = {category["name"]: category["id"] for category in categories}
    images = [coco.image_entry(image) for image in IMAGES]
    annotations = [entry for image in IMAGES for entry in coco.annotation_entries(image, category_ids, mode, options)]
    return coco.dumps(INFO, images, annotations, categories)


CASES = {
    "detection": (
        "detection", coco.CocoOptions(),
        [
            ann(1, 1, 1, [10, 20, 100, 50], 5000, []),
            ann(2, 2, 2, [700, 500, 200, 200], 40000, []),
            ann(3, 3, 1, [0, 0, 100, 100], 10000, []),
        ],
    ),
    "detection-bbox-from-polygons": (
        "detection", coco.CocoOptions(bbox_from_polygons=True),
        [
            ann(1, 1, 1, [10, 20, 100, 50], 5000, []),
            ann(2, 1, 2, [100, 100, 100, 50], 5000, []),
            ann(3, 2, 2, [0.5, 0, 29.83, 40], 1193.32, []),
            ann(4, 2, 2, [700, 500, 200, 200], 40000, []),
            ann(5, 3, 1, [0, 0, 100, 100], 10000, []),
        ],
    ),
    "segmentation": (
        "segmentation", coco.CocoOptions(),
        [
            ann(1, 1, 1, [10, 20, 100, 50], 5000, []),
            ann(2, 1, 2, [100, 100, 100, 50], 2500, [[100, 100, 200, 100, 150, 150]]),
            ann(3, 2, 2, [0.5, 0, 29.83, 40], 596.66, [[0.5, 0, 30.33, 0, 0.5, 40]]),
            ann(4, 2, 2, [700, 500, 200, 200], 40000, []),
            ann(5, 3, 1, [0, 0, 100, 100], 10000, []),
        ],
    ),
    "segmentation-polygons-only": (
        "segmentation", coco.CocoOptions(include_bboxes=False),
        [
            ann(1, 1, 2, [100, 100, 100, 50], 2500, [[100, 100, 200, 100, 150, 150]]),
            ann(2, 2, 2, [0.5, 0, 29.83, 40], 596.66, [[0.5, 0, 30.33, 0, 0.5, 40]]),
        ],
    ),
    "segmentation-bboxes-as-polygons": (
        "segmentation", coco.CocoOptions(bboxes_as_polygons=True),
        [
            ann(1, 1, 1, [10, 20, 100, 50], 5000, [[10, 20, 110, 20, 110, 70, 10, 70]]),
            ann(2, 1, 2, [100, 100, 100, 50], 2500, [[100, 100, 200, 100, 150, 150]]),
            ann(3, 2, 2, [0.5, 0, 29.83, 40], 596.66, [[0.5, 0, 30.33, 0, 0.5, 40]]),
            ann(4, 2, 2, [700, 500, 200, 200], 40000, [[700, 500, 900, 500, 900, 700, 700, 700]]),
            ann(5, 3, 1, [0, 0, 100, 100], 10000, [[0, 0, 100, 0, 100, 100, 0, 100]]),
        ],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_coco_document(case):
    mode, options, annotations = CASES[case]
    raw = coco_document(mode, options)
    assert json.loads(raw) == {
        "info": {"description": "pets", "version": "1"},
        "licenses": [],
        "images": EXPECTED_IMAGES,
        "annotations": annotations,
        "categories": EXPECTED_CATEGORIES,
    }
    assert list(json.loads(raw)) == ["info", "licenses", "images", "annotations", "categories"]
    assert coco_document(mode, options) == raw


def test_coco_rounds_to_two_decimals_and_rejects_unknown_modes():
    image = ExportImage(1, "i", "a.jpg", 10, 10, "none", shapes=(Shape("bbox", "cat", bbox=(1 / 3, 2 / 3, 1.005, 2)),))
    [entry] = coco.annotation_entries(image, {"cat": 1}, "detection", coco.CocoOptions())
    assert entry["bbox"] == [0.33, 0.67, 1.0, 2.0] and entry["area"] == 2.01
    with pytest.raises(ValueError):
        coco.annotation_entries(image, {"cat": 1}, "keypoints", coco.CocoOptions())


def test_pycocotools_loads_the_segmentation_export(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_bytes(coco_document("segmentation", coco.CocoOptions()))
    loaded = COCO(str(path))
    assert (len(loaded.getImgIds()), len(loaded.getAnnIds()), len(loaded.getCatIds())) == (4, 5, 2)
    assert {name: len(loaded.getAnnIds(catIds=loaded.getCatIds(catNms=[name]))) for name in ("cat", "dog")} == {
        "cat": 2,
        "dog": 3,
    }
    assert loaded.getAnnIds(imgIds=[4]) == []
    assert loaded.loadImgs([2])[0]["file_name"] == "dogs/photo.jpg"
    mask = loaded.annToMask(loaded.loadAnns([2])[0])
    assert mask.shape == (480, 640)
    assert 2400 < mask.sum() < 2600  # the triangle's 2500 px


def test_pycocotools_loads_the_detection_export(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_bytes(coco_document("detection", coco.CocoOptions(bbox_from_polygons=True)))
    loaded = COCO(str(path))
    assert (len(loaded.getImgIds()), len(loaded.getAnnIds()), len(loaded.getCatIds())) == (4, 5, 2)
    assert len(loaded.getAnnIds(catIds=[2])) == 3


class Sink:
    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


def test_coco_writer_streams_in_bounded_writes_and_numbers_annotations():
    sink = Sink()
    writer = coco.CocoWriter(sink, {"v": 1}, EXPECTED_CATEGORIES, flush_bytes=200)
    entry = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "area": 1, "iscrowd": 0, "segmentation": []}
    for image in EXPECTED_IMAGES[:2]:
        writer.add_image(image)
    ids = [writer.add_annotation(dict(entry)) for _ in range(6)]
    written_before_close = len(sink.chunks)
    assert ids == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        writer.add_image(EXPECTED_IMAGES[2])
    writer.close()
    with pytest.raises(ValueError):
        writer.add_annotation(dict(entry))
    assert written_before_close >= 2  # streamed while entries were added, not held until close
    largest_entry = max(len(json.dumps(item)) for item in [*EXPECTED_IMAGES[:2], {"id": 6, **entry}])
    assert all(len(chunk) < 200 + largest_entry + 64 for chunk in sink.chunks)
    document = json.loads(b"".join(sink.chunks))
    assert [a["id"] for a in document["annotations"]] == ids
    assert document["images"] == EXPECTED_IMAGES[:2]
    assert document["categories"] == EXPECTED_CATEGORIES


def test_coco_writer_with_nothing_added_is_a_valid_empty_document():
    out = io.BytesIO()
    coco.CocoWriter(out, {}, []).close()
    assert json.loads(out.getvalue()) == {"info": {}, "licenses": [], "images": [], "annotations": [], "categories": []}
    assert json.loads(coco.dumps({}, EXPECTED_IMAGES[:1], [], []))["images"] == EXPECTED_IMAGES[:1]


def test_coco_file_name_is_the_relative_path():
    assert coco.image_entry(IMAGES[3])["file_name"] == "misc/deep/x.jpeg"


def test_yolo_paths_are_flat_per_split():
    # Issue 12 #15: nested paths (images/train/cats/photo.jpg) are rejected by Datumaro's YOLO importers.
    assert yolo.image_path("train", "cats/photo.jpg") == "images/train/photo.jpg"
    assert yolo.label_path("train", "cats/photo.jpg") == "labels/train/photo.txt"
    assert yolo.label_path("val", "a.b/c.tar.gz") == "labels/val/c.tar.txt"


def test_yolo_flat_names_resolve_stem_clashes_deterministically():
    names = yolo.FlatNames()
    placed = [names.place(split, path, image_id) for split, path, image_id in (
        ("train", "ml/cats/x.jpg", "aaaaaaaa-1"), ("train", "ml/dogs/x.jpg", "bbbbbbbb-2"),
        ("train", "X.png", "cccccccc-3"), ("val", "ml/dogs/x.jpg", "dddddddd-4"),
        ("train", "a/z/../../../../tmp/evil.png", "eeeeeeee-5"), ("train", "b\\..\\x.jpg", "ffffffff-6"))]
    assert placed == [
        ("images/train/x.jpg", "labels/train/x.txt"),
        ("images/train/x__bbbbbbbb.jpg", "labels/train/x__bbbbbbbb.txt"),
        ("images/train/X__cccccccc.png", "labels/train/X__cccccccc.txt"),  # the label x.txt is taken
        ("images/val/x.jpg", "labels/val/x.txt"),
        ("images/train/evil.png", "labels/train/evil.txt"),
        ("images/train/x__ffffffff.jpg", "labels/train/x__ffffffff.txt"),
    ]


def test_yolo_label_text():
    index = yolo.class_indexes(CATEGORY_NAMES)
    assert index == {"cat": 0, "dog": 1}
    assert yolo.label_text(IMAGES[0], index) == "0 0.093750 0.093750 0.156250 0.104167\n"
    assert yolo.label_text(IMAGES[0], index, bbox_from_polygons=True) == (
        "0 0.093750 0.093750 0.156250 0.104167\n"
        "1 0.234375 0.260417 0.156250 0.104167\n"
    )
    # The box past the image edge is clipped to it; "bird" has no class.
    assert yolo.label_text(IMAGES[1], index) == "1 0.937500 0.916667 0.125000 0.166667\n"
    assert yolo.label_text(IMAGES[1], index, bbox_from_polygons=True) == (
        "1 0.019271 0.033333 0.037291 0.066667\n"
        "1 0.937500 0.916667 0.125000 0.166667\n"
    )
    assert yolo.label_text(IMAGES[2], index) == "0 0.500000 0.500000 1.000000 1.000000\n"
    assert yolo.label_text(IMAGES[3], index) == ""
    assert yolo.label_text(IMAGES[0], {"dog": 0}) == ""


def test_yolo_data_yaml():
    # Issue 12 #15: no `path` (Ultralytics resolves against the YAML's folder; `path: .` against the
    # trainer's working directory); `train` and `val` are both required.
    assert yolo.data_yaml(CATEGORY_NAMES, ["val", "none", "train", "train"]) == (
        "train: images/train\n"
        "val: images/val\n"
        "names:\n"
        "  0: cat\n"
        "  1: dog\n"
    )


AWKWARD = ['a: "b"\\c', " padded", "", "yes", "1.5", "-x", "null", "tab\there", "plain name"]


def test_yolo_data_yaml_quotes_awkward_names():
    assert yolo.data_yaml(AWKWARD, ["test"]) == (
        "train: images/test  # no train images: the test images stand in\n"
        "val: images/test  # no val images: the test images stand in\n"
        "test: images/test\n"
        "names:\n"
        '  0: ""\n'
        '  1: " padded"\n'
        '  2: "-x"\n'
        '  3: "1.5"\n'
        '  4: "a: \\"b\\"\\\\c"\n'
        '  5: "null"\n'
        "  6: plain name\n"
        '  7: "tab\\there"\n'
        '  8: "yes"\n'
    )


def test_yolo_data_yaml_round_trips_through_a_yaml_parser():
    import yaml
    parsed = yaml.safe_load(yolo.data_yaml(AWKWARD, ["train", "val", "test"]))
    assert parsed["names"] == dict(enumerate(sorted(AWKWARD)))
    assert "path" not in parsed
    assert (parsed["train"], parsed["val"], parsed["test"]) == ("images/train", "images/val", "images/test")
    assert yaml.safe_load(yolo.data_yaml(["cat"], ["train"]))["val"] == "images/train"


def test_csv_document():
    assert manifests.csv_document(IMAGES) == (
        "image_path,class_name,split\n"
        "cats/photo.jpg,cat,train\n"
        "dogs/photo.jpg,cat,train\n"
        "dogs/photo.jpg,dog,train\n"
        "top.png,..,val\n"
        "top.png,a/b,val\n"
    )
    assert manifests.csv_rows(IMAGES[3]) == ""
    assert manifests.csv_document([]) == "image_path,class_name,split\n"


def test_csv_quotes_minimally():
    image = ExportImage(1, "i", "a,b.jpg", 1, 1, "none", ('say "hi"', "x"))
    assert manifests.csv_rows(image) == '"a,b.jpg","say ""hi""",none\n"a,b.jpg",x,none\n'


def test_image_folder_paths_resolve_collisions_and_unsafe_names():
    paths = manifests.image_folder_paths(IMAGES)
    assert [(image.number, path) for image, path in paths] == [
        (1, "train/cat/photo.jpg"),
        (2, "train/cat/photo-bbbbbbbb.jpg"),
        (2, "train/dog/photo.jpg"),
        (3, "val/_/top.png"),
        (3, "val/a_b/top.png"),
    ]
    assert manifests.image_folder_paths(IMAGES) == paths


def test_image_folder_paths_never_repeat():
    images = [
        ExportImage(1, "same0000-1", "a/x.jpg", 1, 1, "train", ("c", "c")),
        ExportImage(2, "same0000-2", "b/x.jpg", 1, 1, "train", ("c",)),
        ExportImage(3, "same0000-3", "c/X.JPG", 1, 1, "train", ("c",)),
        ExportImage(4, "other000-4", "d/x-same0000.jpg", 1, 1, "train", ("c", "..\\..", "/")),
    ]
    assert [path for _, path in manifests.image_folder_paths(images)] == [
        "train/c/x.jpg",
        "train/c/x-same0000.jpg",
        "train/c/X-same0000-2.JPG",
        "train/.._../x-same0000.jpg",
        "train/_/x-same0000.jpg",
        "train/c/x-same0000-other000.jpg",
    ]


@pytest.mark.parametrize("path, name", [
    ("zoo/a.jpg", "zoo/a.jpg"),
    ("a/z/../../../../tmp/evil.png", "a/z/_/_/_/_/tmp/evil.png"),
    ("/etc/passwd", "etc/passwd"),
    ("..\\..\\windows\\x.png", "_/_/windows/x.png"),
    ("C:/x.png", "C_/x.png"),
    ("cat\u202egnp.exe", "cat_gnp.exe"),
    ("a\x00b/\x1b[31mred.png", "a_b/_[31mred.png"),
    ("./a//b/./c.png", "a/b/c.png"),
    ("..", "_"),
    ("", "_"),
    ("cafe\u0301.jpg", "caf\u00e9.jpg"),
])
def test_member_names_cannot_escape_or_hide(path, name):
    assert member_name(path) == name
    assert member_name(name) == name  # stable


def test_url_line():
    line = manifests.url_line(IMAGES[1], "https://example.org/dogs/photo.jpg?sig=1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "image_id": "bbbbbbbb-0002",
        "path": "dogs/photo.jpg",
        "url": "https://example.org/dogs/photo.jpg?sig=1",
        "width": 800,
        "height": 600,
        "split": "train",
        "labels": ["bird", "cat", "dog"],
    }
