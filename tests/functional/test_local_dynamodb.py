"""The emulator's partition-keyed Query and direct JSON answers equal what moto itself answers."""
from __future__ import annotations

import random

import boto3
import pytest

from infra.local import dynamodb

TABLE = "acceleration-check"


@pytest.fixture
def ddb(stack):
    client = stack.aws("dynamodb")
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g", "gs")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "gs", "KeyType": "RANGE"}],
             "Projection": {"ProjectionType": "ALL"}},
            {"IndexName": "by_g_only", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}},
            {"IndexName": "by_gs", "KeySchema": [{"AttributeName": "gs", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["n"]}},
        ],
    )
    rng = random.Random(7)
    for i in range(400):
        item = {"pk": {"S": f"p{rng.randrange(12)}"}, "sk": {"S": f"s{i:04d}"}, "n": {"N": str(rng.randrange(100))}}
        if rng.random() < 0.8:
            item["g"] = {"S": f"g{rng.randrange(5)}"}
        if rng.random() < 0.9:
            item["gs"] = {"S": f"{rng.randrange(50):03d}"}
        client.put_item(TableName=TABLE, Item=item)
    return client


QUERIES = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p3"}}},
    {"KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
     "ExpressionAttributeValues": {":p": {"S": "p1"}, ":a": {"S": "s0100"}, ":b": {"S": "s0300"}}, "ScanIndexForward": False},
    {"KeyConditionExpression": "pk = :p", "FilterExpression": "n > :n",
     "ExpressionAttributeValues": {":p": {"S": "p5"}, ":n": {"N": "50"}}, "Limit": 7},
    {"IndexName": "by_g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "g2"}}},
    {"IndexName": "by_g", "KeyConditionExpression": "g = :g AND begins_with(gs, :x)",
     "ExpressionAttributeValues": {":g": {"S": "g1"}, ":x": {"S": "01"}}, "ScanIndexForward": False},
    {"IndexName": "by_g_only", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "g4"}}, "Limit": 9},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "absent"}}},
    {"KeyConditionExpression": "pk = :p", "ProjectionExpression": "sk, n, #g, absent",
     "ExpressionAttributeNames": {"#g": "g"}, "ExpressionAttributeValues": {":p": {"S": "p2"}}},
    {"IndexName": "by_gs", "KeyConditionExpression": "gs = :s", "ExpressionAttributeValues": {":s": {"S": "007"}}},
    {"IndexName": "by_g", "KeyConditionExpression": "g = :g", "ProjectionExpression": "pk, n",
     "FilterExpression": "n < :n", "ExpressionAttributeValues": {":g": {"S": "g3"}, ":n": {"N": "40"}}},
]


def all_pages(client, query: dict) -> list[list[dict]]:
    pages, start = [], None
    while True:
        kwargs = {"TableName": TABLE, "Limit": 10, **query, **({"ExclusiveStartKey": start} if start else {})}
        response = client.query(**kwargs)
        pages.append(response["Items"] + [response.get("LastEvaluatedKey", {})])
        start = response.get("LastEvaluatedKey")
        if not start:
            return pages


def answers(client) -> list:
    return [all_pages(client, query) for query in QUERIES]


def mutate(client) -> None:
    """Writes that move items between index partitions, in every way moto can store them."""
    client.update_item(TableName=TABLE, Key={"pk": {"S": "p3"}, "sk": {"S": "s0001"}},
                       UpdateExpression="SET g = :g, gs = :s", ExpressionAttributeValues={":g": {"S": "g2"}, ":s": {"S": "000"}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "p1"}, "sk": {"S": "s0150"}, "g": {"S": "g4"}, "gs": {"S": "999"}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "p1"}, "sk": {"S": "s0151"}, "g": {"S": "g2"}, "gs": {"S": "001"}})
    client.delete_item(TableName=TABLE, Key={"pk": {"S": "p5"}, "sk": {"S": "s0005"}})
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "p9"}, "sk": {"S": "t1"}, "g": {"S": "g1"}, "gs": {"S": "010"}}}},
        {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "p3"}, "sk": {"S": "s0002"}},
                    "UpdateExpression": "REMOVE g"}},
    ])
    client.batch_write_item(RequestItems={TABLE: [
        {"PutRequest": {"Item": {"pk": {"S": "p3"}, "sk": {"S": "z"}, "g": {"S": "g4"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "p1"}, "sk": {"S": "s0151"}}}},
    ]})


def moto_answers(client) -> list:
    return moto_answers_of(answers, client)


def test_accelerated_answers_equal_motos_own_before_and_after_writes(ddb):
    # Given moto's own answers and the accelerated ones on the same data
    expected = moto_answers(ddb)
    assert answers(ddb) == expected  # builds the index buckets
    assert any(len(pages) > 1 for pages in expected)  # pagination is exercised
    # When items move between partitions (buckets are maintained by the writes, not rebuilt)
    mutate(ddb)
    accelerated_after = answers(ddb)
    # Then
    assert accelerated_after == moto_answers(ddb)
    assert accelerated_after != expected


def test_moto_validation_still_applies(ddb):
    with pytest.raises(boto3.client("dynamodb", region_name="us-east-1").exceptions.ClientError) as caught:
        ddb.query(TableName=TABLE, IndexName="nope", KeyConditionExpression="g = :g",
                  ExpressionAttributeValues={":g": {"S": "g1"}})
    assert "Invalid index" in str(caught.value)


EVERY_TYPE = {
    "pk": {"S": "typed"}, "sk": {"S": "all"}, "s": {"S": "ünïcode \"quoted\""}, "n": {"N": "-12.50"},
    "b": {"B": b"\x00\xffbinary"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"\x01", b"\x02\x03"]}, "bool": {"BOOL": False}, "null": {"NULL": True},
    "m": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"B": b"\x04"}, {"M": {}}]}}}, "l": {"L": []},
}


def item_reads(client) -> list:
    key = {"pk": {"S": "typed"}, "sk": {"S": "all"}}
    answers = [
        client.get_item(TableName=TABLE, Key=key, ReturnConsumedCapacity="TOTAL"),
        client.get_item(TableName=TABLE, Key={"pk": {"S": "typed"}, "sk": {"S": "missing"}}),
        client.batch_get_item(RequestItems={TABLE: {"Keys": [key, {"pk": {"S": "p1"}, "sk": {"S": "s0004"}}]}}),
        client.query(TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "typed"}},
                     ProjectionExpression="b, m.inner, ns"),
        client.query(TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p2"}},
                     Select="COUNT"),
        client.scan(TableName=TABLE, Limit=25),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata")
        for items in answer.get("Responses", {}).values():
            items.sort(key=lambda item: item["sk"]["S"])
    return answers


def test_item_reads_are_written_as_motos_serializer_writes_them(ddb):
    # Given an item with every attribute type beside the random ones
    ddb.put_item(TableName=TABLE, Item=EVERY_TYPE)
    # When the same reads are answered by moto's serializer and by the direct JSON path
    expected = moto_answers_of(item_reads, ddb)
    got = item_reads(ddb)
    # Then botocore parses both to the same responses, binary values included
    assert got == expected
    assert got[0]["Item"]["bs"]["BS"] == [b"\x01", b"\x02\x03"]
    assert "Item" not in got[1] and got[4]["Count"] > 0 and "LastEvaluatedKey" in got[5]


def test_size_limited_pages_follow_updates_like_motos_own(ddb):
    # Given items big enough that a Query page stops at 1 MB, read once (sizes are remembered)
    for n in range(8):
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "big"}, "sk": {"S": f"b{n}"}, "body": {"S": "x" * 300_000}})
    query = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "big"}}}
    before = all_pages(ddb, query)
    assert len(before) > 2
    # When updates shrink items in place and a transaction grows one
    for n in range(0, 8, 2):
        ddb.update_item(TableName=TABLE, Key={"pk": {"S": "big"}, "sk": {"S": f"b{n}"}},
                        UpdateExpression="SET body = :s", ExpressionAttributeValues={":s": {"S": "small"}})
    ddb.transact_write_items(TransactItems=[{"Update": {
        "TableName": TABLE, "Key": {"pk": {"S": "big"}, "sk": {"S": "b2"}}, "UpdateExpression": "SET body = :s",
        "ExpressionAttributeValues": {":s": {"S": "y" * 300_000}}}}])
    after = all_pages(ddb, query)
    # Then the pages are cut where moto's own sizes cut them
    assert after == moto_answers_of(lambda client: all_pages(client, query), ddb)
    assert [len(page) for page in after] != [len(page) for page in before]


def test_projected_batch_reads_equal_motos_own(ddb):
    keys = [{"pk": {"S": f"p{n}"}, "sk": {"S": f"s{n:04d}"}} for n in range(12)]
    found = [key for key in keys if "Item" in ddb.get_item(TableName=TABLE, Key=key)]

    def reads(client) -> list:
        answers = [
            client.batch_get_item(RequestItems={TABLE: {"Keys": found, "ProjectionExpression": "sk, n, gs"}}),
            client.batch_get_item(RequestItems={TABLE: {"Keys": found, "AttributesToGet": ["pk", "g"]}}),
            client.get_item(TableName=TABLE, Key=found[0], ProjectionExpression="n, #x",
                            ExpressionAttributeNames={"#x": "missing"}),
        ]
        for answer in answers:
            answer.pop("ResponseMetadata")
            for items in answer.get("Responses", {}).values():
                items.sort(key=lambda item: item.get("sk", item.get("pk"))["S"])
        return answers

    assert found
    assert reads(ddb) == moto_answers_of(reads, ddb)


def moto_answers_of(read, client) -> list:
    dynamodb.restore()
    try:
        return read(client)
    finally:
        dynamodb.accelerate_queries()
