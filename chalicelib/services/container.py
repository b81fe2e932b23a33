"""Lazily built services, one per process (a warm Lambda reuses them)."""
from __future__ import annotations

from functools import lru_cache

from chalicelib.services.activity import ActivityService
from chalicelib.services.tags import TagService
from chalicelib.services.users import UserService


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
    from chalicelib.store.tags import TagRepository

    return TagService(TagRepository(), activity())


def reset() -> None:
    """Forget built services (tests that restart the emulator)."""
    for factory in (activity, users, tags):
        factory.cache_clear()
