"""Item reads decoded from the wire equal botocore's own parse of the same answer."""
from __future__ import annotations

import base64
import copy
import json

import botocore.session
import pytest
from botocore.parsers import create_parser

from chalicelib.store import wire

SERVICE = botocore.session.get_session().get_service_model("dynamodb")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


EVERY_TYPE = {
    "pk": {"S": "p1"}, "sk": {"S": "ünïcode \"quoted\""}, "n": {"N": "-12.50"}, "b": {"B": b64(b"\x00\xffbin")},
    "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b64(b"\x01"), b64(b"\x02\x03")]},
    "bool": {"BOOL": False}, "null": {"NULL": True}, "empty_l": {"L": []}, "empty_m": {"M": {}},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"B": b64(b"\x04")}, {"M": {"deep": {"BS": [b64(b"z")]}}}]}}},
}
KEY = {"pk": {"S": "p1"}, "sk": {"S": "k"}}

ANSWERS = {
    "GetItem": {"Item": EVERY_TYPE, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}},
    "Query": {"Items": [EVERY_TYPE, KEY], "Count": 2, "ScannedCount": 2, "LastEvaluatedKey": KEY},
    "Scan": {"Items": [], "Count": 0, "ScannedCount": 5},
    "BatchGetItem": {"Responses": {"t": [EVERY_TYPE], "u": []},
                     "UnprocessedKeys": {"t": {"Keys": [KEY], "ProjectionExpression": "pk"}}},
}


def response(body: dict, status: int = 200) -> dict:
    return {"status_code": status, "headers": {}, "body": json.dumps(body).encode()}


def parse(operation: str, answer: dict, status: int = 200, decode: bool = False) -> dict:
    model = SERVICE.operation_model(operation)
    raw, customized = response(answer, status), {}
    if decode:
        wire.before_parse(operation_model=model, response_dict=raw, customized_response_dict=customized)
    parsed = create_parser(SERVICE.resolved_protocol).parse(raw, model.output_shape)
    parsed.update(customized)
    return parsed


@pytest.mark.parametrize("operation", sorted(ANSWERS))
def test_decoded_items_equal_botocores_parse(operation):
    # Given an answer whose items hold every attribute type, nested binary values included
    answer = copy.deepcopy(ANSWERS[operation])
    # When it is parsed by botocore alone and with the items decoded from the wire
    expected = parse(operation, answer)
    got = parse(operation, answer, decode=True)
    # Then both are the same, binary values as bytes
    assert got == expected
    if operation == "GetItem":
        assert got["Item"]["m"]["M"]["inner"]["L"][3]["M"]["deep"]["BS"] == [b"z"]


def test_errors_and_other_operations_are_left_to_botocore():
    raw = response({"__type": "ResourceNotFoundException", "message": "no table"}, status=400)
    before = dict(raw)
    customized: dict = {}
    wire.before_parse(operation_model=SERVICE.operation_model("Query"), response_dict=raw,
                      customized_response_dict=customized)
    assert raw == before and customized == {}
    raw = response({"Attributes": EVERY_TYPE})
    wire.before_parse(operation_model=SERVICE.operation_model("UpdateItem"), response_dict=raw,
                      customized_response_dict=customized)
    assert json.loads(raw["body"]) == {"Attributes": EVERY_TYPE} and customized == {}
