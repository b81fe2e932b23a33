"""Exports: preview, create, and the steps of the `export` state machine.

What an export contains is decided by one code path (`ExportContents`, export_contents.py), so
the preview and the artifact agree: the preview runs it in the request, the pipeline a shard at a
time.

Pipeline (infra/statemachines/export.asl.json), every step idempotent and re-runnable:
- prepare: the frozen manifest, cut into shards of `shard_size` images, written to S3 with the
  plan (categories, what was left out, the split leaks found over the whole plan); returns only
  shard numbers;
- build (a Map over shards): one shard's part of the artifact (the format's writer,
  export_formats.py: COCO entries, YOLO label files, CSV rows, URL lines, caption lines) and its
  summary, written to S3; captions and EXIF orientations come from one batched read of the shard's
  registry records; image files copied server-side, except images with an EXIF orientation other than 1,
  which are turned into their displayed frame and re-encoded (the annotations are in that frame;
  `raw_images` keeps the stored bytes). Only those images pass through this process,
  TURNS_AT_ONCE at a time;
- assemble: one ZIP streamed to the exports bucket with a multipart upload (memory ~ one part);
- finalize: `completed` with summary, size and time; on any failure `fail` sets `failed` with
  the error's message. Work files under `work/` are removed either way.
"""
from __future__ import annotations

import json
import re
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import orjson

from chalicelib.errors import ConflictError, StoreError
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.export_contents import ExportContents, Plan, Row, merge
from chalicelib.services.export_formats import Archive, Parts, Shard, writer_of
from chalicelib.services.export_spec import FORMAT_NAMES, ExportSpec
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.services.operations import WorkflowStarter
from chalicelib.services.saved_filters import SavedFilterService
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.exports import COMPLETED, FAILED, PENDING, PROCESSING, Export, ExportRepository
from chalicelib.store.images import Image, ImageRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import dataset_of
from chalicelib.store.projects import ProjectRepository

SHARD_SIZE = 5000
DOWNLOAD_SECONDS = 3600
COPY_THREADS = 8
# Images turned into their displayed frame at once: each holds its file and one decoded frame
# (≤ imaging.DEFAULT_MAX_PIXELS), which bounds the step's memory whatever the copy threads do.
TURNS_AT_ONCE = 2


def default_name(mode: str, version: int) -> str:
    return f"{mode.capitalize()} Export v{version}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "export"


class ExportService:
    def __init__(self, access: Access, exports: ExportRepository, projects: ProjectRepository,
                 images: ImageRepository, contents: ExportContents, saved_filters: SavedFilterService, share: Bucket, artifacts: Bucket,
                 activity: ActivityService, start_workflow: WorkflowStarter, state_machine: str,
                 shard_size: int = SHARD_SIZE) -> None:
        self._access = access
        self._exports = exports
        self._projects = projects
        self._images = images
        self._contents = contents
        self._saved_filters = saved_filters
        self._share = share
        self._artifacts = artifacts
        self._activity = activity
        self._start_workflow = start_workflow
        self._state_machine = state_machine
        self.shard_size = shard_size

    # API ----------------------------------------------------------------------------------------

    def _resolved(self, actor: Identity, project_id: str, spec: ExportSpec,
                  saved_filter_id: str | None) -> ExportSpec:
        """`spec` with the saved filter it names, if it names one (the request had no filter then)."""
        if saved_filter_id is None:
            return spec
        return spec.model_copy(update={"filter": self._saved_filters.resolve(actor, project_id, None,
                                                                              saved_filter_id)})

    def classification_options(self, actor: Identity, project_id: str) -> dict[str, Any]:
        caller = self._access.require(actor, project_id, "exports.read")
        return self._contents.classification_options(caller.project)

    def preview(self, actor: Identity, project_id: str, spec: ExportSpec,
                saved_filter_id: str | None = None) -> dict[str, Any]:
        """What the export would contain, computed by the code that builds it."""
        caller = self._access.require(actor, project_id, "exports.read")
        spec = self._resolved(actor, project_id, spec, saved_filter_id)
        plan = self._contents.plan(caller.project, spec)
        images = self._image_records(plan.rows) if spec.export_mode == "captions" else {}
        records, excluded = self._contents.place(plan, self._contents.records(plan.spec, plan.rows, images))
        summary = merge([{"excluded": plan.excluded},
                         self._contents.summary(plan, records, self._contents.entries(plan, records), excluded)])
        return {**summary, "leaks": plan.leaks, "export_mode": spec.export_mode, "output_format": spec.output_format}

    def create(self, actor: Identity, project_id: str, spec: ExportSpec, name: str | None,
               saved_filter_id: str | None = None) -> Export:
        caller = self._access.require(actor, project_id, "exports.write")
        spec = self._resolved(actor, project_id, spec, saved_filter_id)
        self._contents.check_labels(caller.project, spec)
        self._contents.category_tags(spec)
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
            self._start_workflow(self._state_machine, f"export-{export.id}", {"project_id": project_id, "export_id": export.id})
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
        plan = self._contents.plan(self._projects.get(project_id), _spec(export))
        shards = [plan.rows[start : start + self.shard_size] for start in range(0, len(plan.rows), self.shard_size)]
        shards = shards or [[]]
        work = self._work(project_id, export_id)
        for number, rows in enumerate(shards):
            self._artifacts.put(f"{work}/manifest-{number:05d}.jsonl", b"\n".join(row.dump() for row in rows),
                                "application/x-ndjson")
        self._artifacts.put_json(f"{work}/plan.json", {"categories": plan.categories, "excluded": plan.excluded,
                                                        "leaks": plan.leaks, "shards": len(shards),
                                                        "images": len(plan.rows)})
        datasets = sorted({dataset_of(row.file_path) for row in plan.rows} - {None})  # type: ignore[type-var]
        self._exports.update(project_id, export_id, {"shards_total": len(shards), "datasets": datasets or None})
        return {"project_id": project_id, "export_id": export_id, "shards": list(range(len(shards)))}

    def build(self, project_id: str, export_id: str, shard: int) -> None:
        export = self._exports.get(project_id, export_id)
        spec = _spec(export)
        writer = writer_of(spec)
        work = self._work(project_id, export_id)
        stored = self._artifacts.get_json(f"{work}/plan.json")
        rows = [Row.load(line) for line in self._artifacts.lines(f"{work}/manifest-{shard:05d}.jsonl") if line]
        plan = Plan(spec, stored["categories"], rows, stored["excluded"], stored.get("leaks", {}))
        turned = spec.with_images and not spec.options.raw_images
        images = self._image_records(rows) if spec.export_mode == "captions" or turned else {}
        records, excluded = self._contents.place(plan, self._contents.records(spec, rows, images))
        entries = self._contents.entries(plan, records)
        part = Shard(self._artifacts, self._share, f"{work}/part-{shard:05d}")
        writer.part(part, spec, plan.categories, records, entries)
        if spec.with_images:
            placements = writer.placements(records)
            part.put_lines(".files.jsonl", (orjson.dumps([r.number, r.image_id, path]) for r, path in placements))
            placed = {record.image_id for record, _ in placements}
            self._stage_images([row for row in rows if row.image_id in placed], work,
                               _oriented(images) if turned else set())
        self._artifacts.put_json(f"{work}/summary-{shard:05d}.json",
                                 self._contents.summary(plan, records, entries, excluded))
        self._exports.shard_done(project_id, export_id, shard)

    def assemble(self, project_id: str, export_id: str, shards: list[int]) -> None:
        export = self._exports.get(project_id, export_id)
        spec = _spec(export)
        work = self._work(project_id, export_id)
        stored = self._artifacts.get_json(f"{work}/plan.json")
        summary = merge([{"excluded": stored["excluded"]},
                         *(self._artifacts.get_json(f"{work}/summary-{shard:05d}.json") for shard in shards)])
        summary["leaks"] = stored.get("leaks", {})  # found over the whole plan, not per shard
        key = f"{self._prefix(project_id, export_id)}/{_slug(export.name)}.zip"
        parts = Parts(self._artifacts, work, shards)
        with self._artifacts.writer(key, "application/zip") as out:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
                archive = Archive(zipped)
                archive.write("export.json", json.dumps(_about(export, summary), indent=2, default=str))
                named = writer_of(spec).body(archive, parts, spec, stored["categories"])
                if spec.with_images:
                    self._write_images(archive, parts, named, work)
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

    # Images -------------------------------------------------------------------------------------

    def _stage_images(self, rows: list[Row], work: str, oriented: set[str]) -> None:
        """The shard's images under the work folder, frozen now: server-side copies, never in this
        process's memory, except the `oriented` ones (stored with an EXIF orientation other than 1,
        when not `raw_images`), which are written turned into their displayed frame (the frame
        annotations are in)."""
        from chalicelib import imaging  # Pillow: only the build step needs it, not the API's cold start

        turns = threading.BoundedSemaphore(TURNS_AT_ONCE)

        def stage(row: Row) -> None:
            target = f"{work}/files/{row.number:09d}"
            if row.image_id not in oriented:
                self._artifacts.copy_from(self._share, row.file_path, target)
                return
            with turns:
                opened = self._share.open(row.file_path)
                if opened is None:
                    raise StoreError(f"reading s3://{self._share.name}/{row.file_path} failed: NoSuchKey")
                data, content_type = imaging.displayed(b"".join(opened[1]))
            self._artifacts.put(target, data, content_type)

        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            list(pool.map(stage, rows))

    def _image_records(self, rows: list[Row]) -> dict[str, Image]:
        """The registry records of `rows`' images: one batched read (BatchGetItem, 100 keys a
        request) for every fact a shard needs of them, the caption and the EXIF orientation."""
        return self._images.find([row.image_id for row in rows])

    def _write_images(self, archive: Archive, parts: Parts, named: dict[int, str], work: str) -> None:
        """Stream each staged image into the ZIP a chunk at a time (stored: images are compressed already)."""
        for line in parts.lines(".files.jsonl"):
            number, image_id, path = orjson.loads(line)
            opened = self._artifacts.open(f"{work}/files/{number:09d}")
            if opened is None:
                continue
            with archive.open(named.get(number, path), image_id, stored=True) as member:
                for chunk in opened[1]:
                    member.write(chunk)

    def _work(self, project_id: str, export_id: str) -> str:
        return f"{self._prefix(project_id, export_id)}/work"

    @staticmethod
    def _prefix(project_id: str, export_id: str) -> str:
        return f"exports/{project_id}/{export_id}"


def _oriented(images: dict[str, Image]) -> set[str]:
    """The images whose stored pixels are not in their displayed frame."""
    return {image.id for image in images.values() if (image.exif or {}).get("orientation") not in (None, 1)}


def _spec(export: Export) -> ExportSpec:
    return ExportSpec.model_validate({"export_mode": export.export_mode, "output_format": export.output_format,
                                      "filter": ImageFilter.model_validate(export.image_filter),
                                      "options": export.options})


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
