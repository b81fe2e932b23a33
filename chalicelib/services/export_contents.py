"""What an export contains: one code path for the preview and for the pipeline's steps.

`plan` freezes the filter's images in Explore order, with split, classes and where they are
used (images a split-based format cannot place, a captions export images in no split beside
split folders, or classification cannot class, are left out and counted); `records` gives each
image's annotations as the version mode has them, label-filtered, or its caption, from the
registry records the caller read; `plan` also finds the split leaks
among the images it keeps, on the split each is exported in (`exclude_leaks` leaves out the
later-split copies); `place` drops the records the export cannot place (a classification image
with no class once its label classes are known, an image with no caption in a captions export)
and counts them; `entries` the COCO annotation entries every detection and segmentation format
counts; `summary` the counts of a set of placed records and what was left out, which `merge` adds
up across shards. The preview, each shard's summary and the ZIP all come
from these, so they agree.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, NamedTuple

import orjson

from chalicelib.errors import ValidationError
from chalicelib.formats import ExportImage, Shape, coco
from chalicelib.services.explore import ExploreService
from chalicelib.services.export_spec import ExportSpec
from chalicelib.services.split_leaks import Copy, Leak, counts, find, later_copies, own_leaks, split_rank
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import READY, Image
from chalicelib.store.jobs import JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import PoolEntry
from chalicelib.store.projects import Project
from chalicelib.store.tasks import TaskRepository
from chalicelib.store.tags import TagRepository


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
    leaks: dict[str, Any] = field(default_factory=dict)  # the `leaks` section (`leaks_section`)


def merge(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum per-shard summaries: counts add up, distributions add up key by key."""
    total: dict[str, Any] = {"images": 0, "annotations": 0, "annotation_counts": Counter(),
                             "split_distribution": Counter(), "class_distribution": Counter(),
                             "excluded": Counter()}
    for summary in summaries:
        total["images"] += summary.get("images", 0)
        total["annotations"] += summary.get("annotations", 0)
        for name in ("annotation_counts", "split_distribution", "class_distribution", "excluded"):
            total[name].update(summary.get(name, {}))
    return {name: dict(sorted(value.items())) if isinstance(value, Counter) else value for name, value in total.items()}


class ExportContents:
    def __init__(self, explore: ExploreService, tasks: TaskRepository, jobs: JobRepository,
                 annotations: AnnotationRepository, tags: TagRepository, links: ImageTagRepository,
                 documents: Bucket) -> None:
        self._explore = explore
        self._tasks = tasks
        self._jobs = jobs
        self._annotations = annotations
        self._tags = tags
        self._links = links
        self._documents = documents

    def classification_options(self, project: Project) -> dict[str, Any]:
        """The classes a classification export can use: tag categories with their tags, and the
        project's classification labels."""
        by_category: dict[str, list] = {}
        uncategorized = []
        for tag in self._tags.list():
            entry = {"id": tag.id, "name": tag.name, "usage_count": tag.usage_count}
            (by_category.setdefault(tag.category, []) if tag.category else uncategorized).append(entry)
        labels = [label["name"] for label in project.labels
                  if label.get("annotation_type", "any") in ("any", "classification")]
        return {"categories": [{"name": name, "tags": sorted(tags, key=lambda t: t["name"])}
                               for name, tags in sorted(by_category.items())],
                "uncategorized_tags": sorted(uncategorized, key=lambda t: t["name"]),
                "labels": sorted(labels)}

    def check_labels(self, project: Project, spec: ExportSpec) -> None:
        known = {label["name"] for label in project.labels}
        unknown = sorted(set(spec.options.labels or ()) - known)
        if unknown:
            raise ValidationError(f"options.labels: {', '.join(map(repr, unknown))} not in the project's label set",
                                  [{"field": "options.labels", "message": f"unknown label {name!r}"}
                                   for name in unknown])

    def plan(self, project: Project, spec: ExportSpec) -> Plan:
        self.check_labels(project, spec)
        names = categories(project.labels, spec)
        if spec.options.labels is not None:
            names = sorted(set(names) & set(spec.options.labels))
        entries = self._explore.select(project.id, spec.filter).entries
        tasks = sorted(self._tasks.tasks(project.id), key=lambda task: (task.created_at, task.id))
        order = {task.id: n for n, task in enumerate(tasks)}
        splits = {task.id: task.split for task in tasks}
        placed: dict[str, list] = {}
        if tasks:
            for image in self._jobs.images_of_tasks(list(order)):
                placed.setdefault(image.image_id, []).append((order[image.task_id], image.task_id, image.job_id,
                                                              image.annotated))
        classes = self._tag_classes(spec)
        kept, excluded = [], Counter()
        for entry in entries:
            if entry.status != READY:  # `failed` (not an image, unsafe key) or `missing` (object deleted)
                excluded[entry.status] += 1
                continue
            uses = sorted(placed.get(entry.image_id, []))
            split = next((splits[task] for _, task, _, _ in uses if splits[task] != "none"), "none")
            image_classes = tuple(sorted(classes.get(entry.image_id, ()))) if classes is not None else ()
            if spec.split_based and split == "none":
                excluded["in_no_split"] += 1
                continue
            if classes is not None and not image_classes:
                excluded["without_class"] += 1
                continue
            in_splits = tuple(sorted({splits[task] for _, task, _, _ in uses} - {"none"}, key=split_rank))
            kept.append(_Kept(entry, split, uses, image_classes, in_splits))
        beside = [k for k in kept if k.split == "none"]
        if spec.export_mode == "captions" and beside and len(beside) < len(kept):
            # Once there are split folders, Hugging Face's imagefolder reads only them: an image
            # in no split beside them would be silently lost, so it is left out and counted.
            excluded["in_no_split"] += len(beside)
            kept = [k for k in kept if k.split != "none"]
        leaks = _leaks(kept, spec.options.leak_max_distance)
        dropped = later_copies(leaks) if spec.options.exclude_leaks else set()
        rows, left_out = [], []
        for entry, split, uses, image_classes, _ in kept:
            if entry.image_id in dropped:
                left_out.append({"image_id": entry.image_id, "file_path": entry.file_path, "split": split})
                continue
            rows.append(Row(len(rows) + 1, entry.image_id, entry.file_path, entry.width or 0, entry.height or 0,
                            entry.sha256, split, tuple((job, annotated) for _, _, job, annotated in uses),
                            image_classes))
        if left_out:
            excluded["copy_in_earlier_split"] += len(left_out)
        return Plan(spec, names, rows, dict(sorted(excluded.items())),
                    leaks_section(leaks, spec.options.leak_max_distance, left_out))

    def _tag_classes(self, spec: ExportSpec) -> dict[str, set[str]] | None:
        """image id → class names, for tag-mapped classification; None when classes are not tags."""
        mapping = spec.options.class_mapping
        if mapping is None or mapping.kind == "labels":
            return None
        if mapping.kind == "categorized":
            wanted = {tag.name: [tag.id] for tag in self.category_tags(spec)}
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

    def records(self, spec: ExportSpec, rows: list[Row],
                images: dict[str, Image] | None = None) -> list[ExportImage]:
        """Each row as an export record. A captions export takes each image's caption text from
        `images` (its registry records, read by the caller in one batched read) and reads no
        annotations."""
        captions = spec.export_mode == "captions"
        sets = {} if captions else self._annotation_sets(spec, rows)
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
                                       shapes=shapes,
                                       caption=caption_text((images or {}).get(row.image_id)) if captions else None))
        return records

    def category_tags(self, spec: ExportSpec) -> list:
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
    def place(plan: Plan, records: list[ExportImage]) -> tuple[list[ExportImage], dict[str, int]]:
        """The records the artifact holds, and the rest by reason: a classification export places
        only images with a class (tag classes are known at plan time, label classes only here), a
        captions export only images with a caption (read when the shard is built)."""
        if plan.spec.export_mode == "classification":
            placed, reason = [record for record in records if record.classes], "without_class"
        elif plan.spec.export_mode == "captions":
            placed, reason = [record for record in records if record.caption is not None], "without_caption"
        else:
            return records, {}
        left = len(records) - len(placed)
        return placed, ({reason: left} if left else {})

    @staticmethod
    def entries(plan: Plan, records: list[ExportImage]) -> list[list[dict]] | None:
        """Each record's COCO annotation entries (detection and segmentation: what every format of
        those modes counts and COCO writes); None for classification and captions."""
        spec = plan.spec
        if spec.export_mode in ("classification", "captions"):
            return None
        ids = {category["name"]: category["id"] for category in coco.categories(plan.categories)}
        options = _coco_options(spec)
        return [coco.annotation_entries(record, ids, spec.export_mode, options) for record in records]

    @staticmethod
    def summary(plan: Plan, records: list[ExportImage], entries: list[list[dict]] | None,
                excluded: dict[str, int] | None = None) -> dict[str, Any]:
        counts, classes = Counter(), Counter()
        annotations = 0
        if entries is None:
            for record in records:
                classes.update(record.classes)
                annotations += len(record.classes) + (record.caption is not None)
        else:
            names = {category["id"]: category["name"] for category in coco.categories(plan.categories)}
            for found in entries:
                classes.update(names[entry["category_id"]] for entry in found)
                annotations += len(found)
        for record in records:
            counts.update(shape.type for shape in record.shapes)
            if record.caption is not None:
                counts["caption"] += 1
        return {"images": len(records), "annotations": annotations, "annotation_counts": dict(counts),
                "split_distribution": dict(Counter(record.split for record in records)),
                "class_distribution": dict(classes), "excluded": dict(excluded or {})}


# Pairs and left-out copies a `leaks` section lists (it counts them all).
LEAKS_SHOWN = 100


class _Kept(NamedTuple):
    """An image the plan keeps, before its leaks are known."""

    entry: PoolEntry
    split: str  # the split it is exported in: its oldest task's that has one
    uses: list[tuple]
    classes: tuple[str, ...]
    in_splits: tuple[str, ...]  # the splits of every task it is in


def _leaks(kept: list[_Kept], max_distance: int) -> list[Leak]:
    """The split leaks among an export's images: exact and near copies on the split each image is
    exported in (the artifact holds each image once), and images in tasks of several splits."""
    copies = [Copy(k.entry.image_id, k.entry.file_path, (k.split,), k.entry.sha256,
                   int(k.entry.phash, 16) if k.entry.phash else None) for k in kept if k.split != "none"]
    several = [leak for k in kept if len(k.in_splits) > 1
               for leak in own_leaks(Copy(k.entry.image_id, k.entry.file_path, k.in_splits))]
    return sorted(find(copies, max_distance, field="options.leak_max_distance") + several, key=Leak.key)


def leaks_section(leaks: list[Leak], max_distance: int, dropped: list[dict[str, str]]) -> dict[str, Any]:
    """What a preview and an export summary say of split leaks: counts by kind, the first pairs and
    the first copies `exclude_leaks` left out."""
    return {"max_distance": max_distance, "counts": counts(leaks), "total": len(leaks),
            "pairs": [asdict(leak) for leak in leaks[:LEAKS_SHOWN]], "dropped": dropped[:LEAKS_SHOWN]}


# The annotation types a label of each `annotation_type` can carry.
_CARRIES = {"any": {"bbox", "polygon", "classification"}, "bbox": {"bbox"}, "polygon": {"polygon"},
            "classification": {"classification"}}


def categories(labels: list[dict[str, Any]], spec: ExportSpec) -> list[str]:
    """The label names an export's categories (COCO) or class names (YOLO) are: the labels whose
    type can carry an annotation the export writes. Detection writes boxes (and polygons as boxes
    with `bbox_from_polygons`); segmentation polygons (and boxes when boxes are included or turned
    into polygons); classification uses image-level classes."""
    options = spec.options
    if spec.export_mode == "detection":
        written = {"bbox"} | ({"polygon"} if options.bbox_from_polygons else set())
    elif spec.export_mode == "segmentation":
        written = {"polygon"} | ({"bbox"} if options.include_bboxes or options.bboxes_as_polygons else set())
    elif spec.export_mode == "classification":
        written = {"classification"}
    else:  # captions: no annotation is written
        written = set()
    return sorted({label["name"] for label in labels
                   if _CARRIES.get(label.get("annotation_type", "any"), set()) & written})


def caption_text(image: Image | None) -> str | None:
    """The caption an export writes for `image`: its caption's text, None when it has none (or an
    empty one, which no training pair can use)."""
    text = ((image.caption if image else None) or {}).get("text")
    return text if isinstance(text, str) and text.strip() else None


def _coco_options(spec: ExportSpec) -> coco.CocoOptions:
    options = spec.options
    return coco.CocoOptions(bbox_from_polygons=options.bbox_from_polygons, include_bboxes=options.include_bboxes,
                            bboxes_as_polygons=options.bboxes_as_polygons)


def _shape(annotation: dict[str, Any]) -> Shape:
    bbox = annotation.get("bbox")
    points = annotation.get("points")
    return Shape(type=annotation["type"], label=annotation["label"], bbox=tuple(bbox) if bbox else None,
                 points=tuple(tuple(point) for point in points) if points else None)
