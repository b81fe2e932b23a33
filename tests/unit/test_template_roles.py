"""The deploy template's function roles grant what their code reads. The embedded emulator checks no
IAM, so a table a function starts reading is a gap only AWS would find: these rules catch it here."""
from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

TEMPLATE = json.loads((ROOT / "infra" / "template.json").read_text())
ROLES = {name: resource for name, resource in TEMPLATE["Resources"].items()
         if name.endswith("Role") and name != "StateMachineRole"}


def grants(role: dict, table: str) -> set[str]:
    """The DynamoDB actions a role's statements allow on `table` (or its indexes)."""
    allowed: set[str] = set()
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow" and table in json.dumps(statement.get("Resource")):
                actions = statement["Action"]
                allowed |= set([actions] if isinstance(actions, str) else actions)
    return allowed


# A function that reaches the change log keeps an Explore index current, and an index loads the
# images' completed ML analyses with their predictions (services/explore_index.py).
KEEPERS = sorted(name for name, role in ROLES.items() if grants(role, "ChangesTable"))


def test_some_functions_keep_indexes():
    assert {"ApiHandlerRole", "CompactExploreIndexRole", "FinishIndexRole", "PrepareExportRole"} <= set(KEEPERS)


@pytest.mark.parametrize("role", KEEPERS)
def test_a_function_that_keeps_an_explore_index_reads_the_analyses(role):
    assert {"dynamodb:BatchGetItem", "dynamodb:Query"} <= grants(ROLES[role], "AnalysesTable")


def test_the_whole_rebuild_may_scan_the_analyses_it_notes_on_their_images():
    assert "dynamodb:Scan" in grants(ROLES["FinishIndexRole"], "AnalysesTable")
    assert "dynamodb:UpdateItem" in grants(ROLES["FinishIndexRole"], "ImagesTable")
