"""`make package`: the SAM template chalice produces with our merge template is cfn-lint clean."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
XRAY_POLICY = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    """`make package` once for this module: (its result, the output directory)."""
    outdir = tmp_path_factory.mktemp("package")
    result = subprocess.run([sys.executable, "-m", "infra.package", str(outdir / "sam")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    return result, outdir


def test_package_is_cfn_lint_clean_and_wired(packaged):
    # When
    result, tmp_path = packaged
    # Then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cfn-lint clean" in result.stdout
    template = json.loads((tmp_path / "sam" / "sam.json").read_text())
    resources = template["Resources"]
    source = resources["Ingest"]["Properties"]["Events"]["IngestSqsEventSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["Queue"] == {"Fn::Sub": "${IngestQueue.Arn}"}
    machine = resources["SelfcheckStateMachine"]["Properties"]
    assert machine["Definition"]["StartAt"] == "Plan"
    assert set(machine["DefinitionSubstitutions"]) == {"PlanSelfcheckArn", "RunProbeArn", "SummarizeSelfcheckArn",
                                                      "ReportSelfcheckFailureArn"}
    api_policy = json.dumps(resources["ApiHandlerRole"]["Properties"]["Policies"])
    assert '"Resource": "*"' not in api_policy and "TagsTable" in api_policy
    assert (tmp_path / "sam" / "deployment.zip").stat().st_size > 0


def _of_type(resources: dict, kind: str) -> dict:
    return {lid: res for lid, res in resources.items() if res["Type"] == kind}


def test_every_function_is_traced_alarmed_and_keeps_logs_for_a_while(packaged):
    # Given the packaged template
    result, tmp_path = packaged
    assert result.returncode == 0, result.stdout + result.stderr
    resources = json.loads((tmp_path / "sam" / "sam.json").read_text())["Resources"]
    functions = _of_type(resources, "AWS::Serverless::Function")
    log_groups = _of_type(resources, "AWS::Logs::LogGroup")
    alarms = _of_type(resources, "AWS::CloudWatch::Alarm")
    assert len(functions) >= 17
    # Then every function traces, may write traces, logs into a group with a retention, has an errors alarm
    named = {json.dumps(group["Properties"]["LogGroupName"]): group["Properties"] for group in log_groups.values()}
    alarmed = {json.dumps(alarm["Properties"].get("Dimensions")) for alarm in alarms.values()
               if alarm["Properties"].get("MetricName") == "Errors"}
    for lid, function in functions.items():
        assert function["Properties"]["Tracing"] == "Active", lid
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        assert XRAY_POLICY in resources[role]["Properties"]["ManagedPolicyArns"], lid
        group = named.get(json.dumps({"Fn::Sub": "/aws/lambda/${%s}" % lid}))
        assert group is not None and group["RetentionInDays"] > 0, lid
        assert json.dumps([{"Name": "FunctionName", "Value": {"Ref": lid}}]) in alarmed, lid
    # and every log group has a retention, every alarm notifies the topic
    assert all(group["Properties"].get("RetentionInDays") for group in log_groups.values())
    assert all(alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in alarms.values())
    # and every state machine traces, logs and is alarmed on failed, timed-out and aborted executions
    machines = _of_type(resources, "AWS::StepFunctions::StateMachine")
    assert XRAY_POLICY in resources["StateMachineRole"]["Properties"]["ManagedPolicyArns"]
    for lid, machine in machines.items():
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}, lid
        destination = machine["Properties"]["LoggingConfiguration"]["Destinations"][0]
        assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0] in log_groups, lid
        watched = [alarm for alarm in alarms.values() if {"Name": "StateMachineArn", "Value": {"Ref": lid}}
                   in [d for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m
                       for d in m["MetricStat"]["Metric"]["Dimensions"]]]
        assert {m["MetricStat"]["Metric"]["MetricName"] for alarm in watched for m in alarm["Properties"]["Metrics"]
                if "MetricStat" in m} == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}, lid
    # and the dead-letter queue, the API's 5xx rate and throttles are watched
    queues = {json.dumps(a["Properties"].get("Dimensions")) for a in alarms.values()
              if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    redrives = json.dumps([q["Properties"].get("RedrivePolicy") for q in _of_type(resources, "AWS::SQS::Queue").values()])
    dead_letter = [lid for lid in _of_type(resources, "AWS::SQS::Queue") if f'"{lid}"' in redrives]
    assert dead_letter and all(
        json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": [lid, "QueueName"]}}]) in queues for lid in dead_letter)
    api = resources["RestAPI"]["Properties"]
    assert api["TracingEnabled"] is True
    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]["api_gateway_stage"]
    fives = [m for a in alarms.values() for m in a["Properties"].get("Metrics", [])
             if m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "5XXError"]
    assert fives and all(m["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "ApiName", "Value": api["Name"]},
                                                                      {"Name": "Stage", "Value": stage}] for m in fives)
    assert any(a["Properties"].get("MetricName") == "Throttles" for a in alarms.values())
