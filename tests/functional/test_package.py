"""`make package`: the SAM template chalice produces with our merge template is cfn-lint clean."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_is_cfn_lint_clean_and_wired(tmp_path):
    # When
    result = subprocess.run([sys.executable, "-m", "infra.package", str(tmp_path / "sam")], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
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
