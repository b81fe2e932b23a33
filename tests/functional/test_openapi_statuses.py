"""Every status a route can answer is in the OpenAPI document, with the body it really has.

What a route can answer is read from what declares it: its `endpoint(...)` (the success status,
a body or query to refuse, a token to check), the statuses its view passes to `ok(...)` or
`Response(...)`, and the one mapping of domain errors to HTTP (`responses.STATUS_BY_ERROR`, plus
the 500 of an unexpected error). A success status must be declared by its own number, with the
data envelope; an error status by its own number or by a `default` answer in the error envelope.
"""
from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

import app as application
from chalicelib.api.openapi import document_dict
from chalicelib.api.responses import STATUS_BY_ERROR
from chalicelib.api.routing import ROUTES, RouteSpec

ERROR_REF = "#/components/schemas/Error"


def view_of(spec: RouteSpec):
    handler = application.app.routes[spec.path][spec.method].view_function
    return inspect.unwrap(handler)


def statuses_in_view(view, seen: set | None = None) -> set[int | str]:
    """The statuses the view's code answers — `ok(data, message, N)`, `Response(..., status_code=N)` —
    in its own body and in the helpers of its module it calls. A status held in a variable is
    resolved through the variable's assignments; what stays unresolved is returned as source text."""
    seen = set() if seen is None else seen
    seen.add(view)
    tree = ast.parse(textwrap.dedent(inspect.getsource(view)))
    assigned: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    found: set[int | str] = set()
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        name = getattr(call.func, "id", getattr(call.func, "attr", None))
        helper = view.__globals__.get(name) if isinstance(call.func, ast.Name) else None
        if inspect.isfunction(helper) and helper.__module__ == view.__module__ and helper not in seen:
            found |= statuses_in_view(helper, seen)
        status = call.args[2] if name == "ok" and len(call.args) >= 3 else None
        status = next((kw.value for kw in call.keywords if kw.arg == "status_code" and name in ("ok", "Response")),
                      status)
        if status is not None:
            found |= _values(status, assigned)
    return found


def _values(expr: ast.expr, assigned: dict[str, list[ast.expr]]) -> set[int | str]:
    if isinstance(expr, ast.Constant):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _values(expr.body, assigned) | _values(expr.orelse, assigned)
    if isinstance(expr, ast.Name) and expr.id in assigned:
        return set().union(*(_values(value, assigned) for value in assigned[expr.id]))
    return {ast.unparse(expr)}


def producible(spec: RouteSpec) -> set[int | str]:
    statuses: set[int | str] = {spec.status, 500} | statuses_in_view(view_of(spec))
    if not spec.public:
        statuses |= set(STATUS_BY_ERROR.values())  # the token, then whatever the services raise
    if spec.body is not None:
        statuses |= {400, 422}
    if spec.query is not None:
        statuses.add(422)
    return statuses


def undeclared(spec: RouteSpec, operation: dict) -> list[str]:
    responses = operation["responses"]
    default_is_error = responses.get("default", {}).get("content", {}).get("application/json", {}).get(
        "schema", {}).get("$ref") == ERROR_REF
    missing = []
    for status in sorted(producible(spec), key=str):
        if not isinstance(status, int):
            missing.append(f"{status!r} (not a literal: cannot be checked against the document)")
        elif str(status) in responses:
            continue
        elif status >= 400 and default_is_error:
            continue
        else:
            missing.append(str(status))
    return missing


@pytest.mark.parametrize("spec", ROUTES, ids=lambda spec: f"{spec.method} {spec.path}")
def test_every_status_a_route_can_answer_is_documented(spec):
    # Given the document the API serves
    operation = document_dict()["paths"][spec.path][spec.method.lower()]
    # Then each status the route can answer is declared
    assert undeclared(spec, operation) == []


def test_the_status_reader_sees_literal_and_computed_statuses():
    # Given views that answer in each of the ways the routes do
    def answers(ok, Response, large, status):
        if large:
            return ok({}, "started", 202)
        if status:
            return Response(body="", status_code=status)
        return ok({}, "done")

    # Then the reader finds the literal and flags the computed one
    assert statuses_in_view(answers) == {202, "status"}


def test_the_status_reader_follows_variables_and_helpers():
    # Given a view answering through a variable and a helper of its module
    assert statuses_in_view(_answers_through_a_helper) == {200, 201, 202}


def _started(large):
    from chalicelib.api.responses import ok

    return ok({}, "started", 202) if large else None


def _answers_through_a_helper(created, large):
    from chalicelib.api.responses import ok

    status = 201 if created else 200
    return _started(large) or ok({}, "done", status)
