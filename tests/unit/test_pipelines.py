"""Pipeline HMAC authentication, alone: the signed message, the checks in order, the key cache."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from chalicelib.config import Settings
from chalicelib.errors import NotFoundError, ReplayError, UnauthorizedError, ValidationError
from chalicelib.services import pipelines
from chalicelib.services.pipelines import PipelineAuth, SignedRequest, canonical_query, message, sign

NOW = 1_800_000_000


class Signatures:
    """SignatureRepository's contract: the first claim of a signature wins."""

    def __init__(self) -> None:
        self.claimed: dict[str, int] = {}

    def claim(self, key_id: str, signature: str, expires_at: int) -> bool:
        name = f"{key_id}#{signature}"
        if name in self.claimed:
            return False
        self.claimed[name] = expires_at
        return True


class Keys:
    def __init__(self, keys: dict[str, str]) -> None:
        self.keys, self.reads = keys, 0

    def __call__(self, secret_id: str) -> dict[str, str]:
        self.reads += 1
        return dict(self.keys)


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def settings(**changes) -> Settings:
    values = {"ml_analysis_enabled": True, "ml_callback_hmac_secret": "seed", "ml_keys_secret": "keys",
              "ml_allowed_models": "yolo_v8"}
    return Settings(**{**values, **changes})


def request(secret: str = "seed", stamp: int = NOW, key_id: str | None = None, body: bytes = b'{"a":1}',
            path: str = "/api/v1/analyses/A/finalize", query: str = "", **headers) -> SignedRequest:
    signed = {"x-ml-timestamp": str(stamp), "x-ml-signature": sign(secret, str(stamp), "POST", path, query, body)}
    if key_id:
        signed["x-ml-key-id"] = key_id
    return SignedRequest("POST", path, query, body, {**signed, **headers})


@pytest.fixture
def clock():
    return Clock()


def auth(clock, keys: Keys | None = None, **changes) -> PipelineAuth:
    return PipelineAuth(settings(**changes), Signatures(), keys or Keys({}), clock)


def test_the_signed_message_is_four_lines_as_documented():
    body = b'{"status":"completed"}'
    expected = f"1800000000\nPOST\n/api/v1/analyses/A/finalize\n{hashlib.sha256(body).hexdigest()}".encode()
    assert message("1800000000", "post", "/api/v1/analyses/A/finalize", "", body) == expected
    assert sign("k", "1800000000", "POST", "/api/v1/analyses/A/finalize", "", body) == hmac.new(
        b"k", expected, hashlib.sha256).hexdigest()
    # with a query: sorted pairs, RFC 3986 encoded, after a `?`
    assert canonical_query([("b", "x y/z"), ("a", "2"), ("a", "1")]) == "a=1&a=2&b=x%20y%2Fz"
    assert message("1", "GET", "/p", "a=1", b"").split(b"\n")[2] == b"/p?a=1"


def test_a_valid_request_passes_once(clock):
    checker = auth(clock)
    assert checker.authenticate(request()).key_id == "default"
    with pytest.raises(ReplayError, match="replay"):
        checker.authenticate(request())


@pytest.mark.parametrize("headers", [
    {"x-ml-signature": ""}, {"x-ml-timestamp": ""}, {"x-ml-timestamp": "12.5"}, {"x-ml-timestamp": "²"},
    {"x-ml-signature": "é" * 64}, {"x-ml-signature": "0" * 64}, {"authorization": "Bearer x"},
])
def test_malformed_or_wrong_headers_are_401_never_500(clock, headers):
    with pytest.raises(UnauthorizedError):
        auth(clock).authenticate(request(**headers))


@pytest.mark.parametrize(("offset", "passes"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_the_timestamp_window_is_300_seconds(clock, offset, passes):
    signed = request(stamp=NOW + offset)
    if passes:
        auth(clock).authenticate(signed)
    else:
        with pytest.raises(UnauthorizedError, match="away from the server's clock"):
            auth(clock).authenticate(signed)


def test_off_is_404_and_models_outside_the_list_are_422(clock):
    with pytest.raises(NotFoundError, match="ML_ANALYSIS_ENABLED"):
        auth(clock, ml_analysis_enabled=False).authenticate(request())
    with pytest.raises(ValidationError, match="'resnet'"):
        auth(clock).require_model("resnet")


def test_keys_are_cached_and_an_unknown_key_id_rereads_at_most_every_few_seconds(clock):
    keys = Keys({"a": "secret-a"})
    checker = auth(clock, keys)
    checker.authenticate(request("secret-a", key_id="a"))
    assert keys.reads == 1
    # A key added meanwhile: unknown at first sight, read again once the last read is old enough
    keys.keys["b"] = "secret-b"
    with pytest.raises(UnauthorizedError, match="Unknown key id 'b'"):
        checker.authenticate(request("secret-b", key_id="b"))
    assert keys.reads == 1
    clock.now += pipelines.REFRESH_UNKNOWN_AFTER + 1
    checker.authenticate(request("secret-b", key_id="b", stamp=int(clock.now)))
    assert keys.reads == 2
    # A removed key keeps working until the cache expires, then stops
    del keys.keys["a"]
    checker.authenticate(request("secret-a", key_id="a", stamp=int(clock.now), body=b"2"))
    clock.now += 61
    with pytest.raises(UnauthorizedError, match="Unknown key id 'a'"):
        checker.authenticate(request("secret-a", key_id="a", stamp=int(clock.now), body=b"3"))


def test_the_secret_names_the_default_key_before_the_seed_setting(clock):
    checker = auth(clock, Keys({"default": "from-secret"}))
    with pytest.raises(UnauthorizedError, match="does not match"):
        checker.authenticate(request("seed"))
    assert checker.authenticate(request("from-secret")).key_id == "default"
