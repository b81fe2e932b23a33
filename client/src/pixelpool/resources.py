"""The API's resources as small namespaces of the client (`client.images`, `client.exports`, …):
each method is one route, returning the typed models of `pixelpool.models`."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pixelpool.errors import ApiError, PixelpoolError, TimeoutError
from pixelpool.models import (Activity, Dataset, Export, ExploreImage, Image, Job, Label, Operation, Project,
                              Tag, Task, TaskCreated)

if TYPE_CHECKING:
    from pixelpool.client import Client

Progress = Callable[[int, "int | None"], None]
V1 = "/api/v1"


class Resource:
    def __init__(self, client: "Client") -> None:
        self.client = client


class Images(Resource):
    def iter(self, *, folder: str | None = None, search: str | None = None, status: str | None = None,
             tag_ids: list[str] | None = None, limit: int | None = None) -> Iterator[Image]:
        """The registry in path order, every page."""
        params = {"folder": folder or None, "search": search, "status": status, "tag_ids": tag_ids or None}
        return self.client.pages(f"{V1}/shared-images", Image, params, limit)

    def get(self, image_id: str) -> Image:
        return self.client.get(f"{V1}/shared-images/{image_id}", Image)

    def resolve(self, id_or_path: str) -> str:
        """An image id, given an id or a share path (`photos/cat.jpg`: looked up in its folder)."""
        if "/" not in id_or_path:
            return id_or_path
        folder, _, name = id_or_path.rpartition("/")
        for image in self.iter(folder=folder, search=name):
            if image.file_path == id_or_path:
                return image.id
        raise ValueError(f"no registered image at '{id_or_path}' (give an image id or a registered path)")

    def tag(self, image_id: str, tag_ids: list[str]) -> Image:
        return Image.model_validate(self.client.data("POST", f"{V1}/shared-images/{image_id}/tags",
                                                     json={"tag_ids": tag_ids}))

    def untag(self, image_id: str, tag_id: str) -> Image:
        return Image.model_validate(self.client.data("DELETE", f"{V1}/shared-images/{image_id}/tags/{tag_id}"))

    def register(self, file_paths: list[str]) -> dict[str, Any]:
        return self.client.data("POST", f"{V1}/shared-images/register", json={"file_paths": file_paths})


class Tags(Resource):
    def iter(self, search: str | None = None) -> Iterator[Tag]:
        return self.client.pages(f"{V1}/tags", Tag, {"search": search, "include_usage_count": True})

    def create(self, name: str, *, color: str | None = None, category: str | None = None,
               description: str | None = None) -> Tag:
        body = {"name": name, "color": color, "category": category, "description": description}
        return Tag.model_validate(self.client.data("POST", f"{V1}/tags", json=_present(body)))

    def resolve(self, refs: list[str]) -> list[str]:
        """Tag ids for tags given by id or by name (ignoring case); an unknown one is a 404 naming it."""
        tags = list(self.iter())
        by_name = {tag.name.lower(): tag.id for tag in tags}
        ids = {tag.id for tag in tags}
        found = []
        for ref in refs:
            tag_id = ref if ref in ids else by_name.get(ref.lower())
            if tag_id is None:
                raise ApiError(404, "not_found", f"No tag named or with id {ref!r}",
                               [{"field": "tag", "message": f"unknown tag {ref!r}"}])
            found.append(tag_id)
        return found


class Projects(Resource):
    def list(self) -> list[Project]:
        return [Project.model_validate(item) for item in self.client.data("GET", f"{V1}/projects")]

    def get(self, project_id: str) -> Project:
        return self.client.get(f"{V1}/projects/{project_id}", Project)

    def create(self, name: str, *, description: str | None = None, labels: list[Label] | None = None) -> Project:
        body = {"name": name, "description": description,
                "labels": [label.model_dump(exclude_none=True) for label in labels or []]}
        return Project.model_validate(self.client.data("POST", f"{V1}/projects", json=_present(body)))

    def resolve(self, ref: str) -> Project:
        """A project by id or by name (ignoring case)."""
        projects = self.list()
        for project in projects:
            if project.id == ref:
                return project
        named = [project for project in projects if project.name.lower() == ref.lower()]
        if len(named) == 1:
            return named[0]
        if named:
            raise ApiError(409, "conflict", f"{len(named)} projects are named {ref!r}: give its id",
                           [{"field": "project", "message": "ambiguous name"}])
        raise ApiError(404, "not_found", f"No project named or with id {ref!r}",
                       [{"field": "project", "message": f"unknown project {ref!r}"}])

    def add_images(self, project_id: str, image_ids: list[str]) -> dict[str, Any]:
        return self.client.data("POST", f"{V1}/projects/{project_id}/images", json={"shared_image_ids": image_ids})

    def explore(self, project_id: str, filters: dict[str, Any] | None = None,
                limit: int | None = None) -> Iterator[ExploreImage]:
        """The pool through Explore's filter, newest first, every page (cursor-followed)."""
        return self.client.cursor_pages(f"{V1}/projects/{project_id}/explore", ExploreImage, filters,
                                        items_key="images", limit=limit)

    def activity(self, project_id: str, limit: int | None = None) -> Iterator[Activity]:
        return self.client.cursor_pages(f"{V1}/projects/{project_id}/activity", Activity, limit=limit,
                                        page_size=100)


class Tasks(Resource):
    def list(self, project_id: str) -> list[Task]:
        return [Task.model_validate(item) for item in self.client.data("GET", f"{V1}/projects/{project_id}/tasks")]

    def create_from_paths(self, project_id: str, name: str, file_paths: list[str],
                          **options: Any) -> TaskCreated | Operation:
        """Register share paths (a folder ends in '/'), pool them and cut a task: the task, or the
        operation doing it when the API answers 202."""
        answer = self.client.request("POST", f"{V1}/projects/{project_id}/tasks/create-with-file-paths",
                                     json=_present({"name": name, "file_paths": file_paths, **options}))
        return _task_or_operation(answer)

    def create(self, project_id: str, name: str, **body: Any) -> TaskCreated | Operation:
        """A task from pool images: `shared_image_ids`, `filter` or `saved_filter_id`."""
        answer = self.client.request("POST", f"{V1}/projects/{project_id}/tasks", json=_present({"name": name, **body}))
        return _task_or_operation(answer)

    def jobs(self, project_id: str, task_id: str) -> list[Job]:
        return [Job.model_validate(item)
                for item in self.client.data("GET", f"{V1}/projects/{project_id}/tasks/{task_id}/jobs")]

    def job(self, job_id: str) -> Job:
        return self.client.get(f"{V1}/jobs/{job_id}", Job)


class Exports(Resource):
    def create(self, project_id: str, mode: str, output_format: str | None = None, *,
               filter: dict[str, Any] | None = None, saved_filter_id: str | None = None,
               name: str | None = None, options: dict[str, Any] | None = None) -> Export:
        body = {"export_mode": mode, "output_format": output_format, "name": name, "options": options,
                **({"saved_filter_id": saved_filter_id} if saved_filter_id else {"filter": filter or {}})}
        return Export.model_validate(self.client.data("POST", f"{V1}/projects/{project_id}/exports",
                                                      json=_present(body)))

    def get(self, project_id: str, export_id: str) -> Export:
        return self.client.get(f"{V1}/projects/{project_id}/exports/{export_id}", Export)

    def list(self, project_id: str) -> list[Export]:
        return [Export.model_validate(item) for item in self.client.data("GET", f"{V1}/projects/{project_id}/exports")]

    def iter(self, project_id: str) -> Iterator[Export]:
        return iter(self.list(project_id))

    def wait(self, project_id: str, export_id: str, *, timeout: float = 600.0, interval: float = 0.5,
             on_progress: Progress | None = None) -> Export:
        """Poll until the export is completed or failed; `on_progress(shards_done, shards_total)`."""
        deadline = time.monotonic() + timeout
        while True:
            export = self.get(project_id, export_id)
            if on_progress:
                on_progress(export.progress.shards_done, export.progress.shards_total)
            if export.finished:
                return export
            if time.monotonic() > deadline:
                raise TimeoutError(f"export {export_id} still {export.status} after {timeout:.0f} s")
            time.sleep(interval)

    def download_url(self, project_id: str, export_id: str) -> str:
        """The presigned URL of the export's ZIP (the API answers 302 to it)."""
        answer = self.client.request("GET", f"{V1}/projects/{project_id}/exports/{export_id}/download",
                                     expect_redirect=True)
        if "location" not in answer:
            raise PixelpoolError(f"export {export_id}: the download route gave no redirect")
        return answer["location"]


class Datasets(Resource):
    def iter(self, search: str | None = None, state: str | None = None) -> Iterator[Dataset]:
        return self.client.pages(f"{V1}/datasets", Dataset, {"search": search, "state": state})

    def get(self, dataset_id: str) -> Dataset:
        return self.client.get(f"{V1}/datasets/{dataset_id}", Dataset)

    def create(self, name: str, description: str | None = None) -> Dataset:
        return Dataset.model_validate(self.client.data("POST", f"{V1}/datasets",
                                                       json=_present({"name": name, "description": description})))

    def find(self, name: str) -> Dataset | None:
        """Your active dataset with this name (unique ignoring case among one owner's), or None; an
        administrator who sees two owners' datasets of that name must give the id instead."""
        named = [d for d in self.iter(search=name) if d.name.lower() == name.lower()]
        if len(named) > 1:
            raise ApiError(409, "conflict", f"{len(named)} datasets are named {name!r}: "
                           f"use one of their ids ({', '.join(d.id for d in named)})",
                           [{"field": "name", "message": "ambiguous name"}])
        return named[0] if named else None

    def start_import(self, dataset_id: str, chunk_size: int = 100) -> Operation:
        return Operation.model_validate(self.client.data("POST", f"{V1}/datasets/{dataset_id}/import",
                                                         json={"chunk_size": chunk_size}))

    def delete(self, dataset: Dataset, *, backup: bool = True, purge: bool = False,
               force: bool = False) -> Operation:
        body = {"confirm_dataset_name": dataset.name, "create_backup": backup, "purge": purge, "force_delete": force}
        return Operation.model_validate(self.client.data("DELETE", f"{V1}/datasets/{dataset.id}", json=body))


class Operations(Resource):
    def get(self, operation_id: str) -> Operation:
        return self.client.get(f"{V1}/operations/{operation_id}", Operation)

    def wait(self, operation_id: str, *, timeout: float = 600.0, interval: float = 0.5,
             on_progress: Progress | None = None) -> Operation:
        """Poll until the operation is completed or failed; `on_progress(done, total)` on each poll."""
        deadline = time.monotonic() + timeout
        while True:
            operation = self.get(operation_id)
            if on_progress:
                on_progress(operation.done, operation.total)
            if operation.finished:
                return operation
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation_id} still {operation.status} after {timeout:.0f} s")
            time.sleep(interval)


def _present(body: dict[str, Any]) -> dict[str, Any]:
    """The body without the options left unset (the API rejects unknown fields, not absent ones)."""
    return {key: value for key, value in body.items() if value is not None}


def _task_or_operation(answer: dict[str, Any]) -> TaskCreated | Operation:
    data = answer.get("data") or {}
    if answer.get("status_code") == 202 or "kind" in data:
        return Operation.model_validate(data)
    return TaskCreated.model_validate(data)
