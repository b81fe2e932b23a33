"""Annotations of a job's images, and the job's frozen annotation versions."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.annotations import AnnotationSetOut, AnnotationsBody, VersionBody, VersionOut
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/jobs/{job_id}"


def _set(saved) -> AnnotationSetOut:
    return AnnotationSetOut(job_id=saved.job_id, image_id=saved.image_id, annotations=saved.annotations,
                            rev=saved.rev, is_annotated=bool(saved.annotations), updated_by=saved.updated_by,
                            updated_at=saved.updated_at)


@endpoint(bp, f"{BASE}/images/{{image_id}}/annotations", response=AnnotationSetOut)
def get_annotations(job_id, image_id, identity):
    """The image's annotation set in this job (empty if none yet)."""
    return ok(_set(services().annotations.get(identity, job_id, image_id)), "Annotations found")


@endpoint(bp, f"{BASE}/images/{{image_id}}/annotations", "PUT", body=AnnotationsBody, response=AnnotationSetOut)
def put_annotations(job_id, image_id, identity, body: AnnotationsBody):
    """Replace the image's annotation set in this job (labels and geometry are checked)."""
    annotations = [item.model_dump(exclude_none=True) for item in body.annotations]
    saved = services().annotations.replace(identity, job_id, image_id, annotations, body.expected_rev)
    return ok(_set(saved), f"Saved {len(saved.annotations)} annotation(s)")


@endpoint(bp, f"{BASE}/versions", "POST", body=VersionBody, response=VersionOut, status=201)
def create_version(job_id, identity, body: VersionBody):
    """Freeze the job's current annotations as the next numbered, immutable version."""
    version = services().annotations.create_version(identity, job_id, body.note)
    return ok(VersionOut.model_validate(version), f"Version {version.number} created", 201)


@endpoint(bp, f"{BASE}/versions", response=list[VersionOut])
def list_versions(job_id, identity):
    """The job's frozen versions, oldest first."""
    versions = services().annotations.versions(identity, job_id)
    return ok([VersionOut.model_validate(version) for version in versions], f"Found {len(versions)} version(s)")
