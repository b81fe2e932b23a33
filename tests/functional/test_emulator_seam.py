"""The one seam through which the emulator patches moto: it refuses a moto it was not written for,
restores moto exactly, keeps its state out of moto's objects, and S3's notifications through it
are moto's own plus what S3 adds."""
from __future__ import annotations

import gc
import inspect
import json
import re
from pathlib import Path

import pytest

from infra.local import dynamodb
from infra.local.patches import MOTO_PATCHES, MOTO_VERSION, EmulatorPatchError, MotoPatches, Patch

ROOT = Path(__file__).resolve().parents[2]


class Base:
    def inherited(self, key):
        return f"base {key}"


class Store(Base):
    def get(self, key):
        return f"stored {key}"


def replaced_get(self, key):
    return f"patched {key}"


def replaced_inherited(self, key):
    return f"patched {key}"


def fake_patches(installed: str = MOTO_VERSION, **overrides) -> MotoPatches:
    patches = [
        Patch(Store, "get", replaced_get, inspect.getattr_static(Store, "get"), ("self", "key"), "a test"),
        Patch(Store, "inherited", replaced_inherited, inspect.getattr_static(Store, "inherited"), ("self", "key"), "a test"),
    ]
    patches[0] = Patch(**{**patches[0].__dict__, **overrides})
    return MotoPatches(patches, installed=lambda: installed)


def test_the_seam_is_written_for_the_moto_the_project_pins():
    # Given the pin in requirements-dev.txt and the moto installed
    pinned = re.search(r"^moto\[server\]==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M).group(1)
    # Then the seam expects exactly that moto, and every patched attribute is where and as it expects
    assert MOTO_VERSION == pinned
    assert MOTO_PATCHES.problems() == []
    assert MOTO_PATCHES.applied  # the embedded stack applied it at start


def test_another_moto_version_stops_the_emulator_before_anything_is_patched():
    seam = fake_patches(installed="5.3.0")
    with pytest.raises(EmulatorPatchError) as caught:
        seam.apply()
    assert f"moto 5.3.0 is installed, the patches were written for {MOTO_VERSION}" in str(caught.value)
    assert f"moto[server]=={MOTO_VERSION}" in str(caught.value)
    assert not seam.applied and Store().get("k") == "stored k"


def test_a_changed_signature_is_named_in_the_error():
    # Given an attribute whose parameters are not those the patch was written for
    seam = fake_patches(parameters=("self", "key", "default"))
    # Then
    with pytest.raises(EmulatorPatchError, match=r"Store\.get takes \('self', 'key'\), the patch was written for "
                                                 r"\('self', 'key', 'default'\)"):
        seam.apply()
    assert Store().get("k") == "stored k"


def test_a_missing_or_foreign_attribute_is_named_in_the_error():
    with pytest.raises(EmulatorPatchError, match=r"Store\.gone does not exist"):
        fake_patches(name="gone").check()
    with pytest.raises(EmulatorPatchError, match=r"Store\.get is not moto's own"):
        fake_patches(original=replaced_inherited).check()


def test_apply_and_remove_restore_exactly_what_was_there():
    seam = fake_patches()
    # When applied (twice: idempotent)
    seam.apply()
    seam.apply()
    # Then both attributes answer with the patch
    assert (Store().get("k"), Store().inherited("k")) == ("patched k", "patched k")
    # When removed around a block, and after it
    with seam.removed():
        assert (Store().get("k"), Store().inherited("k")) == ("stored k", "base k")
    assert seam.applied and Store().get("k") == "patched k"
    seam.remove()
    # Then the class is as before: its own method back, the inherited one inherited again
    assert Store().get("k") == "stored k"
    assert "inherited" not in vars(Store) and Store().inherited("k") == "base k"


def test_removing_the_real_seam_gives_back_motos_own_attributes():
    with MOTO_PATCHES.removed():
        for patch in MOTO_PATCHES.patches:
            assert inspect.getattr_static(patch.owner, patch.name) is patch.original, patch.target
        assert "execute_result" not in vars(patch_owner("execute_result"))  # inherited from ActionResult again
    for patch in MOTO_PATCHES.patches:
        assert inspect.getattr_static(patch.owner, patch.name) is patch.replacement, patch.target


def patch_owner(name: str):
    return next(patch.owner for patch in MOTO_PATCHES.patches if patch.name == name)


def test_every_patch_says_why():
    assert len({patch.target for patch in MOTO_PATCHES.patches}) == len(MOTO_PATCHES.patches) == 14
    assert all(len(patch.why) > 40 for patch in MOTO_PATCHES.patches)
    doc = inspect.getmodule(MotoPatches).__doc__
    assert all(f"{patch.owner.__qualname__ if isinstance(patch.owner, type) else 'notifications'}.{patch.name}" in doc
               for patch in MOTO_PATCHES.patches)


def moto_table(name: str):
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[name]


def test_acceleration_state_lives_beside_motos_objects_and_goes_with_them(stack):
    # Given a table queried by partition and by index, with items read
    client = stack.aws("dynamodb")
    client.create_table(
        TableName="side-tables", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )
    for n in range(5):
        client.put_item(TableName="side-tables", Item={"pk": {"S": "a"}, "sk": {"S": str(n)}, "g": {"S": "x"}})
    client.query(TableName="side-tables", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})
    client.query(TableName="side-tables", IndexName="by_g", KeyConditionExpression="g = :g",
                 ExpressionAttributeValues={":g": {"S": "x"}})
    table = moto_table("side-tables")
    # Then the acceleration was used, and its state is in its own side tables, not in moto's objects
    assert set(dynamodb._partitions[table]) and set(dynamodb._indexes[table]) == {"by_g"}
    assert not [name for name in vars(table) if "pixelpool" in name]
    assert not [name for item in table.items["a"].values() for name in vars(item) if "pixelpool" in name]
    # When moto drops the table (it tracks every model instance until a reset)
    del table
    stack.reset()
    gc.collect()
    # Then its cached partitions, buckets and item sizes go with it
    assert len(dynamodb._sizes) == 0
    assert not [t for t in dynamodb._partitions if t.name == "side-tables"]
    assert not [t for t in dynamodb._indexes if t.name == "side-tables"]


def notifications_of(stack, bucket: str, versioned: bool) -> tuple[list[dict], list]:
    """Put, overwrite and delete one object in a bucket that notifies a queue: the records sent, and
    the versions put."""
    s3, sqs = stack.aws("s3"), stack.aws("sqs")
    queue = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "all", "QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]})
    sqs.purge_queue(QueueUrl=queue)  # the configuration's test event
    versions = [s3.put_object(Bucket=bucket, Key="a b/ü.png", Body=b"one").get("VersionId"),
                s3.put_object(Bucket=bucket, Key="a b/ü.png", Body=b"two!").get("VersionId")]
    s3.delete_object(Bucket=bucket, Key="a b/ü.png", **({"VersionId": versions[0]} if versioned else {}))
    records = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
        records += [record for message in messages for record in json.loads(message["Body"])["Records"]]
        sqs.delete_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)])
    # (moto 5.2.5 sends no notification for deleting a version; whatever it sends is compared)
    assert [record["eventName"] for record in records][:2] == ["ObjectCreated:Put", "ObjectCreated:Put"]
    for record in records:
        record.pop("eventTime")
    assert [v for v in versions if v] == ([] if not versioned else versions)
    return records, versions


@pytest.mark.parametrize("versioned", [False, True])
def test_s3_notifications_are_motos_own_plus_sequencer_and_version(stack, versioned):
    # Given moto's own notifications for a put, an overwrite and a delete
    with MOTO_PATCHES.removed():
        expected, _ = notifications_of(stack, "moto-own", versioned)
    # When the same writes notify through the patch
    got, versions_put = notifications_of(stack, "patched", versioned)
    # Then each record is moto's, plus an increasing sequencer (and the version, when versioned)
    sequencers = [record["s3"]["object"].pop("sequencer") for record in got]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == len(got)
    assert all(re.fullmatch(r"[0-9A-F]{18}", sequencer) for sequencer in sequencers)
    versions = [record["s3"]["object"].pop("versionId", None) for record in got]
    assert versions == (versions_put + [None] * (len(got) - 2) if versioned else [None] * len(got))
    for record in got:
        record["s3"]["bucket"] = {k: v.replace("patched", "moto-own") for k, v in record["s3"]["bucket"].items()}
    assert got == expected
    assert "sequencer" not in json.dumps(expected)
