"""The local token issuer: an RSA key made at start-up, its JWKS, and tokens signed with it.

It stands in for the Cognito user pool; tokens carry the same claims Cognito's ID tokens do
(`sub`, `email`, `email_verified`, `cognito:groups`), so the API's verification code is the one
used on AWS. A local user's e-mail is `<sub>@example.com` unless one is given.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "pixelpool-local"


def default_email(sub: str) -> str:
    """A local user's own address: never another user's (invitations by e-mail match on it)."""
    return f"{sub}@example.com"


class LocalIssuer:
    def __init__(self, issuer: str = ISSUER, key_file: Path | None = None) -> None:
        """A fresh key, or the one kept in `key_file` (made on first use) so tokens outlive restarts."""
        self.issuer = issuer
        self._key = _load_or_create(key_file) if key_file else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(public_der).hexdigest()[:16]

    def jwks(self) -> str:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return json.dumps({"keys": [public]})

    def token(
        self,
        sub: str,
        email: str | None = None,
        groups: list[str] | None = None,
        ttl_seconds: int = 12 * 3600,
        email_verified: bool = True,
        **claims,
    ) -> str:
        """A signed ID token; an e-mail counts as verified unless `email_verified=False` (a user
        pool's administrator-created users have verified addresses)."""
        now = int(time.time())
        payload = {"sub": sub, "iss": self.issuer, "iat": now, "exp": now + ttl_seconds, "token_use": "id",
                   "cognito:groups": groups or []}
        if email:
            payload.update(email=email, email_verified=email_verified)
        payload.update(claims)
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})


def _load_or_create(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Written whole under a temporary name, then linked into place: two processes starting at once
    # (make run beside a test) never read half a key, and the second keeps the first one's key.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    finally:
        temporary.unlink()
    return key
