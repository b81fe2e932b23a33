"""The local API Gateway answers what the template's gateway responses answer on AWS: routes and
methods the API does not declare are a 404 in the error envelope, before any authorizer."""
from __future__ import annotations

import inspect
import json

import pytest
from chalice import local

from chalicelib.api.responses import error_body
from infra.local.gateway import NO_SUCH_ROUTE_MESSAGE
from tests.conftest import ROOT

TEMPLATE = json.loads((ROOT / "infra" / "template.json").read_text())


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/no-such-route"), ("DELETE", "/api/v1/me"), ("PUT", "/api/v1/tags"), ("POST", "/"),
])
@pytest.mark.parametrize("signed_in", [True, False])
def test_undeclared_routes_and_methods_are_a_404_in_the_error_envelope(api, anonymous_api, method, path, signed_in):
    # When a path or a method the API does not declare is called, with or without a token
    answer = (api if signed_in else anonymous_api).request(method, path)
    # Then it is the template's 404 in the error envelope
    assert answer.status_code == 404
    assert answer.json == error_body("not_found", NO_SUCH_ROUTE_MESSAGE, 404)


def test_declared_routes_still_answer(api):
    assert api.get("/api/v1/me").status_code == 200


def test_the_template_answers_the_same_for_undeclared_routes():
    # Given the gateway response API Gateway uses for a path or method it has no integration for
    responses = {resource["Properties"]["ResponseType"]: resource["Properties"]
                 for resource in TEMPLATE["Resources"].values() if resource.get("Type") == "AWS::ApiGateway::GatewayResponse"}
    missing = responses["MISSING_AUTHENTICATION_TOKEN"]
    # Then it is the same 404 and body the local gateway gives
    assert missing["StatusCode"] == "404"
    assert json.loads(missing["ResponseTemplates"]["application/json"]) == error_body(
        "not_found", NO_SUCH_ROUTE_MESSAGE, 404)


def test_every_gateway_response_is_in_the_error_envelope_with_its_status():
    for resource in TEMPLATE["Resources"].values():
        if resource.get("Type") != "AWS::ApiGateway::GatewayResponse":
            continue
        properties = resource["Properties"]
        body = json.loads(properties["ResponseTemplates"]["application/json"])
        assert set(body) == {"error", "status_code"} and set(body["error"]) == {"code", "message", "details"}
        assert str(body["status_code"]) == properties["StatusCode"], properties["ResponseType"]


def test_the_chalice_local_internals_the_emulation_uses_are_there():
    # LocalGateway.handle_request(method, path, headers, body) and its `_app_object`;
    # RouteMatcher(routes).match_route(path) raising ValueError for an unknown path.
    original = inspect.unwrap(local.LocalGateway.handle_request)
    assert list(inspect.signature(original).parameters) == ["self", "method", "path", "headers", "body"]
    assert "_app_object" in local.LocalGateway.__init__.__code__.co_names
    with pytest.raises(ValueError):
        local.RouteMatcher(["/a"]).match_route("/b")
    assert local.RouteMatcher(["/a/{x}"]).match_route("/a/1").route == "/a/{x}"
