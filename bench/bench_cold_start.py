"""Cold start: `import app` vs a bare `import chalice, boto3`, in fresh interpreters (median of 5).

Both wall time and CPU time (user + system of the child) are reported: on a machine shared with
other work the wall-clock ratio swings by ±0.3x from run to run, the CPU-time ratio far less.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(statement: str) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of `RUNS` fresh interpreters running `statement`."""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONDONTWRITEBYTECODE": "0"}
    walls, cpus = [], []
    for _ in range(RUNS):
        cpu, started = _cpu_of_children(), time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, env=env, check=True)
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_of_children() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def run() -> list[tuple[str, str, str]]:
    _time("import app")  # warm the bytecode cache, as a deployed package has it
    bare, bare_cpu = _time("import chalice, boto3")
    full, full_cpu = _time("import app")
    return [
        ("cold start: import chalice+boto3", f"{bare * 1000:.0f} ms (cpu {bare_cpu * 1000:.0f} ms)", ""),
        ("cold start: import app", f"{full * 1000:.0f} ms (cpu {full_cpu * 1000:.0f} ms)", ""),
        ("cold start ratio", f"{full / bare:.2f}x (cpu {full_cpu / bare_cpu:.2f}x)", "goal <= 1.5x"),
    ]
