"""What deleting a dataset touches (the impact) and the purge that removes it for good.

The impact is read from indexes, never by reading everything: the registry index counts the
images and bytes under the dataset's prefix; the pool's sparse `by_dataset` index lists every pool
entry of its images in every project, with their annotation counts (exact: store/pool.py); each
affected project's Explore index names the tasks and jobs those images sit in; the jobs' version
items and the projects' export records (`datasets`: which datasets an export holds) do the rest.

The purge is a chain of steps of the `delete-dataset` state machine, each idempotent:
- *plan*: the dataset goes `deleted → purging` and what to remove is written once to the cache
  bucket (`purges/<dataset>/`: the images with their hashes, sizes and tags; each project's pool
  entries of them), so a step that runs again — or a purge run again after a failure — works from
  the same list even once the registry records are gone;
- *project* (a Map over the affected projects): the images' job images, annotation sets and
  their history, pool entries and job/task totals; frozen versions lose those images' entries (the
  document is rewritten and its older S3 versions deleted). The dataset's own project (the one its
  import created) goes whole: tasks, jobs, annotations, versions, exports, members, the project;
- *registry*: the tag links (each tag's usage count is recounted from its links), the records,
  the images' ML analyses with their predictions (the sparse `by_dataset` index of analyses);
- *objects*: the images in the share, thumbnails no other image shares, export artifacts that
  contain the images, staged uploads and the analyses' artifacts (`ml_outputs/<analysis>/`, every
  S3 version), and a manifest of the keys deleted;
- *finish*: the dataset is `purged` (its record and audit log stay; its name is free again).
Every DynamoDB delete goes by BatchWriteItem (25 a request), every S3 delete by DeleteObjects
(1,000 keys a request); bench/bench_deletion.py counts the requests against those floors.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterable

from aws_lambda_powertools import Logger

from chalicelib.errors import NotFoundError
from chalicelib.services.registry import thumbnail_key
from chalicelib.store.analyses import AnalysisRepository
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.store.datasets import Dataset, DatasetRepository, dataset_prefix
from chalicelib.store.exports import ExportRepository
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import JobImage, JobRepository
from chalicelib.store.objects import Bucket, ObjectInfo
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tags import TagRepository
from chalicelib.store.tasks import TaskRepository

if TYPE_CHECKING:
    from chalicelib.services.explore_index import IndexedExplore
    from chalicelib.services.registry_index import IndexedRegistry

logger = Logger(child=True)
READERS = 8
SHARE_KEYS_PER_RUN = 5_000  # objects one run of the objects step deletes (5 DeleteObjects; minutes on the emulator)


def work_prefix(dataset_id: str) -> str:
    return f"purges/{dataset_id}/"


def manifest_key(dataset_id: str, operation_id: str) -> str:
    return f"deletions/{dataset_id}/{operation_id}/s3-keys-deleted.txt"


class DatasetPurge:
    def __init__(self, datasets: DatasetRepository, pool: PoolRepository, images: ImageRepository,
                 image_tags: ImageTagRepository, tags: TagRepository, projects: ProjectRepository,
                 tasks: TaskRepository, jobs: JobRepository, annotations: AnnotationRepository,
                 exports: ExportRepository, share: Bucket, cache: Bucket, documents: Bucket, artifacts: Bucket,
                 explore_index: "IndexedExplore", registry_index: "IndexedRegistry",
                 analyses: AnalysisRepository) -> None:
        self._analyses = analyses
        self._datasets = datasets
        self._pool = pool
        self._images = images
        self._image_tags = image_tags
        self._tags = tags
        self._projects = projects
        self._tasks = tasks
        self._jobs = jobs
        self._annotations = annotations
        self._exports = exports
        self._share = share
        self._cache = cache
        self._documents = documents
        self._artifacts = artifacts
        self._explore_index = explore_index
        self._registry_index = registry_index

    # The impact ---------------------------------------------------------------------------------

    def impact(self, dataset: Dataset) -> dict[str, Any]:
        """What deleting the dataset touches, per project and in total (see the module's note)."""
        prefix = dataset_prefix(dataset.id)
        images, image_bytes = self._registry_index.index().totals_under(prefix)
        per_project: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for project_id, _, annotation_count in self._pool.of_dataset(dataset.id):
            per_project[project_id][0] += 1
            per_project[project_id][1] += annotation_count
        project_ids = sorted(set(per_project) | ({dataset.project_id} if dataset.project_id else set()))
        projects, jobs_touched, tasks, jobs = [], [], 0, 0
        for project_id in project_ids:
            try:
                project = self._projects.get(project_id)
            except NotFoundError:
                continue
            _, task_count, job_count, job_ids = self._explore_index.current(project_id).usage_under(prefix)
            tasks, jobs = tasks + task_count, jobs + job_count
            jobs_touched += job_ids
            pooled, annotations = per_project.get(project_id, [0, 0])
            own = project_id == dataset.project_id
            projects.append({"project_id": project_id, "name": project.name, "own": own,
                             "action": "deleted" if own else "loses images", "images": pooled,
                             "annotations": annotations, "tasks": task_count, "jobs": job_count})
        versions = self._count_versions(jobs_touched)
        exports = [{"project_id": export.project_id, "export_id": export.id, "name": export.name,
                    "status": export.status}
                   for project_id in project_ids for export in self._exports.of_project(project_id)
                   if dataset.id in export.datasets]
        staged = sum(info.size for page in self._documents.walk(f"uploads/{dataset.id}/") for info in page)
        files = dataset.bytes_annotations + dataset.bytes_other  # the import's other files under the prefix
        return {"images": images, "annotations": sum(count for _, count in per_project.values()),
                "annotation_versions": versions, "projects": projects, "tasks": tasks, "jobs": jobs,
                "exports": exports, "storage_bytes": image_bytes + files + staged}

    def projects(self, dataset: Dataset) -> list[dict[str, Any]]:
        """The projects using the dataset's images (its own first), by id and name: a few requests
        however many images (what a deletion request checks before it answers)."""
        found = [dataset.project_id] if dataset.project_id else []
        found += [project_id for project_id in self._pool.projects_of_dataset(dataset.id) if project_id not in found]
        projects = []
        for project_id in found:
            try:
                projects.append({"project_id": project_id, "name": self._projects.get(project_id).name})
            except NotFoundError:
                continue
        return projects

    # The purge's steps ----------------------------------------------------------------------------

    def plan(self, dataset_id: str) -> dict[str, Any]:
        """Write (once) what the purge removes; returns the projects for the Map."""
        work = work_prefix(dataset_id)
        if self._cache.exists(f"{work}plan.json"):
            return self._cache.get_json(f"{work}plan.json")
        dataset = self._datasets.get(dataset_id)
        entries = self._images.catalog(dataset_prefix(dataset_id))
        self._cache.put(f"{work}images.jsonl", b"\n".join(json.dumps(
            [entry.id, entry.file_path, entry.sha256, entry.size or 0, sorted(entry.tag_ids)]).encode()
            for entry in entries), "application/x-ndjson")
        pooled: dict[str, list[str]] = defaultdict(list)
        annotations = 0
        for project_id, image_id, count in self._pool.of_dataset(dataset_id):
            pooled[project_id].append(image_id)
            annotations += count
        for project_id, image_ids in pooled.items():
            self._cache.put(f"{work}pool-{project_id}.txt", "\n".join(image_ids).encode(), "text/plain")
        own = dataset.project_id
        projects = [{"project_id": project_id, "own": project_id == own}
                    for project_id in sorted(set(pooled) | ({own} if own else set()))]
        analyses = self._analyses.of_dataset(dataset_id)
        self._cache.put(f"{work}analyses.txt", "\n".join(analyses).encode(), "text/plain")
        plan = {"dataset_id": dataset_id, "projects": projects, "images": len(entries), "annotations": annotations,
                "analyses": len(analyses)}
        self._cache.put_json(f"{work}plan.json", plan)  # last: a plan half-written is written again
        return plan

    def project(self, dataset_id: str, project_id: str, own: bool) -> dict[str, int]:
        """Remove the dataset's images from one project (the dataset's own project: all of it)."""
        work = work_prefix(dataset_id)
        done_key = f"{work}done/project-{project_id}.json"
        if self._cache.exists(done_key):
            return self._cache.get_json(done_key)
        pooled_key = f"{work}pool-{project_id}.txt"
        pooled = ([line.decode() for line in self._cache.lines(pooled_key) if line]
                  if self._cache.exists(pooled_key) else [])
        image_ids = set(pooled) if not own else None
        tasks = self._tasks.tasks(project_id, include_all=True)
        placed = self._jobs.images_of_tasks([task.id for task in tasks]) if tasks else []
        chosen: list[JobImage] = placed if own else [image for image in placed if image.image_id in image_ids]
        counts = {"job_images": len(chosen), "projects": 0, "versions": 0}
        if own:
            jobs = [job for task in tasks for job in self._jobs.of_task(task.id)]
            counts["versions"] = self._count_versions(job.id for job in jobs)
            counts["annotation_items"] = self._annotations.delete_jobs([job.id for job in jobs])
            self._jobs.delete_images(chosen)
            self._jobs.delete_jobs(job.id for job in jobs)
            self._documents.delete_versions(f"projects/{project_id}/")
            self._artifacts.delete_prefix(f"exports/{project_id}/")
            self._pool.delete_pool(project_id)
            self._projects.delete_partition(project_id)  # tasks, members, filters, export records, the project
            self._explore_index.purge_project(project_id)
            counts["projects"] = 1
        else:
            touched_jobs = sorted({image.job_id for image in chosen})
            counts["versions"] = self._strip_versions(touched_jobs, image_ids)
            counts["annotation_items"] = self._annotations.delete_images(touched_jobs, image_ids)
            self._jobs.delete_images(chosen)
            self._jobs.adjust_totals({job: -n for job, n in Counter(image.job_id for image in chosen).items()})
            for task_id, n in Counter(image.task_id for image in chosen).items():
                self._tasks.adjust_total(project_id, task_id, -n)
            self._pool.remove_all(project_id, pooled)
            self._tasks.record_changed(project_id, sorted({image.task_id for image in chosen}))
        counts["pool_entries"] = len(pooled)
        self._cache.put_json(done_key, counts)
        return counts

    def registry(self, dataset_id: str) -> dict[str, int]:
        """Tag links (tag counts recounted), then the registry records."""
        rows = list(self._plan_images(dataset_id))
        links = [(tag_id, row[0]) for row in rows for tag_id in row[4]]
        removed_links = self._image_tags.delete_links(links)
        for tag_id in sorted({tag_id for tag_id, _ in links}):
            try:
                self._tags.set_usage(tag_id, sum(1 for _ in self._image_tags.images_with(tag_id)))
            except NotFoundError:  # the tag was deleted meanwhile
                continue
        records = self._images.delete_records([row[0] for row in rows])
        analysis_items = self._analyses.delete_all(self._plan_analyses(dataset_id))
        return {"tag_links": removed_links, "records": records, "analysis_items": analysis_items}

    def objects(self, dataset_id: str, operation_id: str) -> dict[str, Any]:
        """S3: the objects under the prefix, `SHARE_KEYS_PER_RUN` at a time (the machine runs the step
        again while `more` is true: a large dataset never meets the step's time limit), then
        unshared thumbnails, export artifacts with the images, staged uploads and the analyses'
        artifacts, and the manifest of every key deleted. The final counts are kept, so a re-run
        reports the first."""
        work = work_prefix(dataset_id)
        done_key = f"{work}done/objects.json"
        if self._cache.exists(done_key):
            return self._cache.get_json(done_key)
        prefix = dataset_prefix(dataset_id)
        batch: list[ObjectInfo] = []
        for page in self._share.walk(prefix):
            batch += page
            if len(batch) >= SHARE_KEYS_PER_RUN:
                break
        if batch:  # what this run deletes is noted first, for the manifest and the bytes freed
            self._cache.put(f"{work}deleted/{batch[0].key.removeprefix(prefix)}.jsonl".replace("//", "/"),
                            b"\n".join(json.dumps([info.key, info.size]).encode() for info in batch),
                            "application/x-ndjson")
            self._share.delete_keys([info.key for info in batch])
            if len(batch) >= SHARE_KEYS_PER_RUN:
                return {"more": True, "deleted": len(batch)}
        deleted = {key: size for page in self._cache.walk(f"{work}deleted/") for info in page
                   for key, size in (json.loads(line) for line in self._cache.lines(info.key) if line)}
        rows = list(self._plan_images(dataset_id))
        image_keys = sorted({row[1] for row in rows} | set(deleted))
        hashes = sorted({row[2] for row in rows if row[2]})
        still_used = set(self._registry_index.index().with_content(hashes)) if hashes else set()
        thumbnails = [thumbnail_key(sha) for sha in hashes if sha not in still_used]
        self._cache.delete_keys(thumbnails)
        artifacts: list[str] = []
        plan = self._cache.get_json(f"{work}plan.json")
        for entry in plan["projects"]:
            if entry["own"]:
                continue  # gone with its project
            for export in self._exports.of_project(entry["project_id"]):
                if dataset_id in export.datasets:
                    artifacts += [info.key for page in self._artifacts.walk(
                        f"exports/{export.project_id}/{export.id}/") for info in page]
                    self._artifacts.delete_prefix(f"exports/{export.project_id}/{export.id}/")
                    self._exports.delete(export.project_id, export.id)
        staged_bytes = sum(info.size for page in self._documents.walk(f"uploads/{dataset_id}/") for info in page)
        outputs = [f"ml_outputs/{analysis_id}/" for analysis_id in self._plan_analyses(dataset_id)]
        uploads = self._documents.delete_versions(f"uploads/{dataset_id}/", *outputs)
        manifest = [f"s3://{self._share.name}/{key}" for key in image_keys]
        manifest += [f"s3://{self._cache.name}/{key}" for key in thumbnails]
        manifest += [f"s3://{self._artifacts.name}/{key}" for key in artifacts]
        key = manifest_key(dataset_id, operation_id)
        self._documents.put(key, "\n".join(manifest).encode(), "text/plain")
        counts = {"objects": len(image_keys), "thumbnails": len(thumbnails), "export_artifacts": len(artifacts),
                  "staged_versions": uploads, "manifest_key": key, "bytes": sum(deleted.values()) + staged_bytes,
                  "more": False}
        self._cache.put_json(done_key, counts)
        return counts

    def position(self, dataset_id: str, project_id: str) -> int:
        """The project's place in the plan (progress is counted once per project)."""
        plan = self._cache.get_json(f"{work_prefix(dataset_id)}plan.json")
        return [entry["project_id"] for entry in plan["projects"]].index(project_id)

    def planned(self, dataset_id: str) -> dict[str, Any]:
        return self._cache.get_json(f"{work_prefix(dataset_id)}plan.json")

    def done(self, dataset_id: str) -> None:
        """The purge's working files go (the manifest stays, in the datasets bucket)."""
        self._cache.delete_prefix(work_prefix(dataset_id))

    def project_counts(self, dataset_id: str) -> list[dict[str, int]]:
        work = work_prefix(dataset_id)
        return [self._cache.get_json(info.key) for page in self._cache.walk(f"{work}done/project-") for info in page]

    # Helpers --------------------------------------------------------------------------------------

    def _plan_images(self, dataset_id: str) -> Iterable[list]:
        for line in self._cache.lines(f"{work_prefix(dataset_id)}images.jsonl"):
            if line:
                yield json.loads(line)

    def _plan_analyses(self, dataset_id: str) -> list[str]:
        key = f"{work_prefix(dataset_id)}analyses.txt"
        return [line.decode() for line in self._cache.lines(key) if line] if self._cache.exists(key) else []

    def _count_versions(self, job_ids: Iterable[str]) -> int:
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            return sum(pool.map(lambda job_id: len(self._annotations.versions(job_id)), list(job_ids)))

    def _strip_versions(self, job_ids: list[str], image_ids: set[str]) -> int:
        """Frozen versions of other projects' jobs lose the purged images' entries: the document is
        rewritten without them (its earlier S3 versions deleted) and its counts follow. Returns how
        many versions changed (re-runnable: a document already stripped is left alone)."""
        rewritten: dict[str, set[str]] = defaultdict(set)  # task folder → documents rewritten in it
        for job_id in job_ids:
            for version in self._annotations.versions(job_id):
                document = self._documents.get_json(version.document_key)
                kept = [entry for entry in document.get("images", []) if entry["image_id"] not in image_ids]
                if len(kept) == len(document.get("images", [])):
                    continue
                document["images"] = kept
                self._documents.put_json(version.document_key, document)
                self._annotations.recount_version(job_id, version.number, len(kept),
                                                  sum(len(entry["annotations"]) for entry in kept))
                rewritten[version.document_key.split("/jobs/", 1)[0] + "/"].add(version.document_key)
        # The documents' earlier bytes: one listing per task folder, deleted 1,000 a request.
        for folder, keys in rewritten.items():
            self._documents.delete_earlier_versions(folder, keys)
        return sum(len(keys) for keys in rewritten.values())
