"""Steps of the `delete-dataset` state machine (infra/statemachines/delete-dataset.asl.json) and the
retention sweep that starts purges (services/dataset_deletion.py)."""
from __future__ import annotations

from aws_lambda_powertools import Logger
from chalice import Blueprint, Rate

from chalicelib.services.container import services

bp = Blueprint(__name__)
logger = Logger(child=True)
SWEEP_HOURS = 6


@bp.lambda_function(name="backup_prepare_dataset")
def backup_prepare_dataset(event, context):
    return services().dataset_deletion.backup_prepare(event["operation_id"])


@bp.lambda_function(name="backup_build_dataset")
def backup_build_dataset(event, context):
    services().dataset_deletion.backup_build(event["operation_id"], int(event["shard"]))
    return {}


@bp.lambda_function(name="backup_assemble_dataset")
def backup_assemble_dataset(event, context):
    return services().dataset_deletion.backup_assemble(event["operation_id"], [int(s) for s in event["shards"]])


@bp.lambda_function(name="deleted_dataset")
def deleted_dataset(event, context):
    return services().dataset_deletion.deleted(event["operation_id"])


@bp.lambda_function(name="purge_plan_dataset")
def purge_plan_dataset(event, context):
    return services().dataset_deletion.purge_plan(event["operation_id"])


@bp.lambda_function(name="purge_project_dataset")
def purge_project_dataset(event, context):
    services().dataset_deletion.purge_project(event["operation_id"], event["project_id"], bool(event["own"]))
    return {}


@bp.lambda_function(name="purge_registry_dataset")
def purge_registry_dataset(event, context):
    services().dataset_deletion.purge_registry(event["operation_id"])
    return {}


@bp.lambda_function(name="purge_objects_dataset")
def purge_objects_dataset(event, context):
    return services().dataset_deletion.purge_objects(event["operation_id"])


@bp.lambda_function(name="purge_finish_dataset")
def purge_finish_dataset(event, context):
    return services().dataset_deletion.purge_finish(event["operation_id"])


@bp.lambda_function(name="fail_deletion")
def fail_deletion(event, context):
    return services().dataset_deletion.fail(event["operation_id"], event.get("error") or {})


@bp.schedule(Rate(SWEEP_HOURS, unit=Rate.HOURS), name="purge_expired_datasets")
def purge_expired_datasets(event):
    """The retention sweep: purge the datasets deleted longer ago than the retention window."""
    started = services().dataset_deletion.purge_expired()
    logger.info("expired datasets purged", extra={"operations": started})
    return {"operations": started}
