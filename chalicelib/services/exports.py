"""Exports: preview, create, and the steps of the `export` state machine.

One code path decides what an export contains, so the preview and the artifact agree:
`_manifest` (the filter's images, in Explore order, with split, classes and where they are used;
images a split-based format cannot place are left out and counted), `_records` (each image's
annotations as the version mode has them, label-filtered) and `_summary` (counts per image,
summed). The preview runs them in the request; the pipeline runs them a shard at a time.

Pipeline (infra/statemachines/export.asl.json), every step idempotent and re-runnable:
- prepare: the frozen manifest, cut into shards of `shard_size` images, written to S3 with the
  plan (categories, spec); returns only shard numbers;
- build (a Map over shards): one shard's part of the artifact (COCO entries, YOLO label files,
  CSV rows, URL lines) and its summary, written to S3; image files copied server-side;
- assemble: one ZIP streamed to the exports bucket with a multipart upload (memory ~ one part);
- finalize: `completed` with summary, size and time; on any failure `fail` sets `failed` with
  the error's message. Work files under `work/` are removed either way.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable, Iterable

import orjson
import pydantic

from chalicelib.errors import BadRequestError, ConflictError, ValidationError
from chalicelib.formats import ExportImage, Shape, coco, manifests, yolo
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.explore import ExploreService
from chalicelib.services.export_spec import FORMAT_NAMES, ExportSpec
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.services.saved_filters import SavedFilterService
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.store.base import new_id, utcnow
from chalicelib.store.exports import COMPLETED, FAILED, PENDING, PROCESSING, Export, ExportRepository
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.jobs import JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.projects import Project, ProjectRepository
from chalicelib.store.tags import TagRepository

SHARD_SIZE = 5000
DOWNLOAD_SECONDS = 3600
COPY_THREADS = 8


@dataclass(frozen=True)
class Row:
    """One image of the frozen manifest."""

    number: int
    image_id: str
    file_path: str
    width: int
    height: int
    sha256: str | None
    split: str
    uses: tuple[tuple[str, bool], ...]  # (job id, annotated now), tasks oldest first
    classes: tuple[str, ...]

    def dump(self) -> bytes:
        return orjson.dumps([self.number, self.image_id, self.file_path, self.width, self.height, self.sha256,
                             self.split, self.uses, self.classes])

    @classmethod
    def load(cls, line: bytes) -> "Row":
        number, image_id, file_path, width, height, sha256, split, uses, classes = orjson.loads(line)
        return cls(number, image_id, file_path, width, height, sha256, split,
                   tuple((job, annotated) for job, annotated in uses), tuple(classes))


@dataclass(frozen=True)
class Plan:
    spec: ExportSpec
    categories: list[str]  # annotation label names the export may contain, sorted
    rows: list[Row]
    excluded: dict[str, int]


def default_name(mode: str, version: int) -> str:
    return f"{mode.capitalize()} Export v{version}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "export"


def merge(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-shard summaries: counts add up, distributions add up key by key."""
    total: dict[str, Any] = {"images": 0, "annotations": 0, "annotation_counts": Counter(),
                             "split_distribution": Counter(), "class_distribution": Counter()}
    for summary in summaries:
        total["images"] += summary["images"]
        total["annotations"] += summary["annotations"]
        for name in ("annotation_counts", "split_distribution", "class_distribution"):
            total[name].update(summary[name])
    return {name: dict(sorted(value.items())) if isinstance(value, Counter) else value for name, value in total.items()}


class ExportService:
    def __init__(self, access: Access, exports: ExportRepository, projects: ProjectRepository,
                 explore: ExploreService, jobs: JobRepository, annotations: AnnotationRepository,
                 tags: TagRepository, links: ImageTagRepository, saved_filters: SavedFilterService,
                 share: Bucket, artifacts: Bucket, documents: Bucket, activity: ActivityService,
                 start_workflow: Callable[[str, dict], str], shard_size: int = SHARD_SIZE) -> None:
        self._access = access
        self._exports = exports
        self._projects = projects
        self._explore = explore
        self._jobs = jobs
        self._annotations = annotations
        self._tags = tags
        self._links = links
        self._saved_filters = saved_filters
        self._share = share
        self._artifacts = artifacts
        self._documents = documents
        self._activity = activity
        self._start_workflow = start_workflow
        self.shard_size = shard_size

    # API ----------------------------------------------------------------------------------------

    def resolve(self, actor: Identity, project_id: str, body: dict[str, Any]) -> ExportSpec:
        """An export request (filter object or saved filter id) as a validated spec."""
        body = dict(body)
        saved_filter_id = body.pop("saved_filter_id", None)
        if saved_filter_id is not None:
            if body.get("filter") is not None:
                raise BadRequestError("Give either `filter` or `saved_filter_id`, not both")
            body["filter"] = self._saved_filters.resolve(actor, project_id, saved_filter_id)
        body.pop("name", None)
        if body.get("filter") is None:
            body.pop("filter", None)
        try:
            return ExportSpec.model_validate(body)
        except pydantic.ValidationError as exc:
            problems = [{"field": ".".join(str(part) for part in error["loc"]) or "body",
                         "message": error["msg"].removeprefix("Value error, ")} for error in exc.errors()]
            raise ValidationError(f"{problems[0]['field']}: {problems[0]['message']}", problems) from exc

    def classification_options(self, actor: Identity, project_id: str) -> dict[str, Any]:
        caller = self._access.require(actor, project_id, "exports.read")
        by_category: dict[str, list] = {}
        uncategorized = []
        for tag in self._tags.list():
            entry = {"id": tag.id, "name": tag.name, "usage_count": tag.usage_count}
            (by_category.setdefault(tag.category, []) if tag.category else uncategorized).append(entry)
        labels = [label["name"] for label in caller.project.labels
                  if label.get("annotation_type", "any") in ("any", "classification")]
        return {"categories": [{"name": name, "tags": sorted(tags, key=lambda t: t["name"])}
                               for name, tags in sorted(by_category.items())],
                "uncategorized_tags": sorted(uncategorized, key=lambda t: t["name"]),
                "labels": sorted(labels)}

    def preview(self, actor: Identity, project_id: str, spec: ExportSpec) -> dict[str, Any]:
        """What the export would contain, computed by the code that builds it."""
        caller = self._access.require(actor, project_id, "exports.read")
        plan = self._plan(caller.project, spec)
        records = self._records(plan.spec, plan.rows)
        summary = merge([self._summary(plan, records, self._entries(plan, records))])
        return {**summary, "excluded": plan.excluded, "export_mode": spec.export_mode,
                "output_format": spec.output_format}

    def create(self, actor: Identity, project_id: str, spec: ExportSpec, name: str | None) -> Export:
        caller = self._access.require(actor, project_id, "exports.write")
        self._check_labels(caller.project, spec)
        self._category_tags(spec)
        export = self._exports.create(
            project_id, new_id(), spec.export_mode, spec.output_format, name,
            spec.filter.model_dump(mode="json", exclude_defaults=True),
            spec.options.model_dump(mode="json", exclude_defaults=True), actor.sub, utcnow(),
            lambda version: default_name(spec.export_mode, version))
        self._activity.record(actor, "export", export.id, "created", project_id=project_id,
                              summary=f"{export.name} ({FORMAT_NAMES[spec.output_format]}) created",
                              details={"version": export.version_number, "mode": export.export_mode,
                                       "format": export.output_format})
        try:
            self._start_workflow(f"export-{export.id}", {"project_id": project_id, "export_id": export.id})
        except Exception as exc:
            self.fail(project_id, export.id, {"Error": type(exc).__name__, "Cause": str(exc)})
            raise
        return export

    def list(self, actor: Identity, project_id: str) -> list[Export]:
        self._access.require(actor, project_id, "exports.read")
        return self._exports.of_project(project_id)

    def get(self, actor: Identity, project_id: str, export_id: str) -> Export:
        self._access.require(actor, project_id, "exports.read")
        return self._exports.get(project_id, export_id)

    def download_url(self, actor: Identity, project_id: str, export_id: str) -> str:
        export = self.get(actor, project_id, export_id)
        if export.status != COMPLETED or not export.artifact_key:
            raise ConflictError(f"Export '{export_id}' is {export.status}; only a completed export can be downloaded")
        return self._artifacts.presign_get(export.artifact_key, DOWNLOAD_SECONDS,
                                           filename=PurePosixPath(export.artifact_key).name, disposition="attachment")

    def delete(self, actor: Identity, project_id: str, export_id: str) -> Export:
        self._access.require(actor, project_id, "exports.write")
        export = self._exports.get(project_id, export_id)
        if export.status in (PENDING, PROCESSING):
            raise ConflictError(f"Export '{export_id}' is {export.status}; delete it once it has finished")
        self._artifacts.delete_prefix(self._prefix(project_id, export_id))
        self._exports.delete(project_id, export_id)
        self._activity.record(actor, "export", export_id, "deleted", project_id=project_id,
                              summary=f"{export.name} deleted")
        return export

    def purge_project(self, project_id: str) -> None:
        """Every artifact of a project (project deletion; the records go with the partition)."""
        self._artifacts.delete_prefix(f"exports/{project_id}/")

    # Steps --------------------------------------------------------------------------------------

    def prepare(self, project_id: str, export_id: str) -> dict[str, Any]:
        export = self._exports.get(project_id, export_id)
        self._exports.update(project_id, export_id, {"status": PROCESSING, "started_at": utcnow()},
                             expect=(PENDING, PROCESSING))
        plan = self._plan(self._projects.get(project_id), _spec(export))
        shards = [plan.rows[start : start + self.shard_size] for start in range(0, len(plan.rows), self.shard_size)]
        shards = shards or [[]]
        work = self._work(project_id, export_id)
        for number, rows in enumerate(shards):
            self._artifacts.put(f"{work}/manifest-{number:05d}.jsonl", b"\n".join(row.dump() for row in rows),
                                "application/x-ndjson")
        self._artifacts.put_json(f"{work}/plan.json", {"categories": plan.categories, "excluded": plan.excluded,
                                                        "shards": len(shards), "images": len(plan.rows)})
        self._exports.update(project_id, export_id, {"shards_total": len(shards)})
        return {"project_id": project_id, "export_id": export_id, "shards": list(range(len(shards)))}

    def build(self, project_id: str, export_id: str, shard: int) -> None:
        export = self._exports.get(project_id, export_id)
        spec = _spec(export)
        work = self._work(project_id, export_id)
        stored = self._artifacts.get_json(f"{work}/plan.json")
        rows = [Row.load(line) for line in self._artifacts.lines(f"{work}/manifest-{shard:05d}.jsonl") if line]
        plan = Plan(spec, stored["categories"], rows, stored["excluded"])
        records = self._records(spec, rows)
        entries = self._entries(plan, records)
        self._write_part(plan, records, entries, f"{work}/part-{shard:05d}")
        if spec.with_images:
            self._stage_images(rows, work)
        self._artifacts.put_json(f"{work}/summary-{shard:05d}.json", self._summary(plan, records, entries))
        self._exports.shard_done(project_id, export_id, shard)

    def assemble(self, project_id: str, export_id: str, shards: list[int]) -> None:
        export = self._exports.get(project_id, export_id)
        spec = _spec(export)
        work = self._work(project_id, export_id)
        stored = self._artifacts.get_json(f"{work}/plan.json")
        summary = merge(self._artifacts.get_json(f"{work}/summary-{shard:05d}.json") for shard in shards)
        summary["excluded"] = stored["excluded"]
        key = f"{self._prefix(project_id, export_id)}/{_slug(export.name)}.zip"
        with self._artifacts.writer(key, "application/zip") as out:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("export.json", json.dumps(_about(export, summary), indent=2, default=str))
                self._write_body(archive, spec, stored["categories"], work, shards)
                if spec.with_images:
                    self._write_images(archive, spec, work, shards)
        size = self._artifacts.head(key).size
        self._exports.update(project_id, export_id, {"artifact_key": key, "artifact_size_bytes": size,
                                                     "summary": summary})

    def finalize(self, project_id: str, export_id: str) -> Export:
        if self._exports.update(project_id, export_id, {"status": COMPLETED, "completed_at": utcnow(), "error": None},
                                expect=(PROCESSING,)):
            export = self._exports.get(project_id, export_id)
            summary = export.summary or {}
            self._activity.record(None, "export", export_id, "completed", project_id=project_id,
                                  summary=f"{export.name} completed: {summary.get('images', 0)} image(s), "
                                          f"{summary.get('annotations', 0)} annotation(s)",
                                  details={"images": summary.get("images"), "annotations": summary.get("annotations"),
                                           "size": export.artifact_size_bytes})
        self._artifacts.delete_prefix(self._work(project_id, export_id) + "/")
        return self._exports.get(project_id, export_id)

    def fail(self, project_id: str, export_id: str, error: dict[str, Any]) -> Export:
        message = _message(error)
        if self._exports.update(project_id, export_id, {"status": FAILED, "error": message, "completed_at": utcnow()},
                                expect=(PENDING, PROCESSING)):
            export = self._exports.get(project_id, export_id)
            self._activity.record(None, "export", export_id, "failed", project_id=project_id,
                                  summary=f"{export.name} failed: {message}", details={"error": message})
        self._artifacts.delete_prefix(self._work(project_id, export_id) + "/")
        return self._exports.get(project_id, export_id)

    # What an export contains --------------------------------------------------------------------

    def _check_labels(self, project: Project, spec: ExportSpec) -> None:
        known = {label["name"] for label in project.labels}
        unknown = sorted(set(spec.options.labels or ()) - known)
        if unknown:
            raise ValidationError(f"options.labels: {', '.join(map(repr, unknown))} not in the project's label set",
                                  [{"field": "options.labels", "message": f"unknown label {name!r}"}
                                   for name in unknown])

    def _plan(self, project: Project, spec: ExportSpec) -> Plan:
        self._check_labels(project, spec)
        names = sorted({label["name"] for label in project.labels})
        if spec.options.labels is not None:
            names = sorted(set(names) & set(spec.options.labels))
        entries = self._explore.select(project.id, spec.filter).entries
        tasks = sorted(self._projects.tasks(project.id), key=lambda task: (task.created_at, task.id))
        order = {task.id: n for n, task in enumerate(tasks)}
        splits = {task.id: task.split for task in tasks}
        placed: dict[str, list] = {}
        if tasks:
            for image in self._jobs.images_of_tasks(list(order)):
                placed.setdefault(image.image_id, []).append((order[image.task_id], image.task_id, image.job_id,
                                                              image.annotated))
        classes = self._tag_classes(spec)
        rows, excluded = [], Counter()
        for entry in entries:
            uses = sorted(placed.get(entry.image_id, []))
            split = next((splits[task] for _, task, _, _ in uses if splits[task] != "none"), "none")
            image_classes = tuple(sorted(classes.get(entry.image_id, ()))) if classes is not None else ()
            if spec.split_based and split == "none":
                excluded["in_no_split"] += 1
                continue
            if classes is not None and not image_classes:
                excluded["without_class"] += 1
                continue
            rows.append(Row(len(rows) + 1, entry.image_id, entry.file_path, entry.width or 0, entry.height or 0,
                            entry.sha256, split, tuple((job, annotated) for _, _, job, annotated in uses),
                            image_classes))
        return Plan(spec, names, rows, dict(sorted(excluded.items())))

    def _tag_classes(self, spec: ExportSpec) -> dict[str, set[str]] | None:
        """image id → class names, for tag-mapped classification; None when classes are not tags."""
        mapping = spec.options.class_mapping
        if mapping is None or mapping.kind == "labels":
            return None
        if mapping.kind == "categorized":
            wanted = {tag.name: [tag.id] for tag in self._category_tags(spec)}
        else:
            wanted = dict(mapping.classes or {})
        tag_ids = sorted({tag for ids in wanted.values() for tag in ids})
        with ThreadPoolExecutor(max_workers=8) as pool:
            carriers = dict(zip(tag_ids, pool.map(lambda tag: set(self._links.images_with(tag)), tag_ids)))
        classes: dict[str, set[str]] = {}
        for name, ids in wanted.items():
            for tag in ids:
                for image in carriers[tag]:
                    classes.setdefault(image, set()).add(name)
        return classes

    def _records(self, spec: ExportSpec, rows: list[Row]) -> list[ExportImage]:
        sets = self._annotation_sets(spec, rows)
        wanted = set(spec.options.labels) if spec.options.labels is not None else None
        labels_are_classes = spec.options.class_mapping is not None and spec.options.class_mapping.kind == "labels"
        records = []
        for row in rows:
            shapes = tuple(_shape(annotation) for job, _ in row.uses for annotation in sets.get((job, row.image_id), ())
                           if wanted is None or annotation["label"] in wanted)
            classes = row.classes
            if labels_are_classes:
                classes = tuple(sorted({shape.label for shape in shapes if shape.type == "classification"}))
            records.append(ExportImage(number=row.number, image_id=row.image_id, file_path=row.file_path,
                                       width=row.width, height=row.height, split=row.split, classes=classes,
                                       shapes=shapes))
        return records

    def _category_tags(self, spec: ExportSpec) -> list:
        """The tags of a categorized class mapping's category (422 if no tag has it)."""
        mapping = spec.options.class_mapping
        if mapping is None or mapping.kind != "categorized":
            return []
        tags = [tag for tag in self._tags.list() if tag.category == mapping.category]
        if not tags:
            raise ValidationError(f"options.class_mapping.category: no tag has category {mapping.category!r}",
                                  [{"field": "options.class_mapping.category",
                                    "message": f"no tag has category {mapping.category!r}"}])
        return tags

    def _annotation_sets(self, spec: ExportSpec, rows: list[Row]) -> dict[tuple[str, str], list[dict]]:
        """(job id, image id) → the annotation set the version mode selects."""
        options = spec.options
        if options.version_mode == "latest":
            return self._annotations.current_many([(job, row.image_id) for row in rows
                                                   for job, annotated in row.uses if annotated])
        jobs = sorted({job for row in rows for job, _ in row.uses})
        found: dict[tuple[str, str], list[dict]] = {}
        for job in jobs:
            if options.version_mode == "timestamp":
                for saved in self._annotations.history(job, options.timestamp):  # oldest first: the last wins
                    found[(job, saved.image_id)] = saved.annotations
                continue
            versions = self._annotations.versions(job)
            number = (options.job_versions or {}).get(job)
            version = next((v for v in versions if v.number == number), None) if number else \
                (versions[-1] if versions else None)
            if version is None:
                continue
            for image in self._documents.get_json(version.document_key)["images"]:
                found[(job, image["image_id"])] = image["annotations"]
        return found

    @staticmethod
    def _entries(plan: Plan, records: list[ExportImage]) -> list[list[dict]] | None:
        """Each record's COCO annotation entries (detection and segmentation: what every format of
        those modes counts and COCO writes); None for classification."""
        spec = plan.spec
        if spec.export_mode == "classification":
            return None
        ids = {category["name"]: category["id"] for category in coco.categories(plan.categories)}
        options = _coco_options(spec)
        return [coco.annotation_entries(record, ids, spec.export_mode, options) for record in records]

    @staticmethod
    def _summary(plan: Plan, records: list[ExportImage], entries: list[list[dict]] | None) -> dict[str, Any]:
        counts, classes = Counter(), Counter()
        annotations = 0
        if entries is None:
            for record in records:
                classes.update(record.classes)
                annotations += len(record.classes)
        else:
            names = {category["id"]: category["name"] for category in coco.categories(plan.categories)}
            for found in entries:
                classes.update(names[entry["category_id"]] for entry in found)
                annotations += len(found)
        for record in records:
            counts.update(shape.type for shape in record.shapes)
        return {"images": len(records), "annotations": annotations, "annotation_counts": dict(counts),
                "split_distribution": dict(Counter(record.split for record in records)),
                "class_distribution": dict(classes)}

    # Parts and the artifact ---------------------------------------------------------------------

    def _write_part(self, plan: Plan, records: list[ExportImage], entries: list[list[dict]] | None,
                    part: str) -> None:
        spec = plan.spec
        fmt = spec.output_format
        if fmt == "coco_json":
            self._put_lines(f"{part}.images.jsonl", (orjson.dumps(coco.image_entry(r)) for r in records))
            self._put_lines(f"{part}.annotations.jsonl", (orjson.dumps(entry) for found in entries or ()
                                                          for entry in found))
        elif fmt == "yolo":
            index = yolo.class_indexes(plan.categories)
            self._put_lines(f"{part}.labels.jsonl", (orjson.dumps({
                "path": yolo.label_path(r.split, r.file_path),
                "text": yolo.label_text(r, index, spec.options.bbox_from_polygons)}) for r in records))
        elif fmt == "manifest_csv":
            self._artifacts.put(f"{part}.csv", "".join(manifests.csv_rows(r) for r in records).encode(), "text/csv")
        elif fmt == "url_manifest":
            expires = spec.options.url_expires_in
            self._artifacts.put(f"{part}.jsonl", b"".join(
                manifests.url_line(r, self._share.presign_get(r.file_path, expires)) for r in records),
                "application/x-ndjson")
        if spec.with_images:
            if fmt == "image_folder":
                placed = [(r, path) for r, path in manifests.image_folder_paths(records)]
            elif fmt == "yolo":
                placed = [(r, yolo.image_path(r.split, r.file_path)) for r in records]
            else:
                placed = [(r, f"images/{r.file_path}") for r in records]
            self._put_lines(f"{part}.files.jsonl", (orjson.dumps([r.number, r.image_id, path]) for r, path in placed))

    def _put_lines(self, key: str, lines: Iterable[bytes]) -> None:
        self._artifacts.put(key, b"\n".join(lines), "application/x-ndjson")

    def _stage_images(self, rows: list[Row], work: str) -> None:
        """Server-side copies of the shard's images: frozen now, and never in this process's memory."""
        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            list(pool.map(lambda row: self._artifacts.copy_from(self._share, row.file_path,
                                                                f"{work}/files/{row.number:09d}"), rows))

    def _write_body(self, archive: zipfile.ZipFile, spec: ExportSpec, categories: list[str], work: str,
                    shards: list[int]) -> None:
        fmt = spec.output_format
        part = f"{work}/part-{{:05d}}"
        if fmt == "coco_json":
            info = {"description": "pixelpool export", "date_created": utcnow().isoformat()}
            with archive.open("annotations.json", "w", force_zip64=True) as member:
                writer = coco.CocoWriter(member, info, coco.categories(categories))
                for shard in shards:
                    for line in self._artifacts.lines(part.format(shard) + ".images.jsonl"):
                        if line:
                            writer.add_image(orjson.loads(line))
                for shard in shards:
                    for line in self._artifacts.lines(part.format(shard) + ".annotations.jsonl"):
                        if line:
                            writer.add_annotation(orjson.loads(line))
                writer.close()
        elif fmt == "yolo":
            splits = set()
            for shard in shards:
                for line in self._artifacts.lines(part.format(shard) + ".labels.jsonl"):
                    if line:
                        label = orjson.loads(line)
                        splits.add(label["path"].split("/", 2)[1])
                        archive.writestr(label["path"], label["text"])
            archive.writestr("data.yaml", yolo.data_yaml(sorted(yolo.class_indexes(categories)), splits))
        elif fmt in ("manifest_csv", "url_manifest"):
            name, suffix = ("manifest.csv", ".csv") if fmt == "manifest_csv" else ("manifest.jsonl", ".jsonl")
            with archive.open(name, "w", force_zip64=True) as member:
                if fmt == "manifest_csv":
                    member.write((manifests.CSV_HEADER + "\n").encode())
                for shard in shards:
                    opened = self._artifacts.open(part.format(shard) + suffix)
                    for chunk in opened[1] if opened else ():
                        member.write(chunk)

    def _write_images(self, archive: zipfile.ZipFile, spec: ExportSpec, work: str, shards: list[int]) -> None:
        """Stream each staged image into the ZIP a chunk at a time (stored: images are compressed already)."""
        used: set[str] = set()
        for shard in shards:
            for line in self._artifacts.lines(f"{work}/part-{shard:05d}.files.jsonl"):
                if not line:
                    continue
                number, image_id, path = orjson.loads(line)
                path = _unique(path, image_id, used)
                opened = self._artifacts.open(f"{work}/files/{number:09d}")
                if opened is None:
                    continue
                info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED
                with archive.open(info, "w", force_zip64=True) as member:
                    for chunk in opened[1]:
                        member.write(chunk)

    def _work(self, project_id: str, export_id: str) -> str:
        return f"{self._prefix(project_id, export_id)}/work"

    @staticmethod
    def _prefix(project_id: str, export_id: str) -> str:
        return f"exports/{project_id}/{export_id}"


def _spec(export: Export) -> ExportSpec:
    return ExportSpec.model_validate({"export_mode": export.export_mode, "output_format": export.output_format,
                                      "filter": ImageFilter.model_validate(export.image_filter),
                                      "options": export.options})


def _coco_options(spec: ExportSpec) -> coco.CocoOptions:
    options = spec.options
    return coco.CocoOptions(bbox_from_polygons=options.bbox_from_polygons, include_bboxes=options.include_bboxes,
                            bboxes_as_polygons=options.bboxes_as_polygons)


def _shape(annotation: dict[str, Any]) -> Shape:
    bbox = annotation.get("bbox")
    points = annotation.get("points")
    return Shape(type=annotation["type"], label=annotation["label"], bbox=tuple(bbox) if bbox else None,
                 points=tuple(tuple(point) for point in points) if points else None)


def _unique(path: str, image_id: str, used: set[str]) -> str:
    """A ZIP path no earlier member has (shards place their images independently)."""
    candidate, n = path, 1
    while candidate.casefold() in used:
        stem = PurePosixPath(path)
        suffix = f"-{image_id[:8]}" if n == 1 else f"-{image_id[:8]}-{n}"
        candidate = str(stem.with_name(stem.stem + suffix + stem.suffix))
        n += 1
    used.add(candidate.casefold())
    return candidate


def _about(export: Export, summary: dict[str, Any]) -> dict[str, Any]:
    return {"id": export.id, "name": export.name, "version_number": export.version_number,
            "export_mode": export.export_mode, "output_format": export.output_format,
            "filter": export.image_filter, "options": export.options, "created_by": export.created_by,
            "created_at": export.created_at.isoformat(), "summary": summary}


def _message(error: dict[str, Any]) -> str:
    """A person-readable message from a Catch's error object (`Error`, `Cause`)."""
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict):
            cause = parsed.get("errorMessage") or cause
    except (TypeError, ValueError):
        pass
    name = error.get("Error") or "Error"
    return f"{name}: {cause}"[:1000] if cause else name
