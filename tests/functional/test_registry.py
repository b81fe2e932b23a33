"""The registry API: register by path (now or as an operation), list and filter, one image, URLs,
near and exact duplicates, metadata, masks, and the rebuildable index (reindex)."""
from __future__ import annotations

import hashlib

import requests

from tests import imagefiles
from tests.conftest import put_share_object as put
from tests.conftest import wait_for


def purge_notifications(stack) -> None:
    """Drop queued S3 notifications, as if the objects were there before notifications existed."""
    stack.aws("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])


def listed(api, query: str = "") -> list[dict]:
    return api.get(f"/api/v1/shared-images?page_size=200{query}").json["data"]


def test_register_small_selection_answers_with_the_seed_shape(stack, api):
    # Given objects already in the share that no event announced
    photo = imagefiles.real("rocket.jpg")
    put(stack, "datasets/rockets/a.jpg", photo)
    put(stack, "datasets/dogs/one.png", imagefiles.picture(seed=1, fmt="PNG"))
    put(stack, "datasets/dogs/deep/two.png", imagefiles.picture(seed=2, fmt="PNG"))
    put(stack, "datasets/dogs/readme.txt", b"not an image")
    purge_notifications(stack)
    # When a file, a folder and a missing file are registered
    response = api.post("/api/v1/shared-images/register",
                        {"file_paths": ["datasets/rockets/a.jpg", "datasets/dogs/", "datasets/birds/eagle.png"]})
    # Then
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert sorted(image["file_path"] for image in data["registered"]) == [
        "datasets/dogs/deep/two.png", "datasets/dogs/one.png", "datasets/rockets/a.jpg"]
    rocket = next(image for image in data["registered"] if image["filename"] == "a.jpg")
    assert (rocket["width"], rocket["height"], rocket["registered_by"]) == (640, 427, "alice")
    assert rocket["checksum_sha256"] == hashlib.sha256(photo).hexdigest()
    assert data["failed"] == [{"file_path": "datasets/birds/eagle.png", "reason": "not found in the share"}]
    assert (data["total_registered"], data["total_already_existed"], data["total_failed"]) == (3, 0, 1)
    assert response.json["message"] == "Registered 3 new image(s)"
    # And registering again reports them as existing
    again = api.post("/api/v1/shared-images/register", {"file_paths": ["datasets/"]}).json["data"]
    assert again["registered"] == []
    assert sorted(again["already_existed"]) == ["datasets/dogs/deep/two.png", "datasets/dogs/one.png",
                                                "datasets/rockets/a.jpg"]


def test_register_rejects_paths_that_escape_the_share(api):
    for bad in ("/etc/passwd", "a/../b.jpg", "a\\b.jpg", "a\x00b.jpg"):
        response = api.post("/api/v1/shared-images/register", {"file_paths": ["ok.jpg", bad]})
        assert response.status_code == 400, bad
        assert repr(bad) in response.json["error"]["message"]


def test_register_large_selection_runs_as_an_operation(stack, api, local_stack):
    # Given more images than one request registers synchronously (limit 50)
    for n in range(57):
        put(stack, f"big/{n:03d}.png", imagefiles.picture(32, 24, seed=n, fmt="PNG"))
    put(stack, "big/broken.jpg", b"nope")
    purge_notifications(stack)
    # When
    response = api.post("/api/v1/shared-images/register", {"file_paths": ["big"]})
    # Then the answer is 202 with an operation to poll
    assert response.status_code == 202, response.json
    operation = response.json["data"]
    assert operation["kind"] == "register" and operation["status"] in ("pending", "running", "completed")
    finished = wait_for(api, operation["id"])
    assert finished["status"] == "completed", finished
    assert (finished["total"], finished["done"], finished["progress"]) == (58, 58, 1.0)
    result = finished["result"]
    assert (result["total_registered"], result["total_already_existed"], result["total_failed"]) == (57, 0, 1)
    assert result["failed"][0]["file_path"] == "big/broken.jpg"
    assert len(listed(api, "&status=ready")) == 57


def test_operations_are_visible_to_their_creator_and_admins_only(stack, api, admin_api, client):
    from tests.conftest import Api

    for n in range(52):
        put(stack, f"ops/{n}.png", imagefiles.picture(16, 16, seed=n, fmt="PNG"))
    operation = api.post("/api/v1/shared-images/register", {"file_paths": ["ops/"]}).json["data"]
    wait_for(api, operation["id"])
    bob = Api(client, stack.token(sub="bob", groups=[]))
    assert bob.get(f"/api/v1/operations/{operation['id']}").status_code == 404
    assert admin_api.get(f"/api/v1/operations/{operation['id']}").status_code == 200
    assert api.get("/api/v1/operations/no-such-operation").status_code == 404


def test_list_filters_by_filename_folder_status_and_paginates(stack, api):
    for key in ("zoo/cats/Tabby.jpg", "zoo/cats/tiger.jpg", "zoo/dogs/beagle.jpg", "zoo/broken.jpg"):
        put(stack, key, imagefiles.picture(seed=len(key)) if "broken" not in key else b"x")
    stack.pump.drain()
    assert [i["filename"] for i in listed(api, "&search=TAB")] == ["Tabby.jpg"]
    assert [i["file_path"] for i in listed(api, "&folder=zoo/cats")] == ["zoo/cats/Tabby.jpg", "zoo/cats/tiger.jpg"]
    assert [i["file_path"] for i in listed(api, "&status=failed")] == ["zoo/broken.jpg"]
    first = api.get("/api/v1/shared-images?page=1&page_size=3").json
    second = api.get("/api/v1/shared-images?page=2&page_size=3").json
    assert first["meta"] == {"total": 4, "page": 1, "page_size": 3}
    assert len(first["data"]) == 3 and len(second["data"]) == 1
    assert {i["id"] for i in first["data"]}.isdisjoint(i["id"] for i in second["data"])
    assert api.get("/api/v1/shared-images?status=weird").status_code == 422
    assert api.get("/api/v1/shared-images?page_size=201").status_code == 422


def test_get_patch_metadata_and_presigned_urls(stack, api):
    photo = imagefiles.real("coffee.png")
    put(stack, "one/coffee.png", photo)
    stack.pump.drain()
    image, = listed(api)
    # one image
    got = api.get(f"/api/v1/shared-images/{image['id']}")
    assert got.status_code == 200 and got.json["data"]["file_path"] == "one/coffee.png"
    assert api.get("/api/v1/shared-images/not-an-id").status_code == 404
    # metadata merges, null deletes, unknown fields are rejected
    patched = api.patch(f"/api/v1/shared-images/{image['id']}", {"metadata": {"camera": "x", "drop": 1}}).json["data"]
    assert patched["metadata"] == {"camera": "x", "drop": 1}
    patched = api.patch(f"/api/v1/shared-images/{image['id']}", {"metadata": {"drop": None, "lens": {"mm": 35}}})
    assert patched.json["data"]["metadata"] == {"camera": "x", "lens": {"mm": 35}}
    assert api.patch(f"/api/v1/shared-images/{image['id']}", {"metadata": {}, "width": 3}).status_code == 422
    # presigned URLs serve the original and a JPEG thumbnail
    urls = api.get(f"/api/v1/shared-images/{image['id']}/url?expires_in=120").json["data"]
    assert urls["expires_in"] == 120
    assert requests.get(urls["url"], timeout=10).content == photo
    thumbnail = requests.get(urls["thumbnail_url"], timeout=10)
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
    assert api.get(f"/api/v1/shared-images/{image['id']}/url?expires_in=7200").status_code == 422


def test_similar_finds_near_duplicates_by_perceptual_hash(stack, api):
    # Given a photo, a resized re-encode of it, and unrelated photos
    put(stack, "sim/rocket.jpg", imagefiles.real("rocket.jpg"))
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(imagefiles.real("rocket.jpg"))) as original:
        smaller = BytesIO()
        original.resize((320, 213)).save(smaller, "PNG")
    put(stack, "sim/rocket-small.png", smaller.getvalue())
    put(stack, "sim/camera.png", imagefiles.real("camera.png"))
    put(stack, "sim/brick.png", imagefiles.real("brick.png"))
    stack.pump.drain()
    rocket = next(i for i in listed(api) if i["filename"] == "rocket.jpg")
    # When
    similar = api.get(f"/api/v1/shared-images/{rocket['id']}/similar?max_distance=8").json["data"]
    # Then only the re-encode is close
    assert [item["file_path"] for item in similar] == ["sim/rocket-small.png"]
    assert 0 <= similar[0]["distance"] <= 8
    everything = api.get(f"/api/v1/shared-images/{rocket['id']}/similar?max_distance=64").json["data"]
    assert len(everything) == 3
    assert [item["distance"] for item in everything] == sorted(item["distance"] for item in everything)


def test_duplicates_groups_identical_content_across_the_registry(stack, api):
    same = imagefiles.picture(seed=42)
    for key in ("d/a.jpg", "e/b.jpg", "f/c.jpg"):
        put(stack, key, same)
    put(stack, "d/pair1.png", imagefiles.picture(seed=7, fmt="PNG"))
    put(stack, "e/pair2.png", imagefiles.picture(seed=7, fmt="PNG"))
    put(stack, "g/unique.jpg", imagefiles.picture(seed=8))
    stack.pump.drain()
    response = api.get("/api/v1/shared-images/duplicates").json
    groups = response["data"]
    assert response["meta"]["total"] == 2
    assert [group["count"] for group in groups] == [3, 2]
    assert [image["file_path"] for image in groups[0]["images"]] == ["d/a.jpg", "e/b.jpg", "f/c.jpg"]
    assert groups[0]["checksum_sha256"] == hashlib.sha256(same).hexdigest()


def test_masks_are_registered_images_linked_to_their_source(stack, api):
    put(stack, "m/photo.jpg", imagefiles.picture(seed=1))
    put(stack, "m/photo_person.png", imagefiles.picture(seed=2, fmt="PNG"))
    put(stack, "m/photo_sky.png", imagefiles.picture(seed=3, fmt="PNG"))
    stack.pump.drain()
    ids = {image["filename"]: image["id"] for image in listed(api)}
    source = ids["photo.jpg"]
    # When two images become masks of the photo
    for name, category in (("photo_person.png", "person"), ("photo_sky.png", "background")):
        response = api.request("PUT", f"/api/v1/shared-images/{ids[name]}/mask",
                               {"source_image_id": source, "mask_category": category})
        assert response.status_code == 200 and response.json["data"]["mask_of"] == source
    # Then
    masks = api.get(f"/api/v1/shared-images/{source}/masks").json["data"]
    assert [(m["filename"], m["mask_category"]) for m in masks] == [("photo_person.png", "person"),
                                                                     ("photo_sky.png", "background")]
    # and the link can be cleared; bad links are refused
    api.request("PUT", f"/api/v1/shared-images/{ids['photo_sky.png']}/mask", {"source_image_id": None})
    assert len(api.get(f"/api/v1/shared-images/{source}/masks").json["data"]) == 1
    assert api.request("PUT", f"/api/v1/shared-images/{source}/mask",
                       {"source_image_id": source, "mask_category": "x"}).status_code == 422
    assert api.request("PUT", f"/api/v1/shared-images/{source}/mask",
                       {"source_image_id": "missing", "mask_category": "x"}).status_code == 404
    assert api.request("PUT", f"/api/v1/shared-images/{source}/mask", {"source_image_id": ids["photo_person.png"]}
                       ).status_code == 422


def wipe_registry(stack) -> None:
    dynamodb = stack.aws("dynamodb")
    table = stack.variables["PIXELPOOL_IMAGES_TABLE"]
    for item in dynamodb.scan(TableName=table)["Items"]:
        dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


def comparable(image: dict) -> dict:
    # Presigned URLs carry a fresh signature and updated_at is the time of indexing.
    return {key: value for key, value in image.items() if key not in ("thumbnail_url", "updated_at", "registered_by")}


def test_reindex_after_wiping_the_registry_restores_every_record(stack, api, admin_api):
    # Given an ingested registry with tags, a failed record and a record whose object is gone
    for n in range(6):
        put(stack, f"re/{n}.jpg", imagefiles.picture(seed=n))
    put(stack, "re/broken.png", b"\x89PNG broken")
    put(stack, "other/keep.png", imagefiles.picture(seed=9, fmt="PNG"))
    stack.pump.drain()
    tag = api.post("/api/v1/tags", {"name": "keeper"}).json["data"]
    first = listed(api)
    api.post("/api/v1/shared-images/bulk-tag", {"shared_image_ids": [first[0]["id"]], "tag_ids": [tag["id"]]})
    before = sorted((comparable(image) for image in listed(api)), key=lambda image: image["file_path"])
    # When the table is wiped and an admin reindexes
    wipe_registry(stack)
    assert listed(api) == []
    response = admin_api.post("/api/v1/admin/reindex", {"prefix": ""})
    assert response.status_code == 202
    finished = wait_for(admin_api, response.json["data"]["id"])
    # Then every record is back, with the same ids, facts and tags
    assert finished["status"] == "completed", finished
    assert finished["result"]["total_registered"] == 7 and finished["result"]["total_failed"] == 1
    after = sorted((comparable(image) for image in listed(api)), key=lambda image: image["file_path"])
    assert after == before


def test_reindex_marks_vanished_objects_missing_and_refreshes_stale_ones(stack, api, admin_api):
    put(stack, "s/a.png", imagefiles.picture(40, 40, seed=1, fmt="PNG"))
    put(stack, "s/b.png", imagefiles.picture(40, 40, seed=2, fmt="PNG"))
    put(stack, "t/c.png", imagefiles.picture(40, 40, seed=3, fmt="PNG"))
    stack.pump.drain()
    # Changes whose notifications are lost
    stack.aws("s3").delete_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="s/a.png")
    put(stack, "s/b.png", imagefiles.picture(80, 20, seed=4, fmt="PNG"))
    stack.aws("s3").delete_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="t/c.png")
    purge_notifications(stack)
    # When only s/ is reindexed
    response = admin_api.post("/api/v1/admin/reindex", {"prefix": "s/"})
    finished = wait_for(admin_api, response.json["data"]["id"])
    # Then
    assert finished["status"] == "completed", finished
    result = finished["result"]
    assert (result["total_refreshed"], result["total_marked_missing"]) == (1, 1)
    by_path = {image["file_path"]: image for image in listed(api)}
    assert by_path["s/a.png"]["status"] == "missing"
    assert (by_path["s/b.png"]["width"], by_path["s/b.png"]["height"]) == (80, 20)
    assert by_path["t/c.png"]["status"] == "ready"  # outside the prefix: untouched


def test_reindex_is_for_admins(api):
    response = api.post("/api/v1/admin/reindex", {"prefix": ""})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_registering_a_folder_records_unsafe_keys_under_it_as_failed(stack, api):
    # Given a folder holding an object whose key climbs out of it, and a safe one
    put(stack, "walk/ok.png", imagefiles.picture(seed=1, fmt="PNG"))
    put(stack, "walk/z/../../../../tmp/evil.png", imagefiles.picture(seed=2, fmt="PNG"))
    purge_notifications(stack)
    # When the folder is registered
    data = api.post("/api/v1/shared-images/register", {"file_paths": ["walk/"]}).json["data"]
    # Then only the safe object is registered; the other is reported and recorded failed
    assert [image["file_path"] for image in data["registered"]] == ["walk/ok.png"]
    assert data["failed"] == [{"file_path": "walk/z/../../../../tmp/evil.png",
                               "reason": "unsafe object key: 'walk/z/../../../../tmp/evil.png' "
                                         "contains a '.' or '..' segment"}]
    by_path = {image["file_path"]: image for image in listed(api)}
    assert by_path["walk/z/../../../../tmp/evil.png"]["status"] == "failed"


def test_reindex_fails_a_record_made_ready_before_keys_were_checked(stack, api, admin_api):
    from chalicelib.store.images import READY, Facts, ImageRepository

    # Given a ready record under an unsafe key, as an older release wrote it
    key = "old/\u202egnp.exe.png"
    put(stack, key, imagefiles.picture(seed=3, fmt="PNG"))
    purge_notifications(stack)
    head = stack.aws("s3").head_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key)
    ImageRepository().put_new([(key, Facts(status=READY, size=head["ContentLength"], etag=head["ETag"].strip('"'),
                                           mime_type="image/png", width=96, height=64))], "alice")
    # When an admin reindexes
    finished = wait_for(admin_api, admin_api.post("/api/v1/admin/reindex", {"prefix": "old/"}).json["data"]["id"])
    # Then the record is failed, with the reason
    assert finished["status"] == "completed", finished
    image, = listed(api)
    assert image["status"] == "failed" and "U+202E" in image["reason"]


def test_presigned_urls_serve_only_verified_images_inline(stack, api):
    # Given a real image, and HTML stored as 'x.png' with the uploader's Content-Type text/html
    bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    stack.aws("s3").put_object(Bucket=bucket, Key="web/real.png", Body=imagefiles.real("coffee.png"),
                               ContentType="text/html")
    stack.aws("s3").put_object(Bucket=bucket, Key="web/x.png", Body=b"<script>alert(document.domain)</script>",
                               ContentType="text/html")
    stack.pump.drain()
    by_path = {image["file_path"]: image for image in listed(api)}
    assert (by_path["web/real.png"]["status"], by_path["web/x.png"]["status"]) == ("ready", "failed")
    served = {}
    for path, image in by_path.items():
        # When each one's presigned URL is fetched from the bucket
        url = api.get(f"/api/v1/shared-images/{image['id']}/url").json["data"]["url"]
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        served[path] = (response.headers["Content-Type"], response.headers["Content-Disposition"])
    # Then the verified image is shown inline with its true type, whatever its stored type says,
    # and the failed object is a download of unknown type, never HTML
    assert served["web/real.png"][0] == "image/png" and served["web/real.png"][1].startswith("inline;")
    assert served["web/x.png"][0] == "application/octet-stream"
    assert served["web/x.png"][1].startswith('attachment; filename="x.png"')
    # And a thumbnail is an inline JPEG
    thumbnail = requests.get(by_path["web/real.png"]["thumbnail_url"], timeout=10)
    assert (thumbnail.headers["Content-Type"], thumbnail.headers["Content-Disposition"]) == ("image/jpeg", "inline")


def test_registering_the_whole_share_is_for_admins(stack, api, admin_api):
    # Given images at the root of the share and in folders, not yet registered
    put(stack, "top.jpg", imagefiles.picture(seed=1))
    put(stack, "deep/a.jpg", imagefiles.picture(seed=2))
    purge_notifications(stack)
    # When a user who is no admin asks for the whole share
    response = api.post("/api/v1/shared-images/register", {"file_paths": ["deep/", ""]})
    # Then it is refused, saying why, and nothing is registered
    assert response.status_code == 403, response.json
    assert "registering the whole share" in response.json["error"]["message"]
    assert listed(api) == []
    # And an admin may
    response = admin_api.post("/api/v1/shared-images/register", {"file_paths": [""]})
    assert response.status_code == 200 and response.json["data"]["total_registered"] == 2


def test_a_user_registers_at_most_register_user_limit_images_in_one_request(stack, api, admin_api):
    from chalicelib.services.container import services

    # Given a user limit of 3 images a request, and a folder of 4
    services().override(settings=services().settings.model_copy(update={"register_user_limit": 3}))
    for n in range(4):
        put(stack, f"many/{n}.jpg", imagefiles.picture(seed=n))
    purge_notifications(stack)
    # When a user who is no admin registers the folder
    response = api.post("/api/v1/shared-images/register", {"file_paths": ["many/"]})
    # Then it is refused, naming the limit, and nothing is registered
    assert response.status_code == 403, response.json
    assert "more than 3 images" in response.json["error"]["message"]
    assert listed(api) == []
    # And three are fine, and an admin registers the folder
    assert api.post("/api/v1/shared-images/register",
                    {"file_paths": [f"many/{n}.jpg" for n in range(3)]}).status_code == 200
    response = admin_api.post("/api/v1/shared-images/register", {"file_paths": ["many/"]})
    assert response.status_code == 200 and response.json["data"]["total_registered"] == 1
