"""Annotations of an image in a job, checked against the project's labels and the image's size,
and immutable numbered versions of a job's annotations (documents in S3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConflictError, TooLargeError, ValidationError
from chalicelib.services.access import Caller
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.jobs import JobService
from chalicelib.store.annotations import MAX_SET_BYTES, AnnotationRepository, AnnotationSet, Version, stored_size
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.images import Image, ImageRepository
from chalicelib.store.jobs import Job
from chalicelib.store.tasks import Task
from chalicelib.store.objects import Bucket

MAX_ANNOTATIONS = 1000
VERSION_ATTEMPTS = 5
WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class Added:
    """What `add_absent` did to one image's set: the set written (None: nothing was missing), the
    ids it added, and how many of the wanted annotations were there already."""

    saved: AnnotationSet | None
    added: list[str]
    present: int


def _require_open(job: Job) -> None:
    if job.status == "done":
        raise ConflictError(f"Job '{job.id}' is done; move it back to review before changing annotations")


def _absent(current: AnnotationSet | None, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    held = {annotation["id"] for annotation in current.annotations} if current else set()
    return [annotation for annotation in wanted if annotation["id"] not in held]


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
        _require_open(job)
        image = self._sized(image_id)
        annotations = [{**annotation, "id": annotation.get("id") or new_id()} for annotation in annotations]
        self._check(caller, image, annotations)
        current = self._annotations.get(job_id, image_id)
        current_rev = current.rev if current else 0
        if expected_rev is not None and expected_rev != current_rev:
            raise ConflictError(f"Annotations of image '{image_id}' in job '{job_id}' are at revision "
                                f"{current_rev}, not {expected_rev}; reload and retry")
        return self._save(job, task, image_id, annotations, current, actor)

    def add_absent(self, actor: Identity, job_id: str,
                   additions: dict[str, list[dict[str, Any]]]) -> dict[str, Added]:
        """Add to each image's set the annotations (with ids) whose id it does not hold yet, keeping
        every annotation present as it is; an image with nothing to add is not written. Every set is
        checked before the first write, so a refused call writes nothing."""
        caller, job, task = self._jobs.admit(actor, job_id, "annotations.write")
        _require_open(job)
        planned = []
        for image_id, wanted in additions.items():
            image = self._sized(image_id)
            current = self._annotations.get(job_id, image_id)
            self._check(caller, image, (current.annotations if current else []) + _absent(current, wanted))
            planned.append((image, wanted, current))
        return {image.id: self._add(caller, job, task, image, wanted, current)
                for image, wanted, current in planned}

    def _add(self, caller: Caller, job: Job, task: Task, image: Image, wanted: list[dict[str, Any]],
             current: AnnotationSet | None) -> Added:
        """Write `current` plus what it lacks of `wanted`, guarded by the revision it was read at; when
        someone saved meanwhile, read their set and add what it still lacks."""
        for _ in range(WRITE_ATTEMPTS):
            new = _absent(current, wanted)
            if not new:
                return Added(None, [], len(wanted))
            merged = (current.annotations if current else []) + new
            self._check(caller, image, merged)
            try:
                saved = self._save(job, task, image.id, merged, current, caller.identity)
            except ConflictError:
                current = self._annotations.get(job.id, image.id)
                continue
            return Added(saved, [annotation["id"] for annotation in new], len(wanted) - len(new))
        raise ConflictError(f"Annotations of image '{image.id}' in job '{job.id}' kept changing during "
                            f"{WRITE_ATTEMPTS} attempts; retry")

    def _sized(self, image_id: str) -> Image:
        image = self._images.get(image_id)
        if not image.width or not image.height:
            raise ConflictError(f"Shared image '{image_id}' has no known size (status {image.status})")
        return image

    @staticmethod
    def _check(caller: Caller, image: Image, annotations: list[dict[str, Any]]) -> None:
        # A set PUT could not save again (more than its 1,000) would strand whoever edits it next.
        if len(annotations) > MAX_ANNOTATIONS:
            raise ValidationError(f"The image's set would hold {len(annotations)} annotations; a set holds at most "
                                  f"{MAX_ANNOTATIONS}", [{"field": "annotations", "location": "body",
                                                          "message": f"{len(annotations)} > {MAX_ANNOTATIONS}",
                                                          "type": "too_many"}])
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

    def _save(self, job: Job, task: Task, image_id: str, annotations: list[dict[str, Any]],
              current: AnnotationSet | None, actor: Identity) -> AnnotationSet:
        """Write the set over `current` (the set as read: its revision guards the write, 409 if it moved)."""
        return self._annotations.replace(job.project_id, task.id, job.id, image_id, annotations,
                                         current.rev if current else 0,
                                         len(current.annotations) if current else 0, actor.sub, utcnow())

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
