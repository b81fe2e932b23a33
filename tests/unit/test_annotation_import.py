"""Annotation import: COCO, DICE, YOLO (Ultralytics, Darknet) read into Shapes, with every unusable
thing in `problems` and the unreadable or unmatched file as an error."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.formats import ExportImage, Shape, coco, yolo
from chalicelib.formats import member_name
from chalicelib.formats.annotation_import import MAX_PROBLEMS, TOLERANCE_PX, Paths, Problem, detect, parse
from chalicelib.schemas.annotations import AnnotationIn

UPLOADED = {"cats/a.jpg": (640, 480), "cats/b.jpg": (640, 480), "dogs/c.png": (800, 600)}
INFO = {"description": "pets"}


def coco_file(images, annotations, categories=(("cat", 1), ("dog", 2)), info=True) -> bytes:
    document = {"images": list(images), "annotations": list(annotations),
                "categories": [{"id": i, "name": n, "supercategory": ""} for n, i in categories]}
    if info:
        document = {"info": INFO, "licenses": [], **document}
    return json.dumps(document).encode()


def image(id, file_name, width=640, height=480):
    return {"id": id, "file_name": file_name, "width": width, "height": height}


def box(id, image_id, category_id, bbox, **extra):
    area = bbox[2] * bbox[3] if len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox) else 0
    return {"id": id, "image_id": image_id, "category_id": category_id, "bbox": bbox, "area": area, "iscrowd": 0,
            "segmentation": [], **extra}


def pycocotools_loads(data: bytes, tmp_path) -> COCO:
    """The file as pycocotools reads it: a test fixture that is not valid COCO fails here."""
    path = tmp_path / "fixture.json"
    path.write_bytes(data)
    return COCO(str(path))


def reasons(result) -> list[str]:
    return [problem.reason for problem in result.problems]


def parse_one(name: str, data: bytes, uploaded=UPLOADED):
    return parse({name: data}, uploaded, uploaded if isinstance(uploaded, dict) else None)


# --- detect ---

@pytest.mark.parametrize("files, expected", [
    ({"instances_train.json": coco_file([], [])}, "coco"),
    ({"annotations.json": coco_file([], [], info=False)}, "dice"),
    ({"data.yaml": b"names: [cat]\n", "labels/train/a.txt": b""}, "yolo"),
    ({"obj.names": b"cat\n", "obj_train_data/a.txt": b""}, "darknet"),
])
def test_detect_names_the_format(files, expected):
    assert detect(files) == expected


@pytest.mark.parametrize("files, named", [
    ({"labels.csv": b"a,b\n"}, "labels.csv"),
    ({"notes.json": b'{"hello": 1}'}, "notes.json"),
    ({"broken.json": b'{"images": ['}, "broken.json"),
])
def test_detect_refuses_an_unknown_or_unreadable_file_naming_it(files, named):
    with pytest.raises(BadRequestError) as caught:
        detect(files)
    assert caught.value.message.startswith(named)


# --- COCO ---

def test_coco_detection_gives_boxes_categories_and_the_split_of_its_file_name(tmp_path):
    # Given a detection file named for the train split
    data = coco_file([image(1, "cats/a.jpg"), image(2, "dogs/c.png", 800, 600)],
                     [box(1, 1, 1, [10, 20, 100, 50]), box(2, 2, 2, [0, 0, 800, 600])])
    assert len(pycocotools_loads(data, tmp_path).getAnnIds()) == 2
    # When it is parsed
    result = parse_one("annotations/instances_train2017.json", data)
    # Then every image has its boxes, in pixels, and the train split
    assert result.format == "coco"
    assert result.images == {"cats/a.jpg": [Shape("bbox", "cat", bbox=(10, 20, 100, 50))],
                             "dogs/c.png": [Shape("bbox", "dog", bbox=(0, 0, 800, 600))]}
    assert result.splits == {"cats/a.jpg": "train", "dogs/c.png": "train"}
    assert result.categories == {"cat": "bbox", "dog": "bbox"}
    assert result.problems == []


def test_coco_segmentation_makes_one_polygon_per_part(tmp_path):
    # Given a polygon of two parts and a box in the same file
    parts = [[10, 10, 50, 10, 30, 40], [100, 100, 120, 100, 120, 130, 100, 130]]
    data = coco_file([image(1, "cats/a.jpg")],
                     [box(1, 1, 1, [10, 10, 110, 120], segmentation=parts), box(2, 1, 2, [5, 5, 10, 10])])
    assert len(pycocotools_loads(data, tmp_path).getAnnIds()) == 2
    # When it is parsed
    result = parse_one("instances_val.json", data)
    # Then each part is a polygon annotation of its own; the label sets follow the geometry
    assert result.images["cats/a.jpg"] == [
        Shape("polygon", "cat", points=((10, 10), (50, 10), (30, 40))),
        Shape("polygon", "cat", points=((100, 100), (120, 100), (120, 130), (100, 130))),
        Shape("bbox", "dog", bbox=(5, 5, 10, 10)),
    ]
    assert result.splits == {"cats/a.jpg": "val"}
    assert result.categories == {"cat": "polygon", "dog": "bbox"}


def test_an_unnested_polygon_is_read_as_one_part():
    data = coco_file([image(1, "cats/a.jpg")], [box(1, 1, 1, [1, 1, 9, 9], segmentation=[1, 1, 10, 1, 10, 10])])
    result = parse_one("a.json", data)
    assert result.images["cats/a.jpg"] == [Shape("polygon", "cat", points=((1, 1), (10, 1), (10, 10)))]


def test_several_coco_files_give_each_image_its_file_split():
    train = coco_file([image(1, "cats/a.jpg")], [box(1, 1, 1, [1, 1, 2, 2])])
    val = coco_file([image(1, "cats/b.jpg")], [box(1, 1, 2, [1, 1, 2, 2])])
    result = parse({"instances_train.json": train, "instances_val.json": val}, UPLOADED, UPLOADED)
    assert result.splits == {"cats/a.jpg": "train", "cats/b.jpg": "val"}
    assert result.images == {"cats/a.jpg": [Shape("bbox", "cat", bbox=(1, 1, 2, 2))],
                             "cats/b.jpg": [Shape("bbox", "dog", bbox=(1, 1, 2, 2))]}


def test_every_imported_shape_is_an_annotation_the_api_accepts():
    data = coco_file([image(1, "cats/a.jpg")],
                     [box(1, 1, 1, [-0.5, 0, 640.5, 480.4]), box(2, 1, 2, [0, 0, 1, 1], segmentation=[[0, 0, 5, 0, 5, 5]])])
    shapes = parse_one("a.json", data).images["cats/a.jpg"]
    assert len(shapes) == 2
    for shape in shapes:
        AnnotationIn(type=shape.type, label=shape.label, bbox=list(shape.bbox) if shape.bbox else None,
                     points=[list(point) for point in shape.points] if shape.points else None)


def test_a_category_with_boxes_and_polygons_is_any_and_an_unused_one_is_kept():
    data = coco_file([image(1, "cats/a.jpg")],
                     [box(1, 1, 1, [1, 1, 5, 5]), box(2, 1, 1, [1, 1, 5, 5], segmentation=[[1, 1, 6, 1, 6, 6]])],
                     categories=(("cat", 1), ("unused", 2)))
    assert parse_one("a.json", data).categories == {"cat": "any", "unused": "any"}


def test_rle_masks_and_crowd_regions_are_problems_not_annotations(tmp_path):
    rle = {"counts": [0, 5, 10], "size": [480, 640]}
    data = coco_file([image(1, "cats/a.jpg")],
                     [box(1, 1, 1, [0, 0, 10, 10], segmentation=rle, iscrowd=1),
                      box(2, 1, 1, [0, 0, 10, 10], segmentation=rle),
                      box(3, 1, 1, [0, 0, 10, 10], segmentation=[[0, 0, 10, 0, 10, 10]], iscrowd=1),
                      box(4, 1, 2, [1, 2, 3, 4])])
    pycocotools_loads(data, tmp_path)
    result = parse_one("instances_train.json", data)
    assert result.images["cats/a.jpg"] == [Shape("bbox", "dog", bbox=(1, 2, 3, 4))]
    assert result.problems == [
        Problem("instances_train.json", "crowd region (iscrowd=1) not imported", "cats/a.jpg", "1"),
        Problem("instances_train.json", "RLE mask not imported", "cats/a.jpg", "2"),
        Problem("instances_train.json", "crowd region (iscrowd=1) not imported", "cats/a.jpg", "3"),
    ]


def test_the_file_name_1_2_3_defect_fails_the_import_naming_the_file_and_the_names():
    # Given the seed's broken file: image ids as file names
    data = coco_file([image(1, "1"), image(2, "2"), image(3, "3")], [box(1, 1, 1, [1, 1, 2, 2])], info=False)
    # When it is parsed, Then the import fails and says why
    with pytest.raises(ValidationError) as caught:
        parse_one("det-mvtec/annotations.json", data)
    assert caught.value.message == ("det-mvtec/annotations.json: none of its 3 image file_name values matches "
                                    "an uploaded image path (e.g. '1', '2', '3')")
    assert caught.value.details[0]["unmatched"] == ["1", "2", "3"]


def test_dice_without_categories_takes_the_category_id_as_the_label():
    data = json.dumps({"images": [{"id": 7, "file_name": "cats/a.jpg"}],
                       "annotations": [{"image_id": 7, "category_id": "scratch", "bbox": [1, 2, 3, 4]}]}).encode()
    result = parse_one("annotations.json", data)
    assert result.format == "dice"
    assert result.images == {"cats/a.jpg": [Shape("bbox", "scratch", bbox=(1, 2, 3, 4))]}
    assert result.categories == {"scratch": "bbox"}
    assert result.splits == {}


def test_dice_with_categories_reads_them_like_coco():
    data = coco_file([{"id": 1, "file_name": "dogs/c.png"}], [{"image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 2]}],
                     info=False)
    assert parse_one("annotations.json", data).images == {"dogs/c.png": [Shape("bbox", "dog", bbox=(1, 1, 2, 2))]}


# --- matching image references ---

@pytest.mark.parametrize("file_name, uploaded, expected", [
    ("cats/a.jpg", {"cats/a.jpg": (640, 480)}, "cats/a.jpg"),
    ("a.jpg", {"cats/a.jpg": (640, 480)}, "cats/a.jpg"),  # unique basename
    ("train/cats/a.jpg", {"cats/a.jpg": (640, 480), "b.jpg": (1, 1)}, "cats/a.jpg"),  # unique basename
    ("cats/a.jpg", {"root/cats/a.jpg": (640, 480), "root/dogs/a.jpg": (640, 480)}, "root/cats/a.jpg"),  # path ending
    ("cats\\a.jpg", {"cats/a.jpg": (640, 480)}, "cats/a.jpg"),  # a backslash is a separator
])
def test_a_file_name_finds_its_uploaded_image(file_name, uploaded, expected):
    data = coco_file([image(1, file_name)], [box(1, 1, 1, [1, 1, 2, 2])])
    result = parse_one("a.json", data, uploaded)
    assert list(result.images) == [expected]
    assert result.problems == []


def test_many_images_of_one_basename_are_told_apart_by_their_folders():
    uploaded = {f"scene{n}/rgb/image.jpg": (64, 48) for n in range(2000)}
    data = coco_file([image(n, f"scene{n}/rgb/image.jpg", 64, 48) for n in range(0, 2000, 7)]
                     + [image(9999, "rgb/image.jpg", 64, 48)], [])
    result = parse_one("a.json", data, uploaded)
    assert len(result.images) == len(range(0, 2000, 7))
    assert reasons(result) == ["ambiguous: 2000 uploaded images match by path ending ('scene0/rgb/image.jpg', "
                               "'scene1/rgb/image.jpg', 'scene10/rgb/image.jpg', 'scene100/rgb/image.jpg', "
                               "'scene1000/rgb/image.jpg'): its annotations are not imported"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "B", "0", ".", "..", "-", "_", "/", "\\", " ", ":", "é", "\u202e", "x.jpg"]),
                max_size=12))
def test_a_path_key_is_its_member_name(pieces):
    # The plain-ASCII shortcut gives what member_name gives.
    reference = "".join(pieces)
    assert Paths([]).key(reference) == member_name(reference)


def test_an_ambiguous_basename_is_a_problem_never_a_guess():
    # Given two uploaded images named a.jpg and a file that says only "a.jpg"
    uploaded = {"cats/a.jpg": (640, 480), "dogs/a.jpg": (640, 480), "b.jpg": (640, 480)}
    data = coco_file([image(1, "a.jpg"), image(2, "b.jpg")], [box(1, 1, 1, [1, 1, 2, 2]), box(2, 2, 1, [1, 1, 2, 2])])
    # When it is parsed
    result = parse_one("a.json", data, uploaded)
    # Then that image is reported, its annotation not attached anywhere, and the other imported
    assert list(result.images) == ["b.jpg"]
    assert result.problems == [Problem("a.json", "ambiguous: 2 uploaded images match by path ending ('cats/a.jpg', "
                                                 "'dogs/a.jpg'): its annotations are not imported", "a.jpg")]


def test_an_image_not_uploaded_and_an_annotation_of_an_unknown_image_are_problems():
    data = coco_file([image(1, "cats/a.jpg"), image(2, "missing/z.jpg")],
                     [box(1, 1, 1, [1, 1, 2, 2]), box(2, 2, 1, [1, 1, 2, 2]), box(3, 99, 1, [1, 1, 2, 2])])
    result = parse_one("a.json", data)
    assert result.images == {"cats/a.jpg": [Shape("bbox", "cat", bbox=(1, 1, 2, 2))]}
    assert result.problems == [
        Problem("a.json", "not among the uploaded images: its annotations are not imported", "missing/z.jpg"),
        Problem("a.json", "unknown image id 99", None, "3"),
    ]


# --- validation ---

@pytest.mark.parametrize("annotation, reason", [
    (box(1, 1, 9, [1, 1, 2, 2]), "unknown category id 9"),
    (box(1, 1, 1, [1, 1, 0, 2]), "bbox width and height must be positive (got 0 x 2)"),
    (box(1, 1, 1, [1, 1, -3, 2]), "bbox width and height must be positive (got -3 x 2)"),
    (box(1, 1, 1, [600, 10, 50, 10]), "bbox [600, 10, 50, 10] runs past the 640x480 image by more than 1 px"),
    (box(1, 1, 1, [-1.5, 10, 50, 10]), "bbox [-1.5, 10, 50, 10] runs past the 640x480 image by more than 1 px"),
    (box(1, 1, 1, [1, 2, 3]), "bbox is not [x, y, width, height]"),
    (box(1, 1, 1, [1, 2, "3", 4]), "bbox has a value that is not a finite number"),
    (box(1, 1, 1, [1, 1, 2, 2], segmentation=[[1, 1, 5, 5]]),
     "segmentation part 0: polygon has fewer than 3 points (2)"),
    (box(1, 1, 1, [1, 1, 2, 2], segmentation=[[1, 1, 5, 5, 6]]), "segmentation part 0: polygon has an odd number of "
                                                                "coordinates (5)"),
    (box(1, 1, 1, [1, 1, 2, 2], segmentation=[[1, 1, 5, 5, 9, 700]]), "segmentation part 0: polygon runs past the "
                                                                      "640x480 image by more than 1 px"),
])
def test_an_unusable_annotation_is_a_problem_with_its_reason(annotation, reason):
    # Given a file with one unusable annotation next to a good one
    data = coco_file([image(1, "cats/a.jpg")], [annotation, box(2, 1, 2, [1, 1, 2, 2])])
    # When it is parsed
    result = parse_one("a.json", data)
    # Then the good one is imported and the other reported, with the file, image and annotation
    assert result.images == {"cats/a.jpg": [Shape("bbox", "dog", bbox=(1, 1, 2, 2))]}
    assert result.problems == [Problem("a.json", reason, "cats/a.jpg", "1")]


def test_geometry_within_the_tolerance_is_clipped_to_the_image():
    assert TOLERANCE_PX == 1.0
    data = coco_file([image(1, "cats/a.jpg")],
                     [box(1, 1, 1, [-0.5, 470, 640.9, 10.5]),
                      box(2, 1, 1, [0, 0, 1, 1], segmentation=[[-1, 0, 641, 0, 320, 481]])])
    result = parse_one("a.json", data)
    assert result.images["cats/a.jpg"] == [Shape("bbox", "cat", bbox=(0, 470, 640, 10)),
                                           Shape("polygon", "cat", points=((0, 0), (640, 0), (320, 480)))]
    assert result.problems == []


def test_the_uploaded_size_wins_over_the_file_and_a_difference_is_reported():
    data = coco_file([image(1, "cats/a.jpg", 480, 640)], [box(1, 1, 1, [10, 500, 5, 5])])
    result = parse_one("a.json", data)
    assert reasons(result) == [
        "file says 480x640, the uploaded image is 640x480: annotations are checked against the uploaded image",
        "bbox [10, 500, 5, 5] runs past the 640x480 image by more than 1 px",
    ]


def test_without_any_size_only_positivity_and_the_top_left_edge_are_checked():
    data = coco_file([{"id": 1, "file_name": "cats/a.jpg"}],
                     [box(1, 1, 1, [5000, 5000, 10, 10]), box(2, 1, 1, [-0.5, -1, 10, 10]),
                      box(3, 1, 1, [-2, 0, 10, 10])])
    result = parse({"a.json": data}, ["cats/a.jpg"])
    assert result.images == {"cats/a.jpg": [Shape("bbox", "cat", bbox=(5000, 5000, 10, 10)),
                                            Shape("bbox", "cat", bbox=(0, 0, 9.5, 9))]}
    assert reasons(result) == ["bbox [-2, 0, 10, 10] runs past the image's top or left edge by more than 1 px"]


def test_a_problem_as_a_dict_leaves_out_what_it_does_not_know():
    assert Problem("a.json", "unknown image id 9", None, "3").as_dict() == {
        "file": "a.json", "reason": "unknown image id 9", "annotation": "3"}


def test_problems_past_the_cap_are_counted():
    data = coco_file([image(1, "cats/a.jpg")], [box(n, 1, 9, [1, 1, 2, 2]) for n in range(MAX_PROBLEMS + 5)])
    result = parse_one("a.json", data)
    assert (len(result.problems), result.problem_count) == (MAX_PROBLEMS, MAX_PROBLEMS + 5)


# --- YOLO, Ultralytics layout ---

@pytest.mark.parametrize("names", ["names: [cat, dog]", "names:\n  0: cat\n  1: dog", "names:\n- cat\n- dog",
                                   "names: {0: cat, 1: 'dog'}"])
def test_ultralytics_layout_reads_names_boxes_and_splits(names):
    # Given data.yaml with names as a list or a mapping, and one label file per split
    files = {
        "ds/data.yaml": f"path: .\ntrain: images/train\nval: images/val  # held out\n{names}\n".encode(),
        "ds/labels/train/a.txt": b"0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.2 0.2\n",
        "ds/labels/val/c.txt": b"1 0.5 0.5 1 1\n",
    }
    uploaded = {"ds/images/train/a.jpg": (640, 480), "ds/images/val/c.png": (800, 600)}
    # When they are parsed
    result = parse(files, uploaded, uploaded)
    # Then boxes are in pixels of each image, and each image is in its folder's split
    assert result.format == "yolo"
    assert result.images == {
        "ds/images/train/a.jpg": [Shape("bbox", "cat", bbox=(240, 120, 160, 240)),
                                  Shape("bbox", "dog", bbox=(0, 0, 128, 96))],
        "ds/images/val/c.png": [Shape("bbox", "dog", bbox=(0, 0, 800, 600))],
    }
    assert result.splits == {"ds/images/train/a.jpg": "train", "ds/images/val/c.png": "val"}
    assert result.categories == {"cat": "bbox", "dog": "bbox"}
    assert result.problems == []


def test_ultralytics_splits_given_as_image_lists():
    # Given data.yaml whose splits are files listing images (Roboflow style paths, relative to the YAML)
    files = {"ds/data.yaml": b"train: train.txt\nval: ../ds/val.txt\nnames: [cat]\n",
             "ds/train.txt": b"./images/a.jpg\n", "ds/val.txt": b"images/b.jpg\nimages/gone.jpg\n",
             "ds/labels/a.txt": b"0 0.5 0.5 0.5 0.5\n", "ds/labels/b.txt": b""}
    uploaded = {"ds/images/a.jpg": (10, 10), "ds/images/b.jpg": (10, 10)}
    # When they are parsed
    result = parse(files, uploaded, uploaded)
    # Then each listed image has its split, and a listed image not uploaded is reported
    assert result.splits == {"ds/images/a.jpg": "train", "ds/images/b.jpg": "val"}
    assert result.problems == [Problem("ds/val.txt", "val image not among the uploaded images", "images/gone.jpg")]


def test_ultralytics_absolute_split_folders_are_found_by_their_last_segments():
    # Given data.yaml as written on its author's disk, uploaded under a top folder
    files = {"upload/data.yaml": b"path: /home/me/ds\ntrain: /home/me/ds/images/train\nval: /home/me/ds/images/val\n"
                                 b"names: [cat]\n",
             "upload/labels/train/a.txt": b"", "upload/labels/val/b.txt": b""}
    uploaded = {"upload/images/train/a.jpg": (10, 10), "upload/images/val/b.jpg": (10, 10)}
    # When they are parsed, Then each image has its split
    result = parse(files, uploaded, uploaded)
    assert result.splits == {"upload/images/train/a.jpg": "train", "upload/images/val/b.jpg": "val"}


def test_an_image_in_two_split_lists_keeps_the_first_and_is_reported():
    files = {"obj.names": b"cat\n", "a.txt": b"", "train.txt": b"a.jpg\n", "valid.txt": b"a.jpg\n"}
    result = parse(files, {"a.jpg": (10, 10)}, {"a.jpg": (10, 10)})
    assert result.splits == {"a.jpg": "train"}
    assert result.problems == [Problem("valid.txt", "image is in both train and val: kept in train", "a.jpg")]


def test_yolo_segmentation_lines_are_polygons():
    files = {"data.yaml": b"train: images/train\nval: images/train\nnames: [cat]\n",
             "labels/train/a.txt": b"0 0.1 0.1 0.5 0.1 0.5 0.5\n0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n"}
    uploaded = {"images/train/a.jpg": (100, 200)}
    result = parse(files, uploaded, uploaded)
    assert result.images["images/train/a.jpg"] == [
        Shape("polygon", "cat", points=((10, 20), (50, 20), (50, 100))),
        Shape("polygon", "cat", points=((10, 20), (50, 20), (50, 100), (10, 100))),
    ]
    assert result.categories == {"cat": "polygon"}


@pytest.mark.parametrize("line, reason", [
    ("2 0.5 0.5 0.1 0.1", "unknown class index 2"),
    ("cat 0.5 0.5 0.1 0.1", "not a YOLO line (class followed by numbers)"),
    ("0 0.5 0.5 0.1", "expected `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...` (got 3 numbers)"),
    ("0 0.5 0.5 0.1 0.1 0.2 0.2 0.3", "expected `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...` (got 7 numbers)"),
    ("0 0.5 0.5 0 0.1", "bbox width and height must be positive (got 0 x 10)"),
    ("0 0.9 0.5 0.4 0.1", "bbox [70, 45, 40, 10] runs past the 100x100 image by more than 1 px"),
])
def test_an_unusable_yolo_line_is_a_problem_naming_its_line(line, reason):
    files = {"data.yaml": b"train: images/train\nval: images/train\nnames: [cat]\n",
             "labels/train/a.txt": f"0 0.5 0.5 0.2 0.2\n{line}\n".encode()}
    uploaded = {"images/train/a.jpg": (100, 100)}
    result = parse(files, uploaded, uploaded)
    assert result.images["images/train/a.jpg"] == [Shape("bbox", "cat", bbox=(40, 40, 20, 20))]
    assert result.problems == [Problem("labels/train/a.txt", reason, "images/train/a.jpg", "line 2")]


def test_a_yolo_image_of_unknown_size_is_a_problem_per_line():
    files = {"data.yaml": b"names: [cat]\n", "labels/a.txt": b"0 0.5 0.5 0.2 0.2\n"}
    result = parse(files, ["images/a.jpg"])
    assert reasons(result) == ["image size unknown: normalised coordinates cannot be placed"]


def test_yolo_label_files_that_match_no_image_fail_the_import():
    files = {"data.yaml": b"names: [cat]\n", "labels/train/1.txt": b"", "labels/train/2.txt": b""}
    with pytest.raises(ValidationError) as caught:
        parse(files, {"images/train/a.jpg": (10, 10)})
    assert "none of the 2 label files matches an uploaded image path" in caught.value.message


def test_a_file_the_yolo_layout_does_not_use_is_reported():
    files = {"data.yaml": b"names: [cat]\n", "labels/a.txt": b"", "README.md": b"hello"}
    result = parse(files, {"images/a.jpg": (10, 10)}, {"images/a.jpg": (10, 10)})
    assert result.images == {"images/a.jpg": []}
    assert [p.file for p in result.problems] == ["README.md"]


def test_a_data_yaml_we_cannot_read_is_an_error_naming_it():
    with pytest.raises(BadRequestError) as caught:
        parse({"data.yaml": b"names: &anchor [cat]\n"}, [])
    assert caught.value.message.startswith("data.yaml: line 1")


# --- YOLO, Darknet layout ---

def test_darknet_layout_reads_obj_names_labels_beside_images_and_split_lists():
    # Given CVAT's YOLO 1.1 layout: obj.names, obj_train_data/<stem>.txt and train.txt
    files = {
        "obj.names": b"cat\ndog\n\n",
        "obj.data": b"classes = 2\ntrain = data/train.txt\n",
        "train.txt": b"data/obj_train_data/a.jpg\n",
        "obj_train_data/a.txt": b"1 0.5 0.5 0.5 0.5\n",
        "obj_train_data/b.txt": b"",
    }
    uploaded = {"obj_train_data/a.jpg": (640, 480), "obj_train_data/b.jpg": (640, 480)}
    # When they are parsed
    result = parse(files, uploaded, uploaded)
    # Then
    assert result.format == "darknet"
    assert result.images == {"obj_train_data/a.jpg": [Shape("bbox", "dog", bbox=(160, 120, 320, 240))],
                             "obj_train_data/b.jpg": []}
    assert result.splits == {"obj_train_data/a.jpg": "train"}
    assert result.categories == {"cat": "any", "dog": "bbox"}
    assert result.problems == [Problem("obj.data", "not used by the Darknet layout (obj.names, <image>.txt, "
                                                   "train.txt, valid.txt)")]


# --- round trips through our own exporters ---

ROUND_TRIP = (
    ExportImage(1, "i1", "cats/a.jpg", 640, 480, "train", (), (
        Shape("bbox", "cat", bbox=(10.25, 20.5, 100.75, 50)),
        Shape("polygon", "dog", points=((100, 100), (200.33, 100), (150, 150.67))),
    )),
    ExportImage(2, "i2", "dogs/c.png", 800, 600, "val", (), (Shape("bbox", "dog", bbox=(0, 0, 800, 600)),)),
    ExportImage(3, "i3", "top.jpg", 100, 100, "train"),
)


def close(actual: list[Shape], expected: tuple[Shape, ...], tolerance: float = 0.01) -> bool:
    def numbers(shape: Shape) -> list[float]:
        return list(shape.bbox) if shape.bbox else [v for point in shape.points for v in point]

    return len(actual) == len(expected) and all(
        (a.type, a.label) == (e.type, e.label)
        and len(numbers(a)) == len(numbers(e))
        and all(abs(x - y) <= tolerance for x, y in zip(numbers(a), numbers(e)))
        for a, e in zip(actual, expected))


def uploaded_of(images) -> dict[str, tuple[int, int]]:
    return {image.file_path: (image.width, image.height) for image in images}


def as_box(shape: Shape) -> Shape:
    if shape.type == "bbox":
        return shape
    xs, ys = [x for x, _ in shape.points], [y for _, y in shape.points]
    return Shape("bbox", shape.label, bbox=(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))


@pytest.mark.parametrize("mode, options, expected", [
    ("segmentation", coco.CocoOptions(), lambda shape: shape),
    ("detection", coco.CocoOptions(bbox_from_polygons=True), as_box),
])
def test_our_coco_export_imports_back(tmp_path, mode, options, expected):
    # Given an export of boxes and polygons made by our COCO exporter
    categories = coco.categories(["cat", "dog"])
    ids = {c["name"]: c["id"] for c in categories}
    annotations = [e for i in ROUND_TRIP for e in coco.annotation_entries(i, ids, mode, options)]
    data = coco.dumps(INFO, [coco.image_entry(i) for i in ROUND_TRIP], annotations, categories)
    pycocotools_loads(data, tmp_path)
    # When it is imported against the same images
    result = parse({"annotations/instances_default.json": data}, uploaded_of(ROUND_TRIP), uploaded_of(ROUND_TRIP))
    # Then the same paths, categories and geometry come back
    assert result.problems == []
    assert set(result.images) == {i.file_path for i in ROUND_TRIP}
    assert set(result.categories) == {"cat", "dog"}
    for exported in ROUND_TRIP:
        shapes = tuple(expected(shape) for shape in exported.shapes)
        assert close(result.images[exported.file_path], shapes), exported.file_path


def test_our_yolo_export_imports_back():
    # Given a YOLO detection export laid out as our exporter lays it out
    names = yolo.class_indexes(["cat", "dog"])
    flat = yolo.FlatNames()
    files = {"data.yaml": yolo.data_yaml(names, {i.split for i in ROUND_TRIP}).encode()}
    uploaded = {}
    for exported in ROUND_TRIP:
        image_path, label_path = flat.place(exported.split, exported.file_path, exported.image_id)
        files[label_path] = yolo.label_text(exported, names).encode()
        uploaded[exported.file_path] = (exported.width, exported.height)
    # When it is imported against the originally uploaded paths (found by their unique basenames)
    result = parse(files, uploaded, uploaded)
    # Then the boxes come back (YOLO detection carries no polygons) and so do the splits
    assert result.problems == []
    for exported in ROUND_TRIP:
        boxes = tuple(s for s in exported.shapes if s.type == "bbox")
        assert close(result.images[exported.file_path], boxes), exported.file_path
    assert result.splits == {i.file_path: i.split for i in ROUND_TRIP}
    assert set(result.categories) == {"cat", "dog"}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000), st.integers(1, 10_000), st.data())
def test_a_box_inside_any_image_survives_yolo_normalisation(width, height, data):
    # Given a box inside an image of any size, written as our exporter writes it
    x = data.draw(st.floats(0, width - 1))
    y = data.draw(st.floats(0, height - 1))
    w = data.draw(st.floats(0.5, width - x).filter(lambda v: v > 0))
    h = data.draw(st.floats(0.5, height - y).filter(lambda v: v > 0))
    exported = ExportImage(1, "i", "a.jpg", width, height, "train", (), (Shape("bbox", "cat", bbox=(x, y, w, h)),))
    files = {"data.yaml": b"names: [cat]\n", "labels/a.txt": yolo.label_text(exported, {"cat": 0}).encode()}
    # When it is read back
    result = parse(files, {"a.jpg": (width, height)}, {"a.jpg": (width, height)})
    # Then it is the same box within the 6 decimals YOLO keeps (and our 3)
    tolerance = 0.5e-6 * 2 * max(width, height) + 0.001
    assert result.problems == []
    assert close(result.images["a.jpg"], exported.shapes, tolerance)


def test_a_category_id_given_twice_is_a_problem_and_the_first_name_stands():
    document = {"info": {}, "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
                "categories": [{"id": 1, "name": "c"}, {"id": 1, "name": "d"}]}
    result = parse({"c.json": json.dumps(document).encode()}, ["a.jpg"])
    assert [shape.label for shape in result.images["a.jpg"]] == ["c"]
    (problem,) = result.problems
    assert "category id 1 is given twice" in problem.reason and problem.file == "c.json"


def test_file_names_that_each_match_several_paths_are_refused_as_ambiguous():
    document = {"info": {}, "images": [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "x.png"}],
                "annotations": [], "categories": []}
    with pytest.raises(ValidationError) as refused:
        parse({"c.json": json.dumps(document).encode()}, ["a/x.png", "b/x.png"])
    assert "matches several uploaded images" in refused.value.message and "'x.png'" in refused.value.message
