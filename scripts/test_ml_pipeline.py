#!/usr/bin/env python3
"""Simulate an external ML pipeline against a running pixelpool (`make run`): the seed's six steps,
every request HMAC-signed, the artifact PUT straight to the presigned URL.

    ML_CALLBACK_HMAC_SECRET=local-secret python scripts/test_ml_pipeline.py --image-id <id>
    python scripts/test_ml_pipeline.py --api http://127.0.0.1:8000 --secret local-secret \\
        --token "$(python -m infra.local token --admin)"      # finds an image, reads the result back

The server must run with ML_ANALYSIS_ENABLED=true, the same ML_CALLBACK_HMAC_SECRET and the model
in ML_ALLOWED_MODELS (README, "ML analyses from pipelines"). Standalone on purpose (only
`requests`): copy `signed_headers` into a pipeline. Exit status 0 when every step succeeded.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import struct
import sys
import time
import zlib
from urllib.parse import quote, urlencode, urlsplit, parse_qsl

import requests

_last_stamp = [0]


def signed_headers(secret: str, method: str, url: str, body: bytes, key_id: str | None = None) -> dict[str, str]:
    """X-ML-Timestamp, X-ML-Signature (and X-ML-Key-Id): HMAC-SHA256 over
    "<timestamp>\\n<METHOD>\\n<path>[?<sorted, RFC 3986-encoded query>]\\n<hex SHA-256 of the body>"."""
    parts = urlsplit(url)
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)), quote_via=quote)
    target = f"{parts.path}?{query}" if query else parts.path
    # Each request its own second: the server accepts a signature once (identical requests signed in
    # the same second would be one request, and the second a replay).
    _last_stamp[0] = max(int(time.time()), _last_stamp[0] + 1)
    stamp = str(_last_stamp[0])
    text = "\n".join([stamp, method.upper(), target, hashlib.sha256(body).hexdigest()])
    headers = {"X-ML-Timestamp": stamp, "Content-Type": "application/json",
               "X-ML-Signature": hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()}
    if key_id:
        headers["X-ML-Key-Id"] = key_id
    return headers


def heatmap_png(width: int = 64, height: int = 64) -> bytes:
    """A small grey-gradient PNG, made without Pillow."""
    rows = b"".join(b"\x00" + bytes((x * 255 // width) for x in range(width)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Pipeline:
    def __init__(self, api: str, secret: str, key_id: str | None) -> None:
        self.api, self.secret, self.key_id = api.rstrip("/"), secret, key_id

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> dict:
        url = f"{self.api}{path}"
        raw = json.dumps(body).encode() if body is not None else b""
        response = requests.request(method, url, data=raw, timeout=30,
                                    headers={**signed_headers(self.secret, method, url, raw, self.key_id),
                                             **(headers or {})})
        answer = response.json() if response.content else {}
        if response.status_code >= 300:
            raise SystemExit(f"{method} {path} → {response.status_code}: {json.dumps(answer)}")
        return answer


def first_image(api: str, token: str) -> str:
    response = requests.get(f"{api}/api/v1/shared-images?page_size=1", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    images = response.json()["data"]
    if not images:
        raise SystemExit("no registered image: register one first, or pass --image-id")
    return images[0]["id"]


def run(args: argparse.Namespace) -> dict:
    """The six steps; returns the analysis (as the user route shows it when a token is given)."""
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    api = args.api.rstrip("/")
    image_id = args.image_id or first_image(api, args.token)
    pipeline = Pipeline(api, args.secret, args.key_id)

    created = pipeline.call("POST", f"/api/v1/images/{image_id}/analyses", {
        "image_id": image_id, "model_name": args.model, "model_version": args.model_version,
        "parameters": {"threshold": 0.5}})["data"]
    analysis_id = created["id"]
    a = f"/api/v1/analyses/{analysis_id}"
    say(f"1. created analysis {analysis_id} ({created['status']})")

    say(f"2. status → {pipeline.call('PATCH', f'{a}/status', {'status': 'processing'})['data']['status']}")

    png = heatmap_png()
    upload = pipeline.call("POST", f"{a}/artifacts/presign", {
        "artifact_type": "heatmap", "filename": "heatmap.png", "content_type": "image/png", "size": len(png)})["data"]
    say(f"3. presigned PUT for {upload['key']}")

    sent = requests.put(upload["url"], data=png, headers=upload["headers"], timeout=60)
    if sent.status_code >= 300:
        raise SystemExit(f"PUT artifact → {sent.status_code}: {sent.text[:500]}")
    say(f"4. uploaded {len(png)} bytes")

    posted = pipeline.call("POST", f"{a}/annotations:bulk", {"annotations": [
        {"annotation_type": "bounding_box", "class_name": "cat", "confidence": 0.95,
         "data": {"x_min": 1, "y_min": 1, "x_max": 8, "y_max": 8}},
        {"annotation_type": "classification", "class_name": "indoor", "confidence": 0.7},
        {"annotation_type": "heatmap", "data": {"width": 64, "height": 64}, "storage_path": upload["key"]},
    ]}, headers={"Idempotency-Key": f"{analysis_id}-batch-1"})["data"]
    say(f"5. posted {posted['written']} prediction(s)")

    done = pipeline.call("POST", f"{a}/finalize", {"status": "completed"})["data"]
    say(f"6. finalized: {done['status']}")

    if not args.token:
        return done
    detail = requests.get(f"{api}{a}", timeout=30, headers={"Authorization": f"Bearer {args.token}"})
    detail.raise_for_status()
    analysis = detail.json()["data"]
    artifact = requests.get(analysis["artifacts"][0]["url"], timeout=30)
    if artifact.content != png:
        raise SystemExit("the artifact read back differs from the one uploaded")
    say(f"read back: {len(analysis['predictions'])} prediction(s), artifact {len(artifact.content)} bytes intact")
    return analysis


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default=os.environ.get("PIXELPOOL_API", "http://127.0.0.1:8000"))
    parser.add_argument("--secret", default=os.environ.get("ML_CALLBACK_HMAC_SECRET"),
                        help="the HMAC secret (default: $ML_CALLBACK_HMAC_SECRET)")
    parser.add_argument("--key-id", default=os.environ.get("ML_KEY_ID"),
                        help="X-ML-Key-Id (default: none, the server's `default` key)")
    parser.add_argument("--image-id", help="a registry image (default: the first one, needs --token)")
    parser.add_argument("--token", default=os.environ.get("PIXELPOOL_TOKEN"),
                        help="a user's bearer token, to find an image and read the result back")
    parser.add_argument("--model", default="yolo_v8")
    parser.add_argument("--model-version", default="1.0.0")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("set ML_CALLBACK_HMAC_SECRET or pass --secret")
    if not args.image_id and not args.token:
        parser.error("pass --image-id, or --token to use the first registered image")
    return args


def main(argv: list[str] | None = None) -> int:
    run(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
