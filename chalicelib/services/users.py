"""Users are recorded the first time their token is seen, and join the projects they were invited to."""
from __future__ import annotations

import threading

from chalicelib.services.identity import Identity
from chalicelib.clock import utcnow
from chalicelib.services.invitations import InvitationService, normalize_email
from chalicelib.store.users import User, UserRepository


class UserService:
    def __init__(self, repository: UserRepository, invitations: InvitationService) -> None:
        self._repository = repository
        self._invitations = invitations
        # A warm Lambda sees the same callers again and again: remember whom it recorded.
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def record_seen(self, identity: Identity) -> None:
        if identity.sub in self._seen:
            return
        verified = normalize_email(identity.email) if identity.email and identity.email_verified else None
        self._repository.add_if_new(
            User(sub=identity.sub, email=identity.email, groups=list(identity.groups), first_seen_at=utcnow()),
            verified_email=verified,
        )
        # Once per user and warm instance, not only on the very first call: an invitation by an
        # e-mail the user's first token did not carry (or verify) still finds them later.
        self._invitations.accept(identity)
        with self._lock:
            self._seen.add(identity.sub)

    def me(self, identity: Identity) -> User:
        self.record_seen(identity)
        return self._repository.get(identity.sub)
