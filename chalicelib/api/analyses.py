"""ML analyses. Pipeline routes (HMAC-signed, no bearer token) run the lifecycle; user routes
(bearer token, any reader of the registry image) read it. docs/analyses.md tells the whole story."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.analyses import (
    AnalysisBatchCreate,
    AnalysisCreate,
    AnalysisDetail,
    AnalysisExportOut,
    AnalysisOut,
    ArtifactOut,
    ArtifactPresign,
    ArtifactUploadOut,
    BatchCreated,
    BulkManyOut,
    BulkOut,
    BulkPredictions,
    BulkPredictionsOfMany,
    ExportQuery,
    Finalize,
    PredictionOut,
    ProjectExportQuery,
    StatusUpdate,
)
from chalicelib.errors import ValidationError
from chalicelib.services.container import services

bp = Blueprint(__name__)
A = "/api/v1/analyses/{analysis_id}"


# Pipelines (HMAC) --------------------------------------------------------------------------------


@endpoint(bp, "/api/v1/images/{image_id}/analyses", "POST", body=AnalysisCreate, response=AnalysisOut, status=201,
          pipeline=True)
def create_analysis(image_id, pipeline, body: AnalysisCreate):
    """Queue an analysis of a registry image (pipelines only, HMAC-signed)."""
    if body.image_id is not None and body.image_id != image_id:
        raise ValidationError("image_id in the body differs from the path's",
                              [{"field": "image_id", "location": "body", "type": "mismatch"}])
    analysis = services().analyses.create(pipeline, image_id, body.model_name, body.model_version, body.parameters)
    return ok(AnalysisOut.model_validate(analysis), f"Analysis '{analysis.id}' queued", 201)


@endpoint(bp, "/api/v1/analyses/batch", "POST", body=AnalysisBatchCreate, response=BatchCreated, status=201,
          pipeline=True)
def create_analyses(pipeline, body: AnalysisBatchCreate):
    """Queue one analysis per image, up to 100 images (pipelines only, HMAC-signed)."""
    made = services().analyses.create_batch(pipeline, body.image_ids, body.model_name, body.model_version,
                                            body.parameters)
    return ok(BatchCreated(analyses=[AnalysisOut.model_validate(a) for a in made]),
              f"{len(made)} analyses queued", 201)


@endpoint(bp, f"{A}/status", "PATCH", body=StatusUpdate, response=AnalysisOut, pipeline=True)
def update_analysis_status(analysis_id, pipeline, body: StatusUpdate):
    """Move an analysis to processing, failed or canceled (illegal moves: 409)."""
    analysis = services().analyses.set_status(pipeline, analysis_id, body.status, body.error)
    return ok(AnalysisOut.model_validate(analysis), f"Analysis '{analysis_id}' is {analysis.status}")


@endpoint(bp, f"{A}/artifacts/presign", "POST", body=ArtifactPresign, response=ArtifactUploadOut,
          pipeline=True)
def presign_artifact(analysis_id, pipeline, body: ArtifactPresign):
    """A presigned PUT for one artifact under ml_outputs/{analysis_id}/."""
    upload = services().analyses.presign_artifact(pipeline, analysis_id, body.artifact_type, body.filename,
                                                  body.content_type, body.size)
    message = f"PUT the artifact to the URL within {upload.expires_in} s"
    return ok(ArtifactUploadOut.model_validate(upload), message)


def _posted(pipeline, analysis_id: str | None, body: BulkPredictions | BulkPredictionsOfMany) -> tuple[dict, str]:
    """Both bulk posts: the Idempotency-Key header, the items, the service's answer and its message."""
    key = (bp.current_request.headers or {}).get("idempotency-key") or None
    items = [item.model_dump() for item in body.annotations]
    written = services().analyses.post_predictions(pipeline, analysis_id, items, key, bp.lambda_context)
    if written["replayed"]:
        return written, "Retry of an earlier post (Idempotency-Key): nothing written again"
    of = "" if analysis_id else f" of {len(written['analyses'])} analysis(es)"
    return written, f"{written['written']} prediction(s){of} stored"


@endpoint(bp, f"{A}/annotations:bulk", "POST", body=BulkPredictions, response=BulkOut, pipeline=True)
def post_predictions(analysis_id, pipeline, body: BulkPredictions):
    """Post up to 1,000 predictions; an Idempotency-Key makes a retry a no-op."""
    written, message = _posted(pipeline, analysis_id, body)
    return ok(BulkOut.model_validate(written), message)


@endpoint(bp, "/api/v1/analyses/annotations:bulk", "POST", body=BulkPredictionsOfMany, response=BulkManyOut,
          pipeline=True)
def post_predictions_of_many(pipeline, body: BulkPredictionsOfMany):
    """Post up to 1,000 predictions of several analyses, each item naming its analysis_id; all or none."""
    written, message = _posted(pipeline, None, body)
    return ok(BulkManyOut.model_validate(written), message)


@endpoint(bp, f"{A}/finalize", "POST", body=Finalize, response=AnalysisOut, pipeline=True)
def finalize_analysis(analysis_id, pipeline, body: Finalize):
    """End an analysis; completed only when every declared artifact was uploaded."""
    analysis = services().analyses.finalize(pipeline, analysis_id, body.status, body.error)
    return ok(AnalysisOut.model_validate(analysis), f"Analysis '{analysis_id}' is {analysis.status}")


# Users (bearer token) -----------------------------------------------------------------------------


@endpoint(bp, "/api/v1/images/{image_id}/analyses", response=list[AnalysisOut])
def list_analyses(image_id, identity):
    """An image's analyses, newest first, with model, version and status."""
    found = services().analyses.of_image(identity, image_id)
    return ok([AnalysisOut.model_validate(a) for a in found], f"Found {len(found)} analysis(es)")


@endpoint(bp, A, response=AnalysisDetail)
def get_analysis(analysis_id, identity):
    """One analysis with its predictions and presigned artifact URLs."""
    detail = services().analyses.detail(identity, analysis_id)
    out = AnalysisDetail.model_validate({
        **AnalysisOut.model_validate(detail.analysis).model_dump(),
        "artifacts": [ArtifactOut.model_validate(artifact) for artifact in detail.artifacts],
        "predictions": [PredictionOut.model_validate(p) for p in detail.predictions],
    })
    return ok(out, "Analysis found")


@endpoint(bp, f"{A}/export", query=ExportQuery, response=AnalysisExportOut)
def export_analysis(analysis_id, identity, query: ExportQuery):
    """An analysis and its predictions as JSON or CSV."""
    export = services().analyses.export(identity, analysis_id, query.format)
    return ok(AnalysisExportOut.model_validate(export), f"Analysis exported as {export.format}")


@endpoint(bp, "/api/v1/projects/{project_id}/analyses/export", query=ProjectExportQuery,
          response=AnalysisExportOut)
def export_project_analyses(project_id, identity, query: ProjectExportQuery):
    """The analyses of the pool images an Explore filter selects, as JSON or CSV."""
    export = services().analyses.export_project(identity, project_id, query.image_filter(), query.format,
                                                model_name=query.model_name, model_version=query.model_version,
                                                status=query.status)
    return ok(AnalysisExportOut.model_validate(export), f"Analyses exported as {export.format}")
