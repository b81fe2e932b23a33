"""Jobs: who works on them and where they stand (`new → in_progress → review → done`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services.access import Access, Caller
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.images import ImageService, ImageView
from chalicelib.store.jobs import Job, JobImage, JobRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tasks import Task, TaskRepository

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("in_progress",),
    "in_progress": ("review",),
    "review": ("done", "in_progress"),
    "done": (),
}
# Moves that finish a review (approve, or send back): `jobs.review`, not the annotator's `jobs.status`.
REVIEW_MOVES = {("review", "done"), ("review", "in_progress")}


@dataclass(frozen=True)
class JobImageView:
    entry: JobImage
    view: ImageView | None


@dataclass(frozen=True)
class JobView:
    job: Job
    task: Task
    images: list[JobImageView] | None = None

    @property
    def annotated_images(self) -> int | None:
        return None if self.images is None else sum(1 for image in self.images if image.entry.annotated)


class JobService:
    def __init__(self, access: Access, projects: ProjectRepository, tasks: TaskRepository, jobs: JobRepository,
                 images: ImageService, activity: ActivityService) -> None:
        self._access = access
        self._projects = projects
        self._tasks = tasks
        self._jobs = jobs
        self._images = images
        self._activity = activity

    def admit(self, actor: Identity, job_id: str, action: str) -> tuple[Caller, Job, Task]:
        """The job, its task and the caller's standing, or 404 (non-members never learn a job exists)."""
        job = self._jobs.get(job_id)
        try:
            caller = self._access.admit(actor, job.project_id)
            task = self._tasks.task(job.project_id, job.task_id)
        except NotFoundError as exc:
            raise NotFoundError(f"Job '{job_id}' not found") from exc
        self._access.require(actor, job.project_id, action, job)
        return caller, job, task

    def list(self, actor: Identity, project_id: str, task_id: str) -> list[Job]:
        """A task's jobs in order; annotators see the jobs assigned to them."""
        caller = self._access.require(actor, project_id, "tasks.read")
        self._tasks.task(project_id, task_id)
        return [job for job in self._jobs.of_task(task_id) if caller.may("jobs.read", job)]

    def get(self, actor: Identity, job_id: str) -> JobView:
        """The job with its images in order: thumbnails and whether each is annotated."""
        _, job, task = self.admit(actor, job_id, "jobs.read")
        entries = self._jobs.images_of_job(job)
        views = {view.image.id: view for view in self._images.views([entry.image_id for entry in entries])}
        return JobView(job, task, [JobImageView(entry, views.get(entry.image_id)) for entry in entries])

    def update(self, actor: Identity, job_id: str, changes: dict[str, Any]) -> JobView:
        """Change assignee and/or status; the status moves only along TRANSITIONS, and of two
        concurrent changes from the same state only the first is applied (the other gets 409)."""
        caller, job, task = self.admit(actor, job_id, "jobs.read")
        if "assignee_id" in changes:
            self._access.require(actor, job.project_id, "jobs.assign", job)
            assignee = changes["assignee_id"]
            if assignee and self._projects.member(job.project_id, assignee) is None:
                raise ValidationError(f"Assignee '{assignee}' is not a member of this project",
                                      [{"field": "assignee_id", "message": "not a project member"}])
        if "status" in changes:
            target = changes["status"]
            action = "jobs.review" if (job.status, target) in REVIEW_MOVES else "jobs.status"
            self._access.require(actor, job.project_id, action, job)
            if target != job.status and target not in TRANSITIONS[job.status]:
                allowed = ", ".join(TRANSITIONS[job.status]) or "none"
                raise ConflictError(f"Job '{job_id}' is '{job.status}' and cannot move to '{target}' "
                                    f"(allowed: {allowed})")
            if target == job.status:
                raise ConflictError(f"Job '{job_id}' is already '{target}'")
        if not changes:
            return JobView(job, task)
        updated = self._jobs.change(job, changes)
        if "status" in changes:
            self._activity.record(actor, "job", job_id, "status_changed", project_id=job.project_id,
                                  summary=f"Job {job.sequence_number + 1} of \"{task.name}\": "
                                          f"{job.status} → {updated.status}",
                                  details={"task_id": task.id, "from": job.status, "to": updated.status})
        if "assignee_id" in changes:
            self._activity.record(actor, "job", job_id, "assigned", project_id=job.project_id,
                                  summary=f"Job {job.sequence_number + 1} of \"{task.name}\" assigned to "
                                          f"{updated.assignee_id or 'nobody'}",
                                  details={"task_id": task.id, "from": job.assignee_id, "to": updated.assignee_id})
        return JobView(updated, task)

    def job_image(self, job: Job, image_id: str) -> JobImage:
        """The image's place in the job; 404 if the job does not contain it."""
        return self._jobs.job_image(job, image_id)
