"""`projects …`, `tasks …` and `explore`: projects, their tasks and Explore's filter."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from pixelpool import output
from pixelpool.client import Client
from pixelpool.commands.base import (Json, Timeout, app, client, dump, handled, operation_code, projects_app,
                                     tasks_app, wait_operation)
from pixelpool.models import Label, Operation


@projects_app.command("ls")
@handled
def projects_ls(json_mode: Json = False) -> int:
    """Your projects with your role."""
    found = client().projects.list()
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "role", "labels"], [(p.id, p.name, p.role, ", ".join(l.name for l in p.labels))
                                          for p in found]))
    return 0


@projects_app.command("create")
@handled
def projects_create(name: str, label: Annotated[Optional[list[str]], typer.Option(
                        help="NAME or NAME:TYPE (bbox, polygon, classification, any); repeat")] = None,
                    description: Annotated[Optional[str], typer.Option()] = None, json_mode: Json = False) -> int:
    """Create a project (you become its owner)."""
    labels = [Label(name=spec.split(":", 1)[0], annotation_type=spec.split(":", 1)[1] if ":" in spec else "any")
              for spec in label or []]
    project = client().projects.create(name, description=description, labels=labels)
    output.emit(json_mode, dump(project), f"project {project.name} created: {project.id}")
    return 0


@projects_app.command("activity")
@handled
def projects_activity(project: str, limit: Annotated[int, typer.Option(min=1)] = 50, json_mode: Json = False) -> int:
    """The project's timeline, newest first."""
    sdk = client()
    entries = list(sdk.projects.activity(sdk.projects.resolve(project).id, limit=limit))
    output.emit(json_mode, dump(entries), lambda: output.table(
        ["when", "actor", "action", "summary"], [(e.created_at, e.actor, f"{e.entity_type}.{e.action}", e.summary)
                                                 for e in entries]))
    return 0


# tasks ----------------------------------------------------------------------------------------------

@tasks_app.command("create")
@handled
def tasks_create(project: Annotated[str, typer.Argument(help="project id or name")],
                 from_folder: Annotated[list[str], typer.Option(help="share folder (or file) to take; repeat")],
                 name: Annotated[Optional[str], typer.Option(help="default: the folder's name")] = None,
                 chunk_size: Annotated[int, typer.Option(min=1, help="images per job")] = 50,
                 split: Annotated[str, typer.Option(help="none, train, val or test")] = "none",
                 order: Annotated[str, typer.Option(help="sequential or random")] = "sequential",
                 seed: Annotated[Optional[int], typer.Option()] = None,
                 timeout: Timeout = 600.0, json_mode: Json = False) -> int:
    """Register share folders, pool them and cut a task into jobs."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    paths = [p if "." in p.rsplit("/", 1)[-1] else p.rstrip("/") + "/" for p in from_folder]
    created = sdk.tasks.create_from_paths(project_id, name or from_folder[0].strip("/").rsplit("/", 1)[-1],
                                          paths, chunk_size=chunk_size, split=split, distribution_order=order,
                                          seed=seed)
    if isinstance(created, Operation):
        finished = wait_operation(sdk, created, json_mode, timeout)
        output.emit(json_mode, dump(finished), f"operation {finished.id}: {finished.status}")
        return operation_code(finished)
    document = dump(created)
    output.emit(json_mode, document, lambda: (
        output.stdout.print(f"task {created.task.name} ({created.task.id}): {created.total_images} image(s) in "
                            f"{len(created.jobs)} job(s), split {created.task.split}", markup=False),
        [output.stderr.print(f"not taken: {f.get('file_path')}: {f.get('reason')}", markup=False)
         for f in created.failed]))
    return 0


@tasks_app.command("ls")
@handled
def tasks_ls(project: str, json_mode: Json = False) -> int:
    """The project's tasks."""
    sdk = client()
    found = sdk.tasks.list(sdk.projects.resolve(project).id)
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "name", "split", "status", "images", "jobs"],
        [(t.id, t.name, t.split, t.status, t.total_images, t.job_count) for t in found]))
    return 0


def image_filter(sdk: Client, tag: list[str] | None, exclude_tag: list[str] | None, tag_mode: str,
                 **bounds: Any) -> dict[str, Any]:
    """Explore's filter from the command line; tags by name or id."""
    built: dict[str, Any] = {key: value for key, value in bounds.items() if value is not None}
    if tag:
        built.update(tag_ids=sdk.tags.resolve(tag), tag_mode=tag_mode)
    if exclude_tag:
        built["exclude_tag_ids"] = sdk.tags.resolve(exclude_tag)
    return built


Tag = Annotated[Optional[list[str]], typer.Option("--tag", help="tag name or id; repeat")]
ExcludeTag = Annotated[Optional[list[str]], typer.Option("--exclude-tag", help="tag name or id; repeat")]
TagMode = Annotated[str, typer.Option(help="any or all of the --tag tags")]
Bound = Annotated[Optional[int], typer.Option(min=0)]
Text = Annotated[Optional[str], typer.Option()]
Confidence = Annotated[Optional[float], typer.Option(min=0, max=1)]
HasCaption = Annotated[Optional[bool], typer.Option("--has-caption/--no-caption", help="with a caption, or without")]
Model = Annotated[Optional[str], typer.Option(help="has a completed ML analysis by this model")]
PredictedClass = Annotated[Optional[str], typer.Option(help="has a prediction of this class")]


@app.command()
@handled
def explore(project: Annotated[str, typer.Argument(help="project id or name")], tag: Tag = None,
            exclude_tag: ExcludeTag = None, tag_mode: TagMode = "any", search: Text = None,
            split: Text = None, path_prefix: Text = None, min_width: Bound = None, max_width: Bound = None,
            min_height: Bound = None, max_height: Bound = None, caption: Text = None,
            has_caption: HasCaption = None, model: Model = None, model_version: Text = None,
            predicted_class: PredictedClass = None, min_confidence: Confidence = None,
            confidence_below: Confidence = None,
            limit: Annotated[int, typer.Option(min=1)] = 100, json_mode: Json = False) -> int:
    """The project's pool through Explore's filters, newest first. The prediction options hold for one
    prediction: --model yolo_v8 --predicted-class cat --confidence-below 0.5."""
    sdk = client()
    project_id = sdk.projects.resolve(project).id
    filters = image_filter(sdk, tag, exclude_tag, tag_mode, search=search, split=split, path_prefix=path_prefix,
                           min_width=min_width, max_width=max_width, min_height=min_height, max_height=max_height,
                           caption=caption, has_caption=has_caption, prediction_model=model,
                           prediction_model_version=model_version,
                           predicted_class=predicted_class, min_confidence=min_confidence,
                           confidence_below=confidence_below)
    found = list(sdk.projects.explore(project_id, filters, limit=limit))
    output.emit(json_mode, dump(found), lambda: output.table(
        ["id", "path", "pixels", "tags"], [(i.id, i.file_path, f"{i.width}x{i.height}",
                                            ", ".join(t.name for t in i.tags)) for i in found])
        if found else output.stdout.print("no image matches the filter"))
    return 0
