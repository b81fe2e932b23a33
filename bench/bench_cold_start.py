"""Cold start: `import app` vs a bare `import chalice, boto3`, in fresh interpreters (median of 7).

Each interpreter ends with `os._exit` right after its imports: a Lambda environment is frozen
between requests, never torn down after one, and the collector's teardown of a larger module
graph (~0.25 s for the app, ~0.13 s for chalice+boto3) is no part of a cold start.

A third figure is the floor of the libraries the app is made of and imports at init (chalice,
boto3, pydantic, PynamoDB, Powertools' Logger and Metrics): what is above it is the app's own.
They are imported at init on purpose: Lambda runs the init phase on unthrottled vCPUs, the
handler on the share its memory size buys (0.58 vCPU at 1024 MB), so moving an import into the
first request would lower this ratio and lengthen the real cold start.

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
RUNS = 7
LIBRARIES = ("import chalice, boto3, pydantic, pynamodb.models; from pydantic import BaseModel; "
             "from aws_lambda_powertools import Logger, Metrics")


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(statement: str) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of `RUNS` fresh interpreters running `statement`."""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # any value, even "0", stops the bytecode cache
    walls, cpus = [], []
    for _ in range(RUNS):
        cpu, started = _cpu_of_children(), time.perf_counter()
        subprocess.run([sys.executable, "-c", f"{statement}; import os; os._exit(0)"], cwd=ROOT, env=env, check=True)
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_of_children() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def run() -> list[tuple[str, str, str]]:
    _time("import app")  # warm the bytecode cache, as a deployed package has it
    bare, bare_cpu = _time("import chalice, boto3")
    floor, floor_cpu = _time(LIBRARIES)
    full, full_cpu = _time("import app")
    return [
        ("cold start: import chalice+boto3", f"{bare * 1000:.0f} ms (cpu {bare_cpu * 1000:.0f} ms)", ""),
        ("cold start: import the app's libraries", f"{floor * 1000:.0f} ms (cpu {floor_cpu * 1000:.0f} ms)",
         f"{floor / bare:.2f}x of chalice+boto3"),
        ("cold start: import app", f"{full * 1000:.0f} ms (cpu {full_cpu * 1000:.0f} ms)", ""),
        ("cold start ratio", f"{full / bare:.2f}x (cpu {full_cpu / bare_cpu:.2f}x)", "goal <= 1.5x"),
        ("app's own share", f"{(full - floor) * 1000:.0f} ms ({full / floor:.2f}x of its libraries)", ""),
    ]
