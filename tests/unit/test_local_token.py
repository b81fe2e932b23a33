"""`python -m infra.local token`: each user's own e-mail and no groups unless asked (issue 12 #17)."""
from __future__ import annotations

import jwt
import pytest

from infra.local import __main__ as cli


@pytest.fixture
def claims_of(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "KEY_FILE", tmp_path / "issuer-key.pem")

    def mint(*args: str) -> dict:
        assert cli.main(["token", *args]) == 0
        return jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})

    return mint


def test_a_users_token_carries_their_own_email_and_no_groups(claims_of):
    claims = claims_of("--sub", "bob")
    assert (claims["sub"], claims["email"], claims["email_verified"], claims["cognito:groups"]) == (
        "bob", "bob@example.com", True, [])


def test_email_and_groups_are_given_explicitly(claims_of):
    assert claims_of("--sub", "root", "--admin")["cognito:groups"] == ["admin"]
    assert claims_of("--sub", "m", "--groups", "ml,admin")["cognito:groups"] == ["ml", "admin"]
    assert claims_of("--sub", "b", "--email", "b@corp.test")["email"] == "b@corp.test"
    assert "email" not in claims_of("--sub", "b", "--no-email")
