"""State machines run by moto's ASL executor, each Task dispatched in-process to a Chalice function."""
from __future__ import annotations

import json

import pytest

from tests.conftest import poll


def run_execution(stack, name: str, payload: dict, timeout: float = 30.0) -> dict:
    sfn = stack.aws("stepfunctions")
    arn = stack.variables["PIXELPOOL_SELFCHECK_STATE_MACHINE"]
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]
    described = poll(lambda: sfn.describe_execution(executionArn=execution),
                     lambda described: described["status"] != "RUNNING", f"execution {name}", timeout, interval=0.05)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return {**described, "history": history}


def entered_states(history: list[dict]) -> list[str]:
    return [event["stateEnteredEventDetails"]["name"] for event in history if "stateEnteredEventDetails" in event]


def test_selfcheck_runs_plan_map_and_summary(stack):
    # When
    result = run_execution(stack, "selfcheck-ok", {})
    # Then
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output == {"status": "ok", "checked": 11, "unhealthy": []}
    states = entered_states(result["history"])
    assert states[0] == "Plan" and states[-1] == "Summarize"
    assert states.count("RunProbe") == 11
    assert "ReportFailure" not in states


def test_a_failing_task_takes_the_catch_path(stack):
    # Given a probe of a bucket that does not exist
    probes = [{"kind": "table", "name": stack.variables["PIXELPOOL_TAGS_TABLE"]}, {"kind": "bucket", "name": "no-such-bucket"}]
    # When
    result = run_execution(stack, "selfcheck-missing", {"probes": probes})
    # Then the Map's Catch routed to ReportFailure, and the execution failed with the step's error
    assert result["status"] == "FAILED"
    assert "ReportFailure" in entered_states(result["history"])
    assert "Summarize" not in entered_states(result["history"])
    assert result["error"] == "NotFoundError"
    assert "no-such-bucket" in result["cause"]


def test_lambda_invoke_is_served_by_the_chalice_function(stack):
    import botocore.exceptions

    lam = stack.aws("lambda")
    ok = lam.invoke(FunctionName="pixelpool-dev-summarize_selfcheck",
                    Payload=json.dumps({"results": [{"status": "ACTIVE"}, {"status": "NO_DEAD_LETTER_QUEUE"}]}))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read())["status"] == "degraded"
    failed = lam.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:pixelpool-dev-RunProbe",
                        Payload=json.dumps({"kind": "volcano", "name": "x"}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "ValidationError"
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        lam.invoke(FunctionName="pixelpool-dev-nope", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
