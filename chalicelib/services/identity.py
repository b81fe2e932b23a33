"""Who is calling: built by the API edge from the authorizer's verdict, passed to every service."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    sub: str
    email: str | None = None
    email_verified: bool = False  # the issuer vouches for `email` (Cognito's `email_verified`)
    groups: tuple[str, ...] = field(default_factory=tuple)
    is_admin: bool = False
