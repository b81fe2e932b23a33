"""Sorting a dataset's files into images, annotation files and other files, by name."""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.formats.dataset_contents import sort


@dataclass(frozen=True)
class File:
    name: str
    size: int = 10


def names(items) -> list[str]:
    return [item.name for item in items]


def test_coco_dataset_with_nested_folders_and_a_readme():
    contents = sort([File("train/cats/a.jpg", 100), File("train/cats/b.PNG", 200), File("val/c.jpeg", 300),
                     File("annotations/instances_train.json", 40), File("README.txt", 5), File("LICENSE", 7)])
    assert names(contents.images) == ["train/cats/a.jpg", "train/cats/b.PNG", "val/c.jpeg"]
    assert names(contents.annotation_files) == ["annotations/instances_train.json"]
    assert names(contents.other) == ["README.txt", "LICENSE"]
    assert contents.folders == {"train/cats": 2, "val": 1}
    assert (contents.bytes_images, contents.bytes_annotations, contents.bytes_other) == (600, 40, 12)


def test_ultralytics_yolo_labels_are_annotation_files_wherever_the_labels_folder_is():
    contents = sort([File("data.yaml"), File("images/train/x.jpg"), File("labels/train/x.txt"),
                     File("extra/labels/val/y.txt"), File("notes/todo.txt")])
    assert names(contents.annotation_files) == ["data.yaml", "labels/train/x.txt", "extra/labels/val/y.txt"]
    assert names(contents.other) == ["notes/todo.txt"]
    assert contents.folders == {"images/train": 1}


def test_darknet_labels_sit_beside_their_image_and_its_lists_are_annotation_files():
    contents = sort([File("obj/a.jpg"), File("obj/a.txt"), File("obj/b.txt"), File("obj.names"),
                     File("train.txt"), File("valid.txt"), File("top.png")])
    assert names(contents.annotation_files) == ["obj/a.txt", "obj.names", "train.txt", "valid.txt"]
    assert names(contents.other) == ["obj/b.txt"]  # no image `obj/b.*`: not a label
    assert contents.folders == {"": 1, "obj": 1}
