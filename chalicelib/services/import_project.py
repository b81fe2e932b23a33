"""What a dataset import makes in its project: the *project* and *store* steps of the `import`
state machine (services/dataset_import.py says what the whole machine does).

*project* creates the dataset's project once (named after it, owned by the dataset's owner,
recorded on the dataset), adds the labels the categories bring (type from the geometry, colours in
order), and one task per split of the images this import brought that no earlier import put in a
task, cut into jobs of the requested size. Ids are stable (`stable_id`), so a step that runs again
finds what an earlier attempt made. *store* saves each job's imported annotations `confirmed`,
in groups of `JOBS_PER_STORE` jobs, and freezes each job as its version 1 ("imported").
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError
from chalicelib.services.identity import Identity
from chalicelib.services.operations import folder
from chalicelib.store.datasets import DatasetRepository, dataset_prefix
from chalicelib.store.images import READY as IMAGE_READY
from chalicelib.store.images import Image
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import COMPLETED, Operation, OperationRepository

if TYPE_CHECKING:
    from chalicelib.services.activity import ActivityService
    from chalicelib.services.import_files import ImportFiles
    from chalicelib.services.registry import RegistryService
    from chalicelib.services.tasks import TaskService
    from chalicelib.store.annotations import AnnotationRepository
    from chalicelib.store.jobs import JobRepository
    from chalicelib.store.projects import ProjectRepository

JOBS_PER_STORE = 20  # jobs a store step saves
SAVE_ATTEMPTS = 3  # tries of one image's set, read again after a conflict
# Label colours, in order (Tableau 10, as matplotlib's default cycle: distinct and readable).
PALETTE = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22",
           "#17BECF")
IMPORT_NAMESPACE = uuid.UUID("6f1d7c52-2f4e-4f0e-9a55-6b1f3c1d2e10")


def stable_id(*parts: str) -> str:
    """The same id for the same parts: what an import makes is found again by a step run again."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, "/".join(parts)))


class ImportProject:
    def __init__(self, datasets: DatasetRepository, records: OperationRepository, cache: Bucket,
                 files: "ImportFiles", registry: "RegistryService", projects: "ProjectRepository",
                 tasks: "TaskService", jobs: "JobRepository", annotations: "AnnotationRepository",
                 documents: Bucket, activity: "ActivityService") -> None:
        self._datasets = datasets
        self._records = records
        self._cache = cache
        self._files = files
        self._registry = registry
        self._projects = projects
        self._tasks = tasks
        self._jobs = jobs
        self._annotations = annotations
        self._documents = documents
        self._activity = activity

    def project(self, operation_id: str) -> dict[str, Any]:
        from chalicelib.services.tasks import TaskSpec
        from chalicelib.store.projects import Member as ProjectMember
        from chalicelib.store.projects import Project

        operation = self._records.get(operation_id)
        dataset = self._datasets.get(operation.params["dataset_id"])
        plan = self._cache.get_json(f"{folder(operation_id)}/plan.json")
        document = self._cache.get_json(f"{folder(operation_id)}/annotations.json")
        rows = [row for row in self._files.images(operation_id, plan) if row["status"] == IMAGE_READY]
        owner = dataset.owner_id  # the dataset's owner owns its project, whoever ran the import
        project_id = self._datasets.claim_project(dataset.id, stable_id(dataset.id, "project"))
        if not self._projects.exists(project_id):
            now = utcnow()
            labels = _labels(document["categories"], [])
            self._projects.create(
                Project(id=project_id, name=dataset.name[:100], description=f"Imported from dataset {dataset.name}",
                        labels=labels, created_by=owner, created_at=now, updated_at=now),
                ProjectMember(project_id=project_id, user_id=owner, role="owner", added_by=owner, added_at=now))
            self._activity.record(Identity(sub=operation.created_by), "project", project_id, "created",
                                  project_id=project_id,
                                  summary=f'Created project "{dataset.name}" for dataset import')
        else:
            project = self._projects.get(project_id)
            labels = _labels(document["categories"], project.labels)
            if labels != project.labels:
                self._projects.update(project_id, {"labels": labels})
        # The images this import brought that no earlier import put in a task.
        earlier = [entry["task_ids"] for entry in dataset.imports
                   if entry.get("status") == COMPLETED and entry.get("task_ids")
                   and entry.get("operation_id") != operation_id]
        taken = {use.image_id for use in self._jobs.images_of_tasks([t for ids in earlier for t in ids])}
        number = 1 + sum(1 for entry in dataset.imports if entry.get("status") == COMPLETED
                         and entry.get("operation_id") != operation_id)
        found = self._registry.records_by_id([row["id"] for row in rows if row["id"] not in taken])
        by_split: dict[str, list[Image]] = {}
        for row in sorted(rows, key=lambda row: row["path"]):
            image = found.get(row["id"])
            if image is not None:
                by_split.setdefault(document["splits"].get(row["path"], "none"), []).append(image)
        tasks, jobs, tasked = [], [], []
        for split in ("train", "val", "test", "none"):
            images = by_split.get(split)
            if not images:
                continue
            name = dataset.name[:80] + (f" ({split})" if len(by_split) > 1 else "")
            name += f" (import {number})" if number > 1 else ""
            spec = TaskSpec(name=name, chunk_size=operation.params.get("chunk_size", 100), split=split)
            task_id = stable_id(dataset.id, "import", str(number), split)
            created = self._tasks.ensure_task(owner, project_id, task_id, spec, images, "dataset")
            tasks.append(task_id)
            tasked += [image.file_path.removeprefix(dataset.prefix) for image in images]
            jobs += [[task_id, job.id] for job in created.jobs]
        self._cache.put_json(f"{folder(operation_id)}/project.json",
                             {"project_id": project_id, "task_ids": tasks, "jobs": jobs, "paths": sorted(tasked)})
        groups = -(-len(jobs) // JOBS_PER_STORE)
        return {"operation_id": operation_id, "groups": list(range(groups))}

    def store(self, operation_id: str, group: int) -> dict[str, Any]:
        """Save the imported annotations of one group of jobs (`JOBS_PER_STORE`; a Map item per job
        would overrun an execution's 25,000 history events at a chunk size of 1)."""
        operation = self._records.get(operation_id)
        project = self._cache.get_json(f"{folder(operation_id)}/project.json")
        document = self._cache.get_json(f"{folder(operation_id)}/annotations.json")
        jobs = project["jobs"][group * JOBS_PER_STORE:(group + 1) * JOBS_PER_STORE]
        count = sum(self._store_job(operation, project, document, task_id, job_id) for task_id, job_id in jobs)
        return {"group": group, "jobs": len(jobs), "annotations": count}

    def _store_job(self, operation: Operation, project: dict, document: dict, task_id: str, job_id: str) -> int:
        """Save one job's imported annotations (`confirmed`) and freeze them as its version 1."""
        from chalicelib.store.annotations import Version

        dataset_id = operation.params["dataset_id"]
        job = self._jobs.get(job_id)
        prefix = dataset_prefix(dataset_id)
        job_images = self._jobs.images_of_job(job)
        records = self._registry.records_by_id([entry.image_id for entry in job_images])
        wanted: dict[str, list[dict[str, Any]]] = {}
        for entry in job_images:
            image = records.get(entry.image_id)
            shapes = document["images"].get(image.file_path.removeprefix(prefix)) if image else None
            if shapes:
                wanted[entry.image_id] = [{"id": stable_id(job_id, entry.image_id, str(n)), "state": "confirmed",
                                           **shape} for n, shape in enumerate(shapes)]
        current = {item.image_id: item for item in self._annotations.of_job(job_id)}

        def save(image_id: str) -> int:
            have = current.get(image_id)
            for _ in range(SAVE_ATTEMPTS):
                if have is not None and have.annotations == wanted[image_id]:
                    return have.rev
                rev = have.rev if have else 0
                try:
                    return self._annotations.replace(project["project_id"], task_id, job_id, image_id,
                                                     wanted[image_id], rev, len(have.annotations) if have else 0,
                                                     operation.created_by, utcnow()).rev
                except ConflictError:
                    # Saved meanwhile: by an attempt of this step whose answer was lost (its write
                    # landed after it timed out), or by a person. Read it again and judge anew.
                    have = self._annotations.get(job_id, image_id)
            raise ConflictError(f"Annotations of image '{image_id}' in job '{job_id}' keep changing; "
                                "the import was not able to save them")

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="store") as pool:
            revs = dict(zip(sorted(wanted), pool.map(save, sorted(wanted))))
        if not self._annotations.versions(job_id):
            now = utcnow()
            key = f"projects/{project['project_id']}/tasks/{task_id}/jobs/{job_id}/versions/imported.json"
            sets = [{"image_id": image_id, "rev": revs[image_id], "annotations": wanted[image_id]}
                    for image_id in sorted(wanted)]
            self._documents.put_json(key, {"job_id": job_id, "task_id": task_id, "project_id": project["project_id"],
                                           "note": "imported", "created_by": operation.created_by,
                                           "created_at": now.isoformat(), "images": sets})
            self._annotations.add_version(Version(
                job_id=job_id, number=1, document_key=key, image_count=len(sets),
                annotation_count=sum(len(item["annotations"]) for item in sets), created_by=operation.created_by,
                created_at=now, note="imported"))
        return sum(len(shapes) for shapes in wanted.values())


def _labels(categories: dict[str, str], labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The project's labels with the categories it lacks (type from the geometry they carry)."""
    have = {label["name"].casefold() for label in labels}
    added = [name for name in sorted(categories) if name.casefold() not in have]
    return [*labels, *({"name": name, "annotation_type": categories[name],
                        "color": PALETTE[(len(labels) + n) % len(PALETTE)]} for n, name in enumerate(added))]
