"""Token verification: only tokens signed by the configured issuer's keys, unexpired, pass."""
from __future__ import annotations

import pytest

from chalicelib.config import Settings
from chalicelib.errors import UnauthorizedError
from chalicelib.services.auth import verify_token
from infra.local.issuer import LocalIssuer


@pytest.fixture(scope="module")
def issuer():
    return LocalIssuer()


@pytest.fixture
def settings(issuer):
    return Settings(jwt_issuer=issuer.issuer, jwks_json=issuer.jwks(), jwks_url=None, jwt_audience=None)


def test_valid_token_gives_identity_and_admin_flag(issuer, settings):
    identity = verify_token("Bearer " + issuer.token("u1", email="u1@x.org", groups=["admin", "ml"]), settings)
    assert (identity.sub, identity.email, identity.groups, identity.is_admin) == ("u1", "u1@x.org", ("admin", "ml"), True)
    assert verify_token(issuer.token("u2"), settings).is_admin is False


@pytest.mark.parametrize(
    "make_token, reason",
    [
        (lambda issuer: issuer.token("u1", ttl_seconds=-10), "expired"),
        (lambda issuer: LocalIssuer(issuer=issuer.issuer).token("u1"), "kid"),
        (lambda issuer: LocalIssuer(issuer="someone-else").token("u1"), "kid"),
        (lambda issuer: issuer.token("u1")[:-4] + "AAAA", "Signature"),
        (lambda issuer: "not-a-jwt", "Invalid"),
        (lambda issuer: "", "Missing"),
    ],
)
def test_bad_tokens_are_unauthorized(issuer, settings, make_token, reason):
    with pytest.raises(UnauthorizedError) as caught:
        verify_token(make_token(issuer), settings)
    assert reason.lower() in caught.value.message.lower()


def test_wrong_issuer_with_right_key_is_unauthorized(issuer):
    settings = Settings(jwt_issuer="https://cognito-idp.example/pool", jwks_json=issuer.jwks(), jwks_url=None)
    with pytest.raises(UnauthorizedError, match="(?i)issuer"):
        verify_token(issuer.token("u1"), settings)


def test_audience_is_checked_when_configured(issuer):
    settings = Settings(jwt_issuer=issuer.issuer, jwks_json=issuer.jwks(), jwks_url=None, jwt_audience="client-1")
    assert verify_token(issuer.token("u1", aud="client-1"), settings).sub == "u1"
    with pytest.raises(UnauthorizedError, match="(?i)audience"):
        verify_token(issuer.token("u1", aud="client-2"), settings)
