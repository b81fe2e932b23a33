"""The data.yaml reader: the subset it reads gives what PyYAML gives; anything else is refused by line."""
from __future__ import annotations

import pytest
import yaml

from chalicelib.errors import BadRequestError
from chalicelib.formats import yolo
from chalicelib.formats.yaml_subset import read_yaml

DOCUMENTS = [
    "train: images/train\nval: images/val\nnames: [cat, dog]\n",
    "# Ultralytics\npath: ../datasets/coco8  # root\ntrain: images/train\nval: images/val\n\n"
    "names:\n  0: person\n  1: bicycle\n",
    "names:\n- cat\n- 'dog''s'\n- \"a: b\"\nnc: 3\n",
    "---\ntrain: [a/images, b/images]\nnames: {0: cat, 1: 'dog'}\ntest:\n",
    "names:\n  - x # comment\n  - 'y # not a comment'\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_a_document_in_the_subset_reads_as_pyyaml_reads_it(text):
    assert read_yaml("data.yaml", text.encode()) == yaml.safe_load(text)


@pytest.mark.parametrize("names", [["cat", "dog"], ["yes", "no", "1", "a: b", "#tag", "it's", 'say "hi"', " pad",
                                                    "back\\slash", "é\u202e", "tab\there", "\U0001f600"]])
def test_our_own_data_yaml_reads_as_pyyaml_reads_it(names):
    text = yolo.data_yaml(names, ["train"])
    assert read_yaml("data.yaml", text.encode()) == yaml.safe_load(text)


@pytest.mark.parametrize("text, line", [
    ("names: &a [cat]\n", 1),
    ("train: x\n  - indented\n", 2),
    ("names:\n  0: cat\n  - dog\n", 3),
    ("names: |\n  cat\n", 1),
    ('names: ["\\q"]\n', 1),
    ("names\n", 1),
])
def test_anything_outside_the_subset_is_refused_naming_the_file_and_line(text, line):
    with pytest.raises(BadRequestError) as caught:
        read_yaml("ds/data.yaml", text.encode())
    assert caught.value.message.startswith(f"ds/data.yaml: line {line}: ")
