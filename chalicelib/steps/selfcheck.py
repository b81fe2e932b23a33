from __future__ import annotations

from chalice import Blueprint

from chalicelib.services import selfcheck

bp = Blueprint(__name__)


@bp.lambda_function(name="plan_selfcheck")
def plan_selfcheck(event, context):
    probes = event.get("probes") if isinstance(event, dict) else None
    return {"probes": probes if probes is not None else selfcheck.plan()}


@bp.lambda_function(name="run_probe")
def run_probe(event, context):
    return selfcheck.probe(event["kind"], event["name"])


@bp.lambda_function(name="summarize_selfcheck")
def summarize_selfcheck(event, context):
    return selfcheck.summarize(event["results"])


@bp.lambda_function(name="report_selfcheck_failure")
def report_selfcheck_failure(event, context):
    return selfcheck.failure(event.get("error") or {})
