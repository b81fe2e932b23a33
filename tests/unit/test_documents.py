"""The rules of every body and of free-form documents, and the one cursor codec (no emulator)."""
from __future__ import annotations

import json

import pytest

from chalicelib.errors import BadRequestError, ValidationError
from chalicelib.schemas.documents import MAX_BODY_DEPTH, MAX_DOCUMENT_DEPTH, document_problem, read_body
from chalicelib.services import cursors


def nested(levels: int) -> dict:
    document: dict | int = 1
    for _ in range(levels):
        document = {"a": document}
    return document


@pytest.mark.parametrize("raw", [b"[" * 100_000, json.dumps(nested(MAX_BODY_DEPTH + 1)).encode(), b"1" * 5000])
def test_unreadable_bodies_are_a_bad_request(raw):
    with pytest.raises(BadRequestError):
        read_body(raw)


def test_a_body_at_the_depth_limit_is_read():
    assert read_body(json.dumps(nested(MAX_BODY_DEPTH)).encode()) == nested(MAX_BODY_DEPTH)


@pytest.mark.parametrize(("raw", "field"), [(b'{"a": [1, NaN]}', "a.1"), (b'{"a": {"b": -Infinity}}', "a.b"),
                                            (b'{"a": 1e400}', "a"), (b'{"a": ["\\udc00"]}', "a.0")])
def test_no_numbers_and_lone_surrogates_are_refused_naming_the_field(raw, field):
    with pytest.raises(ValidationError) as refused:
        read_body(raw)
    assert refused.value.details[0]["field"] == field


@pytest.mark.parametrize(("document", "fragment"), [
    (nested(MAX_DOCUMENT_DEPTH + 1), f"deeper than {MAX_DOCUMENT_DEPTH}"),
    ({"a": {"": 1}}, "empty key at 'a'"),
    ({"a": 10**38 + 1}, "39 significant digits"),
    ({"a": 1e-131}, "magnitude"),
    ({"a": [float("nan")]}, "not a finite number at 'a.0'"),
])
def test_documents_that_cannot_be_stored_say_why_and_where(document, fragment):
    assert fragment in (document_problem(document) or "")


def test_documents_at_every_limit_can_be_stored():
    assert document_problem({"n": nested(MAX_DOCUMENT_DEPTH - 1), "big": 10**40, "x": 9.9e125, "t": True}) is None


def test_a_cursor_reads_back_only_in_its_own_listing():
    cursor = cursors.encode("browse", "a/b.png")
    assert cursors.decode(cursor, "browse", cursors.text) == "a/b.png"
    for bad, kind in ((cursor, "explore"), ("!!", "browse"), ("e30", "browse"), (cursors.encode("browse", 1), "browse")):
        with pytest.raises(BadRequestError) as refused:
            cursors.decode(bad, kind, cursors.text)
        assert refused.value.details[0]["field"] == "cursor"
