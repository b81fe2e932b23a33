"""`make run`'s program, as a user meets it: it starts, prints what is needed, serves over HTTP,
ingests what lands in the share, and stops."""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = ROOT / "tests" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass
class Running:
    process: subprocess.Popen
    banner: str
    api: str
    emulator: str
    token: str


@pytest.fixture(scope="module")
def running():
    api_port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELPOOL_", "AWS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", str(api_port), "--emulator-port", str(emulator_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        banner, deadline = [], time.monotonic() + 60
        while not banner or not banner[-1].startswith("Ctrl-C stops"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "not ready within 60 s:\n" + "".join(banner)
            try:
                banner.append(lines.get(timeout=remaining))
            except queue.Empty:
                continue
        text = "".join(banner)
        token = re.search(r"admin token\s+(\S+)", text).group(1)
        yield Running(process, text, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{emulator_port}", token)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_run_serves_health_and_the_printed_token_works(running):
    assert running.api in running.banner and running.emulator in running.banner
    assert re.search(r"ShareBucket\s+pixelpool-dev-share-", running.banner)
    assert call("GET", f"{running.api}/health")[0] == 200
    status, body = call("GET", f"{running.api}/api/v1/tags", running.token)
    assert (status, body["data"]) == (200, [])
    assert call("GET", f"{running.api}/api/v1/tags")[0] == 401


def test_a_photo_uploaded_through_upload_urls_is_ready_within_ten_seconds(running):
    # Given a real photo and a presigned upload for it
    photo = (TESTDATA / "rocket.jpg").read_bytes()
    status, body = call("POST", f"{running.api}/api/v1/share/upload-urls", running.token,
                        {"folder": "e2e launches", "files": [{"path": "rocket 1.jpg", "content_type": "image/jpeg",
                                                              "size": len(photo)}]})
    assert status == 200, body
    upload, = body["data"]
    # When the client uploads straight to S3
    started = time.monotonic()
    response = requests.post(upload["url"], data=upload["fields"], files={"file": ("rocket 1.jpg", photo)}, timeout=10)
    assert response.status_code in (200, 204), response.text
    # Then the S3 event is ingested: the image is listed ready with its facts within 10 s
    image = None
    while time.monotonic() - started < 10:
        status, listing = call("GET", f"{running.api}/api/v1/shared-images?search=rocket%201", running.token)
        ready = [item for item in listing["data"] if item["status"] == "ready"]
        if ready:
            image = ready[0]
            break
        time.sleep(0.2)
    assert image is not None, "not ready within 10 s"
    assert image["file_path"] == "e2e launches/rocket 1.jpg"
    assert (image["width"], image["height"]) == (640, 427)
    assert image["checksum_sha256"] == hashlib.sha256(photo).hexdigest()
    # And its thumbnail URL serves a JPEG
    thumbnail = requests.get(image["thumbnail_url"], timeout=10)
    assert thumbnail.status_code == 200
    with Image.open(io.BytesIO(thumbnail.content)) as small:
        assert small.format == "JPEG" and small.size == (256, 171)


def test_run_stops_cleanly_on_sigterm(running):
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=20) == 0
