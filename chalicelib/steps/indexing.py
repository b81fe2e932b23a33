"""Steps of the `index` state machine (infra/statemachines/index.asl.json)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.services.container import services

bp = Blueprint(__name__)


@bp.lambda_function(name="plan_index")
def plan_index(event, context):
    return services().indexing.plan(event["operation_id"])


@bp.lambda_function(name="index_chunk")
def index_chunk(event, context):
    return services().indexing.index_chunk(event["operation_id"], int(event["chunk"]))


@bp.lambda_function(name="sweep_index")
def sweep_index(event, context):
    services().indexing.sweep(event["operation_id"], event["chunks"])
    return event


@bp.lambda_function(name="finish_index")
def finish_index(event, context):
    return services().indexing.finish(event["operation_id"], event["chunks"])


@bp.lambda_function(name="fail_index")
def fail_index(event, context):
    return services().indexing.fail(event["operation_id"], event.get("error") or {})
