"""S3 → SQS → ingest handler → registry, with events delivered the way S3 delivers them:
URL-encoded keys, several records, test events, duplicates, out of order, poison messages."""
from __future__ import annotations

import hashlib
import io
import json
import threading

from PIL import Image

from infra.local import pump
from tests import imagefiles


def share(stack) -> str:
    return stack.variables["PIXELPOOL_SHARE_BUCKET"]


def take_notifications(stack) -> list[str]:
    return pump.take_notifications(stack.aws("sqs"), stack.physical["IngestQueue"]["QueueUrl"])


def deliver(stack, bodies: list[str], first_id: int = 0) -> dict:
    """One Lambda invocation of the ingest function with these SQS message bodies."""
    records = [{"messageId": f"m{first_id + i}", "receiptHandle": f"r{i}", "body": body, "attributes": {},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": stack.physical["IngestQueue"]["Arn"], "awsRegion": stack.region}
               for i, body in enumerate(bodies)]
    return stack.emulator.lambdas.call("ingest", {"Records": records})


def records(api, **query) -> list[dict]:
    params = "&".join(f"{key}={value}" for key, value in {"page_size": 200, **query}.items())
    return api.get(f"/api/v1/shared-images?{params}").json["data"]


def table_items(stack) -> list[dict]:
    table = stack.variables["PIXELPOOL_IMAGES_TABLE"]
    return stack.aws("dynamodb").scan(TableName=table)["Items"]


def test_uploaded_photo_becomes_a_ready_record_with_its_facts_and_thumbnail(stack, api):
    # Given a real photo put into the share by any S3 client
    photo = imagefiles.real("rocket.jpg")
    stack.aws("s3").put_object(Bucket=share(stack), Key="launches/rocket.jpg", Body=photo)
    # When S3's notification reaches the handler
    stack.pump.drain()
    # Then
    image, = records(api)
    assert image["status"] == "ready" and image["reason"] is None
    assert (image["file_path"], image["filename"], image["folder"]) == ("launches/rocket.jpg", "rocket.jpg", "launches")
    assert (image["width"], image["height"], image["mime_type"], image["format"]) == (640, 427, "image/jpeg", "JPEG")
    assert image["checksum_sha256"] == hashlib.sha256(photo).hexdigest()
    assert image["file_size_bytes"] == len(photo)
    assert len(image["perceptual_hash"]) == 16
    assert image["exif"]["has_gps"] is False
    thumbnail_key = f"thumbnails/{image['checksum_sha256'][:2]}/{image['checksum_sha256']}.jpg"
    thumbnail = stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_CACHE_BUCKET"], Key=thumbnail_key)
    with Image.open(io.BytesIO(thumbnail["Body"].read())) as small:
        assert small.format == "JPEG" and max(small.size) == 256


def test_url_encoded_keys_are_decoded(stack, api):
    # Given keys S3 delivers encoded: spaces as '+', a literal '+', non-ASCII characters
    keys = ["holiday photos/café 1.png", "a+b/ü ß.jpg"]
    for seed, key in enumerate(keys):
        stack.aws("s3").put_object(Bucket=share(stack), Key=key, Body=imagefiles.picture(seed=seed))
    bodies = take_notifications(stack)
    assert all(" " not in json.loads(body)["Records"][0]["s3"]["object"]["key"] for body in bodies)
    # When
    assert deliver(stack, bodies) == {"batchItemFailures": []}
    # Then
    assert sorted(image["file_path"] for image in records(api)) == sorted(keys)
    assert all(image["status"] == "ready" for image in records(api))


def test_every_record_of_a_multi_record_notification_is_handled(stack, api):
    # Given one notification carrying three records (as S3 may batch them)
    for seed in range(3):
        stack.aws("s3").put_object(Bucket=share(stack), Key=f"multi/{seed}.png", Body=imagefiles.picture(seed=seed))
    combined = {"Records": [json.loads(body)["Records"][0] for body in take_notifications(stack)]}
    # When
    assert deliver(stack, [json.dumps(combined)]) == {"batchItemFailures": []}
    # Then
    assert sorted(image["file_path"] for image in records(api)) == ["multi/0.png", "multi/1.png", "multi/2.png"]


def test_test_event_is_ignored(stack, api):
    # Given the s3:TestEvent S3 sends when notifications are configured
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-21T10:00:00.000Z",
                             "Bucket": share(stack), "RequestId": "R", "HostId": "H"})
    # When / Then
    assert deliver(stack, [test_event]) == {"batchItemFailures": []}
    assert table_items(stack) == []


def test_ten_duplicates_delivered_by_eight_concurrent_invocations_make_one_record(stack, api):
    # Given one upload whose notification is delivered ten times, by eight handlers at once
    photo = imagefiles.real("chelsea.png")
    stack.aws("s3").put_object(Bucket=share(stack), Key="cats/chelsea.png", Body=photo)
    body, = take_notifications(stack)
    batches = [[body, body], [body, body], [body], [body], [body], [body], [body], [body]]
    answers: list[dict] = []
    # When
    threads = [threading.Thread(target=lambda n=n, b=b: answers.append(deliver(stack, b, first_id=10 * n)))
               for n, b in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every delivery succeeded and exactly one correct record exists
    assert sum(len(batch) for batch in batches) == 10
    assert answers == [{"batchItemFailures": []}] * 8
    items = table_items(stack)
    assert len(items) == 1
    image, = records(api)
    assert (image["file_path"], image["status"], image["width"], image["height"]) == ("cats/chelsea.png", "ready", 451, 300)
    assert image["checksum_sha256"] == hashlib.sha256(photo).hexdigest()


def test_an_older_event_never_overwrites_newer_facts(stack, api):
    # Given two versions of one key, their notifications delivered newest first
    s3 = stack.aws("s3")
    s3.put_object(Bucket=share(stack), Key="v/photo.png", Body=imagefiles.picture(80, 60, seed=1, fmt="PNG"))
    s3.put_object(Bucket=share(stack), Key="v/photo.png", Body=imagefiles.picture(120, 90, seed=2, fmt="PNG"))
    older, newer = take_notifications(stack)
    assert deliver(stack, [newer]) == {"batchItemFailures": []}
    written = records(api)[0]
    # When the older event arrives late
    assert deliver(stack, [older]) == {"batchItemFailures": []}
    # Then the record is untouched (not even re-derived)
    image, = records(api)
    assert (image["width"], image["height"]) == (120, 90)
    assert image["updated_at"] == written["updated_at"]


def test_events_out_of_order_converge_on_the_current_object(stack, api):
    # Given put A, delete, put C on one key, delivered as C, A, delete
    s3 = stack.aws("s3")
    key = "order/x.jpg"
    s3.put_object(Bucket=share(stack), Key=key, Body=imagefiles.picture(64, 64, seed=3))
    s3.delete_object(Bucket=share(stack), Key=key)
    final = imagefiles.picture(100, 50, seed=4)
    s3.put_object(Bucket=share(stack), Key=key, Body=final)
    put_a, delete, put_c = take_notifications(stack)
    assert json.loads(delete)["Records"][0]["eventName"].startswith("ObjectRemoved")
    # When
    assert deliver(stack, [put_c]) == {"batchItemFailures": []}
    assert deliver(stack, [put_a, delete]) == {"batchItemFailures": []}
    # Then
    image, = records(api)
    assert image["status"] == "ready"
    assert image["checksum_sha256"] == hashlib.sha256(final).hexdigest()
    assert (image["width"], image["height"]) == (100, 50)


def test_removed_object_marks_its_record_missing(stack, api):
    # Given an ingested image
    s3 = stack.aws("s3")
    s3.put_object(Bucket=share(stack), Key="gone/a.png", Body=imagefiles.picture(seed=5, fmt="PNG"))
    stack.pump.drain()
    # When it is deleted from the share
    s3.delete_object(Bucket=share(stack), Key="gone/a.png")
    stack.pump.drain()
    # Then the record stays, marked missing, its facts kept
    image, = records(api)
    assert image["status"] == "missing"
    assert image["width"] == 96 and image["checksum_sha256"]
    # (compared by id: the embedded thumbnail URL is presigned anew, with a later expiry)
    assert [record["id"] for record in records(api, status="missing")] == [image["id"]]


def test_broken_files_fail_with_a_reason_and_the_rest_of_the_batch_is_ready(stack, api):
    # Given one batch of uploads: good images next to a bomb, a truncated JPEG, an empty file, text named .jpg
    s3 = stack.aws("s3")
    uploads = {
        "mixed/good.jpg": imagefiles.real("rocket.jpg"),
        "mixed/bomb.png": imagefiles.bomb(),
        "mixed/truncated.jpg": imagefiles.truncated_jpeg(),
        "mixed/empty.jpg": b"",
        "mixed/notes.jpg": imagefiles.text_as_jpeg(),
        "mixed/good.png": imagefiles.real("coffee.png"),
    }
    for key, body in uploads.items():
        s3.put_object(Bucket=share(stack), Key=key, Body=body)
    # When they arrive in one invocation
    assert deliver(stack, take_notifications(stack)) == {"batchItemFailures": []}
    # Then
    by_path = {image["file_path"]: image for image in records(api)}
    assert {path: image["status"] for path, image in by_path.items()} == {
        "mixed/good.jpg": "ready", "mixed/good.png": "ready", "mixed/bomb.png": "failed",
        "mixed/truncated.jpg": "failed", "mixed/empty.jpg": "failed", "mixed/notes.jpg": "failed",
    }
    assert "decompression bomb" in by_path["mixed/bomb.png"]["reason"]
    assert "truncated" in by_path["mixed/truncated.jpg"]["reason"]
    assert "empty" in by_path["mixed/empty.jpg"]["reason"]
    assert "not a recognised image" in by_path["mixed/notes.jpg"]["reason"]
    assert by_path["mixed/bomb.png"]["width"] is None and by_path["mixed/bomb.png"]["thumbnail_url"] is None


def test_poison_message_fails_alone_and_the_others_are_recorded(stack, api):
    # Given a batch with a message that is not a notification
    stack.aws("s3").put_object(Bucket=share(stack), Key="p/ok.png", Body=imagefiles.picture(seed=6, fmt="PNG"))
    good, = take_notifications(stack)
    # When
    answer = deliver(stack, ["{not json", good])
    # Then only the poison message is reported back to SQS
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert [image["status"] for image in records(api)] == ["ready"]


def test_non_images_and_folder_markers_are_not_registered(stack, api):
    s3 = stack.aws("s3")
    s3.put_object(Bucket=share(stack), Key="docs/readme.txt", Body=b"hello")
    s3.put_object(Bucket=share(stack), Key="docs/", Body=b"")
    stack.pump.drain()
    assert table_items(stack) == []


def test_reupload_refreshes_facts_and_keeps_user_fields(stack, api):
    # Given an ingested image with custom metadata
    s3 = stack.aws("s3")
    s3.put_object(Bucket=share(stack), Key="r/img.png", Body=imagefiles.picture(50, 40, seed=7, fmt="PNG"))
    stack.pump.drain()
    image, = records(api)
    assert api.patch(f"/api/v1/shared-images/{image['id']}", {"metadata": {"source": "camera 2"}}).status_code == 200
    # When the object is overwritten
    s3.put_object(Bucket=share(stack), Key="r/img.png", Body=imagefiles.picture(70, 30, seed=8, fmt="PNG"))
    stack.pump.drain()
    # Then the facts are new, the id and the metadata are kept
    again, = records(api)
    assert again["id"] == image["id"]
    assert (again["width"], again["height"]) == (70, 30)
    assert again["metadata"] == {"source": "camera 2"}


UNSAFE_KEYS = {
    "a/z/../../../../tmp/evil.png": "'..' segment",
    "dot/./x.png": "'.' or '..' segment",
    "rtl/\u202egnp.exe.png": "U+202E",
    "zw/in\u200bvisible.png": "U+200B",
    "ctl/bell\x07.png": "control character",
    "ctl/csi\u009b.png": "control character",
    "back\\slash.png": "backslash",
    "/absolute.png": "absolute",
    "empty//segment.png": "empty segment",
    f"long/{'n' * 300}.png": "longer than 255 bytes",
}


def test_objects_under_unsafe_keys_are_recorded_failed_and_never_ready(stack, api):
    # Given objects S3 accepted under keys that are no safe path, and one under a safe key
    for seed, key in enumerate([*UNSAFE_KEYS, "fine/ok.png"]):
        stack.aws("s3").put_object(Bucket=share(stack), Key=key, Body=imagefiles.picture(seed=seed, fmt="PNG"))
    bodies = take_notifications(stack)
    assert any("%" in json.loads(body)["Records"][0]["s3"]["object"]["key"] for body in bodies)  # URL-encoded
    # When their notifications reach the handler
    assert deliver(stack, bodies) == {"batchItemFailures": []}
    # Then each unsafe object is recorded failed, saying why, and without facts drawn from its bytes
    by_path = {image["file_path"]: image for image in records(api)}
    assert set(by_path) == {*UNSAFE_KEYS, "fine/ok.png"}
    for key, why in UNSAFE_KEYS.items():
        image = by_path[key]
        assert image["status"] == "failed", key
        assert image["reason"].startswith("unsafe object key: ") and why in image["reason"], image["reason"]
        assert image["width"] is None and image["thumbnail_url"] is None
    assert by_path["fine/ok.png"]["status"] == "ready"
    # And the registry never lists them as ready
    assert [image["file_path"] for image in records(api, status="ready")] == ["fine/ok.png"]


def test_an_event_for_bytes_already_recorded_by_their_writer_adopts_the_record_without_reading(stack, api):
    # Given an image recorded by whoever wrote it (a dataset import derives what it extracts), before
    # its S3 notification is handled
    from chalicelib import imaging
    from chalicelib.services.container import services

    s3 = stack.aws("s3")
    body = imagefiles.picture(64, 48, seed=11)
    put = s3.put_object(Bucket=share(stack), Key="imp/a.jpg", Body=body)
    info = services().share_bucket.head("imp/a.jpg")
    spooled = imaging.spool([body])
    facts = services().registry.facts_of(spooled, info)
    image, written = services().registry.register_facts("imp/a.jpg", facts, "importer")
    assert written and image.sequencer == "" and image.etag == put["ETag"].strip('"')
    # and its thumbnail removed, so that any derivation would show by writing it again
    cache = stack.variables["PIXELPOOL_CACHE_BUCKET"]
    s3.delete_object(Bucket=cache, Key=facts.thumbnail_key)
    # When the notification is handled (twice: SQS delivers at least once)
    bodies = take_notifications(stack)
    assert deliver(stack, bodies) == {"batchItemFailures": []}
    assert deliver(stack, bodies, first_id=10) == {"batchItemFailures": []}
    # Then the record took the event's place in the key's order, and nothing was read or derived again
    (item,) = [i for i in table_items(stack) if i["file_path"]["S"] == "imp/a.jpg"]
    assert item["sequencer"]["S"] != "" and item["registered_by"]["S"] == "importer"
    assert "Contents" not in s3.list_objects_v2(Bucket=cache, Prefix=facts.thumbnail_key)
    # And an event for other bytes under that key is derived as ever
    s3.put_object(Bucket=share(stack), Key="imp/a.jpg", Body=imagefiles.picture(30, 20, seed=12))
    stack.pump.drain()
    (again,) = [r for r in records(api) if r["file_path"] == "imp/a.jpg"]
    assert (again["width"], again["height"]) == (30, 20)
