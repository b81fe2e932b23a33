"""Items of DynamoDB's read answers, decoded straight from the JSON wire format.

botocore parses a response by walking the service model, and an item's every attribute value is
a structure of ten possible members: a 1 MB Query page of small items costs a Lambda about
0.1 ms of CPU per item before PynamoDB sees it, more than the request itself. For the
item-reading operations, a `before-parse` handler takes the items out of the body, decodes them
here into exactly what botocore would have made of them (binary values base64-decoded, everything
else as on the wire), and hands them over through the customized response; the rest of the answer
(keys, counts, capacity, errors) is parsed by botocore as before.

botocore emits `before-parse` but does not document it as supported: tests/unit/test_wire.py pins
the arguments it is emitted with and the merge of the customized response, and store/dynamo.py
(the only caller of `install`) can switch the decoder off (`PIXELPOOL_FAST_ITEM_READS=false`).
"""
from __future__ import annotations

import base64
from typing import Any

import orjson

# The member of each item-reading operation's answer that holds items (BatchGetItem: by table).
ITEM_MEMBERS = {"GetItem": "Item", "Query": "Items", "Scan": "Items", "BatchGetItem": "Responses"}


def decode_value(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as botocore parses it (only binary values differ from the wire)."""
    for kind, inner in value.items():
        if kind == "B":
            return {"B": base64.b64decode(inner)}
        if kind == "BS":
            return {"BS": [base64.b64decode(member) for member in inner]}
        if kind == "M":
            return {"M": decode_item(inner)}
        if kind == "L":
            return {"L": [decode_value(member) for member in inner]}
    return value


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: decode_value(value) for name, value in item.items()}


def before_parse(operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                 **_: Any) -> None:
    member = ITEM_MEMBERS.get(operation_model.name)
    body = response_dict.get("body")
    if member is None or response_dict.get("status_code", 500) >= 300 or not body:
        return
    document = orjson.loads(body)
    items = document.pop(member, None)
    if items is None:
        return
    if member == "Responses":
        customized_response_dict[member] = {table: [decode_item(item) for item in found]
                                            for table, found in items.items()}
    elif member == "Item":
        customized_response_dict[member] = decode_item(items)
    else:
        customized_response_dict[member] = [decode_item(item) for item in items]
    response_dict["body"] = orjson.dumps(document)


HANDLER_ID = "pixelpool-item-reads"


def install(client: Any) -> Any:
    """Decode `client`'s item reads here from now on (idempotent); returns the client."""
    client.meta.events.register("before-parse.dynamodb", before_parse, unique_id=HANDLER_ID)
    return client


def uninstall(client: Any) -> Any:
    """Leave `client`'s item reads to botocore again (idempotent); returns the client."""
    client.meta.events.unregister("before-parse.dynamodb", before_parse, unique_id=HANDLER_ID)
    return client
