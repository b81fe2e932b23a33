"""Steps of the `export` state machine (infra/statemachines/export.asl.json)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.services.container import services

bp = Blueprint(__name__)


@bp.lambda_function(name="prepare_export")
def prepare_export(event, context):
    return services().exports.prepare(event["project_id"], event["export_id"])


@bp.lambda_function(name="build_export")
def build_export(event, context):
    services().exports.build(event["project_id"], event["export_id"], int(event["shard"]))
    return {"shard": int(event["shard"])}


@bp.lambda_function(name="assemble_export")
def assemble_export(event, context):
    services().exports.assemble(event["project_id"], event["export_id"], [int(n) for n in event["shards"]])
    return {"project_id": event["project_id"], "export_id": event["export_id"]}


@bp.lambda_function(name="finalize_export")
def finalize_export(event, context):
    export = services().exports.finalize(event["project_id"], event["export_id"])
    return {"export_id": export.id, "status": export.status}


@bp.lambda_function(name="fail_export")
def fail_export(event, context):
    error = event.get("error") or {}
    export = services().exports.fail(event["project_id"], event["export_id"], error)
    return {"error": error.get("Error", "Error"), "cause": export.error or ""}
