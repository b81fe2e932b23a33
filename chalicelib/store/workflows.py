"""Step Functions executions, started under deterministic names so a retried start is harmless."""
from __future__ import annotations

import json

from botocore.exceptions import ClientError

from chalicelib.errors import StoreError
from chalicelib.store.aws import client


def start(state_machine_arn: str, name: str, payload: dict) -> str:
    """Start `name` (or find it already started); returns the execution ARN."""
    try:
        response = client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload)
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1)
            return f"{arn}:{name}"
        raise StoreError(f"starting {name} failed: {exc.response['Error']['Code']}") from exc
    return response["executionArn"]


def running(state_machine_arn: str, name: str) -> bool:
    """Whether the execution `name` is still running (False once it ended in any way, or never was)."""
    arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
    try:
        described = client("stepfunctions").describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise StoreError(f"reading execution {name} failed: {exc.response['Error']['Code']}") from exc
    return described["status"] == "RUNNING"
