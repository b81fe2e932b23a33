"""What store/dynamo.py assumes of PynamoDB and botocore, pinned without an emulator.

Requests never leave the process: botocore's `Stubber` answers them (its documented testing
API), reached through PynamoDB's `pre_dynamodb_send` signal for the models' own clients.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.stub import Stubber
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model
from pynamodb.signals import pre_dynamodb_send

from chalicelib.errors import ConflictError, NotFoundError, StoreError
from chalicelib.store.dynamo import (Transaction, TransactionCancelled, conditional, connection, forget_connections,
                                     query_values, table_meta)

ROOT = Path(__file__).resolve().parents[2]


class Thing(Model):
    Meta = table_meta("users_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    count = NumberAttribute(null=True)
    label = UnicodeAttribute(null=True, attr_name="l")


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    # PynamoDB rebuilds a client that has no credentials on every use, which would lose a stub.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def model_answers():
    """Answers, in order, to the PynamoDB requests sent while the test runs: each is queued on a
    Stubber of the requesting client just before it is sent, so no request leaves the process."""
    queued: list[tuple[str, dict]] = []
    stubbers: dict[int, Stubber] = {}

    def stub(sender, **_):
        client = sender.client
        if id(client) not in stubbers:
            stubbers[id(client)] = Stubber(client)
            stubbers[id(client)].activate()
        if queued:  # else the stubber refuses the request
            method, kwargs = queued.pop(0)
            getattr(stubbers[id(client)], method)(**kwargs)

    pre_dynamodb_send.connect(stub)
    yield queued
    pre_dynamodb_send.disconnect(stub)
    for stubber in stubbers.values():
        stubber.deactivate()
    assert not queued


def error(method: str, code: str, **fields) -> tuple[str, dict]:
    return "add_client_error", {"method": method, "service_error_code": code, "service_message": code,
                                "http_status_code": 400, "modeled_fields": fields or None}


def run_isolated(script: str, **environment: str) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIXELPOOL_")}
    env.update(environment, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


BIND_AFTER_IMPORT = r"""
import importlib, json, os, pkgutil
import chalicelib.api, chalicelib.events, chalicelib.formats, chalicelib.services, chalicelib.steps, chalicelib.store
from chalicelib import config
import app
for package in (chalicelib.store, chalicelib.services, chalicelib.api, chalicelib.steps, chalicelib.events,
                chalicelib.formats):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
reads_at_import = config.get_settings.cache_info().misses

os.environ.update(PIXELPOOL_USERS_TABLE="custom-users", PIXELPOOL_REGION="eu-west-3",
                  PIXELPOOL_AWS_ENDPOINT="127.0.0.1:4599")
from botocore.awsrequest import AWSResponse
from pynamodb.signals import pre_dynamodb_send
seen = {}

class Raw:
    def stream(self, **_):
        yield json.dumps({"Item": {"sub": {"S": "u1"}, "groups": {"L": []},
                                   "first_seen_at": {"S": "2024-01-01T00:00:00.000000+0000"}}}).encode()

def answer(request, **_):
    seen["url"] = request.url
    return AWSResponse(request.url, 200, {}, Raw())

def observe(customized_response_dict, **_):
    seen["decoded"] = "Item" in customized_response_dict

def receiver(sender, operation_name, table_name, **_):
    seen.update(region=sender.region, host=sender.host, table=table_name)
    sender.client.meta.events.register("before-send.dynamodb", answer, unique_id="test-answer")
    sender.client.meta.events.register("before-parse.dynamodb", observe, unique_id="test-observe")

pre_dynamodb_send.connect(receiver)
from chalicelib.store.users import UserRepository
print(json.dumps(dict(seen, reads_at_import=reads_at_import, sub=UserRepository().get("u1").sub)))
"""


@pytest.mark.parametrize("fast", ["true", "false"])
def test_models_bind_their_table_at_first_use_not_at_import(fast):
    # Given a process without settings that imports every store, service, route and step module
    # When the settings appear afterwards and a repository reads an item
    seen = run_isolated(BIND_AFTER_IMPORT, PIXELPOOL_FAST_ITEM_READS=fast)
    # Then importing read no settings, and PynamoDB's own connection used the later ones
    assert seen["reads_at_import"] == 0
    assert seen["table"] == "custom-users" and seen["region"] == "eu-west-3"
    assert seen["host"] == "http://127.0.0.1:4599" and seen["url"].startswith("http://127.0.0.1:4599")
    assert seen["sub"] == "u1"
    # And the item was decoded by store/wire.py exactly when the switch is on
    assert seen["decoded"] is (fast == "true")


def test_own_connection_is_built_from_the_meta_with_the_models_keys():
    # Given the model's binding
    table = connection(Thing)
    # Then our connection names the same table, region and endpoint as the Meta PynamoDB reads
    assert (table.table_name, table.connection.region, table.connection.host) == (
        Thing.Meta.table_name, Thing.Meta.region, Thing.Meta.host)
    # And it knows the key schema without asking DynamoDB (DescribeTable would be unanswered)
    meta = table.get_meta_table()
    assert (meta.hash_keyname, meta.range_keyname) == ("pk", "sk")
    assert connection(Thing) is table


def test_forgotten_connections_are_built_again_from_the_meta(model_answers):
    # Given a model that has sent a request, and its own connection
    senders = []
    pre_dynamodb_send.connect(record := lambda sender, **_: senders.append(sender))
    model_answers.append(("add_response", {"method": "put_item", "service_response": {}}))
    model_answers.append(("add_response", {"method": "put_item", "service_response": {}}))
    Thing(pk="p", sk="a").save()
    ours = connection(Thing)
    # When its connections are forgotten
    forget_connections([Thing])
    Thing(pk="p", sk="b").save()
    pre_dynamodb_send.disconnect(record)
    # Then PynamoDB and we build new ones
    assert senders[0] is not senders[1] and connection(Thing) is not ours


FOLLOW_ENDPOINT = r"""
import json, os
from botocore.awsrequest import AWSResponse
from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model
from pynamodb.signals import pre_dynamodb_send
from chalicelib.config import get_settings
from chalicelib.store.dynamo import table_meta

class Thing(Model):
    Meta = table_meta("users_table")
    pk = UnicodeAttribute(hash_key=True)

class Raw:
    def stream(self, **_):
        yield b"{}"

hosts = []
def receiver(sender, **_):
    hosts.append(sender.host)
    sender.client.meta.events.register("before-send.dynamodb", lambda request, **_: AWSResponse(
        request.url, 200, {}, Raw()), unique_id="answer")

pre_dynamodb_send.connect(receiver)
os.environ["PIXELPOOL_AWS_ENDPOINT"] = "127.0.0.1:4597"
Thing(pk="a").save()
os.environ["PIXELPOOL_AWS_ENDPOINT"] = "127.0.0.1:4598"
get_settings.cache_clear()
Thing(pk="b").save()
print(json.dumps({"hosts": hosts}))
"""


def test_a_model_follows_a_change_of_endpoint():
    # Given a model that has sent a request to one endpoint, in a process of its own (the
    # environment of a test process may hold a running stack's endpoint)
    # When the settings name another endpoint for the same table, then PynamoDB's next request goes there
    assert run_isolated(FOLLOW_ENDPOINT)["hosts"] == ["http://127.0.0.1:4597", "http://127.0.0.1:4598"]


def test_query_values_decodes_a_partition_without_describing_the_table():
    # Given two pages of a partition, answered without DynamoDB
    stubber = Stubber(connection(Thing).connection.client)
    page = {"Items": [{"pk": {"S": "p"}, "sk": {"S": "a"}, "count": {"N": "2"}, "l": {"S": "x"}}],
            "LastEvaluatedKey": {"pk": {"S": "p"}, "sk": {"S": "a"}}}
    stubber.add_response("query", page)
    stubber.add_response("query", {"Items": [{"pk": {"S": "p"}, "sk": {"S": "b"}, "l": {"NULL": True}}]})
    # When it is read as values
    with stubber:
        values = list(query_values(Thing, "p", ["sk", "count", "label"]))
    # Then each item is its attributes' values by model name, absent and NULL as None
    assert values == [{"sk": "a", "count": 2, "label": "x"}, {"sk": "b", "count": None, "label": None}]
    stubber.assert_no_pending_responses()


def test_a_failed_condition_raises_the_error_the_caller_names(model_answers):
    model_answers.append(error("put_item", "ConditionalCheckFailedException"))
    missing = NotFoundError("Thing 'p' not found")
    with pytest.raises(NotFoundError) as raised:
        with conditional("saving a thing", missing):
            Thing(pk="p", sk="s").save(condition=Thing.pk.exists())
    assert raised.value is missing and raised.value.__cause__ is not None


def test_a_failed_condition_without_an_error_is_a_write_not_done(model_answers):
    model_answers.append(error("update_item", "ConditionalCheckFailedException"))
    with conditional("counting") as write:
        Thing(pk="p", sk="s").update(actions=[Thing.count.add(1)], condition=Thing.pk.exists())
    assert write.done is False


def test_other_sdk_failures_are_store_errors(model_answers):
    model_answers.append(error("delete_item", "ValidationException"))
    with pytest.raises(StoreError, match="deleting a thing failed") as raised:
        with conditional("deleting a thing", ConflictError("never this")):
            Thing(pk="p", sk="s").delete(condition=Thing.pk.exists())
    assert raised.value.__cause__ is not None


def test_a_write_that_succeeds_is_done(model_answers):
    model_answers.append(("add_response", {"method": "put_item", "service_response": {}}))
    with conditional("saving a thing") as write:
        Thing(pk="p", sk="s").save()
    assert write.done is True


@pytest.fixture
def transact():
    """A Stubber on our connection's client, and the TransactWriteItems requests it saw."""
    client = connection(Thing).connection.client
    sent: list[dict] = []

    def record(params, **_):
        sent.append(params)

    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", record)
    with Stubber(client) as stubber:
        yield stubber, sent
        stubber.assert_no_pending_responses()
    client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", record)


def test_actions_are_sent_in_the_order_they_were_added(transact):
    stubber, sent = transact
    stubber.add_response("transact_write_items", {})
    # When a transaction adds a put, an update and a delete (PynamoDB's own would send the delete first)
    with Transaction("doing three things", token="token-1") as tx:
        tx.put(Thing(pk="p", sk="a"), condition=Thing.pk.does_not_exist())
        tx.update(Thing(pk="p", sk="b"), actions=[Thing.count.add(1)])
        tx.delete(Thing(pk="p", sk="c"))
    # Then DynamoDB receives them in that order, with the idempotency token
    (request,) = sent
    assert [next(iter(item)) for item in request["TransactItems"]] == ["Put", "Update", "Delete"]
    assert [next(iter(item.values()))["TableName"] for item in request["TransactItems"]] == [Thing.Meta.table_name] * 3
    assert request["ClientRequestToken"] == "token-1"


def test_cancellation_reasons_are_found_by_action_name(transact):
    stubber, _ = transact
    stubber.add_client_error("transact_write_items", "TransactionCanceledException", "cancelled", 400,
                             modeled_fields={"CancellationReasons": [
                                 {"Code": "None"}, {"Code": "ConditionalCheckFailed"}, {"Code": "TransactionConflict"}]})
    with pytest.raises(TransactionCancelled) as raised:
        with Transaction("doing three things") as tx:
            tx.delete(Thing(pk="p", sk="a"), name="first")
            second = tx.put(Thing(pk="p", sk="b"), condition=Thing.pk.does_not_exist())
            tx.update(Thing(pk="p", sk="c"), actions=[Thing.count.add(1)], name="third")
    cancelled = raised.value
    assert second == 1
    assert cancelled.failed(second) and not cancelled.failed("first") and not cancelled.failed("third")
    assert cancelled.conflicted and isinstance(cancelled, StoreError)
    assert "doing three things failed" in cancelled.message


def test_other_transaction_failures_are_store_errors(transact):
    stubber, _ = transact
    stubber.add_client_error("transact_write_items", "ValidationException", "bad", 400)
    with pytest.raises(StoreError) as raised:
        with Transaction("doing a thing") as tx:
            tx.put(Thing(pk="p", sk="a"))
    assert not isinstance(raised.value, TransactionCancelled)


def test_nothing_is_sent_when_the_block_fails_or_is_empty(transact):
    with pytest.raises(RuntimeError):
        with Transaction("doing a thing") as tx:
            tx.put(Thing(pk="p", sk="a"))
            raise RuntimeError("before the commit")
    with Transaction("doing nothing"):
        pass


def test_two_actions_cannot_share_a_name():
    tx = Transaction("doing a thing")
    tx.put(Thing(pk="p", sk="a"), name="same")
    with pytest.raises(ValueError):
        tx.delete(Thing(pk="p", sk="b"), name="same")


def test_pynamodb_can_send_its_signals():
    # PynamoDB sends `pre_dynamodb_send` only with blinker installed (requirements.txt); without it
    # no item would be decoded by store/wire.py, silently. The wiring itself is pinned by
    # test_models_bind_their_table_at_first_use_not_at_import.
    from pynamodb import signals

    assert signals.signals_available


def test_an_entity_is_made_from_its_item_by_field_name_and_annotation():
    from dataclasses import dataclass

    from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
    from pynamodb.models import Model

    from chalicelib.store.dynamo import entity

    class ThingItem(Model):
        class Meta:
            table_name = "things"

        pk = UnicodeAttribute(hash_key=True)
        count = NumberAttribute(null=True)
        size = NumberAttribute(null=True)
        details = MapAttribute(null=True)
        names = ListAttribute(null=True)
        tags = UnicodeSetAttribute(null=True)
        note = UnicodeAttribute(null=True)

    @dataclass(frozen=True)
    class Thing:
        id: str
        count: int
        size: int | None
        details: dict
        names: list[str]
        tags: tuple[str, ...]
        note: str = "none"

    # Given an item as DynamoDB returns it: numbers as floats, a raw map, a set, unset attributes
    item = ThingItem(pk="T#1", count=3.0, details={"score": 2.0, "nested": {"x": 1.5}}, tags={"b", "a"})

    # When it becomes the entity, with its key renamed
    thing = entity(Thing, item, id="1")

    # Then numbers are ints, maps plain, sets sorted, absent collections empty, unset optionals None,
    # and an unset attribute with a default takes the default
    assert thing == Thing(id="1", count=3, size=None, details={"score": 2, "nested": {"x": 1.5}}, names=[],
                          tags=("a", "b"), note="none")
    assert type(thing.count) is int
