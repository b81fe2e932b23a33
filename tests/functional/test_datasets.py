"""Datasets as a resource (create, list, detail, rename) and uploads straight to S3: images by
presigned POST into the dataset's folder of the share, files of any size by multipart upload with
presigned part URLs — parts sent in parallel, one sent again after a failure, resumed, aborted."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chalicelib.services.container import services
from tests.conftest import Api
from tests.imagefiles import picture

D = "/api/v1/datasets"
MiB = 2**20


def data(response, status: int = 200):
    assert response.status_code == status, response.json
    return response.json["data"]


@pytest.fixture
def bob(client, stack):
    return Api(client, stack.token(sub="bob", email="bob@example.com", groups=[]))


@pytest.fixture
def small_parts():
    """Parts of 5 MiB (S3's least), so that a test file of a few MiB has several."""
    settings = services().settings
    services().override(settings=settings.model_copy(update={"upload_part_bytes": 5 * MiB}))
    yield
    services().override(settings=settings)


# The resource -------------------------------------------------------------------------------------

def test_a_dataset_is_created_empty_and_its_name_is_unique_per_owner_ignoring_case(api, bob):
    created = data(api.post(D, {"name": "Street Cats", "description": "from the van"}), 201)
    assert (created["name"], created["status"], created["image_count"], created["labeled"]) == (
        "Street Cats", "empty", 0, False)
    assert created["prefix"] == f"datasets/{created['id']}/"
    assert created["storage"] == {"total_bytes": 0, "images_bytes": 0, "annotations_bytes": 0, "other_bytes": 0}
    # the same name in another case, by the same owner: 409, and nothing was written
    clash = api.post(D, {"name": "street CATS"})
    assert clash.status_code == 409 and "Street CATS".casefold() in clash.json["error"]["message"].casefold()
    assert [d["name"] for d in data(api.get(D))] == ["Street Cats"]
    # another owner may use it
    assert data(bob.post(D, {"name": "street cats"}), 201)["owner_id"] == "bob"


def test_a_rename_frees_the_old_name_and_cannot_take_another_of_yours(api):
    first = data(api.post(D, {"name": "one"}), 201)["id"]
    data(api.post(D, {"name": "two"}), 201)
    assert api.patch(f"{D}/{first}", {"name": "TWO"}).status_code == 409
    renamed = data(api.patch(f"{D}/{first}", {"name": "uno", "description": "renamed"}))
    assert (renamed["name"], renamed["description"]) == ("uno", "renamed")
    assert data(api.post(D, {"name": "one"}), 201)["name"] == "one"  # the old name is free again
    assert data(api.patch(f"{D}/{first}", {"description": None}))["description"] is None


def test_others_datasets_are_not_found_and_an_administrator_sees_every_one(api, bob, admin_api):
    mine = data(api.post(D, {"name": "mine"}), 201)["id"]
    data(bob.post(D, {"name": "bobs"}), 201)
    assert bob.get(f"{D}/{mine}").status_code == 404
    assert bob.patch(f"{D}/{mine}", {"name": "taken"}).status_code == 404
    assert [d["name"] for d in data(bob.get(D))] == ["bobs"]
    assert sorted(d["name"] for d in data(admin_api.get(D))) == ["bobs", "mine"]
    assert data(admin_api.get(f"{D}/{mine}"))["owner_id"] == "alice"


def test_the_list_searches_filters_sorts_and_pages_with_a_total(api):
    for name in ("Birds", "cars", "Apples", "dogs"):
        data(api.post(D, {"name": name, "description": f"all about {name.lower()}"}), 201)
    listed = api.get(f"{D}?sort=name&order=asc&page=2&page_size=2").json
    assert [d["name"] for d in listed["data"]] == ["cars", "dogs"]
    assert listed["meta"] == {"total": 4, "page": 2, "page_size": 2}
    assert [d["name"] for d in data(api.get(f"{D}?search=ABOUT%20b"))] == ["Birds"]
    assert data(api.get(f"{D}?labeled=true")) == []
    assert len(data(api.get(f"{D}?status=empty"))) == 4
    assert api.get(f"{D}?sort=colour").status_code == 422


def test_bad_input_names_the_field(api):
    assert "name" in str(api.post(D, {"name": ""}).json["error"])
    assert api.post(D, {"name": "x", "owner": "mallory"}).status_code == 422  # unknown fields are refused
    assert api.get(f"{D}/no-such-dataset").status_code == 404


# Images into the dataset's folder -------------------------------------------------------------------

def test_images_uploaded_by_presigned_post_land_in_the_dataset_folder_and_are_registered(stack, api):
    dataset = data(api.post(D, {"name": "photos"}), 201)
    photo = picture(64, 48, seed=3)
    upload, = data(api.post(f"{D}/{dataset['id']}/upload-urls", {
        "folder": "2024/june", "files": [{"path": "beach/a.jpg", "content_type": "image/jpeg", "size": len(photo)}]}))
    assert upload["path"] == f"datasets/{dataset['id']}/2024/june/beach/a.jpg"
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("a.jpg", photo)}, timeout=10)
    assert posted.status_code in (200, 204), posted.text
    stack.pump.drain()
    found = data(api.get(f"/api/v1/shared-images?folder=datasets/{dataset['id']}"))
    assert [(image["file_path"], image["status"]) for image in found] == [(upload["path"], "ready")]
    # a path that escapes the folder is refused, naming it
    escaping = api.post(f"{D}/{dataset['id']}/upload-urls",
                        {"files": [{"path": "../../x.jpg", "content_type": "image/jpeg", "size": 10}]})
    assert escaping.status_code == 400 and "../../x.jpg" in escaping.json["error"]["message"]


# Files of any size by multipart upload --------------------------------------------------------------

def _put(url: str, body: bytes) -> str:
    answer = requests.put(url, data=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.headers["ETag"]


def test_a_multipart_upload_with_parts_in_parallel_and_one_sent_again_completes(stack, api, small_parts):
    dataset = data(api.post(D, {"name": "big"}), 201)["id"]
    body = bytes(range(256)) * (12 * MiB // 256) + b"tail"
    started = data(api.post(f"{D}/{dataset}/uploads", {"file_name": "archive.zip", "size": len(body)}), 201)
    assert (started["part_size"], started["part_count"], len(started["parts"])) == (5 * MiB, 3, 3)
    size = started["part_size"]
    chunks = {part["part_number"]: body[(part["part_number"] - 1) * size : part["part_number"] * size]
              for part in started["parts"]}
    # parts in parallel; part 2 first goes with broken bytes (a failed send) and is sent again
    urls = {part["part_number"]: part["url"] for part in started["parts"]}
    _put(urls[2], b"broken" * 100)
    with ThreadPoolExecutor(max_workers=3) as pool:
        etags = dict(zip(chunks, pool.map(lambda n: _put(urls[n], chunks[n]), chunks)))
    received = data(api.get(f"{D}/{dataset}/uploads/parts?file_name=archive.zip&upload_id={started['upload_id']}"))
    assert [(part["part_number"], part["size"]) for part in received] == [(1, size), (2, size), (3, len(chunks[3]))]
    done = data(api.post(f"{D}/{dataset}/uploads/complete", {
        "file_name": "archive.zip", "upload_id": started["upload_id"],
        "parts": [{"part_number": n, "etag": etags[n]} for n in sorted(etags)]}))
    assert done["key"] == f"uploads/{dataset}/archive.zip"
    stored = stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_DATASETS_BUCKET"], Key=done["key"])
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(body).digest()


def test_a_client_resumes_with_more_part_urls_and_an_abort_drops_the_upload(stack, api, small_parts):
    dataset = data(api.post(D, {"name": "resumed"}), 201)["id"]
    size = 11 * MiB
    started = data(api.post(f"{D}/{dataset}/uploads", {"file_name": "labels.json", "size": size, "first_parts": 1}),
                   201)
    assert [part["part_number"] for part in started["parts"]] == [1]
    query = f"file_name=labels.json&upload_id={started['upload_id']}&size={size}"
    more = data(api.get(f"{D}/{dataset}/uploads/part-urls?{query}&first=2&count=5"))
    assert [part["part_number"] for part in more["parts"]] == [2, 3]
    _put(more["parts"][0]["url"], b"x" * (5 * MiB))
    received = data(api.get(f"{D}/{dataset}/uploads/parts?file_name=labels.json&upload_id={started['upload_id']}"))
    assert [part["part_number"] for part in received] == [2]
    ref = {"file_name": "labels.json", "upload_id": started["upload_id"]}
    assert data(api.post(f"{D}/{dataset}/uploads/abort", ref)) == ref
    assert api.post(f"{D}/{dataset}/uploads/abort", ref).status_code == 404
    assert api.get(f"{D}/{dataset}/uploads/part-urls?{query}").status_code == 404


def test_upload_mistakes_are_422_naming_the_field(api, bob, small_parts):
    dataset = data(api.post(D, {"name": "careful"}), 201)["id"]
    for name, fragment in (("../up.zip", "file_name"), ("folder/a.zip", "file_name"), ("movie.mp4", ".zip")):
        refused = api.post(f"{D}/{dataset}/uploads", {"file_name": name, "size": 10})
        assert refused.status_code == 422 and fragment in refused.json["error"]["message"], (name, refused.json)
    too_big = api.post(f"{D}/{dataset}/uploads", {"file_name": "a.zip", "size": 2**50})
    assert too_big.status_code == 422 and "limit" in too_big.json["error"]["message"]
    started = data(api.post(f"{D}/{dataset}/uploads", {"file_name": "a.zip", "size": 10}), 201)
    ref = {"file_name": "a.zip", "upload_id": started["upload_id"]}
    never_sent = api.post(f"{D}/{dataset}/uploads/complete", {**ref, "parts": [{"part_number": 1, "etag": '"x"'}]})
    assert never_sent.status_code == 422 and "not received part(s) 1" in never_sent.json["error"]["message"]
    _put(started["parts"][0]["url"], b"0123456789")
    wrong = api.post(f"{D}/{dataset}/uploads/complete", {**ref, "parts": [{"part_number": 1, "etag": '"nope"'}]})
    assert wrong.status_code == 422 and "parts" in wrong.json["error"]["message"]
    unordered = api.post(f"{D}/{dataset}/uploads/complete", {**ref, "parts": [
        {"part_number": 2, "etag": '"a"'}, {"part_number": 1, "etag": '"b"'}]})
    assert unordered.status_code == 422 and "ascending" in unordered.json["error"]["message"]
    unknown = api.post(f"{D}/{dataset}/uploads/complete", {"file_name": "a.zip", "upload_id": "not-an-upload",
                                                           "parts": [{"part_number": 1, "etag": '"x"'}]})
    assert unknown.status_code == 404
    # someone else cannot touch it, nor learn that the dataset exists
    assert bob.post(f"{D}/{dataset}/uploads/abort", ref).status_code == 404
