"""Jobs: their images in order, their assignee and their status."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
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
