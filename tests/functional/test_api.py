"""API conventions: envelope, errors, auth answers, OpenAPI completeness, users on first sight."""
from __future__ import annotations

import json
import re

from chalicelib.store.users import UserRepository


def test_health_is_public(anonymous_api):
    response = anonymous_api.get("/health")
    assert response.status_code == 200
    assert response.json == {"data": {"status": "ok", "stage": "dev"}, "message": "OK", "status_code": 200}


def test_me_records_the_user_on_first_sight(api):
    # Given no record yet
    response = api.get("/api/v1/me")
    # Then
    assert response.status_code == 200
    assert response.json["data"]["sub"] == "alice" and response.json["data"]["is_admin"] is False
    assert UserRepository().get("alice").email == "alice@example.com"


def test_admin_group_makes_a_system_admin(admin_api):
    assert admin_api.get("/api/v1/me").json["data"]["is_admin"] is True


def test_expired_and_forged_tokens_are_401(client, stack):
    from infra.local.issuer import LocalIssuer
    from tests.conftest import Api

    expired = Api(client, stack.token(sub="late", ttl_seconds=-5))
    forged = Api(client, LocalIssuer(issuer=stack.issuer.issuer).token("mallory", groups=["admin"]))
    for caller in (expired, forged):
        response = caller.get("/api/v1/me")
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


def test_invalid_json_is_400_and_non_object_is_400(api):
    broken = api.post("/api/v1/tags", raw=b"{name: 1")
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json["error"]["message"]
    listed = api.post("/api/v1/tags", raw=b"[1, 2]")
    assert listed.status_code == 400 and "JSON object" in listed.json["error"]["message"]


def test_a_body_that_is_not_sent_as_json_gets_the_error_envelope(client, stack):
    # `curl -d` sends application/x-www-form-urlencoded: Chalice refuses it before any view
    response = client.http.post("/api/v1/tags", body='{"name": "x"}', headers={
        "Authorization": f"Bearer {stack.token()}", "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    body = json.loads(response.body)
    assert body["status_code"] == 415 and body["error"]["code"] == "unsupported_media_type"
    assert "application/json" in body["error"]["message"]


def test_query_validation_names_the_parameter(api):
    response = api.get("/api/v1/tags?page=0&include_usage_count=maybe")
    assert response.status_code == 422
    assert sorted(d["field"] for d in response.json["error"]["details"]) == ["include_usage_count", "page"]
    assert all(d["location"] == "query" for d in response.json["error"]["details"])


def test_unknown_query_parameter_is_422(api):
    response = api.get("/api/v1/tags?serch=cat")
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["field"] == "serch"


def test_openapi_documents_every_route(anonymous_api, stack):
    document = anonymous_api.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    registered = {(path, method) for path, entries in stack.app.routes.items() for method in entries}
    assert registered == documented
    create = document["paths"]["/api/v1/tags"]["post"]
    schema = document["components"]["schemas"][create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["color"]["pattern"] == "^#[0-9A-Fa-f]{6}$"
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(document)))
    assert refs <= set(document["components"]["schemas"])
    assert document["paths"]["/health"]["get"]["security"] == []


def test_logs_carry_the_request_id_and_metrics_are_emitted(api, capfd):
    api.get("/api/v1/tags")
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    request_logs = [line for line in lines if line.get("message") == "request"]
    assert request_logs and request_logs[-1]["path"] == "/api/v1/tags" and request_logs[-1]["status"] == 200
    assert request_logs[-1]["correlation_id"]
    metrics = [line for line in lines if "_aws" in line]
    names = {m["Name"] for blob in metrics for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Invocations", "Latency"} <= names
