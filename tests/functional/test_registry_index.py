"""The registry's index against the catalog itself: after every kind of write (registration, an
object landing, replaced or removed through S3 events, tagging and untagging), the registry list,
`similar` and `duplicates` of an instance warmed before the writes, of the API's own instance, and
of a cold one agree with a brute-force pass over the catalog (what these routes did before the
index). Then losing snapshots and change records, and rebuilding.
"""
from __future__ import annotations

from collections import defaultdict

import pytest

from chalicelib.services.container import services
from tests.imagefiles import picture

IMAGES = "/api/v1/shared-images"
KEYS = ["reg/a/Cat_1.jpg", "reg/a/cat_2.jpg", "reg/b/Dog_3.jpg", "reg/b/dog_4.jpg", "reg/Sky_5.jpg", "reg/sky_6.jpg"]


def new_registry(with_snapshots: bool = True):
    """An `IndexedRegistry` of its own, as another API process has."""
    from chalicelib.services.registry_index import IndexedRegistry
    from chalicelib.store.changes import ChangeLog
    from chalicelib.store.images import ImageRepository

    return IndexedRegistry(ImageRepository(), ChangeLog(), services().cache_bucket if with_snapshots else None)


def truth(tag: str) -> dict:
    """The answers computed the old way: every catalog entry read and filtered here."""
    from chalicelib.services.images import hamming
    from chalicelib.store.images import READY, ImageRepository

    catalog = sorted(ImageRepository().catalog(), key=lambda entry: (entry.file_path, entry.id))

    def listed(prefix="", search="", tags=(), status=None):
        return [e.id for e in catalog if e.file_path.startswith(prefix) and search.casefold() in
                e.file_path.rsplit("/", 1)[-1].casefold() and set(tags) <= e.tag_ids
                and (status is None or e.status == status)]

    ready = [e for e in catalog if e.status == READY]
    groups = defaultdict(list)
    for entry in ready:
        if entry.sha256:
            groups[entry.sha256].append(entry.id)
    similar = {e.id: sorted((hamming(e.phash, other.phash), other.file_path, other.id) for other in ready
                            if other.id != e.id and other.phash and hamming(e.phash, other.phash) <= 12)
               for e in ready if e.phash}
    return {
        "all": listed(), "folder": listed(prefix="reg/a/"), "search": listed(search="DOG"),
        "tagged": listed(tags=[tag]), "ready": listed(status="ready"), "missing": listed(status="missing"),
        "duplicates": sorted(((sha, ids) for sha, ids in groups.items() if len(ids) > 1),
                             key=lambda group: (-len(group[1]), group[0])),
        "similar": {image: [(d, i) for d, _, i in close] for image, close in similar.items()},
    }


def answers(registry, tag: str) -> dict:
    index = registry.index()

    def listed(**f):
        clause, params = index.listing(search=f.get("search"), tag_ids=f.get("tags", []),
                                       prefix=f.get("prefix", ""), status=f.get("status"))
        page = index.page(clause, params, 0, 1000)
        assert index.count(clause, params) == len(page)
        return page

    groups, total = index.duplicate_groups(0, 1000)
    assert total == len(groups)
    wanted = truth(tag)["similar"]
    from chalicelib.store.images import ImageRepository

    hashes = {image.id: image.phash for image in ImageRepository().find(wanted).values()}
    return {
        "all": listed(), "folder": listed(prefix="reg/a/"), "search": listed(search="DOG"),
        "tagged": listed(tags=[tag]), "ready": listed(status="ready"), "missing": listed(status="missing"),
        "duplicates": groups,
        "similar": {image: index.similar(hashes[image], 12, 1000, exclude=image) for image in wanted},
    }


@pytest.fixture
def world(stack, api):
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    for n, key in enumerate(KEYS):
        # 2 is a copy of 1 (same bytes); 4 is 3 at another size (a near duplicate)
        body = picture(64, 48, seed=1) if n == 1 else picture(64 if n != 3 else 80, 48 if n != 3 else 60,
                                                               seed=3 if n == 3 else n + 1)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    registered = api.post(f"{IMAGES}/register", {"file_paths": KEYS}).json["data"]["registered"]
    tag = api.post("/api/v1/tags", {"name": "reg-tag"}).json["data"]["id"]
    return s3, bucket, {image["file_path"]: image["id"] for image in registered}, tag


def test_every_write_is_seen_by_warm_cold_and_other_instances_as_the_catalog_says(stack, api, world):
    s3, bucket, ids, tag = world
    other = new_registry()
    assert answers(other, tag) == answers(services().registry_index, tag) == truth(tag)
    assert truth(tag)["duplicates"] and any(truth(tag)["similar"].values())

    def delivered():
        stack.pump.drain()

    writes = [
        ("an object lands", lambda: (s3.put_object(Bucket=bucket, Key="reg/b/Dog_7.jpg", Body=picture(64, 48, seed=9)),
                                     delivered())),
        ("an object is replaced by a copy of another",
         lambda: (s3.put_object(Bucket=bucket, Key=KEYS[4], Body=picture(64, 48, seed=1)), delivered())),
        ("an object is removed", lambda: (s3.delete_object(Bucket=bucket, Key=KEYS[0]), delivered())),
        ("images are tagged", lambda: api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": [ids[KEYS[1]], ids[KEYS[2]]],
                                                                        "tag_ids": [tag]})),
        ("an image is untagged", lambda: api.post(f"{IMAGES}/bulk-untag", {"shared_image_ids": [ids[KEYS[1]]],
                                                                            "tag_ids": [tag]})),
        ("images are registered", lambda: (s3.put_object(Bucket=bucket, Key="reg/late.jpg", Body=picture(seed=1)),
                                           api.post(f"{IMAGES}/register", {"file_paths": ["reg/late.jpg"]}))),
    ]
    for what, write in writes:
        before = truth(tag)
        write()
        expected = truth(tag)
        assert expected != before, what
        assert answers(other, tag) == expected, what
        assert answers(services().registry_index, tag) == expected, what
        assert answers(new_registry(), tag) == expected, what  # cold: the snapshot, then the change log


def test_the_registry_routes_answer_from_the_index_with_their_pages_and_totals(stack, api, world):
    s3, bucket, ids, tag = world
    expected = truth(tag)
    listed = api.get(f"{IMAGES}?page=2&page_size=2").json
    assert [item["id"] for item in listed["data"]] == expected["all"][2:4]
    assert listed["meta"]["total"] == len(expected["all"])
    searched = api.get(f"{IMAGES}?search=dog&folder=reg/b").json
    assert [item["id"] for item in searched["data"]] == expected["search"]
    groups = api.get(f"{IMAGES}/duplicates").json
    assert [[image["id"] for image in group["images"]] for group in groups["data"]] == [
        ids for _, ids in expected["duplicates"]]
    near = ids[KEYS[3]]
    similar = api.get(f"{IMAGES}/{near}/similar?max_distance=12").json["data"]
    assert [(item["distance"], item["image"]["id"]) for item in similar] == expected["similar"][near]


def test_losing_the_snapshot_and_the_change_records_changes_nothing_and_rebuild_restores(stack, api, world):
    from chalicelib.services.kept_index import snapshot_key
    from chalicelib.services.registry_index import REGISTRY
    from chalicelib.store.changes import REGISTRY_STREAM, TAGS_STREAM, ChangeLog

    s3, bucket, ids, tag = world
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": [ids[KEYS[5]]], "tag_ids": [tag]})
    expected = truth(tag)
    assert answers(services().registry_index, tag) == expected
    assert services().cache_bucket.metadata(snapshot_key(REGISTRY)) is not None
    # Given the snapshot is lost: a cold instance builds from the catalog and answers the same
    services().cache_bucket.delete(snapshot_key(REGISTRY))
    assert answers(new_registry(), tag) == expected
    # Given every snapshot and change record is gone, a rebuild gives the same answers
    services().cache_bucket.delete(snapshot_key(REGISTRY))
    assert ChangeLog().clear(REGISTRY_STREAM) > 0 and ChangeLog().clear(TAGS_STREAM) > 0
    rebuilt = new_registry()
    rebuilt.rebuild(REGISTRY)
    assert answers(rebuilt, tag) == expected
    assert answers(new_registry(), tag) == expected


def test_a_redelivered_event_whose_first_attempt_wrote_still_reaches_the_index(stack, api, world):
    """The record follows the image's write: an attempt that wrote the image and died before its
    record is retried by SQS, finds the image already written, and records it all the same."""
    from chalicelib.store.changes import REGISTRY_STREAM, ChangeLog
    from tests.functional.test_ingest import deliver, take_notifications

    s3, bucket, ids, tag = world
    warm = new_registry()
    warm.index()
    s3.put_object(Bucket=bucket, Key=KEYS[2], Body=picture(64, 48, seed=1))
    bodies = take_notifications(stack)
    # Given the first attempt wrote the image, and its change record never made it
    deliver(stack, bodies)
    ChangeLog().clear(REGISTRY_STREAM)
    assert answers(warm, tag) != truth(tag)
    # When SQS delivers the same notification again
    deliver(stack, bodies)
    # Then the instance that was warm all along sees the new content
    assert answers(warm, tag) == truth(tag)


def test_a_bad_folder_is_400_naming_the_folder_parameter(api):
    response = api.get(f"{IMAGES}?folder=/photos")
    assert response.status_code == 400
    assert response.json["error"]["details"][0]["field"] == "folder"
    assert response.json["error"]["message"].startswith("folder '/photos'")
