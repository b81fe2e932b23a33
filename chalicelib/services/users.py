"""Users are recorded the first time their token is seen."""
from __future__ import annotations

import threading

from chalicelib.services.identity import Identity
from chalicelib.clock import utcnow
from chalicelib.store.users import User, UserRepository


class UserService:
    def __init__(self, repository: UserRepository) -> None:
        self._repository = repository
        # A warm Lambda sees the same callers again and again: remember whom it recorded.
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def record_seen(self, identity: Identity) -> None:
        if identity.sub in self._seen:
            return
        self._repository.add_if_new(
            User(sub=identity.sub, email=identity.email, groups=list(identity.groups), first_seen_at=utcnow())
        )
        with self._lock:
            self._seen.add(identity.sub)

    def me(self, identity: Identity) -> User:
        self.record_seen(identity)
        return self._repository.get(identity.sub)
