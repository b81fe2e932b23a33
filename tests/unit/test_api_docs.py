"""docs/api.md is what scripts/api_docs.py renders from the OpenAPI document now, and says real things.

The page is generated: a route or model changed without regenerating it fails here, with the
command to run. The document is built in-process (importing the app needs no emulator).
"""
from __future__ import annotations

import difflib
import re

import pytest

from chalicelib.api.openapi import document_dict
from scripts import api_docs


@pytest.fixture(scope="module")
def page() -> str:
    return api_docs.TARGET.read_text(encoding="utf-8")


def test_page_is_current(page):
    rendered = api_docs.render()
    if page != rendered:
        diff = difflib.unified_diff(page.splitlines(), rendered.splitlines(), "docs/api.md", "rendered now", lineterm="")
        pytest.fail(f"docs/api.md is stale: run `{api_docs.COMMAND}` and commit docs/api.md\n"
                    + "\n".join(list(diff)[:30]), pytrace=False)


def test_check_reports_a_stale_page(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\n", encoding="utf-8")
    monkeypatch.setattr(api_docs, "TARGET", stale)
    monkeypatch.setattr(api_docs, "ROOT", tmp_path)
    assert api_docs.main(["--check"]) == 1
    assert "api.md is stale: run" in capsys.readouterr().err
    assert api_docs.main([]) == 0 and api_docs.main(["--check"]) == 0


def test_every_operation_has_a_section_and_a_contents_entry(page):
    headings = set(re.findall(r"^### `([A-Z]+ \S+)`$", page, re.MULTILINE))
    expected = {f"{method.upper()} {path}" for path, methods in document_dict()["paths"].items() for method in methods}
    assert headings == expected
    for operation in expected:
        assert f"  - [`{operation}`](#{api_docs.slug(operation)})" in page


def test_every_link_in_the_page_has_its_anchor(page):
    anchors = {api_docs.slug(heading.strip("`")) for heading in re.findall(r"^#+ (.+)$", page, re.MULTILINE)}
    anchors |= set(re.findall(r'<a id="([^"]+)"></a>', page))
    targets = set(re.findall(r"\]\(#([^)]+)\)", page))
    assert targets and targets <= anchors, sorted(targets - anchors)


def section(page: str, operation: str) -> str:
    start = page.index(f"### `{operation}`\n")
    return page[start:page.index("\n### ", start + 1)]


def test_request_body_fields_nested_models_and_example(page):
    export = section(page, "POST /api/v1/projects/{project_id}/exports")
    assert "**Request body** (`ExportBody`, JSON, required)" in export
    assert ("| `export_mode` | string | yes |  | one of `\"classification\"`, `\"detection\"`, `\"segmentation\"`, "
            "`\"captions\"` |") in export
    assert "| `options.leak_max_distance` | integer | no | `4` | 0 to 16 |" in export  # a nested model, in place
    assert "| `options.class_mapping.kind` | string | yes |" in export  # two levels down
    assert '"export_mode": "classification"' in export  # the JSON example
    assert "classification exports need options.class_mapping" in export  # the rule the example alone breaks

    annotations = section(page, "PUT /api/v1/jobs/{job_id}/images/{image_id}/annotations")
    assert "| `annotations[].label` | string | yes |" in annotations  # each item of an array


def test_callers_parameters_and_responses(page):
    assert "**Who may call:** anyone: no token" in section(page, "GET /api/v1/openapi.json")
    finalize = section(page, "POST /api/v1/analyses/{analysis_id}/finalize")
    assert "an ML pipeline: HMAC-signed request, `X-ML-Signature`" in finalize
    datasets = section(page, "GET /api/v1/datasets")
    assert "**Who may call:** a signed-in user: `Authorization: Bearer <JWT>`" in datasets
    assert "| `page_size` | query | integer | no | `50` | 1 to 200 |" in datasets
    assert "- **200 OK**: `data`: array of [DatasetOut](#datasetout); `meta`: [PageMeta](#pagemeta)" in datasets
    assert "- **202 Accepted**: `data`: [OperationOut](#operationout)" in section(
        page, "DELETE /api/v1/datasets/{dataset_id}")
    assert "\n### DatasetOut\n" in page and "\n### OperationOut\n" in page  # the models the links point to
