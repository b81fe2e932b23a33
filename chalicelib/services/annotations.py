"""Annotations of an image in a job, checked against the project's labels and the image's size,
and immutable numbered versions of a job's annotations (documents in S3)."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import ConflictError, TooLargeError, ValidationError
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.jobs import JobService
from chalicelib.store.annotations import MAX_SET_BYTES, AnnotationRepository, AnnotationSet, Version, stored_size
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.images import ImageRepository
from chalicelib.store.objects import Bucket

MAX_ANNOTATIONS = 1000
VERSION_ATTEMPTS = 5


def _problem(index: int, field: str, message: str) -> dict[str, Any]:
    return {"field": f"annotations.{index}.{field}", "message": message}


def check(annotations: list[dict[str, Any]], labels: list[dict[str, Any]], width: int, height: int) -> list[dict]:
    """Problems with `annotations` (labels unknown or of another type, geometry outside the image)."""
    by_name = {label["name"]: label for label in labels}
    problems = []
    for n, annotation in enumerate(annotations):
        label = by_name.get(annotation["label"])
        if label is None:
            problems.append(_problem(n, "label", f"{annotation['label']!r} is not in the project's label set"))
        elif label.get("annotation_type", "any") not in ("any", annotation["type"]):
            problems.append(_problem(n, "type", f"label {label['name']!r} is for {label['annotation_type']} "
                                                f"annotations, not {annotation['type']}"))
        if annotation["type"] == "bbox":
            x, y, w, h = annotation["bbox"]
            if x < 0 or y < 0 or x + w > width or y + h > height:
                problems.append(_problem(n, "bbox", f"[{x}, {y}, {w}, {h}] reaches outside the "
                                                    f"{width}×{height} image"))
        elif annotation["type"] == "polygon":
            outside = [point for point in annotation["points"]
                       if not (0 <= point[0] <= width and 0 <= point[1] <= height)]
            if outside:
                problems.append(_problem(n, "points", f"{len(outside)} point(s) outside the {width}×{height} "
                                                      f"image, first {outside[0]}"))
    return problems


class AnnotationService:
    def __init__(self, jobs: JobService, annotations: AnnotationRepository, images: ImageRepository,
                 documents: Bucket, activity: ActivityService) -> None:
        self._jobs = jobs
        self._annotations = annotations
        self._images = images
        self._documents = documents
        self._activity = activity

    def get(self, actor: Identity, job_id: str, image_id: str) -> AnnotationSet:
        _, job, _ = self._jobs.admit(actor, job_id, "annotations.read")
        self._jobs.job_image(job, image_id)
        found = self._annotations.get(job_id, image_id)
        return found or AnnotationSet(job_id=job_id, image_id=image_id, annotations=[], rev=0, updated_by=None,
                                      updated_at=None)

    def replace(self, actor: Identity, job_id: str, image_id: str, annotations: list[dict[str, Any]],
                expected_rev: int | None) -> AnnotationSet:
        """Replace the image's set in the job. With `expected_rev`, only if nobody saved since (409)."""
        caller, job, task = self._jobs.admit(actor, job_id, "annotations.write")
        self._jobs.job_image(job, image_id)
        if job.status == "done":
            raise ConflictError(f"Job '{job_id}' is done; move it back to review before changing annotations")
        image = self._images.get(image_id)
        if not image.width or not image.height:
            raise ConflictError(f"Shared image '{image_id}' has no known size (status {image.status})")
        annotations = [{**annotation, "id": annotation.get("id") or new_id()} for annotation in annotations]
        problems = check(annotations, caller.project.labels, image.width, image.height)
        if problems:
            raise ValidationError(f"{len(problems)} annotation(s) are not valid: {problems[0]['field']}: "
                                  f"{problems[0]['message']}", problems)
        size = stored_size(annotations)
        if size > MAX_SET_BYTES:
            raise TooLargeError(f"The annotation set takes {size:,} bytes stored; the limit of one image's set "
                                f"is {MAX_SET_BYTES:,} bytes", [{"field": "annotations", "location": "body",
                                                                  "message": f"{size} > {MAX_SET_BYTES} bytes",
                                                                  "type": "too_large"}])
        current = self._annotations.get(job_id, image_id)
        current_rev = current.rev if current else 0
        if expected_rev is None:
            expected_rev = current_rev
        elif expected_rev != current_rev:
            raise ConflictError(f"Annotations of image '{image_id}' in job '{job_id}' are at revision "
                                f"{current_rev}, not {expected_rev}; reload and retry")
        previous_count = len(current.annotations) if current else 0
        return self._annotations.replace(job.project_id, task.id, job_id, image_id, annotations, expected_rev,
                                         previous_count, actor.sub, utcnow())

    def create_version(self, actor: Identity, job_id: str, note: str | None) -> Version:
        """Freeze the job's current annotations as the next numbered version."""
        _, job, task = self._jobs.admit(actor, job_id, "versions.create")
        sets = [item for item in self._annotations.of_job(job_id) if item.annotations]
        now = utcnow()
        key = f"projects/{job.project_id}/tasks/{task.id}/jobs/{job_id}/versions/{new_id()}.json"
        self._documents.put_json(key, {
            "job_id": job_id, "task_id": task.id, "project_id": job.project_id, "note": note,
            "created_by": actor.sub, "created_at": now.isoformat(),
            "images": [{"image_id": item.image_id, "rev": item.rev, "annotations": item.annotations}
                       for item in sorted(sets, key=lambda item: item.image_id)],
        })
        count = sum(len(item.annotations) for item in sets)
        for _ in range(VERSION_ATTEMPTS):  # a concurrent freeze may take the number first: take the next
            versions = self._annotations.versions(job_id)
            number = (versions[-1].number if versions else 0) + 1
            version = Version(job_id=job_id, number=number, document_key=key, image_count=len(sets),
                              annotation_count=count, created_by=actor.sub, created_at=now, note=note)
            if self._annotations.add_version(version):
                self._activity.record(actor, "job", job_id, "version_created", project_id=job.project_id,
                                      summary=f"Froze version {number} of job {job.sequence_number + 1} of "
                                              f"\"{task.name}\" ({count} annotation(s))",
                                      details={"number": number, "annotations": count})
                return version
        raise ConflictError(f"Could not number a new version of job '{job_id}'; retry")

    def versions(self, actor: Identity, job_id: str) -> list[Version]:
        self._jobs.admit(actor, job_id, "annotations.read")
        return self._annotations.versions(job_id)
