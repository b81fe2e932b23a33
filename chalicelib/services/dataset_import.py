"""A dataset's import: the `import` state machine (infra/statemachines/import.asl.json) and the call
that starts it.

What is imported is everything the dataset holds: the files staged for it (`uploads/<id>/` in the
datasets bucket: ZIPs, annotation files) and the images already under its prefix in the share
(uploaded one by one, or by an earlier import). The steps (*inspect* and *extract* are
services/import_files.py's):

- *inspect*: each staged ZIP's central directory, by ranged reads. Anything to refuse (an unsafe
  name, a link, a nested archive, encryption, duplicates, limits, a bomb) or an annotation file
  that cannot be used (bad JSON, a format we do not read, image references that match no path:
  the `file_name: '1', '2', '3'` defect) fails the import before anything is written, naming every
  offending member or file. Otherwise the staged loose files are copied under the prefix and the
  plan (members cut into batches, the keys already there) is written to the cache bucket.
- *extract* (a Map over batches): each ZIP member is streamed from the archive to the share
  (ranged GET, inflate, PutObject or multipart); an image is spooled on the way (memory up to a
  limit, disk past it) and its facts (hashes, size, thumbnail) derived from those bytes, then its
  registry record written at once. The object's S3 event then finds the record current and stops
  (`RegistryService.apply`): no image is read or derived twice. Images already under the prefix
  are registered like any (their events usually have). A batch's result is kept, so a batch that
  runs again reports its first result.
- *annotations*: the annotation files parsed against the dataset's image paths and sizes
  (formats/annotation_import.py), into one normalised document; every unusable item is a problem.
- *project*: the dataset's project (created once, recorded on the dataset), its labels from the
  categories, and one task per split of the images this import brought (chunk size from the
  request), each with a deterministic id so a re-run finds what a killed run made.
- *store* (a Map over groups of jobs): each image's annotations saved `confirmed` in its job, then
  frozen as the job's version 1 ("imported"); a set already saved is left as it is. (*project* and
  *store* are services/import_project.py's.)
- *finish*: the dataset's counts, storage by kind, folder tree, project and import history; the
  seed's `upload_summary` with problems, duplicates and the project as the operation's result;
  the staged files removed; an `uploaded` audit entry.
Any failure ends in *fail*, which records the error on the operation and the dataset.
"""
from __future__ import annotations

import posixpath
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterable

from aws_lambda_powertools import Logger

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.formats import Shape, annotation_import, dataset_contents
from chalicelib.ids import new_id
from chalicelib.services.identity import Identity
from chalicelib.formats.dataset_contents import File
from chalicelib.services.import_files import ImportFiles, staging_prefix
from chalicelib.services.import_project import ImportProject, stable_id
from chalicelib.services.operations import caught_message, folder
from chalicelib.store.datasets import FAILED, IMPORTING, READY, Dataset, DatasetRepository, dataset_prefix
from chalicelib.store.images import READY as IMAGE_READY
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import COMPLETED, Operation, OperationRepository

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.activity import ActivityService
    from chalicelib.services.operations import WorkflowStarter
    from chalicelib.services.registry import RegistryService
    from chalicelib.services.registry_index import IndexedRegistry
    from chalicelib.store.jobs import JobRepository

logger = Logger(child=True)
IMPORT = "import_dataset"
CHECKED_NOW_BYTES = 10 << 20  # loose annotation files the import call itself reads, together
SUMMARY_PROBLEMS = 100  # in the operation's result; all of them in its result document
SUMMARY_DUPLICATES = 100
HISTORY_PROBLEMS = 20  # kept with a completed import in the dataset's history


class DatasetImportService:
    def __init__(self, settings: Settings, access: "Access", datasets: DatasetRepository,
                 records: OperationRepository, staging: Bucket, share: Bucket, cache: Bucket, files: ImportFiles,
                 project: ImportProject, registry: "RegistryService", registry_index: "IndexedRegistry",
                 jobs: "JobRepository", activity: "ActivityService", start_workflow: "WorkflowStarter",
                 execution_running: Callable[[str, str], bool]) -> None:
        self._execution_running = execution_running
        self._settings = settings
        self._access = access
        self._datasets = datasets
        self._records = records
        self._staging = staging
        self._share = share
        self._cache = cache
        self._files = files
        self._registry = registry
        self._registry_index = registry_index
        self._project = project
        self._jobs = jobs
        self._activity = activity
        self._start_workflow = start_workflow

    # API side -------------------------------------------------------------------------------------

    def start(self, actor: "Identity", dataset: Dataset, chunk_size: int) -> Operation:
        """Check there is something to import, check loose annotation files, start the machine."""
        staged = [info for page in self._staging.walk(staging_prefix(dataset.id)) for info in page]
        present = next(iter(self._share.walk(dataset.prefix)), [])
        if not staged and not present:
            raise ValidationError(
                f"Dataset '{dataset.id}' has nothing to import: upload images (POST …/upload-urls) or a ZIP or "
                "annotation file (POST …/uploads, then …/uploads/complete) first",
                [{"field": "uploads", "location": "body", "message": "no upload", "type": "value_error"}])
        loose = {info.key.removeprefix(staging_prefix(dataset.id)): info for info in staged
                 if not info.key.lower().endswith(".zip")}
        if loose and sum(info.size for info in loose.values()) <= CHECKED_NOW_BYTES:
            # Read now, so bad JSON or an unknown format is the answer to this call (more than an
            # API call should read is checked by the inspect step, with the same refusals).
            files = {name: self._staging.read(info.key)[0] for name, info in loose.items()
                     if dataset_contents.sort([File(name, 0)]).annotation_files}
            if files:
                annotation_import.detect(files)
        if dataset.status == IMPORTING and dataset.operation_id:
            self._reap(dataset)
        operation_id = new_id()
        self._datasets.begin_import(dataset.id, operation_id, {
            "operation_id": operation_id, "started_at": utcnow().isoformat(), "status": "running",
            "files": sorted(info.key.removeprefix(staging_prefix(dataset.id)) for info in staged)[:100]})
        operation = self._records.create(operation_id, IMPORT, {"dataset_id": dataset.id, "chunk_size": chunk_size},
                                         actor.sub)
        try:
            self._start_workflow(self._settings.import_state_machine, f"import-{operation.id}",
                                 {"operation_id": operation.id})
        except Exception:
            self._records.fail(operation.id, "the import could not be started")
            self._datasets.end_import(dataset.id, operation.id, dataset.status, {"status": "failed"})
            raise
        return operation

    def _reap(self, dataset: Dataset) -> None:
        """An import whose execution ended without recording it (stopped, or its failure step failed
        too) is recorded failed, so that the dataset can be imported again; a running one stays (409)."""
        previous = dataset.operation_id
        if self._execution_running(self._settings.import_state_machine, f"import-{previous}"):
            raise ConflictError(f"Dataset '{dataset.id}' is being imported already (operation '{previous}'); "
                                "wait for it to end")
        message = "the import stopped before it ended; it was not recorded"
        try:
            if self._records.get(previous).status not in (COMPLETED, "failed"):
                self._records.fail(previous, message)
        except NotFoundError:
            pass
        finished = any(entry.get("status") == COMPLETED for entry in dataset.imports)
        self._datasets.end_import(dataset.id, previous, READY if finished else FAILED,
                                  {"status": "failed", "error": message})

    # Steps ----------------------------------------------------------------------------------------

    def inspect(self, operation_id: str) -> dict[str, Any]:
        return self._files.inspect(operation_id)

    def extract(self, operation_id: str, batch: int) -> dict[str, int]:
        return self._files.extract(operation_id, batch)

    def annotations(self, operation_id: str) -> dict[str, Any]:
        operation = self._records.get(operation_id)
        dataset_id = operation.params["dataset_id"]
        plan = self._cache.get_json(f"{folder(operation_id)}/plan.json")
        images = [row for row in self._files.images(operation_id, plan) if row["status"] == IMAGE_READY]
        document: dict[str, Any] = {"format": None, "categories": {}, "images": {}, "splits": {}, "problems": [],
                                    "problem_count": 0}
        if plan["annotation_files"]:
            files = {name: self._share.read(dataset_prefix(dataset_id) + name)[0] for name in plan["annotation_files"]}
            parsed = annotation_import.parse(files, [row["path"] for row in images],
                                             {row["path"]: (row["width"], row["height"]) for row in images})
            document = {"format": parsed.format, "categories": parsed.categories,
                        "images": {path: [_shape_dict(shape) for shape in shapes]
                                   for path, shapes in parsed.images.items()},
                        "splits": parsed.splits, "problems": [problem.as_dict() for problem in parsed.problems],
                        "problem_count": parsed.problem_count}
        self._cache.put_json(f"{folder(operation_id)}/annotations.json", document)
        return {"operation_id": operation_id, "format": document["format"],
                "annotated_images": sum(1 for shapes in document["images"].values() if shapes)}
    def project(self, operation_id: str) -> dict[str, Any]:
        return self._project.project(operation_id)

    def store(self, operation_id: str, group: int) -> dict[str, Any]:
        return self._project.store(operation_id, group)

    def finish(self, operation_id: str) -> dict[str, Any]:
        operation = self._records.get(operation_id)
        if operation.status == COMPLETED:
            return {"operation_id": operation_id, "status": operation.status}
        dataset_id = operation.params["dataset_id"]
        plan = self._cache.get_json(f"{folder(operation_id)}/plan.json")
        document = self._cache.get_json(f"{folder(operation_id)}/annotations.json")
        project = self._cache.get_json(f"{folder(operation_id)}/project.json")
        rows = self._files.images(operation_id, plan)
        ready = [row for row in rows if row["status"] == IMAGE_READY]
        failed = self._files.failed(operation_id, plan) + [{"path": row["path"], "reason": row.get("reason") or row["status"]}
                                                     for row in rows if row["status"] != IMAGE_READY]
        tasked = set(project["paths"])
        annotations = sum(len(shapes) for path, shapes in document["images"].items() if path in tasked)
        files = ", ".join(plan["annotation_files"][:3]) + (" …" if len(plan["annotation_files"]) > 3 else "")
        kept = [{"file": files, "image": path, "reason": "the image is in a task of an earlier import: its "
                                                           "annotations there are kept, these are not imported"}
                for path, shapes in sorted(document["images"].items()) if shapes and path not in tasked]
        duplicates = self._duplicates(dataset_id, ready)
        problems = (document["problems"] + kept
                    + [{"file": row["path"], "reason": row["reason"]} for row in failed])
        summary = {
            "upload_summary": {
                "images_uploaded": len(ready),
                "folder_structure": _folders(row["path"] for row in ready),
                "annotations_imported": annotations,
                "annotation_format": document["format"],
                "storage_bytes": {**plan["bytes"], "total": sum(plan["bytes"].values())},
            },
            "problem_count": document["problem_count"] + len(kept) + len(failed),
            "problems": problems[:SUMMARY_PROBLEMS],
            "duplicates": duplicates[:SUMMARY_DUPLICATES],
            "duplicate_count": len(duplicates),
            "failed_images": len(failed),
            "project_id": project["project_id"],
            "task_ids": project["task_ids"],
        }
        result_key = None
        if len(problems) > SUMMARY_PROBLEMS or len(duplicates) > SUMMARY_DUPLICATES:
            result_key = f"{folder(operation_id)}/result.json"
            self._cache.put_json(result_key, {**summary, "problems": problems, "duplicates": duplicates})
        facts = self._dataset_facts(dataset_id, project["project_id"])
        self._datasets.end_import(dataset_id, operation_id, READY, {
            "status": COMPLETED, "finished_at": utcnow().isoformat(), "images": len(ready),
            "annotations": annotations, "problem_count": summary["problem_count"],
            "problems": problems[:HISTORY_PROBLEMS], "task_ids": project["task_ids"]}, facts)
        for key in plan["staged"]:
            self._staging.delete(key)
        actor = Identity(sub=operation.created_by) if operation.created_by else None
        details = {"operation_id": operation_id, "images": len(ready), "annotations": annotations,
                   "problems": summary["problem_count"], "project_id": project["project_id"]}
        self._activity.audit(actor, dataset_id, "uploaded", details=details,
                             summary=f"Imported {len(ready)} image(s) and {annotations} annotation(s)",
                             once=(stable_id(operation_id, "uploaded"), operation.created_at))
        self._activity.record(actor, "dataset", dataset_id, "uploaded", project_id=project["project_id"],
                              summary=f"Imported {len(ready)} image(s) and {annotations} annotation(s)",
                              details=details)
        self._records.finish(operation_id, summary, result_key)
        return {"operation_id": operation_id, "status": COMPLETED}

    def _dataset_facts(self, dataset_id: str, project_id: str) -> dict[str, Any]:
        """What the dataset holds now, from its prefix (every import so far, and loose uploads)."""
        prefix = dataset_prefix(dataset_id)
        files = [File(info.key.removeprefix(prefix), info.size) for page in self._share.walk(prefix) for info in page]
        contents = dataset_contents.sort(files)
        records = self._registry.records_of([prefix + item.name for item in contents.images])
        document_count = 0
        project_tasks = self._tasks_of(project_id)
        if project_tasks:
            document_count = sum(job_image.annotation_count or 0
                                 for job_image in self._jobs.images_of_tasks(project_tasks))
        return {"image_count": sum(1 for image in records.values() if image.status == IMAGE_READY),
                "annotation_count": document_count, "bytes_images": contents.bytes_images,
                "bytes_annotations": contents.bytes_annotations, "bytes_other": contents.bytes_other,
                "folders": _folders(image.file_path.removeprefix(prefix) for image in records.values()
                                    if image.status == IMAGE_READY), "project_id": project_id}

    def _tasks_of(self, project_id: str) -> list[str]:
        from chalicelib.store.tasks import TaskRepository

        return [task.id for task in TaskRepository().tasks(project_id)]

    def _duplicates(self, dataset_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Imported images whose bytes are already in the registry under another path."""
        by_hash: dict[str, list[str]] = {}
        for row in rows:
            if row.get("sha256"):
                by_hash.setdefault(row["sha256"], []).append(row["path"])
        if not by_hash:
            return []
        prefix = dataset_prefix(dataset_id)
        found = self._registry_index.index().with_content(list(by_hash))
        duplicates = []
        for sha, paths_here in sorted(by_hash.items()):
            mine = {prefix + path for path in paths_here}
            elsewhere = sorted(path for _, path in found.get(sha, []) if path not in mine)
            if elsewhere or len(paths_here) > 1:
                duplicates.append({"sha256": sha, "paths": sorted(paths_here), "registered_at": elsewhere[:20]})
        return duplicates

    def fail(self, operation_id: str, error: dict[str, Any]) -> dict[str, Any]:
        """The failure path: the operation and the dataset say why (a refusal names its problems)."""
        operation = self._records.get(operation_id)
        message = caught_message(error, "the import failed")
        problems_key = f"{folder(operation_id)}/problems.json"
        problems = self._cache.get_json(problems_key) if self._cache.exists(problems_key) else []
        dataset_id = operation.params["dataset_id"]
        try:
            dataset = self._datasets.get(dataset_id)
        except NotFoundError:
            dataset = None
        if dataset is not None:
            # The dataset first: whoever sees the operation failed then finds the dataset says so.
            finished = any(entry.get("status") == COMPLETED for entry in dataset.imports)
            self._datasets.end_import(dataset_id, operation_id, READY if finished else FAILED,
                                      {"status": "failed", "finished_at": utcnow().isoformat(),
                                       "error": message[:2000], "problem_count": len(problems),
                                       "problems": problems[:SUMMARY_PROBLEMS]})
        if operation.status != "failed":
            self._records.fail(operation_id, message)
        return {"error": message}


def _folders(paths: Iterable[str]) -> dict[str, int]:
    """Folder ('' for the top) → how many of these images it holds (images that failed are not counted)."""
    return dict(sorted(Counter(posixpath.dirname(path) for path in paths).items()))


def _shape_dict(shape: Shape) -> dict[str, Any]:
    if shape.type == "bbox":
        return {"type": "bbox", "label": shape.label, "bbox": list(shape.bbox)}
    return {"type": shape.type, "label": shape.label, "points": [list(point) for point in shape.points or ()]}

