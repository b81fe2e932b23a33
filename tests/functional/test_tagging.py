"""Tagging registry images: one image or many, idempotent, with exact usage counts, through the API."""
from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image

from chalicelib.errors import NotFoundError
from chalicelib.store.image_tags import SLICE, ImageTagRepository

IMAGES = "/api/v1/shared-images"


def png(index: int) -> bytes:
    """A small PNG that differs from every other index in colour and size."""
    color = (index * 37 % 256, index * 91 % 256, index * 53 % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (40 + index % 17, 30 + index % 13), color).save(buffer, "PNG")
    return buffer.getvalue()


def share_images(stack, api, count: int) -> list[str]:
    """Put `count` distinct PNGs in the share, let ingest register them; their ids in path order."""
    s3 = stack.aws("s3")
    bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    for index in range(count):
        s3.put_object(Bucket=bucket, Key=f"tagging/img-{index:03d}.png", Body=png(index), ContentType="image/png")
    stack.pump.drain()
    listed = api.get(f"{IMAGES}?page_size=200").json["data"]
    assert [image["file_path"] for image in listed] == [f"tagging/img-{index:03d}.png" for index in range(count)]
    return [image["id"] for image in listed]


def create_tags(api, *names: str) -> list[str]:
    return [api.post("/api/v1/tags", {"name": name}).json["data"]["id"] for name in names]


def tags_by_image(api) -> dict[str, set[str]]:
    return {image["id"]: {tag["id"] for tag in image["tags"]}
            for image in api.get(f"{IMAGES}?page_size=200").json["data"]}


def usage(api, tag_id: str) -> int:
    return api.get(f"/api/v1/tags/{tag_id}").json["data"]["usage_count"]


def carriers(api, tag_id: str) -> int:
    """How many images the API shows carrying `tag_id`."""
    return sum(tag_id in tags for tags in tags_by_image(api).values())


def bulk(api, action: str, image_ids: list[str], tag_ids: list[str]):
    return api.post(f"{IMAGES}/bulk-{action}", {"shared_image_ids": image_ids, "tag_ids": tag_ids})


def test_tag_and_untag_one_image_round_trip(api, stack):
    # Given an image and two tags
    [image] = share_images(stack, api, 1)
    cat, dog = create_tags(api, "cat", "Dog")
    # When both tags are added
    tagged = api.post(f"{IMAGES}/{image}/tags", {"tag_ids": [dog, cat]})
    # Then the image comes back with both, sorted by name, and each tag counts one use
    assert tagged.status_code == 200
    assert tagged.json["message"] == "2 tag(s) added"
    assert [(t["id"], t["name"]) for t in tagged.json["data"]["tags"]] == [(cat, "cat"), (dog, "Dog")]
    assert set(tagged.json["data"]["tags"][0]) == {"id", "name", "color", "category"}
    assert api.get(f"{IMAGES}/{image}").json["data"]["tags"] == tagged.json["data"]["tags"]
    assert (usage(api, cat), usage(api, dog)) == (1, 1)
    # When added again, nothing changes
    again = api.post(f"{IMAGES}/{image}/tags", {"tag_ids": [cat]})
    assert again.json["message"] == "0 tag(s) added"
    assert usage(api, cat) == 1
    # When one is removed
    untagged = api.delete(f"{IMAGES}/{image}/tags/{cat}")
    # Then only the other remains and the counts follow
    assert untagged.status_code == 200
    assert untagged.json["message"] == "1 tag(s) removed"
    assert [t["id"] for t in untagged.json["data"]["tags"]] == [dog]
    assert (usage(api, cat), usage(api, dog)) == (0, 1)
    # And removing it again is a no-op that never drives the count below zero
    repeat = api.delete(f"{IMAGES}/{image}/tags/{cat}")
    assert repeat.status_code == 200
    assert repeat.json["message"] == "0 tag(s) removed"
    assert usage(api, cat) == 0
    # And a tag that is no longer used can be deleted without force
    assert api.delete(f"/api/v1/tags/{cat}").status_code == 200


def test_bulk_tag_counts_each_link_once_and_nothing_on_repeat(api, stack):
    # Given 4 images and 3 tags
    images = share_images(stack, api, 4)
    tags = create_tags(api, "red", "green", "blue")
    # When every image gets every tag
    first = bulk(api, "tag", images, tags)
    # Then N*M links are reported, on N images
    assert first.status_code == 200
    assert first.json["message"] == "Tags added successfully"
    assert first.json["data"] == {"tags_added": 12, "images_affected": 4}
    assert all(carried == set(tags) for carried in tags_by_image(api).values())
    assert [usage(api, tag) for tag in tags] == [4, 4, 4]
    # When repeated
    second = bulk(api, "tag", images, tags)
    # Then nothing is added or counted
    assert second.json["data"] == {"tags_added": 0, "images_affected": 0}
    listed = api.get("/api/v1/tags?include_usage_count=true").json["data"]
    assert sorted(tag["usage_count"] for tag in listed) == [4, 4, 4]


def test_repeated_ids_in_one_request_count_once(api, stack):
    images = share_images(stack, api, 2)
    [tag] = create_tags(api, "twice")
    response = bulk(api, "tag", [images[0], images[1], images[0]], [tag, tag])
    assert response.json["data"] == {"tags_added": 2, "images_affected": 2}
    assert usage(api, tag) == 2
    removed = bulk(api, "untag", [images[1], images[1]], [tag, tag])
    assert removed.json["data"] == {"tags_removed": 1, "images_affected": 1}
    assert usage(api, tag) == 1


def test_bulk_tag_with_partial_overlap_counts_only_new_links(api, stack):
    # Given 5 images where some already carry some of the tags
    images = share_images(stack, api, 5)
    sea, sky = create_tags(api, "sea", "sky")
    bulk(api, "tag", images[:2], [sea])
    bulk(api, "tag", images[1:3], [sky])
    # When every image gets both tags
    response = bulk(api, "tag", images, [sea, sky])
    # Then only missing links are counted, and image 1 (which had both) is not affected
    assert response.json["data"] == {"tags_added": 10 - 4, "images_affected": 4}
    assert (usage(api, sea), usage(api, sky)) == (5, 5)
    # When an image that already has both is retagged with another that lacks one of them
    [land] = create_tags(api, "land")
    bulk(api, "tag", images[:1], [land])
    overlap = bulk(api, "tag", images[:3], [land, sea])
    # Then images_affected counts only the two that gained a link
    assert overlap.json["data"] == {"tags_added": 2, "images_affected": 2}
    assert [usage(api, tag) for tag in (sea, sky, land)] == [5, 5, 3]


def test_bulk_untag_is_symmetric(api, stack):
    # Given 4 images carrying two tags, and a third tag on one image only
    images = share_images(stack, api, 4)
    day, night, dusk = create_tags(api, "day", "night", "dusk")
    bulk(api, "tag", images, [day, night])
    bulk(api, "tag", images[:1], [dusk])
    # When two tags are removed from three images (one of them never had the second)
    response = bulk(api, "untag", images[1:], [day, dusk])
    # Then only existing links are removed and counted
    assert response.status_code == 200
    assert response.json["message"] == "Tags removed successfully"
    assert response.json["data"] == {"tags_removed": 3, "images_affected": 3}
    assert [usage(api, tag) for tag in (day, night, dusk)] == [1, 4, 1]
    carried = tags_by_image(api)
    assert carried[images[0]] == {day, night, dusk}
    assert all(carried[image] == {night} for image in images[1:])
    # When repeated, nothing more is removed
    assert bulk(api, "untag", images[1:], [day, dusk]).json["data"] == {"tags_removed": 0, "images_affected": 0}
    # When everything is removed, every count is back to zero
    everything = bulk(api, "untag", images, [day, night, dusk])
    assert everything.json["data"] == {"tags_removed": 6, "images_affected": 4}
    assert [usage(api, tag) for tag in (day, night, dusk)] == [0, 0, 0]
    assert all(tags == set() for tags in tags_by_image(api).values())


def test_unknown_ids_are_404_listing_each_and_nothing_is_written(api, stack):
    # Given two images, one carrying a tag
    images = share_images(stack, api, 2)
    known, other = create_tags(api, "known", "other")
    bulk(api, "tag", images[:1], [known])
    unknown_images = ["No-Such-Image-1", "no-such-image-2"]
    unknown_tags = ["Ghost-Tag"]
    for action in ("tag", "untag"):
        # When a bulk call mixes known and unknown ids
        response = bulk(api, action, [images[1], *unknown_images, images[0]], [other, *unknown_tags, known])
        # Then it is 404 naming every unknown id, exactly as sent
        assert response.status_code == 404, action
        message = response.json["error"]["message"]
        for missing in [*unknown_images, *unknown_tags]:
            assert missing in message, (action, message)
        assert images[0] not in message and known not in message
        details = response.json["error"]["details"]
        assert [(d["field"], d["id"]) for d in details] == [
            ("shared_image_ids", "No-Such-Image-1"), ("shared_image_ids", "no-such-image-2"),
            ("tag_ids", "Ghost-Tag"),
        ]
        # And nothing was written
        assert (usage(api, known), usage(api, other)) == (1, 0), action
        assert tags_by_image(api) == {images[0]: {known}, images[1]: set()}, action
    # And the one-image routes answer the same way
    assert api.post(f"{IMAGES}/No-Such-Image-1/tags", {"tag_ids": [known]}).status_code == 404
    missing_tag = api.post(f"{IMAGES}/{images[1]}/tags", {"tag_ids": [other, "Ghost-Tag"]})
    assert missing_tag.status_code == 404 and "Ghost-Tag" in missing_tag.json["error"]["message"]
    assert api.delete(f"{IMAGES}/{images[0]}/tags/Ghost-Tag").status_code == 404
    assert api.delete(f"{IMAGES}/No-Such-Image-1/tags/{known}").status_code == 404
    assert (usage(api, known), usage(api, other)) == (1, 0)
    assert tags_by_image(api) == {images[0]: {known}, images[1]: set()}


def test_bulk_bodies_are_validated(api, stack):
    [image] = share_images(stack, api, 1)
    [tag] = create_tags(api, "valid")
    assert api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": [], "tag_ids": [tag]}).status_code == 422
    assert api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": [image], "tag_ids": []}).status_code == 422
    assert api.post(f"{IMAGES}/bulk-untag", {"shared_image_ids": [image]}).status_code == 422
    assert api.post(f"{IMAGES}/{image}/tags", {"tag_ids": []}).status_code == 422
    assert usage(api, tag) == 0


def test_filter_by_tag_ids_returns_images_carrying_all_of_them(api, stack):
    # Given images 0-1 with a and b, image 2 with a only, image 3 with b only, image 4 with none
    images = share_images(stack, api, 5)
    a, b, c = create_tags(api, "a", "b", "c")
    bulk(api, "tag", images[:3], [a])
    bulk(api, "tag", [images[0], images[1], images[3]], [b])

    def ids(query: str) -> list[str]:
        response = api.get(f"{IMAGES}?{query}")
        assert response.status_code == 200, response.json
        assert response.json["meta"]["total"] == len(response.json["data"])
        return [image["id"] for image in response.json["data"]]

    # Then filtering by several tags keeps only the images carrying all of them
    assert ids(f"tag_ids={a},{b}") == images[:2]
    assert ids(f"tag_ids={a}&tag_ids={b}") == images[:2]
    assert ids(f"tag_ids={a}") == images[:3]
    assert ids(f"tag_ids={b}") == [images[0], images[1], images[3]]
    assert ids(f"tag_ids={a},{b},{c}") == []
    assert ids(f"tag_ids={c}") == []
    assert ids("tag_ids=not-a-tag") == []
    # And the filter follows untagging
    bulk(api, "untag", images[:1], [b])
    assert ids(f"tag_ids={a},{b}") == images[1:2]


def test_bulk_tag_beyond_one_transaction_slice(api, stack):
    # Given more images than one transaction holds, some already tagged
    count = SLICE + 3
    images = share_images(stack, api, count)
    wide, narrow = create_tags(api, "wide", "narrow")
    bulk(api, "tag", images[SLICE - 1 : SLICE + 1], [wide])
    # When all of them get both tags
    response = bulk(api, "tag", images, [wide, narrow])
    # Then every slice is applied and counted exactly
    assert response.json["data"] == {"tags_added": 2 * count - 2, "images_affected": count}
    assert (usage(api, wide), usage(api, narrow)) == (count, count)
    assert (carriers(api, wide), carriers(api, narrow)) == (count, count)
    # When all but the last are untagged
    removed = bulk(api, "untag", images[:-1], [wide])
    assert removed.json["data"] == {"tags_removed": count - 1, "images_affected": count - 1}
    assert (usage(api, wide), carriers(api, wide)) == (1, 1)


def test_concurrent_overlapping_bulk_operations_keep_counts_exact(api, stack):
    # Given 52 images (more than one transaction slice), two tags, and half the images pre-tagged
    images = share_images(stack, api, SLICE + 3)
    hot, cold = create_tags(api, "hot", "cold")
    seed = bulk(api, "tag", images[:26], [hot, cold]).json["data"]
    assert seed == {"tags_added": 52, "images_affected": 26}
    # And eight callers adding and removing both tags on overlapping ranges at once, half of them
    # on more images than one transaction holds
    plans = [
        ("tag", images, [hot]),
        ("untag", images[10:], [hot, cold]),
        ("tag", images[:50], [cold]),
        ("untag", images[:51], [hot]),
        ("tag", images[3:], [cold, hot]),
        ("untag", images[20:40], [hot]),
        ("tag", images[25:], [cold]),
        ("untag", images, [cold]),
    ]
    results: list[tuple[str, int, dict | None]] = [None] * len(plans)  # type: ignore[list-item]
    barrier = threading.Barrier(len(plans))

    def run(slot: int, action: str, image_ids: list[str], tag_ids: list[str]) -> None:
        barrier.wait()
        response = bulk(api, action, image_ids, tag_ids)
        results[slot] = (action, response.status_code, response.json)

    threads = [threading.Thread(target=run, args=(slot, *plan)) for slot, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every call succeeded
    assert [status for _, status, _ in results] == [200] * len(plans), [body for _, _, body in results]
    # And each tag's count equals the images the API shows carrying it
    carried = tags_by_image(api)
    final = {tag: sum(tag in tags for tags in carried.values()) for tag in (hot, cold)}
    assert {tag: usage(api, tag) for tag in (hot, cold)} == final
    # And the links added minus the links removed account for every link there is now
    added = sum(body["data"]["tags_added"] for action, _, body in results if action == "tag")
    removed = sum(body["data"]["tags_removed"] for action, _, body in results if action == "untag")
    assert seed["tags_added"] + added - removed == final[hot] + final[cold]
    for (action, _, body), (_, image_ids, tag_ids) in zip(results, plans):
        changed = body["data"]["tags_added" if action == "tag" else "tags_removed"]
        assert changed <= len(image_ids) * len(tag_ids)
        assert body["data"]["images_affected"] <= min(changed, len(image_ids))
    # And the link table and the tag filter agree with the images' tag sets
    links = ImageTagRepository()
    for tag in (hot, cold):
        carriers_of_tag = {image for image, tags in carried.items() if tag in tags}
        assert set(links.images_with(tag)) == carriers_of_tag
        found = api.get(f"{IMAGES}?page_size=200&tag_ids={tag}").json["data"]
        assert {image["id"] for image in found} == carriers_of_tag


def test_delete_of_a_tag_in_use_is_409_and_forced_delete_untags_every_image(api, admin_api, stack):
    # Given 26 images carrying a doomed tag (more than one batch write), and a tag that stays
    images = share_images(stack, api, 26)
    doomed, kept = create_tags(api, "doomed", "kept")
    bulk(api, "tag", images, [doomed])
    bulk(api, "tag", images[:3], [kept])
    # When deleted without force
    refused = api.delete(f"/api/v1/tags/{doomed}")
    # Then it is refused and nothing changes
    assert refused.status_code == 409
    assert "26 image(s)" in refused.json["error"]["message"]
    assert usage(api, doomed) == 26
    assert carriers(api, doomed) == 26
    # When forced (by an admin: forcing is theirs, even the creator gets 403)
    assert api.delete(f"/api/v1/tags/{doomed}?force=true").status_code == 403
    forced = admin_api.delete(f"/api/v1/tags/{doomed}?force=true")
    # Then the tag is gone from every image, from the filter and from the link table
    assert forced.status_code == 200
    assert api.get(f"/api/v1/tags/{doomed}").status_code == 404
    assert carriers(api, doomed) == 0
    assert api.get(f"{IMAGES}?tag_ids={doomed}").json["data"] == []
    assert list(ImageTagRepository().images_with(doomed)) == []
    assert all(ImageTagRepository().tags_of(image) in ([], [kept]) for image in images)
    # And the other tag is untouched
    carried = tags_by_image(api)
    assert [image for image in images if carried[image] == {kept}] == images[:3]
    assert all(carried[image] == set() for image in images[3:])
    assert usage(api, kept) == 3
    assert [i["id"] for i in api.get(f"{IMAGES}?tag_ids={kept}").json["data"]] == images[:3]
    # And a new tag of the same name starts from nothing
    [reborn] = create_tags(api, "doomed")
    assert usage(api, reborn) == 0 and carriers(api, reborn) == 0


def test_a_tag_deleted_after_the_check_is_not_found_at_once(api, stack):
    # Given an image, and a tag deleted between the service's existence check and the write
    # (the race with a concurrent delete, replayed in order at the store)
    [image] = share_images(stack, api, 1)
    [fleeting] = create_tags(api, "fleeting")
    assert api.delete(f"/api/v1/tags/{fleeting}").status_code == 200
    # When the store is asked to link it
    started = time.monotonic()
    with pytest.raises(NotFoundError) as raised:
        ImageTagRepository().link(fleeting, [image], "alice")
    # Then it answers "not found" without retrying a write that can never succeed
    assert fleeting in raised.value.message
    assert time.monotonic() - started < 1
    # And nothing was written
    assert ImageTagRepository().tags_of(image) == []
    assert tags_by_image(api) == {image: set()}
