"""The ingest handler end to end — S3 notification → GetObject → facts, hashes, thumbnail →
PutObject → DynamoDB — on a mix of real-size JPEGs and PNGs, as a ratio to the floor (SHA-256 +
header read + draft decode + thumbnail, one thread) measured in the same run. Goal ≥ 0.7×.

The emulator runs in a process of its own, as S3 and DynamoDB are not inside a Lambda: this
process holds only the handler, so its figure is the handler's, not moto's. Also printed: the
same with the emulator in this process (what `make run` does), and the peak RSS of one handler
process on a 50 MP image (goal ≤ 300 MB).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_imaging import _floor, _make_big, _mix
from infra.local.pump import take_notifications

EMULATOR_BEFORE_AFTER = True  # `make bench` prints this bench on moto's connection-per-request server and on ours
ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
BATCH = 10
PNG_SIGNATURE = b"\x89PNG"

_EMULATOR = """
import json, sys, threading
from infra.local.stack import LocalStack
stack = LocalStack(retry_delay=0).start()
print(json.dumps({"endpoint": stack.endpoint, "variables": stack.variables,
                  "queue": stack.physical["IngestQueue"]["QueueUrl"]}), flush=True)
sys.stdin.read()
stack.stop()
"""
# One handler in a fresh process: its peak RSS is the handler's alone.
_HANDLER = """
import sys
from chalicelib.events import notifications
from chalicelib.services.container import services
failed = services().registry.ingest(notifications.read([("m", sys.argv[1])])[0])
assert failed == [], failed
status = open("/proc/self/status").read()
print(int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) / 1024)
"""


class Emulator:
    """The embedded stack in a child process; its endpoint and the functions' environment."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _EMULATOR], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"})
        described = json.loads(self.process.stdout.readline())
        self.endpoint, self.queue = described["endpoint"], described["queue"]
        self.env = {**described["variables"], "PIXELPOOL_AWS_ENDPOINT": self.endpoint,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "WARNING"}

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _rates(images, upload, deliver) -> tuple[float, float, float]:
    """Median images/s of the handler and of the floor over ROUNDS rounds (after one warm-up),
    and the floor's CPU time as a share of the handler process's CPU time."""
    handler, floor, cpu = [], [], []
    for round_ in range(ROUNDS + 1):
        bodies = upload()
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(bodies), BATCH):
            assert deliver(bodies[start : start + BATCH]) == [], "a message failed"
        elapsed, handler_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        started, cpu_started = time.perf_counter(), time.process_time()
        for _, data in images:
            _floor(data)
        floor_elapsed, floor_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if round_:
            handler.append(len(images) / elapsed)
            floor.append(len(images) / floor_elapsed)
            cpu.append(floor_cpu / handler_cpu)
    return statistics.median(handler), statistics.median(floor), statistics.median(cpu)


def _uploader(s3, sqs, bucket: str, queue_url: str, images):
    def upload() -> list[str]:
        for index, (_, data) in enumerate(images):
            extension = "png" if data.startswith(PNG_SIGNATURE) else "jpg"
            s3.put_object(Bucket=bucket, Key=f"bench/{index:02d}.{extension}", Body=data)
        return take_notifications(sqs, queue_url)

    return upload


def _separate_process(images) -> tuple[list[tuple[str, str, str]], Emulator]:
    emulator = Emulator()
    os.environ.update(emulator.env)
    import boto3

    from chalicelib.events import notifications
    from chalicelib.services.container import services

    s3 = boto3.client("s3", endpoint_url=emulator.endpoint)
    sqs = boto3.client("sqs", endpoint_url=emulator.endpoint)
    bucket = emulator.env["PIXELPOOL_SHARE_BUCKET"]
    registry = services().registry
    deliver = lambda bodies: registry.ingest(notifications.read([(str(n), body) for n, body in enumerate(bodies)])[0])  # noqa: E731
    handler, floor, cpu = _rates(images, _uploader(s3, sqs, bucket, emulator.queue, images), deliver)
    rows = [
        (f"ingest handler, {len(images)}-image mix, batches of {BATCH}", f"{handler:.1f} images/s", ""),
        ("floor on the same mix (one thread)", f"{floor:.1f} images/s", ""),
        ("ingest handler / floor (emulator in its own process)", f"{handler / floor:.2f}x", "goal >= 0.7x"),
        ("floor CPU / handler-process CPU per image", f"{cpu:.2f}x", "the handler's own work"),
    ]
    return rows + _memory(emulator, s3, sqs, bucket), emulator


def _memory(emulator: Emulator, s3, sqs, bucket: str) -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for image_format in ("JPEG", "PNG"):
            path = _make_big(Path(directory), image_format)
            s3.upload_file(str(path), bucket, f"big/50mp.{image_format.lower()}")
            body = take_notifications(sqs, emulator.queue)[-1]  # a multipart upload may be announced twice
            peak = subprocess.run([sys.executable, "-c", _HANDLER, body], cwd=ROOT, env={**os.environ, **emulator.env},
                                  check=True, capture_output=True, text=True).stdout.split()[-1]
            rows.append((f"ingest handler peak RSS, one 50 MP {image_format} ({path.stat().st_size / 2**20:.0f} MB file)",
                         f"{float(peak):.0f} MB", "goal <= 300 MB"))
    return rows


def _same_process(images) -> list[tuple[str, str, str]]:
    from infra.local.stack import LocalStack

    stack = LocalStack(retry_delay=0).start()
    try:
        sqs, queue = stack.aws("sqs"), stack.physical["IngestQueue"]
        upload = _uploader(stack.aws("s3"), sqs, stack.variables["PIXELPOOL_SHARE_BUCKET"], queue["QueueUrl"], images)

        def deliver(bodies: list[str]) -> list[str]:
            records = [{"messageId": str(n), "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
                        "eventSourceARN": queue["Arn"], "awsRegion": stack.region, "attributes": {},
                        "messageAttributes": {}, "md5OfBody": ""} for n, body in enumerate(bodies)]
            answer = stack.emulator.lambdas.call("ingest", {"Records": records})
            return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]

        handler, floor, _ = _rates(images, upload, deliver)
        return [("ingest handler / floor (emulator in the same process, as make run)", f"{handler / floor:.2f}x",
                 "for reference")]
    finally:
        stack.stop()


def run() -> list[tuple[str, str, str]]:
    images = _mix()
    rows, emulator = _separate_process(images)
    emulator.stop()
    # PynamoDB binds its endpoint at import, so the in-process variant runs in a fresh interpreter.
    same = subprocess.run([sys.executable, "-c", "import json; from bench.bench_ingest import _same_process, _mix; "
                           "print(json.dumps(_same_process(_mix())))"], cwd=ROOT, check=True, capture_output=True,
                          text=True, env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING",
                                          "POWERTOOLS_METRICS_DISABLED": "true"}).stdout.splitlines()[-1]
    return rows + [tuple(row) for row in json.loads(same)]
