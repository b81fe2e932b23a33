"""Item reads decoded from the wire equal botocore's own parse of the same answer."""
from __future__ import annotations

import base64
import copy
import inspect
import json

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
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


# botocore's side of the contract: `before-parse` is emitted as `before_parse` expects, and what a
# handler puts in `customized_response_dict` ends up in the parsed answer.

class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def answering_client(answer: dict):
    """A real botocore DynamoDB client whose requests are answered with `answer` in-process."""
    client = botocore.session.get_session().create_client(
        "dynamodb", "us-east-1", endpoint_url="http://127.0.0.1:9", aws_access_key_id="testing",
        aws_secret_access_key="testing")
    client.meta.events.register(
        "before-send.dynamodb", lambda request, **_: AWSResponse(request.url, 200, {}, _Body(json.dumps(answer).encode())))
    return client


CALLS = {
    "GetItem": ("get_item", {"TableName": "t", "Key": KEY}),
    "Query": ("query", {"TableName": "t", "KeyConditionExpression": "pk = :p",
                        "ExpressionAttributeValues": {":p": {"S": "p1"}}}),
    "Scan": ("scan", {"TableName": "t"}),
    "BatchGetItem": ("batch_get_item", {"RequestItems": {"t": {"Keys": [KEY]}}}),
}


def test_botocore_emits_before_parse_with_the_arguments_the_decoder_takes():
    # Given a client that records every `before-parse` emission
    seen = []
    client = answering_client(ANSWERS["Query"])
    client.meta.events.register("before-parse.dynamodb", lambda **kwargs: seen.append(kwargs))
    # When it reads items
    method, params = CALLS["Query"]
    getattr(client, method)(**params)
    # Then the event carries the operation model, the raw response as bytes and an empty dict to fill
    (kwargs,) = seen
    assert kwargs["operation_model"].name == "Query"
    assert kwargs["response_dict"]["status_code"] == 200
    assert json.loads(kwargs["response_dict"]["body"]) == ANSWERS["Query"]
    assert kwargs["customized_response_dict"] == {}
    assert set(inspect.signature(wire.before_parse).parameters) - {"_"} <= set(kwargs)


@pytest.mark.parametrize("operation", sorted(ANSWERS))
def test_items_decoded_inside_botocore_equal_its_own_parse(operation):
    # Given the same answer, read by a plain client and by one with the decoder installed
    method, params = CALLS[operation]
    plain = getattr(answering_client(ANSWERS[operation]), method)(**params)
    decoded = getattr(wire.install(answering_client(ANSWERS[operation])), method)(**params)
    # Then botocore merged the decoded items into its answer, equal to its own parse
    plain.pop("ResponseMetadata"), decoded.pop("ResponseMetadata")
    assert decoded == plain


def test_uninstall_leaves_items_to_botocore():
    client = wire.uninstall(wire.install(answering_client(ANSWERS["GetItem"])))
    seen = []
    client.meta.events.register("before-parse.dynamodb", lambda customized_response_dict, **_: seen.append(
        dict(customized_response_dict)))
    client.get_item(TableName="t", Key=KEY)
    assert seen == [{}]
