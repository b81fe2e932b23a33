"""The edge of pipeline authentication: a Chalice request as the `SignedRequest` pipelines sign.

Pipeline routes have no authorizer (API Gateway passes them through); the route itself checks the
signature before anything else runs (`services/pipelines.py` says what is signed).
"""
from __future__ import annotations

from chalice.app import Request

from chalicelib.services.container import services
from chalicelib.services.pipelines import Pipeline, SignedRequest, canonical_query


def signed_request(request: Request) -> SignedRequest:
    event = request.to_original_event()
    # `path` has no stage prefix on AWS; the local gateway puts the path in the request context only.
    path = event.get("path") or event["requestContext"]["path"]
    params = request.query_params or {}
    pairs = [(name, value) for name in params for value in params.getlist(name)]
    headers = {name.lower(): value for name, value in (request.headers or {}).items()}
    return SignedRequest(method=request.method, path=path, query=canonical_query(pairs),
                         body=request.raw_body or b"", headers=headers)


def pipeline_of(request: Request) -> Pipeline:
    """The pipeline that signed the request: 404 while ML analyses are off, 401 unsigned or badly
    signed (or carrying a bearer token), 409 a replay."""
    return services().pipelines.authenticate(signed_request(request))
