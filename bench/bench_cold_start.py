"""Cold start: `import app` vs a bare `import chalice, boto3`, in fresh interpreters (median of 5)."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def _time(statement: str) -> float:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "0"}
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, env=env, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run() -> list[tuple[str, str, str]]:
    _time("import app")  # warm the bytecode cache, as a deployed package has it
    bare = _time("import chalice, boto3")
    full = _time("import app")
    ratio = full / bare
    return [
        ("cold start: import chalice+boto3", f"{bare * 1000:.0f} ms", ""),
        ("cold start: import app", f"{full * 1000:.0f} ms", ""),
        ("cold start ratio", f"{ratio:.2f}x", "goal <= 1.5x"),
    ]
