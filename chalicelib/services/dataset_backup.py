"""A dataset's backup: one ZIP, written before the dataset is deleted, that our own import reads back.

The steps (the deletion workflow's `backup` part), each idempotent. Image bytes and annotation
sets are streamed (a chunk, a job's sets, a multipart part at a time); what grows with the dataset
is a few hundred bytes an image: the catalog read in *prepare* (~100 MB at 100,000 images, most of
it `ImageRepository.catalog`'s entries, dropped once numbered) and zipfile's central directory and
the split map in *assemble* (~60 MB at 100,000).
- *prepare*: the dataset's images (the registry catalog under its prefix; `missing` ones left out),
  numbered in path order and cut into manifests of `shard_size` (JSON lines); per affected project
  its `project.json` and the jobs that hold the dataset's images, dealt out to the same shards.
  Everything under `operations/<operation>/backup/` in the cache bucket; returns shard numbers.
- *build* (one per shard): the shard's images copied server-side into the work folder (frozen:
  what the deletion removes later no longer matters), its jobs' current annotation sets (one Query
  per job) and their version documents (server-side copies).
- *assemble*: one ZIP streamed to `backups/<dataset>/<operation>.zip` in the documents bucket
  (multipart, memory ~ one part; ZIP64 where needed), then the work folder is deleted. Members get
  a fixed time and come in a fixed order, so an assemble run again writes the same bytes; once its
  result is recorded, a re-run only answers it again.

The ZIP (layout version `LAYOUT`):
- `<path>`: every image at its path under the dataset's prefix, bytes unchanged, stored;
- `annotations/instances_<train|val|test>.json`, `annotations/instances_default.json` (images in
  tasks without a split): COCO of the dataset's own project's current annotations, images in the
  split of their oldest task that has one, `file_name` = the image's path in the ZIP, boxes as
  `bbox`, polygons as `segmentation` (coordinates to 2 decimals, as exports write them;
  classification annotations have no COCO form and live in the metadata only). The import maps
  these file names back to one task per split;
- `pixelpool-backup/` (skipped by the import, formats/dataset_contents.py):
  - `backup.json`: layout, dataset record, time, counts, projects, images left out;
  - `projects/<project>/project.json`: the project (name, description, labels), its tasks that hold
    the dataset's images (split, chunk size, status, ...) with those jobs (sequence, status,
    assignee) and their images limited to the dataset's: `[image id, path, sequence, annotations]`;
  - `projects/<project>/annotations.jsonl`: each non-empty current set of a dataset image in a job
    of the project (task, job, image, path, annotations, rev, updated by/at);
  - `projects/<project>/versions/<task>/<job>/v000001.json`: every frozen version document of those
    jobs, as stored (it may hold images of other datasets: a job is frozen whole).
"""
from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import IO, Any

import orjson

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.errors import NotFoundError, StoreError
from chalicelib.formats import ExportImage, Shape, coco, dataset_contents
from chalicelib.services.export_formats import Archive
from chalicelib.services.operations import folder
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.store.datasets import Dataset, DatasetRepository, dataset_prefix
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.projects import Project, ProjectRepository
from chalicelib.store.tasks import Task, TaskRepository

LAYOUT = 1
SHARD_SIZE = 500
COPY_THREADS = 8
JOB_READS = 8  # jobs whose images prepare reads at once
METADATA = dataset_contents.BACKUP_METADATA
SPLIT_FILES = {"train": "instances_train.json", "val": "instances_val.json", "test": "instances_test.json",
               "none": "instances_default.json"}
MISSING_STATUS = "missing"


def backup_key(dataset_id: str, operation_id: str) -> str:
    return f"backups/{dataset_id}/{operation_id}.zip"


class DatasetBackupService:
    def __init__(self, settings: Settings, datasets: DatasetRepository, images: ImageRepository,
                 projects: ProjectRepository, tasks: TaskRepository, jobs: JobRepository,
                 annotations: AnnotationRepository, share: Bucket, cache: Bucket, documents: Bucket,
                 shard_size: int = SHARD_SIZE) -> None:
        self._settings = settings
        self._datasets = datasets
        self._images = images
        self._projects = projects
        self._tasks = tasks
        self._jobs = jobs
        self._annotations = annotations
        self._share = share
        self._cache = cache
        self._documents = documents
        self.shard_size = shard_size

    # Steps --------------------------------------------------------------------------------------

    def prepare(self, operation_id: str, dataset_id: str, project_ids: list[str]) -> dict:
        """Plan the backup: image manifests, project documents and jobs per shard; shard numbers out.
        The dataset's own project is backed up whether `project_ids` names it or not; a project
        not found (deleted meanwhile) is left out and named in `backup.json`."""
        dataset = self._datasets.get(dataset_id)
        work = _work(operation_id)
        # (image id, path, width, height), numbered from 1 in path order: the catalog's entries go at once.
        rows = [(entry.id, entry.file_path.removeprefix(dataset.prefix), entry.width or 0, entry.height or 0)
                for entry in self._images.catalog(dataset.prefix) if entry.status != MISSING_STATUS]
        rows.sort(key=lambda row: row[1])
        numbers = {image_id: number for number, (image_id, *_) in enumerate(rows, start=1)}
        shards = max(1, -(-len(rows) // self.shard_size))
        own = dataset.project_id
        wanted = list(dict.fromkeys([own, *project_ids] if own else project_ids))
        splits: dict[int, str] = {}
        job_lines: list[bytearray] = [bytearray() for _ in range(shards)]
        dealt, kept, labels = 0, [], []
        for project_id in wanted:
            try:
                project = self._projects.get(project_id)
            except NotFoundError:
                continue  # deleted meanwhile: nothing of it to keep
            kept.append(project_id)
            if project_id == own:
                labels = project.labels
            for line in self._project_document(work, project, rows, numbers, splits if project_id == own else None):
                job_lines[dealt % shards] += line + b"\n"
                dealt += 1
        for shard in range(shards):
            part = rows[shard * self.shard_size:(shard + 1) * self.shard_size]
            start = shard * self.shard_size + 1
            self._cache.put(f"{work}/manifest-{shard:05d}.jsonl", b"\n".join(
                orjson.dumps([start + n, image_id, path, width, height, splits.get(start + n)])
                for n, (image_id, path, width, height) in enumerate(part)), "application/x-ndjson")
            self._cache.put(f"{work}/jobs-{shard:05d}.jsonl", bytes(job_lines[shard]), "application/x-ndjson")
        self._cache.put_json(f"{_folder(operation_id)}/plan.json", {
            "layout": LAYOUT, "operation_id": operation_id, "created_at": utcnow().isoformat(),
            "dataset": _dataset_record(dataset), "own_project_id": own if own in kept else None, "own_labels": labels,
            "projects": kept, "projects_not_found": [p for p in wanted if p not in kept],
            "images": len(rows), "shards": shards})
        return {"shards": list(range(shards))}

    def _project_document(self, work: str, project: Project, rows: list[tuple], numbers: dict[str, int],
                          splits: dict[int, str] | None) -> Iterator[bytes]:
        """Write `project.json` (streamed, a job at a time) and yield one line per job holding the
        dataset's images: `[project, task, job, [[image id, number, path, annotated], ...]]`. For the
        dataset's own project, `splits` gets each image's split: its oldest task's that has one."""
        with self._cache.writer(f"{work}/projects/{project.id}/project.json", "application/json") as out:
            out.write(orjson.dumps({"id": project.id, "name": project.name, "description": project.description,
                                    "labels": project.labels, "created_by": project.created_by,
                                    "created_at": project.created_at.isoformat(),
                                    "updated_at": project.updated_at.isoformat()})[:-1] + b',"tasks":[')
            tasks = 0
            for task in self._tasks.tasks(project.id):  # oldest first
                jobs = 0
                for job, images in self._task_jobs(task, numbers):
                    if not jobs:
                        out.write((b"," if tasks else b"") + orjson.dumps(_task_record(task))[:-1] + b',"jobs":[')
                    out.write((b"," if jobs else b"") + orjson.dumps({
                        "id": job.id, "sequence_number": job.sequence_number, "status": job.status,
                        "assignee_id": job.assignee_id, "total_images": job.total_images,
                        "images": [[i.image_id, rows[numbers[i.image_id] - 1][1], i.sequence_number,
                                    i.annotation_count] for i in images]}))
                    jobs += 1
                    held = [[i.image_id, numbers[i.image_id], rows[numbers[i.image_id] - 1][1], i.annotated]
                            for i in images]
                    if splits is not None:
                        for _, number, _, _ in held:
                            if splits.get(number, "none") == "none":
                                splits[number] = task.split
                    yield orjson.dumps([project.id, task.id, job.id, held])
                if jobs:
                    out.write(b"]}")
                    tasks += 1
            out.write(b"]}")

    def _task_jobs(self, task: Task, numbers: dict[str, int]) -> Iterator[tuple[Job, list[JobImage]]]:
        """The task's jobs holding the dataset's images, with those images: one Query per job, a
        few at a time (a task of 100,000 images is never in memory whole)."""
        jobs = self._jobs.of_task(task.id)
        with ThreadPoolExecutor(max_workers=JOB_READS) as pool:
            for start in range(0, len(jobs), JOB_READS * 4):
                batch = jobs[start:start + JOB_READS * 4]
                for job, images in zip(batch, pool.map(self._jobs.images_of_job, batch)):
                    mine = [image for image in images if image.image_id in numbers]
                    if mine:
                        yield job, mine

    def build(self, operation_id: str, dataset_id: str, shard: int) -> None:
        """Freeze one shard: its images, its jobs' current annotation sets and version documents."""
        work = _work(operation_id)
        prefix = dataset_prefix(dataset_id)
        rows = [orjson.loads(line) for line in self._cache.lines(f"{work}/manifest-{shard:05d}.jsonl") if line]

        def stage(row: list) -> int | None:
            number, _, path = row[:3]
            try:
                self._cache.copy_from(self._share, prefix + path, f"{work}/files/{number:09d}")
            except StoreError:
                if self._share.head(prefix + path) is None:
                    return number  # removed since the plan: left out, and said so
                raise
            return None

        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            missing = [number for number in pool.map(stage, rows) if number is not None]
        jobs = [orjson.loads(line) for line in self._cache.lines(f"{work}/jobs-{shard:05d}.jsonl") if line]
        annotations: dict[str, int] = {}
        # An earlier attempt's sets go first: a project with none now must not keep them.
        self._cache.delete_prefix(f"{work}/annotations/{shard:05d}/")
        with ExitStack() as stack:
            writers: dict[str, IO[bytes]] = {}
            for project_id, task_id, job_id, held in jobs:
                if not any(annotated for *_, annotated in held):
                    continue
                mine = {image_id: (number, path) for image_id, number, path, _ in held}
                sets = [found for found in self._annotations.of_job(job_id)
                        if found.image_id in mine and found.annotations]
                for found in sorted(sets, key=lambda found: mine[found.image_id][0]):
                    number, path = mine[found.image_id]
                    if project_id not in writers:
                        writers[project_id] = stack.enter_context(self._cache.writer(
                            f"{work}/annotations/{shard:05d}/{project_id}.jsonl", "application/x-ndjson"))
                    writers[project_id].write(orjson.dumps([number, {
                        "task_id": task_id, "job_id": job_id, "image_id": found.image_id, "path": path,
                        "annotations": found.annotations, "rev": found.rev, "updated_by": found.updated_by,
                        "updated_at": found.updated_at.isoformat() if found.updated_at else None}]) + b"\n")
                    annotations[project_id] = annotations.get(project_id, 0) + len(found.annotations)
        versions = []
        for project_id, task_id, job_id, _ in jobs:
            for version in self._annotations.versions(job_id):
                name = f"{project_id}/versions/{task_id}/{job_id}/v{version.number:06d}.json"
                self._cache.copy_from(self._documents, version.document_key, f"{work}/versions/{name}")
                versions.append(name)
        self._cache.put_json(f"{work}/summary-{shard:05d}.json", {
            "images": len(rows) - len(missing), "missing": missing, "annotations": annotations,
            "versions": versions})

    def assemble(self, operation_id: str, dataset_id: str, shards: list[int]) -> dict:
        """The ZIP, streamed, then the work folder removed; its result, once written, is kept and
        answered to a re-run. `annotations` counts those of every project's sets in the backup."""
        key = backup_key(dataset_id, operation_id)
        work = _work(operation_id)
        result_key = f"{_folder(operation_id)}/result.json"
        if self._cache.exists(result_key):
            result = self._cache.get_json(result_key)
            written = self._documents.head(key)
            if written is not None and written.size == result["size"]:
                self._cache.delete_prefix(work + "/")
                return result
        plan = self._cache.get_json(f"{_folder(operation_id)}/plan.json")
        summaries = [self._cache.get_json(f"{work}/summary-{shard:05d}.json") for shard in shards]
        missing = {number for summary in summaries for number in summary["missing"]}
        counts = {project: sum(s["annotations"].get(project, 0) for s in summaries) for project in plan["projects"]}
        versions = [name for summary in summaries for name in summary["versions"]]
        images = sum(summary["images"] for summary in summaries)
        about = {"layout": LAYOUT, "operation_id": operation_id, "created_at": plan["created_at"],
                 "dataset": plan["dataset"], "own_project_id": plan["own_project_id"], "projects": plan["projects"],
                 "projects_not_found": plan["projects_not_found"], "images": images,
                 "images_missing": len(missing), "annotations": counts, "versions": len(versions)}
        with self._documents.writer(key, "application/zip") as out:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
                archive = Archive(zipped)
                named = self._write_images(zipped, archive, work, shards, missing)
                if plan["own_project_id"]:
                    self._write_coco(zipped, archive, work, shards, plan, named, missing)
                with _member(zipped, archive.claim(METADATA + "backup.json")) as member:
                    member.write(orjson.dumps(about, option=orjson.OPT_INDENT_2))
                for project_id in plan["projects"]:
                    self._write_project(zipped, archive, work, shards, project_id)
                for name in versions:
                    self._copy_member(zipped, archive.claim(f"{METADATA}projects/{name}"), f"{work}/versions/{name}")
        result = {"key": key, "size": self._documents.head(key).size, "images": images,
                  "annotations": sum(counts.values()), "versions": len(versions), "projects": len(plan["projects"])}
        self._cache.put_json(result_key, result)
        self._cache.delete_prefix(work + "/")
        return result

    def link(self, key: str) -> str:
        """A short-lived download link of a backup."""
        return self._documents.presign_get(key, self._settings.presign_ttl_seconds,
                                           filename=posixpath.basename(key), disposition="attachment")

    # The ZIP's parts ----------------------------------------------------------------------------

    def _manifest(self, work: str, shards: list[int]) -> Iterator[list]:
        for shard in shards:
            for line in self._cache.lines(f"{work}/manifest-{shard:05d}.jsonl"):
                if line:
                    yield orjson.loads(line)

    def _write_images(self, zipped: zipfile.ZipFile, archive: Archive, work: str, shards: list[int],
                      missing: set[int]) -> dict[int, str]:
        """Each frozen image a chunk at a time, stored; returns number → member name for the few
        whose path had to change to be a safe, unique member name."""
        named = {}
        for number, image_id, path, *_ in self._manifest(work, shards):
            if number in missing:
                continue
            name = archive.claim(path, image_id)
            if name != path:
                named[number] = name
            self._copy_member(zipped, name, f"{work}/files/{number:09d}", stored=True)
        return named

    def _write_coco(self, zipped: zipfile.ZipFile, archive: Archive, work: str, shards: list[int], plan: dict,
                    named: dict[int, str], missing: set[int]) -> None:
        """One COCO file per split of the own project's images: images from the manifests, then
        annotations from the frozen sets (two passes over files, nothing held but the writer's buffer)."""
        categories = coco.categories(label["name"] for label in plan["own_labels"])
        ids = {category["name"]: category["id"] for category in categories}
        splits = {number: split for number, *_, split in self._manifest(work, shards) if split}
        present = set(splits.values())
        for split in (split for split in SPLIT_FILES if split in present):
            info = {"description": "pixelpool dataset backup", "split": split}
            with _member(zipped, archive.claim(f"annotations/{SPLIT_FILES[split]}")) as member:
                writer = coco.CocoWriter(member, info, categories)
                for number, image_id, path, width, height, image_split in self._manifest(work, shards):
                    if image_split == split and number not in missing:
                        writer.add_image(coco.image_entry(ExportImage(number, image_id, named.get(number, path),
                                                                      width, height, split)))
                for number, found in self._frozen_sets(work, shards, plan["own_project_id"]):
                    if splits.get(number) != split or number in missing:
                        continue
                    record = ExportImage(number, found["image_id"], found["path"], 0, 0, split,
                                         shapes=tuple(_shape(annotation) for annotation in found["annotations"]))
                    for entry in coco.annotation_entries(record, ids, "segmentation", coco.CocoOptions()):
                        writer.add_annotation(entry)
                writer.close()

    def _frozen_sets(self, work: str, shards: list[int], project_id: str) -> Iterator[list]:
        for shard in shards:
            key = f"{work}/annotations/{shard:05d}/{project_id}.jsonl"
            if self._cache.exists(key):
                for line in self._cache.lines(key):
                    if line:
                        yield orjson.loads(line)

    def _write_project(self, zipped: zipfile.ZipFile, archive: Archive, work: str, shards: list[int],
                       project_id: str) -> None:
        base = f"{METADATA}projects/{project_id}/"
        self._copy_member(zipped, archive.claim(base + "project.json"), f"{work}/projects/{project_id}/project.json")
        with _member(zipped, archive.claim(base + "annotations.jsonl")) as member:
            for _, found in self._frozen_sets(work, shards, project_id):
                member.write(orjson.dumps(found) + b"\n")

    def _copy_member(self, zipped: zipfile.ZipFile, name: str, key: str, stored: bool = False) -> None:
        opened = self._cache.open(key)
        if opened is None:
            raise StoreError(f"s3://{self._cache.name}/{key} is missing: build the shards again")
        with _member(zipped, name, stored) as member:
            for chunk in opened[1]:
                member.write(chunk)


@contextmanager
def _member(zipped: zipfile.ZipFile, name: str, stored: bool = False) -> Iterator[IO[bytes]]:
    """A member written as a stream, with a fixed time (a re-run writes the same bytes)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipped.open(info, "w", force_zip64=True) as member:
        yield member


def _shape(annotation: dict[str, Any]) -> Shape:
    """A stored annotation as the COCO writer takes it (boxes write `bbox`, polygons `segmentation`)."""
    bbox, points = annotation.get("bbox"), annotation.get("points")
    return Shape(type=annotation["type"], label=annotation["label"], bbox=tuple(bbox) if bbox else None,
                 points=tuple(tuple(point) for point in points) if points else None)


def _folder(operation_id: str) -> str:
    return f"{folder(operation_id)}/backup"


def _work(operation_id: str) -> str:
    return f"{_folder(operation_id)}/work"


def _dataset_record(dataset: Dataset) -> dict[str, Any]:
    return {"id": dataset.id, "name": dataset.name, "description": dataset.description, "owner_id": dataset.owner_id,
            "status": dataset.status, "image_count": dataset.image_count,
            "annotation_count": dataset.annotation_count, "project_id": dataset.project_id,
            "folders": dataset.folders, "created_at": dataset.created_at.isoformat(),
            "imports": dataset.imports}


def _task_record(task: Task) -> dict[str, Any]:
    return {"id": task.id, "name": task.name, "description": task.description, "split": task.split,
            "status": task.status, "chunk_size": task.chunk_size, "total_images": task.total_images,
            "job_count": task.job_count, "assignee_id": task.assignee_id,
            "distribution_order": task.distribution_order, "seed": task.seed, "source": task.source,
            "created_by": task.created_by, "created_at": task.created_at.isoformat()}
