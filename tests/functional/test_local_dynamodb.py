"""The emulator's partition-keyed Query and direct JSON answers equal what moto itself answers.

Every path `infra/local/patches.py` patches in DynamoDB is read here twice on the same data: with
the patches, and with the seam removed (moto's own answer)."""
from __future__ import annotations

import random

import boto3
import pytest

from infra.local.patches import MOTO_PATCHES

TABLE = "acceleration-check"


DEFINITION = dict(
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


def put_all(client, items: list[dict]) -> None:
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]})


@pytest.fixture
def ddb(stack):
    client = stack.aws("dynamodb")
    client.create_table(**DEFINITION)
    rng = random.Random(7)
    items = []
    for i in range(400):
        item = {"pk": {"S": f"p{rng.randrange(12)}"}, "sk": {"S": f"s{i:04d}"}, "n": {"N": str(rng.randrange(100))}}
        if rng.random() < 0.8:
            item["g"] = {"S": f"g{rng.randrange(5)}"}
        if rng.random() < 0.9:
            item["gs"] = {"S": f"{rng.randrange(50):03d}"}
        items.append(item)
    put_all(client, items)
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
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p4"}}, "ScanIndexForward": False},
    {"KeyConditionExpression": "pk = :p AND sk > :a", "ExpressionAttributeValues": {":p": {"S": "p6"}, ":a": {"S": "s0150"}},
     "ConsistentRead": True},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p7"}}, "Select": "COUNT"},
    {"IndexName": "by_g", "KeyConditionExpression": "g = :g", "ExpressionAttributeValues": {":g": {"S": "g0"}},
     "Select": "COUNT", "FilterExpression": "attribute_exists(gs)"},
]


def all_pages(client, query: dict) -> list[list[dict]]:
    pages, start = [], None
    while True:
        kwargs = {"TableName": TABLE, "Limit": 10, **query, **({"ExclusiveStartKey": start} if start else {})}
        response = client.query(**kwargs)
        pages.append(response.get("Items", []) + [response.get("LastEvaluatedKey", {}), response["Count"]])
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


SCANS = [
    {},
    {"FilterExpression": "n >= :n", "ExpressionAttributeValues": {":n": {"N": "30"}}, "ProjectionExpression": "pk, sk, n"},
    {"IndexName": "by_g"},
    {"Segment": 1, "TotalSegments": 3, "Select": "COUNT"},
]


def scans(client) -> list:
    pages = []
    for scan in SCANS:
        start = None
        while True:
            response = client.scan(TableName=TABLE, Limit=90, **scan, **({"ExclusiveStartKey": start} if start else {}))
            response.pop("ResponseMetadata")
            pages.append(response)
            start = response.get("LastEvaluatedKey")
            if not start:
                break
    return pages


def test_scans_equal_motos_own_before_and_after_writes(ddb):
    # Given moto's own paginated scans, then the accelerated ones
    expected = moto_answers_of(scans, ddb)
    assert scans(ddb) == expected
    # When items change in every way
    mutate(ddb)
    # Then
    assert scans(ddb) == moto_answers_of(scans, ddb) != expected


def test_failed_transactions_and_other_writers_keep_answers_equal_to_motos(ddb):
    # Given partitions and index buckets cached by earlier reads
    expected = answers(ddb)
    existing = {name: expected[0][0][0][name] for name in ("pk", "sk")}
    # When a transaction writes, then fails a condition (the items it named are restored)
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "p3"}, "sk": {"S": "new"}, "g": {"S": "g2"}}}},
            {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "p2"}, "sk": {"S": "s0000"}}}},
            {"Update": {"TableName": TABLE, "Key": existing,
                        "UpdateExpression": "SET g = :g", "ExpressionAttributeValues": {":g": {"S": "g0"}},
                        "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    # Then nothing changed, as moto itself answers
    assert answers(ddb) == moto_answers(ddb) == expected
    # When PartiQL, an update of a missing item and a conditional put that fails write too
    ddb.execute_statement(Statement=f"INSERT INTO \"{TABLE}\" VALUE {{'pk': 'p3', 'sk': 'partiql', 'g': 'g2', 'gs': '001'}}")
    ddb.execute_statement(Statement=f"UPDATE \"{TABLE}\" SET g = 'g4' WHERE pk = 'p2' AND sk = ?",
                          Parameters=[expected[7][0][0]["sk"]])
    ddb.execute_statement(Statement=f"DELETE FROM \"{TABLE}\" WHERE pk = 'p4' AND sk = '{expected[10][0][0]['sk']['S']}'")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": "p5"}, "sk": {"S": "created-by-update"}},
                    UpdateExpression="SET g = :g, n = :n", ExpressionAttributeValues={":g": {"S": "g2"}, ":n": {"N": "1"}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "p5"}, "sk": {"S": "created-by-update"}},
                     ConditionExpression="attribute_not_exists(pk)")
    # Then
    after = answers(ddb)
    assert after == moto_answers(ddb) != expected


def test_a_table_made_again_under_the_same_name_answers_as_motos(ddb):
    # Given a table read through the acceleration
    answers(ddb)
    # When it is deleted and made again with other items
    ddb.delete_table(TableName=TABLE)
    ddb.create_table(**DEFINITION)
    put_all(ddb, [{"pk": {"S": f"p{n % 4}"}, "sk": {"S": f"s{n:04d}"}, "g": {"S": f"g{n % 3}"}, "gs": {"S": f"{n % 7:03d}"},
                   "n": {"N": str(n)}} for n in range(60)])
    # Then nothing of the old table's is answered
    assert answers(ddb) == moto_answers(ddb)


SHAPES = "acceleration-shapes"


@pytest.fixture
def shapes(stack):
    """A table of other key shapes: numeric range key, a local index, a binary-keyed global index,
    and a hash-only table beside it."""
    client = stack.aws("dynamodb")
    client.create_table(
        TableName=SHAPES, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "n", "AttributeType": "N"},
                              {"AttributeName": "s", "AttributeType": "S"}, {"AttributeName": "b", "AttributeType": "B"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        LocalSecondaryIndexes=[{"IndexName": "by_s", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                   {"AttributeName": "s", "KeyType": "RANGE"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        GlobalSecondaryIndexes=[{"IndexName": "by_b", "KeySchema": [{"AttributeName": "b", "KeyType": "HASH"},
                                                                    {"AttributeName": "n", "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )
    client.create_table(
        TableName=f"{SHAPES}-flat", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "kind", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_kind", "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )
    rng = random.Random(11)
    items, flat = {}, []
    for i in range(150):
        item = {"pk": {"S": f"h{rng.randrange(3)}"}, "n": {"N": str(rng.randrange(-500, 500) / 4)},
                "s": {"S": f"{rng.randrange(20):02d}"}, "doc": {"M": {"tags": {"L": [{"S": "a"}, {"N": str(i)}]}}}}
        if rng.random() < 0.7:
            item["b"] = {"B": bytes([rng.randrange(3)])}
        items[item["pk"]["S"], item["n"]["N"]] = item
        flat.append({"id": {"S": f"i{i:03d}"}, "kind": {"S": f"k{i % 4}"}, "size": {"N": str(i)}})
    for table, rows in ((SHAPES, list(items.values())), (f"{SHAPES}-flat", flat)):
        for start in range(0, len(rows), 25):
            client.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": row}} for row in rows[start:start + 25]]})
    return client


SHAPE_QUERIES = [
    (SHAPES, {"KeyConditionExpression": "pk = :p AND n BETWEEN :a AND :b",
              "ExpressionAttributeValues": {":p": {"S": "h1"}, ":a": {"N": "-50.25"}, ":b": {"N": "80"}}}),
    (SHAPES, {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "h2"}}, "ScanIndexForward": False}),
    (SHAPES, {"IndexName": "by_s", "KeyConditionExpression": "pk = :p AND s < :s",
              "ExpressionAttributeValues": {":p": {"S": "h0"}, ":s": {"S": "12"}}}),
    (SHAPES, {"IndexName": "by_b", "KeyConditionExpression": "b = :b", "ExpressionAttributeValues": {":b": {"B": b"\x01"}}}),
    (SHAPES, {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "h0"}},
              "ProjectionExpression": "n, doc.tags[1], s"}),
    (f"{SHAPES}-flat", {"KeyConditionExpression": "id = :i", "ExpressionAttributeValues": {":i": {"S": "i007"}}}),
    (f"{SHAPES}-flat", {"KeyConditionExpression": "id = :i", "ExpressionAttributeValues": {":i": {"S": "nope"}}}),
    (f"{SHAPES}-flat", {"IndexName": "by_kind", "KeyConditionExpression": "kind = :k",
                        "ExpressionAttributeValues": {":k": {"S": "k2"}}, "ScanIndexForward": False}),
]


def shape_answers(client) -> list:
    pages = []
    for table, query in SHAPE_QUERIES:
        start = None
        while True:
            response = client.query(TableName=table, Limit=9, **query, **({"ExclusiveStartKey": start} if start else {}))
            pages.append(response.get("Items", []) + [response.get("LastEvaluatedKey", {}), response["Count"]])
            start = response.get("LastEvaluatedKey")
            if not start:
                break
    return pages


def test_other_key_shapes_answer_as_motos_own_before_and_after_writes(shapes):
    # Given numeric, binary and hash-only keys, local and global indexes
    expected = moto_answers_of(shape_answers, shapes)
    assert shape_answers(shapes) == expected
    # When items move in and out of partitions and index buckets
    shapes.update_item(TableName=SHAPES, Key={"pk": expected[0][0]["pk"], "n": expected[0][0]["n"]},
                       UpdateExpression="SET b = :b, s = :s", ExpressionAttributeValues={":b": {"B": b"\x01"}, ":s": {"S": "00"}})
    shapes.delete_item(TableName=SHAPES, Key={"pk": expected[1][0]["pk"], "n": expected[1][0]["n"]})
    shapes.put_item(TableName=f"{SHAPES}-flat", Item={"id": {"S": "i007"}, "kind": {"S": "k2"}, "size": {"N": "-1"}})
    shapes.delete_item(TableName=f"{SHAPES}-flat", Key={"id": {"S": "i010"}})
    # Then
    assert shape_answers(shapes) == moto_answers_of(shape_answers, shapes) != expected


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
    with MOTO_PATCHES.removed():
        return read(client)


def test_concurrent_transactions_do_not_undo_each_other(ddb):
    # Given transactions that commit and transactions that fail (moto restores a failed one's
    # tables from a snapshot), sent at the same time from two threads
    from concurrent.futures import ThreadPoolExecutor

    def commit(n: int) -> None:
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "tx"}, "sk": {"S": f"{n:03d}"}}}}])

    def fail(n: int) -> None:
        with pytest.raises(ddb.exceptions.TransactionCanceledException):
            ddb.transact_write_items(TransactItems=[{"Put": {
                "TableName": TABLE, "Item": {"pk": {"S": "p1"}, "sk": {"S": "s0000"}}, "ConditionExpression": "attribute_exists(nope)"}}])

    # When
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: commit(n) if n % 2 else fail(n), range(60)))
    # Then every committed write is there (the seam runs one DynamoDB request at a time)
    found = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "tx"}})
    assert [item["sk"]["S"] for item in found["Items"]] == [f"{n:03d}" for n in range(1, 60, 2)]
