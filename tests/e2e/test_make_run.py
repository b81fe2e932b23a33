"""`make run`'s program, as a user meets it: it starts, prints what is needed, serves, and stops."""
from __future__ import annotations

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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_run_serves_health_and_the_printed_token_works():
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
        assert f"http://127.0.0.1:{api_port}" in text
        assert f"http://127.0.0.1:{emulator_port}" in text
        assert re.search(r"ShareBucket\s+pixelpool-dev-share-", text)
        token = re.search(r"admin token\s+(\S+)", text).group(1)
        # Then
        assert get(f"http://127.0.0.1:{api_port}/health")[0] == 200
        status, body = get(f"http://127.0.0.1:{api_port}/api/v1/tags", token)
        assert (status, body["data"]) == (200, [])
        assert get(f"http://127.0.0.1:{api_port}/api/v1/tags")[0] == 401
        # And it stops cleanly on SIGTERM
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
