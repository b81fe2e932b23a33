"""Bearer-token verification (PyJWT): signature from a JWKS, issuer, audience, expiry.

On AWS the keys are Cognito's user-pool JWKS (`jwks_url`); on a laptop they are the local
issuer's public keys handed over inline (`jwks_json`). Either way the same checks run.
"""
from __future__ import annotations

from functools import lru_cache

from chalicelib.config import Settings, get_settings
from chalicelib.errors import UnauthorizedError
from chalicelib.services.identity import Identity

ALGORITHMS = ["RS256"]
GROUPS_CLAIM = "cognito:groups"


# PyJWT (and the `cryptography` it loads) is imported on first use: only the authorizer verifies
# tokens, and the API function's cold start should not pay for it.


class _InlineKeys:
    """The `PyJWKClient` interface over a JWKS document held in memory."""

    def __init__(self, document: str) -> None:
        import jwt

        self._keys = jwt.PyJWKSet.from_json(document)

    def get_signing_key_from_jwt(self, token: str):
        import jwt

        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if key.key_id == kid:
                return key
        raise jwt.PyJWKClientError(f"no key with kid {kid!r}")


@lru_cache(maxsize=4)
def _key_source(jwks_url: str | None, jwks_json: str | None):
    if jwks_json:
        return _InlineKeys(jwks_json)
    if jwks_url:
        import jwt

        return jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600)
    raise UnauthorizedError("No token issuer is configured")


def verify_token(token: str, settings: Settings | None = None) -> Identity:
    """The identity a valid token carries; `UnauthorizedError` for anything else."""
    import jwt

    settings = settings or get_settings()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise UnauthorizedError("Missing bearer token")
    try:
        key = _key_source(settings.jwks_url, settings.jwks_json).get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_aud": settings.jwt_audience is not None},
        )
    except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
        raise UnauthorizedError(f"Invalid token: {exc}") from exc
    groups = tuple(claims.get(GROUPS_CLAIM) or ())
    return Identity(
        sub=claims["sub"],
        email=claims.get("email"),
        email_verified=claims.get("email_verified") in (True, "true"),  # Cognito sends a bool, some issuers a string
        groups=groups,
        is_admin=settings.admin_group in groups,
    )
