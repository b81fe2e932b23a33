"""The `pixelpool` CLI uploading 1,000 photos (~100 MB) from disk to the embedded stack, against
`aws s3 cp --recursive` of the same folder in the same run. Goal: the CLI, including its wait until
every image is `ready` in the registry, at ≥ 0.8× the AWS CLI's throughput.

Both run as subprocesses against `python -m infra.local` (make run's program) on free ports, with
the same concurrency (the AWS CLI's default, 10 requests at once). The AWS CLI's figure is given
for the copy alone and for the copy plus the wait until the registry has every image `ready`
(what a user needs before tagging or exporting). Without an `aws` command on the PATH the
baseline is boto3's managed transfer (`upload_file`, 10 threads), and the row says so. Rounds
alternate (aws, cli, cli, aws) so neither side always meets a warmer emulator.
"""
from __future__ import annotations

import io
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

IMAGES = int(os.environ.get("BENCH_CLIENT_IMAGES", "1000"))
CONCURRENCY = 10  # the AWS CLI's default max_concurrent_requests
ROOT = Path(__file__).resolve().parent.parent


def _photos(folder: Path, count: int) -> int:
    """`count` distinct 800×600 JPEGs of ~100 KB (a noisy picture with a moved patch); total bytes."""
    from PIL import Image, ImageDraw

    from tests.imagefiles import picture

    noise = Image.effect_noise((800, 600), 30).convert("RGB")
    base = Image.blend(Image.open(io.BytesIO(picture(800, 600, seed=1, fmt="PNG"))).convert("RGB"), noise, 0.22)
    total = 0
    for n in range(count):
        image = base.copy()
        x, y = (n * 7) % 700, (n * 13) % 520
        ImageDraw.Draw(image).rectangle((x, y, x + 90, y + 60), fill=((n * 37) % 256, (n * 91) % 256, n % 256))
        path = folder / f"{n // 100:02d}" / f"photo-{n:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, "JPEG", quality=84)
        total += path.stat().st_size
    return total


class Served:
    """`python -m infra.local` on free ports; its API, emulator endpoint, share bucket and token."""

    def __init__(self) -> None:
        import socket

        ports = []
        for _ in range(2):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                ports.append(sock.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELPOOL_", "AWS_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infra.local", "--port", str(ports[0]), "--emulator-port", str(ports[1])],
            cwd=ROOT, env={**env, "POWERTOOLS_LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout], daemon=True).start()
        banner = ""
        while "Ctrl-C stops" not in banner:
            banner += lines.get(timeout=120)
        self.api, self.endpoint = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
        self.token = re.search(r"admin token\s+(\S+)", banner).group(1)
        self.bucket = re.search(r"ShareBucket\s+(\S+)", banner).group(1)
        self.env = {**env, "PIXELPOOL_URL": self.api, "PIXELPOOL_TOKEN": self.token,
                    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _ready(served: Served, folder: str) -> int:
    from pixelpool import Client

    with Client(served.api, served.token) as client:
        answer = client.request("GET", "/api/v1/shared-images", params={"folder": folder, "status": "ready",
                                                                         "page_size": 1})
    return answer["meta"]["total"]


def _aws_copy(served: Served, folder: Path, prefix: str) -> tuple[float, float]:
    """Seconds for the copy, and for the copy plus the wait until every image is ready."""
    started = time.perf_counter()
    aws = shutil.which("aws")
    if aws:
        subprocess.run([aws, "--endpoint-url", served.endpoint, "s3", "cp", "--recursive", "--only-show-errors",
                        str(folder), f"s3://{served.bucket}/{prefix}/"], env=served.env, check=True)
    else:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from concurrent.futures import ThreadPoolExecutor

        s3 = boto3.client("s3", endpoint_url=served.endpoint, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")
        config = TransferConfig(max_concurrency=CONCURRENCY)
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            key = lambda path: f"{prefix}/{path.relative_to(folder).as_posix()}"  # noqa: E731
            list(pool.map(lambda path: s3.upload_file(str(path), served.bucket, key(path), Config=config), files))
    copied = time.perf_counter() - started
    while _ready(served, prefix) < IMAGES:
        time.sleep(0.1)
    return copied, time.perf_counter() - started


def _cli_upload(served: Served, folder: Path, prefix: str) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pixelpool", "upload", str(folder), "--prefix", prefix,
                           "--workers", str(CONCURRENCY), "--json"], env=served.env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert (result["uploaded"], result["ready"], result["failed"]) == (IMAGES, IMAGES, []), result
    return time.perf_counter() - started, result


def _baseline_name() -> str:
    aws = shutil.which("aws")
    if not aws:
        return "boto3 upload_file, 10 threads (no `aws` on PATH)"
    version = subprocess.run([aws, "--version"], capture_output=True, text=True).stdout.split(" ")[0]
    return f"`aws s3 cp --recursive` ({version or 'aws-cli'}, 10 concurrent)"


def run() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "photos"
        size = _photos(folder, IMAGES)
        mb = size / 1e6
        print(f"  {IMAGES:,} photos, {mb:.1f} MB", file=sys.stderr, flush=True)
        served = Served()
        try:
            aws_copy, aws_ready, cli, cli_sent = [], [], [], []
            for round_, order in enumerate((("aws", "cli"), ("cli", "aws"))):
                for side in order:
                    if side == "aws":
                        copied, ready = _aws_copy(served, folder, f"bench-aws-{round_}")
                        aws_copy.append(copied)
                        aws_ready.append(ready)
                        print(f"  aws: copy {copied:.1f} s, ready {ready:.1f} s", file=sys.stderr, flush=True)
                    else:
                        seconds, result = _cli_upload(served, folder, f"bench-cli-{round_}")
                        cli.append(seconds)
                        phases = result["phases"]
                        cli_sent.append(phases["hash"] + phases["check"] + phases["send"])
                        print(f"  pixelpool: {seconds:.1f} s (phases {phases})", file=sys.stderr, flush=True)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pixelpool", "upload", str(folder), "--prefix", "bench-cli-0",
                            "--json"], env=served.env, cwd=ROOT, capture_output=True, text=True, check=True)
            resume_seconds = time.perf_counter() - started
        finally:
            served.stop()

    def rate(seconds: list[float]) -> str:
        middle = statistics.median(seconds)
        return (f"{mb / middle:.1f} MB/s, {IMAGES / middle:.0f} images/s ({middle:.1f} s; rounds "
                f"{', '.join(f'{s:.1f}' for s in seconds)} s)")

    baseline = _baseline_name()
    ratio_copy = statistics.median(aws_copy) / statistics.median(cli)
    ratio_ready = statistics.median(aws_ready) / statistics.median(cli)
    label = f"upload {IMAGES:,} photos ({mb:.0f} MB)"
    return [
        (f"{label}: {baseline}, copy only", rate(aws_copy), ""),
        (f"{label}: {baseline}, then until all ready", rate(aws_ready), ""),
        (f"{label}: `pixelpool upload --workers 10`, until all ready", rate(cli), ""),
        (f"{label}: `pixelpool upload`, until all sent (hash, registry check, POSTs)", rate(cli_sent), ""),
        ("pixelpool (until ready) / AWS CLI copy only, throughput", f"{ratio_copy:.2f}x", ">= 0.8x"),
        ("pixelpool (until ready) / AWS CLI copy + until ready", f"{ratio_ready:.2f}x", ">= 0.8x"),
        ("pixelpool (until sent) / AWS CLI copy only",
         f"{statistics.median(aws_copy) / statistics.median(cli_sent):.2f}x", ""),
        (f"{label}: run again, all {IMAGES:,} skipped (hash + registry listing)", f"{resume_seconds:.1f} s", ""),
    ]
