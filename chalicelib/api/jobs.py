"""Jobs, their images' annotations, and frozen annotation versions."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.annotations import AnnotationSetOut, AnnotationsBody, VersionBody, VersionOut
from chalicelib.schemas.tasks import JobDetailOut, JobImageOut, JobOut, JobPatch
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/jobs/{job_id}"


def _job(view) -> JobDetailOut:
    images = None
    if view.images is not None:
        images = []
        for item in view.images:
            image = item.view.image if item.view else None
            images.append(JobImageOut(
                image_id=item.entry.image_id, sequence_number=item.entry.sequence_number,
                file_path=image.file_path if image else None, filename=image.filename if image else None,
                width=image.width if image else None, height=image.height if image else None,
                thumbnail_url=item.view.thumbnail_url if item.view else None,
                annotation_count=item.entry.annotation_count, is_annotated=item.entry.annotated))
    return JobDetailOut(**JobOut.model_validate(view.job).model_dump(), task_name=view.task.name,
                        annotated_images=view.annotated_images, images=images)


def _set(saved) -> AnnotationSetOut:
    return AnnotationSetOut(job_id=saved.job_id, image_id=saved.image_id, annotations=saved.annotations,
                            rev=saved.rev, is_annotated=bool(saved.annotations), updated_by=saved.updated_by,
                            updated_at=saved.updated_at)


@endpoint(bp, BASE, response=JobDetailOut)
def get_job(job_id, identity):
    """A job with its images in order: thumbnails and annotation status."""
    return ok(_job(services().jobs.get(identity, job_id)), "Job found")


@endpoint(bp, BASE, "PATCH", body=JobPatch, response=JobDetailOut)
def update_job(job_id, identity, body: JobPatch):
    """Assign a job or move its status (new → in_progress → review → done; review → in_progress)."""
    changes = body.model_dump(exclude_unset=True)
    if "status" in changes and changes["status"] is None:
        changes.pop("status")
    return ok(_job(services().jobs.update(identity, job_id, changes)), "Job updated")


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
