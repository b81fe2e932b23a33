"""The share as a file browser: browse one level, resolve selections, presigned uploads.

Through the Chalice gateway with real tokens, against the embedded emulator's share bucket.
"""
from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
import requests
from PIL import Image

from tests.conftest import TESTDATA

ROCKET = TESTDATA / "rocket.jpg"  # 640x427 RGB JPEG


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (12, 8), color: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def put(stack, key: str, body: bytes = b"not really an image") -> None:
    stack.aws("s3").put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key, Body=body)


def browse(api, path: str = "", **params):
    return api.get("/api/v1/share/browse?" + urlencode({"path": path, **params}))


def names(entries: list[dict]) -> list[tuple[str, str]]:
    return [(entry["type"], entry["name"]) for entry in entries]


def resolve(api, paths: list[str], **options):
    return api.post("/api/v1/share/resolve", {"paths": paths, **options})


def upload_urls(api, files: list[dict], folder: str | None = None):
    body: dict = {"files": files}
    if folder is not None:
        body["folder"] = folder
    return api.post("/api/v1/share/upload-urls", body)


def signed_policy(upload: dict) -> dict:
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


# Browse -----------------------------------------------------------------------------------------


def test_browse_root_lists_folders_then_every_image_extension_in_any_case(stack, api):
    # Given the eight image extensions in mixed case, sub-folders, and files that are not images
    images = ["a.jpg", "b.JPEG", "c.Png", "d.webp", "e.GIF", "f.bmp", "g.tif", "h.TiFf"]
    others = ["notes.txt", "photo.jpg.bak", "README", "vector.svg", "jpg", "archive.zip"]
    for key in images + others + ["cats/tom.jpg", "holiday photos/café 1.jpg", "holiday photos/deep/x.png"]:
        put(stack, key, body=key.encode() * 3)
    # When
    response = browse(api)
    # Then
    assert response.status_code == 200
    level = response.json["data"]
    assert level["path"] == ""
    assert level["next_cursor"] is None
    assert names(level["entries"]) == [("folder", "cats"), ("folder", "holiday photos")] + [("file", n) for n in images]
    folder = level["entries"][1]
    assert folder["path"] == "holiday photos" and folder["size"] is None and folder["image_id"] is None
    for entry in level["entries"][2:]:
        assert entry["path"] == entry["name"]
        assert entry["size"] == len(entry["name"].encode()) * 3
        modified = datetime.fromisoformat(entry["last_modified"])
        assert abs(modified - datetime.now(timezone.utc)) < timedelta(minutes=5)
        assert entry["image_id"] is None and entry["status"] is None
    assert response.json["message"] == "Found 10 entries"


def test_browse_nested_level_shows_only_its_direct_children(stack, api):
    # Given a folder with a sub-folder, images, a non-image and a console-style folder marker
    for key in ["holiday photos/café 1.jpg", "holiday photos/beach.png", "holiday photos/notes.txt",
                "holiday photos/2023/", "holiday photos/2023/x.jpg", "holiday photos/2023/deeper/y.jpg",
                "holiday photosX/not-here.jpg", "elsewhere.jpg"]:
        put(stack, key)
    for path in ("holiday photos", "holiday photos/"):
        # When
        level = browse(api, path).json["data"]
        # Then the trailing slash makes no difference, and nothing leaks from deeper or sibling levels
        assert level["path"] == "holiday photos"
        assert [(e["type"], e["name"], e["path"]) for e in level["entries"]] == [
            ("folder", "2023", "holiday photos/2023"),
            ("file", "beach.png", "holiday photos/beach.png"),
            ("file", "café 1.jpg", "holiday photos/café 1.jpg"),
        ]
    deeper = browse(api, "holiday photos/2023").json["data"]
    assert names(deeper["entries"]) == [("folder", "deeper"), ("file", "x.jpg")]


def test_browse_of_a_missing_folder_is_empty(stack, api):
    put(stack, "cats/tom.jpg")
    response = browse(api, "dogs")
    assert response.status_code == 200
    assert response.json["data"] == {"path": "dogs", "entries": [], "next_cursor": None}
    assert response.json["message"] == "Found 0 entries"


def test_browse_paginates_until_next_cursor_is_none_listing_each_entry_once(stack, api):
    # Given 9 images, 4 folders and 3 other files at one level
    expected = sorted([("folder", f"dir {i}") for i in range(4)] + [("file", f"img {i:02d}.jpg") for i in range(9)],
                      key=lambda entry: entry[1])
    for i in range(4):
        put(stack, f"lvl/dir {i}/inner.jpg")
    for i in range(9):
        put(stack, f"lvl/img {i:02d}.jpg")
    for name in ("img 03.txt", "img 07.doc", "zzz.csv"):
        put(stack, f"lvl/{name}")
    # When paging three at a time
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params = {"page_size": 3, **({"cursor": cursor} if cursor else {})}
        response = browse(api, "lvl", **params)
        assert response.status_code == 200, response.json
        page = response.json["data"]
        assert len(page["entries"]) <= 3
        seen += names(page["entries"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20, "pagination does not end"
    # Then every entry came exactly once, and every page but the last was a full S3 page
    assert sorted(seen, key=lambda entry: entry[1]) == expected
    assert len(seen) == len(set(seen))
    assert pages == 6  # 16 S3 entries (non-images count against page_size in S3, then are hidden)


def test_browse_shows_the_registry_status_of_ingested_files(stack, api):
    # Given one real image and one corrupt one, both ingested, and a third not yet ingested
    put(stack, "cats/tom.jpg", image_bytes("JPEG", (30, 20)))
    put(stack, "cats/broken.png", b"\x89PNG\r\n\x1a\n truncated")
    stack.pump.drain()
    put(stack, "cats/new.jpg", image_bytes("JPEG"))
    registered = {image["file_path"]: image for image in api.get("/api/v1/shared-images?folder=cats").json["data"]}
    # When
    entries = {entry["name"]: entry for entry in browse(api, "cats").json["data"]["entries"]}
    # Then
    assert entries["tom.jpg"]["image_id"] == registered["cats/tom.jpg"]["id"]
    assert entries["tom.jpg"]["status"] == "ready"
    assert entries["broken.png"]["image_id"] == registered["cats/broken.png"]["id"]
    assert entries["broken.png"]["status"] == "failed"
    assert entries["new.jpg"]["image_id"] is None and entries["new.jpg"]["status"] is None


def test_browse_query_limits_are_422(api):
    assert browse(api, page_size=0).status_code == 422
    assert browse(api, page_size=1001).status_code == 422
    assert browse(api, page_size=1000).status_code == 200
    response = browse(api, "x" * 1025)
    assert response.status_code == 422
    assert [detail["field"] for detail in response.json["error"]["details"]] == ["path"]


def test_share_routes_need_a_token(anonymous_api):
    assert anonymous_api.get("/api/v1/share/browse").status_code == 401
    assert anonymous_api.post("/api/v1/share/resolve", {"paths": [""]}).status_code == 401
    files = [{"path": "a.jpg", "content_type": "image/jpeg", "size": 10}]
    assert anonymous_api.post("/api/v1/share/upload-urls", {"files": files}).status_code == 401


# Resolve ----------------------------------------------------------------------------------------

TREE = ["a/1.jpg", "a/2.png", "a/readme.md", "a/sub/3.gif", "a/sub/deeper/4.bmp", "a/sub/skip.txt", "b/5.jpg"]


@pytest.fixture
def tree(stack):
    for key in TREE:
        put(stack, key)
    return stack


def test_resolve_expands_folders_recursively_by_default(tree, api):
    response = resolve(api, ["a"])
    assert response.status_code == 200
    assert response.json["data"] == {
        "files": ["a/1.jpg", "a/2.png", "a/sub/3.gif", "a/sub/deeper/4.bmp"], "total": 4, "truncated": False,
    }
    assert response.json["message"] == "Resolved 4 image file(s)"


def test_resolve_non_recursive_keeps_only_direct_children(tree, api):
    assert resolve(api, ["a"], recursive=False).json["data"]["files"] == ["a/1.jpg", "a/2.png"]
    assert resolve(api, ["a/sub/"], recursive=False).json["data"]["files"] == ["a/sub/3.gif"]


def test_resolve_root_is_the_whole_share(tree, api):
    assert resolve(api, [""]).json["data"]["files"] == ["a/1.jpg", "a/2.png", "a/sub/3.gif", "a/sub/deeper/4.bmp",
                                                        "b/5.jpg"]


def test_resolve_removes_duplicates_of_overlapping_files_and_folders(tree, api):
    # Given a file, its folder, the same folder spelled twice more, and a parent of it
    paths = ["a/sub/3.gif", "a/sub", "a/sub/", "a", "a/1.jpg"]
    # When
    data = resolve(api, paths).json["data"]
    # Then each image once, where it first appeared
    assert data["files"] == ["a/sub/3.gif", "a/sub/deeper/4.bmp", "a/1.jpg", "a/2.png"]
    assert data["total"] == 4


def test_resolve_keeps_the_order_of_the_selection(tree, api):
    # Given a folder first and a file (from elsewhere) after it
    data = resolve(api, ["b", "a/2.png", "a/sub"]).json["data"]
    # Then the folder's images come first, as selected
    assert data["files"] == ["b/5.jpg", "a/2.png", "a/sub/3.gif", "a/sub/deeper/4.bmp"]


def test_a_selection_cut_at_max_keys_continues_where_it_stopped(tree):
    # Given the service registration uses, with a limit that cuts the selection after its first folder
    from chalicelib.services.container import services

    share = services().share
    selection = ["a/sub", "b/5.jpg", "a", "a/2.png", "b"]
    whole = share.expand(selection)
    cut = share.expand(selection, max_keys=1)
    assert not cut.complete
    assert cut.keys == ["a/sub/3.gif", "a/sub/deeper/4.bmp"]
    # When the rest is listed from `pending` (as the indexing job does)
    cut = share.resume(cut)
    # Then the result is the uncut one, files included, in selection order
    assert cut.complete
    assert cut.keys == whole.keys == ["a/sub/3.gif", "a/sub/deeper/4.bmp", "b/5.jpg", "a/1.jpg", "a/2.png"]


def test_resolve_keeps_a_file_path_as_is(tree, api):
    # A file is not looked up: it is the caller's selection, listed or not
    assert resolve(api, ["b/5.jpg", "b/later.JPG"]).json["data"]["files"] == ["b/5.jpg", "b/later.JPG"]


def test_resolve_body_limits_are_422(api):
    assert resolve(api, []).status_code == 422
    assert resolve(api, [""] * 1001).status_code == 422
    response = api.post("/api/v1/share/resolve", {"paths": ["a"], "recurse": False})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["field"] == "recurse"


BAD_PATHS = {
    "absolute": "/etc/passwd.jpg",
    "dot-dot": "a/../../secret.jpg",
    "dot-dot-alone": "..",
    "dot-segment": "./a.jpg",
    "backslash": "a\\b.jpg",
    "nul": "a\x00b.jpg",
    "newline": "a\nb.jpg",
    "escape": "\x1b[31mred.jpg",
    "delete": "a\x7f.jpg",
    "c1-control": "a\x9bb.jpg",
    "empty-segment": "a//b.jpg",
}


@pytest.mark.parametrize("bad", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_a_bad_path_is_400_naming_it_on_every_route(stack, api, bad):
    put(stack, "a/1.jpg")

    def assert_names_it(response):
        assert response.status_code == 400, response.json
        error = response.json["error"]
        assert error["code"] == "bad_request"
        assert repr(bad) in error["message"]
        assert [detail["path"] for detail in error["details"]] == [bad]

    # When a good path travels with it, resolve still refuses the whole selection
    assert_names_it(resolve(api, ["a", bad]))
    # When it is the folder browsed, or the folder an upload goes to
    assert_names_it(browse(api, bad))
    assert_names_it(upload_urls(api, [{"path": "x.jpg", "content_type": "image/jpeg", "size": 10}], folder=bad))


@pytest.mark.parametrize("bad", ["../escape.jpg", "/abs.jpg", "a\\b.jpg", "a\x00.jpg", "a\x9b.jpg", "x/./y.jpg"])
def test_a_bad_upload_file_path_is_400_and_names_it(api, bad):
    response = upload_urls(api, [{"path": "fine.jpg", "content_type": "image/jpeg", "size": 10},
                                 {"path": bad, "content_type": "image/jpeg", "size": 10}])
    assert response.status_code == 400
    error = response.json["error"]
    assert repr(bad) in error["message"]
    assert [detail["path"] for detail in error["details"]] == [bad]


def test_resolve_lists_every_bad_path_at_once(api):
    bad = ["/x", "a/../b", "c\\d"]
    error = resolve(api, ["ok", *bad]).json["error"]
    assert error["message"] == "Invalid path(s): '/x', 'a/../b', 'c\\\\d'"
    assert [detail["path"] for detail in error["details"]] == bad


# Upload URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder, filename", [
    ("holiday photos", "café 1.jpg"),
    ("sums 100%", "a+b=c (1).jpg"),  # S3 notifications encode '+' and '%' in keys
], ids=["space-and-accent", "plus-and-percent"])
def test_upload_url_puts_a_real_photo_in_the_share_and_it_is_ingested(stack, api, folder, filename):
    # Given a presigned upload for a real photo, under a folder with awkward characters
    photo = ROCKET.read_bytes()
    requested = datetime.now(timezone.utc)
    response = upload_urls(api, [{"path": filename, "content_type": "image/jpeg", "size": len(photo)}],
                           folder=folder)
    assert response.status_code == 200, response.json
    upload, = response.json["data"]
    key = f"{folder}/{filename}"
    assert upload["path"] == key and upload["method"] == "POST" and upload["max_bytes"] == len(photo)
    assert upload["fields"]["key"] == key and upload["fields"]["Content-Type"] == "image/jpeg"
    expires_at = datetime.fromisoformat(upload["expires_at"])
    assert timedelta(seconds=890) < expires_at - requested < timedelta(seconds=910)
    # When the browser posts the form, the file field last
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": (filename, photo)}, timeout=10)
    # Then the object is in the share, byte for byte
    assert posted.status_code == 204, posted.text
    stored = stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key)
    assert stored["Body"].read() == photo
    # And once its notification is delivered it is a ready image of the right size
    stack.pump.drain()
    images = api.get("/api/v1/shared-images?" + urlencode({"search": filename})).json["data"]
    assert [(i["file_path"], i["status"], i["width"], i["height"]) for i in images] == [(key, "ready", 640, 427)]
    assert images[0]["file_size_bytes"] == len(photo)
    # And browse and resolve see it under its exact name
    entry, = browse(api, folder).json["data"]["entries"]
    assert (entry["name"], entry["path"], entry["status"], entry["image_id"]) == (filename, key, "ready",
                                                                                    images[0]["id"])
    assert resolve(api, [folder]).json["data"]["files"] == [key]
    assert resolve(api, [key]).json["data"]["files"] == [key]


def test_upload_urls_one_per_file_each_with_its_key_type_and_size(stack, api):
    files = [
        {"path": "2024/x.png", "content_type": "image/png", "size": 100},
        {"path": "y.JPG", "content_type": "image/jpg", "size": 200},  # the common alias of image/jpeg
        {"path": "z.tiff", "content_type": "image/tiff", "size": 300},
    ]
    # When
    response = upload_urls(api, files, folder="incoming/")
    # Then
    assert response.status_code == 200
    uploads = response.json["data"]
    assert [u["path"] for u in uploads] == ["incoming/2024/x.png", "incoming/y.JPG", "incoming/z.tiff"]
    assert [u["fields"]["Content-Type"] for u in uploads] == ["image/png", "image/jpeg", "image/tiff"]
    assert [u["max_bytes"] for u in uploads] == [100, 200, 300]
    assert all(u["url"].startswith(stack.endpoint) for u in uploads)
    assert response.json["message"].startswith("3 upload URL(s) valid until ")


def test_upload_urls_at_the_root_without_a_folder(api):
    upload, = upload_urls(api, [{"path": "top.webp", "content_type": "image/webp", "size": 5}]).json["data"]
    assert upload["path"] == upload["fields"]["key"] == "top.webp"


def test_signed_policy_pins_the_bucket_key_type_and_size(stack, api):
    # moto accepts any POST whatever the policy says, so the policy itself is what can be checked
    upload, = upload_urls(api, [{"path": "p.gif", "content_type": "image/gif", "size": 1234}], folder="f").json["data"]
    policy = signed_policy(upload)
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1234] in conditions
    assert {"Content-Type": "image/gif"} in conditions
    assert {"key": "f/p.gif"} in conditions
    assert {"bucket": stack.variables["PIXELPOOL_SHARE_BUCKET"]} in conditions
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert abs(expiration - datetime.fromisoformat(upload["expires_at"])) < timedelta(seconds=5)


def test_content_type_must_match_the_extension(api):
    response = upload_urls(api, [{"path": "ok.png", "content_type": "image/png", "size": 1},
                                 {"path": "photo.png", "content_type": "image/jpeg", "size": 1}])
    assert response.status_code == 422
    error = response.json["error"]
    assert [detail["field"] for detail in error["details"]] == ["files.1.content_type"]
    assert "'image/jpeg'" in error["message"] and "'photo.png'" in error["message"]


def test_a_file_without_an_image_extension_is_422(api):
    response = upload_urls(api, [{"path": "notes.txt", "content_type": "text/plain", "size": 1},
                                 {"path": "a.b/noext", "content_type": "image/png", "size": 1}])
    assert response.status_code == 422
    assert [d["field"] for d in response.json["error"]["details"]] == ["files.0.path", "files.1.path"]
    assert "'notes.txt'" in response.json["error"]["message"]


@pytest.mark.parametrize("path", [".jpg", "f/.png", "..jpeg"])
def test_a_dot_file_named_like_an_extension_is_not_an_image_name(api, path):
    # Browse, resolve and ingestion ignore such keys, so an upload there would vanish from view
    response = upload_urls(api, [{"path": path, "content_type": "image/jpeg", "size": 1}])
    assert response.status_code == 422
    assert [d["field"] for d in response.json["error"]["details"]] == ["files.0.path"]


def test_size_over_the_limit_is_422_and_at_the_limit_is_fine(api):
    limit = 200 * 2**20  # the configured PIXELPOOL_UPLOAD_MAX_BYTES default
    over = upload_urls(api, [{"path": "big.png", "content_type": "image/png", "size": limit + 1}])
    assert over.status_code == 422
    assert [d["field"] for d in over.json["error"]["details"]] == ["files.0.size"]
    assert str(limit) in over.json["error"]["message"]
    at = upload_urls(api, [{"path": "big.png", "content_type": "image/png", "size": limit}])
    assert at.status_code == 200
    assert signed_policy(at.json["data"][0])["conditions"].count(["content-length-range", 1, limit]) == 1


def test_the_same_key_twice_is_422(api):
    response = upload_urls(api, [{"path": "sub/a.jpg", "content_type": "image/jpeg", "size": 1},
                                 {"path": "a.jpg", "content_type": "image/jpeg", "size": 1}], folder=None)
    assert response.status_code == 200
    twice = upload_urls(api, [{"path": "a.jpg", "content_type": "image/jpeg", "size": 1}] * 2, folder="f")
    assert twice.status_code == 422
    assert "twice" in twice.json["error"]["message"]


@pytest.mark.parametrize("files, field", [
    ([], "files"),
    ([{"path": "a.jpg", "content_type": "image/jpeg", "size": 0}], "files.0.size"),
    ([{"path": "a.jpg", "content_type": "image/jpeg"}], "files.0.size"),
    ([{"path": "", "content_type": "image/jpeg", "size": 1}], "files.0.path"),
    ([{"path": "a.jpg", "content_type": "image/jpeg", "size": 1, "acl": "public-read"}], "files.0.acl"),
])
def test_malformed_upload_request_is_422_naming_the_field(api, files, field):
    response = upload_urls(api, files)
    assert response.status_code == 422
    assert [d["field"] for d in response.json["error"]["details"]] == [field]

