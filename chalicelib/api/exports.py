"""Exports of a project: preview, create (built by the `export` state machine), history, download."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.exports import ClassificationOptionsOut, ExportBody, ExportOut, PreviewOut, ProgressOut
from chalicelib.services.container import services

if TYPE_CHECKING:  # only a type here; importing the store model costs every cold start
    from chalicelib.store.exports import Export

bp = Blueprint(__name__)
BASE = "/api/v1/projects/{project_id}/exports"


def export_out(export: Export) -> ExportOut:
    summary = export.summary or {}
    return ExportOut(
        id=export.id, project_id=export.project_id, name=export.name, version_number=export.version_number,
        export_mode=export.export_mode, output_format=export.output_format, status=export.status,
        filter=export.image_filter, options=export.options, summary=export.summary, error=export.error,
        image_count=summary.get("images"), annotation_count=summary.get("annotations"),
        artifact_size_bytes=export.artifact_size_bytes,
        progress=ProgressOut(shards_done=export.shards_done, shards_total=export.shards_total),
        created_by=export.created_by, created_at=export.created_at, started_at=export.started_at,
        completed_at=export.completed_at)


@endpoint(bp, f"{BASE}/preview", "POST", body=ExportBody, response=PreviewOut)
def preview_export(project_id, identity, body: ExportBody):
    """What an export would contain: images, annotations by type, split and class distributions."""
    preview = services().exports.preview(identity, project_id, body.spec(), body.saved_filter_id)
    return ok(PreviewOut(**preview), f"The export would contain {preview['images']} image(s)")


@endpoint(bp, BASE, "POST", body=ExportBody, response=ExportOut, status=202)
def create_export(project_id, identity, body: ExportBody):
    """Start an export: numbered per project and mode, built in the background (poll its status)."""
    export = services().exports.create(identity, project_id, body.spec(), body.name, body.saved_filter_id)
    return ok(export_out(export), f"{export.name} created; it is being built", 202)


@endpoint(bp, BASE, response=list[ExportOut])
def list_exports(project_id, identity):
    """The project's exports, newest first."""
    exports = services().exports.list(identity, project_id)
    return ok([export_out(export) for export in exports], f"Found {len(exports)} export(s)")


@endpoint(bp, f"{BASE}/classification-options", response=ClassificationOptionsOut)
def classification_options(project_id, identity):
    """Tag categories with their tags and the project's class labels, for classification exports."""
    options = services().exports.classification_options(identity, project_id)
    return ok(ClassificationOptionsOut(**options), "Classification options")


@endpoint(bp, f"{BASE}/{{export_id}}", response=ExportOut)
def get_export(project_id, export_id, identity):
    """One export with its status and progress (shards built / total)."""
    return ok(export_out(services().exports.get(identity, project_id, export_id)), "Export found")


@endpoint(bp, f"{BASE}/{{export_id}}/download", status=302)
def download_export(project_id, export_id, identity):
    """302 to a presigned URL of the artifact (valid one hour)."""
    url = services().exports.download_url(identity, project_id, export_id)
    return Response(body="", status_code=302, headers={"Location": url, "Cache-Control": "no-store"})


@endpoint(bp, f"{BASE}/{{export_id}}", "DELETE", response=ExportOut)
def delete_export(project_id, export_id, identity):
    """Delete an export and its artifact (not while it is being built)."""
    export = services().exports.delete(identity, project_id, export_id)
    return ok(export_out(export), f"{export.name} deleted")
