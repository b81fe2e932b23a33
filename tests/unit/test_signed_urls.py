"""Thumbnail URLs are signed once and handed out again while at least half their lifetime is left."""
from __future__ import annotations

import itertools

from chalicelib.services import images


class SigningBucket:
    """A bucket that signs a new URL on every call (a number in it tells them apart)."""

    name = "cache"

    def __init__(self) -> None:
        self.signed = itertools.count(1)

    def presign_get(self, key: str, expires_in: int, **_: object) -> str:
        return f"https://cache/{key}?n={next(self.signed)}&expires={expires_in}"


def test_an_url_is_reused_for_half_its_lifetime_then_signed_again(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(images.time, "monotonic", lambda: now[0])
    urls, bucket = images._SignedUrls(), SigningBucket()
    first = urls.get(bucket, "thumbnails/a.jpg", 600)
    now[0] += 299
    assert urls.get(bucket, "thumbnails/a.jpg", 600) == first
    assert urls.get(bucket, "thumbnails/a.jpg", 900) != first  # another lifetime is another URL
    now[0] += 1
    assert urls.get(bucket, "thumbnails/a.jpg", 600) != first


def test_the_cache_keeps_only_the_most_recently_used_urls():
    urls, bucket = images._SignedUrls(capacity=2), SigningBucket()
    a = urls.get(bucket, "a", 600)
    urls.get(bucket, "b", 600)
    assert urls.get(bucket, "a", 600) == a  # a is now the most recent
    urls.get(bucket, "c", 600)  # b goes
    assert urls.get(bucket, "a", 600) == a
    assert urls.get(bucket, "b", 600) != urls.get(bucket, "c", 600)
    assert len(urls._urls) == 2
