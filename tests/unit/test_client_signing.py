"""The SDK's pipeline signer signs exactly as the server verifies (chalicelib/services/pipelines.py)."""
from __future__ import annotations

import json

import httpx

from chalicelib.services.pipelines import canonical_query, sign
from pixelpool import Pipeline, Signer


def test_the_signature_is_the_servers_for_the_same_request():
    body = b'{"annotations": []}'
    headers = Signer("s3cret", key_id="k1").headers(
        "post", "http://api.test/api/v1/analyses/A/annotations:bulk?b=2&a=x y", body, timestamp=1700000000)
    query = canonical_query([("b", "2"), ("a", "x y")])
    assert headers["X-ML-Signature"] == sign("s3cret", "1700000000", "POST", "/api/v1/analyses/A/annotations:bulk",
                                             query, body)
    assert headers["X-ML-Key-Id"] == "k1" and headers["X-ML-Timestamp"] == "1700000000"


def test_each_request_gets_its_own_second_so_none_is_a_replay():
    signer = Signer("s")
    stamps = [int(signer.headers("POST", "http://a/x", b"")["X-ML-Timestamp"]) for _ in range(3)]
    assert stamps == sorted(set(stamps))


def test_a_pipeline_posts_signed_json_and_gets_the_data():
    seen = {}

    def handler(request):
        seen.update(request.headers)
        seen["body"] = request.content
        return httpx.Response(200, json={"data": {"written": 1}, "message": "ok", "status_code": 200})

    pipeline = Pipeline("http://api.test", secret="s", transport=httpx.MockTransport(handler))
    answer = pipeline.post("/api/v1/analyses/A/annotations:bulk", {"annotations": [{"class_name": "cat"}]})
    assert answer == {"written": 1}
    expected = sign("s", seen["x-ml-timestamp"], "POST", "/api/v1/analyses/A/annotations:bulk", "", seen["body"])
    assert seen["x-ml-signature"] == expected and json.loads(seen["body"])["annotations"][0]["class_name"] == "cat"
