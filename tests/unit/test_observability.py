"""Tracing: on in Lambda (Powertools' rule), off locally without importing the X-Ray SDK."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools.tracing.tracer import Tracer

from chalicelib.api import observability

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = [
    {},
    {"LAMBDA_TASK_ROOT": "/var/task"},
    {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"},
    {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "1"},
    {"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "false"},
    {"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"},
    {"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"},
    {"POWERTOOLS_TRACE_DISABLED": "false"},
]


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "none")
def test_tracing_is_on_exactly_where_powertools_would_trace(monkeypatch, environment):
    # Given
    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL", "AWS_CHALICE_CLI_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # When / Then: the rule is ours so that no Tracer (and no X-Ray SDK) is built where it is off;
    # this pins it to Powertools' own (a private method: an upgrade that changes it fails here).
    assert observability.tracing_enabled() is (not Tracer._is_tracer_disabled())


def test_importing_the_app_locally_builds_no_tracer():
    # Given a process outside Lambda
    env = {name: value for name, value in os.environ.items() if name != "LAMBDA_TASK_ROOT"}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    # When
    result = subprocess.run(
        [sys.executable, "-c", "import sys, app\n"
                               "from chalicelib.api.observability import tracer\n"
                               "print(tracer() is None, 'aws_xray_sdk' in sys.modules)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    # Then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]
