"""The merge template, rendered: each state machine's ASL file inlined as its `Definition`.

`infra/template.json` names a state machine's definition file in its `pixelpool:definition`
metadata so the ASL stays a plain, lintable `.asl.json` file; both `make package` and the local
stack read the template through `render()`, so they cannot drift apart.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

INFRA = Path(__file__).resolve().parent
TEMPLATE = INFRA / "template.json"
DEFINITION_KEY = "pixelpool:definition"


@lru_cache(maxsize=1)
def _rendered() -> str:
    template = json.loads(TEMPLATE.read_text())
    for resource in template["Resources"].values():
        source = resource.get("Metadata", {}).get(DEFINITION_KEY)
        if source:
            resource["Properties"]["Definition"] = json.loads((INFRA / source).read_text())
    return json.dumps(template)


def render() -> dict:
    """A fresh copy of the rendered template."""
    return copy.deepcopy(json.loads(_rendered()))


def state_machine_files() -> dict[str, Path]:
    """Logical id → ASL file, for every state machine in the template."""
    template = json.loads(TEMPLATE.read_text())
    return {
        logical_id: INFRA / resource["Metadata"][DEFINITION_KEY]
        for logical_id, resource in template["Resources"].items()
        if DEFINITION_KEY in resource.get("Metadata", {})
    }
