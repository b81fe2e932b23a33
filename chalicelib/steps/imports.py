"""Steps of the `import` state machine (infra/statemachines/import.asl.json)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.services.container import services

bp = Blueprint(__name__)


@bp.lambda_function(name="inspect_import")
def inspect_import(event, context):
    return services().dataset_import.inspect(event["operation_id"])


@bp.lambda_function(name="extract_import")
def extract_import(event, context):
    return services().dataset_import.extract(event["operation_id"], int(event["batch"]))


@bp.lambda_function(name="annotations_import")
def annotations_import(event, context):
    return services().dataset_import.annotations(event["operation_id"])


@bp.lambda_function(name="project_import")
def project_import(event, context):
    return services().dataset_import.project(event["operation_id"])


@bp.lambda_function(name="store_import")
def store_import(event, context):
    return services().dataset_import.store(event["operation_id"], int(event["group"]))


@bp.lambda_function(name="finish_import")
def finish_import(event, context):
    return services().dataset_import.finish(event["operation_id"])


@bp.lambda_function(name="fail_import")
def fail_import(event, context):
    return services().dataset_import.fail(event["operation_id"], event.get("error") or {})
