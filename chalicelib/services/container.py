"""Lazily built services, one per process (a warm Lambda reuses them)."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.services.activity import ActivityService
from chalicelib.services.tags import TagService
from chalicelib.services.users import UserService

if TYPE_CHECKING:
    from chalicelib.services.images import ImageService
    from chalicelib.services.indexing import IndexingService
    from chalicelib.services.registry import RegistryService
    from chalicelib.services.share import ShareService
    from chalicelib.services.tagging import TaggingService


@lru_cache(maxsize=1)
def activity() -> ActivityService:
    from chalicelib.store.activity import ActivityRepository

    return ActivityService(ActivityRepository())


@lru_cache(maxsize=1)
def users() -> UserService:
    from chalicelib.store.users import UserRepository

    return UserService(UserRepository())


@lru_cache(maxsize=1)
def tags() -> TagService:
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.tags import TagRepository

    return TagService(TagRepository(), activity(), ImageTagRepository())


@lru_cache(maxsize=1)
def _buckets():
    from chalicelib.store.objects import Bucket

    settings = get_settings()
    return Bucket(settings.share_bucket), Bucket(settings.cache_bucket)


@lru_cache(maxsize=1)
def registry() -> "RegistryService":
    from chalicelib.services.registry import RegistryService
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.images import ImageRepository

    share, cache = _buckets()
    return RegistryService(get_settings(), ImageRepository(), ImageTagRepository(), share, cache)


@lru_cache(maxsize=1)
def share() -> "ShareService":
    from chalicelib.services.share import ShareService
    from chalicelib.store.images import ImageRepository

    return ShareService(get_settings(), _buckets()[0], ImageRepository())


@lru_cache(maxsize=1)
def images() -> "ImageService":
    from chalicelib.services.images import ImageService
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.tags import TagRepository

    share_bucket, cache = _buckets()
    return ImageService(get_settings(), ImageRepository(), TagRepository(), share_bucket, cache)


@lru_cache(maxsize=1)
def tagging() -> "TaggingService":
    from chalicelib.services.tagging import TaggingService
    from chalicelib.store.image_tags import ImageTagRepository
    from chalicelib.store.images import ImageRepository
    from chalicelib.store.tags import TagRepository

    return TaggingService(ImageRepository(), TagRepository(), ImageTagRepository(), activity())


@lru_cache(maxsize=1)
def indexing() -> "IndexingService":
    from chalicelib.services.indexing import IndexingService
    from chalicelib.store.operations import OperationRepository

    share_bucket, cache = _buckets()
    return IndexingService(get_settings(), registry(), share(), OperationRepository(), share_bucket, cache, activity())


FACTORIES = (activity, users, tags, _buckets, registry, share, images, tagging, indexing)


def reset() -> None:
    """Forget built services (tests that restart the emulator)."""
    for factory in FACTORIES:
        factory.cache_clear()
