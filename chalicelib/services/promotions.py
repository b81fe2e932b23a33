"""Promoting predictions into a job's annotations: the predictions of completed analyses of the job's
images become `draft` annotations under project labels, so people review instead of drawing from
scratch (Label Studio's pre-annotations, CVAT's auto-annotation).

A promoted annotation's id is `pred-<prediction id>`: promoting again adds only what is missing,
and an annotation a person confirmed, edited or left as a draft is never touched. Nothing present
is deleted or overwritten; sets are written through `AnnotationService.add_absent`, the same
checks, history and counts as a person's save.

A `caption` prediction becomes the image's caption (a fact of the image, shared by every project,
so it needs the global right to caption images): per image the most confident one that passes
`min_confidence` (a caption without a confidence counts as 0), and only where the image has no
caption or one that came from a prediction — a caption a person wrote is never replaced.
"""
from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, ValidationError
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.annotations import AnnotationService
from chalicelib.services.identity import Identity
from chalicelib.services.jobs import JobService
from chalicelib.store.analyses import Analysis, AnalysisRepository, Prediction
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import JobRepository

# Prediction type → annotation type; keypoints and heatmaps have no annotation type to land in and
# are reported as not promotable. A `caption` prediction becomes the image's caption (below).
PROMOTABLE = {"bounding_box": "bbox", "polygon": "polygon", "classification": "classification"}
READERS = 8


@dataclass
class Skipped:
    """The predictions not promoted, by reason."""

    below_confidence: int = 0
    unmapped: Counter = field(default_factory=Counter)  # class name → count
    not_promotable: Counter = field(default_factory=Counter)  # prediction type → count


@dataclass
class Captions:
    """What became of the images' best caption predictions."""

    written: int = 0
    already_present: int = 0
    kept_by_person: int = 0  # the image has a caption a person wrote
    not_allowed: int = 0  # the caller may not caption images (global role)


@dataclass(frozen=True)
class PromotedImage:
    image_id: str
    annotation_ids: list[str]
    rev: int


@dataclass(frozen=True)
class Promotion:
    job_id: str
    analysis_ids: list[str]
    totals: dict[str, Any]
    images: list[PromotedImage]


class PromotionService:
    def __init__(self, jobs: JobService, job_images: JobRepository, analyses: AnalysisRepository,
                 annotations: AnnotationService, activity: ActivityService, images: ImageRepository,
                 access: Access) -> None:
        self._images = images
        self._access = access
        self._jobs = jobs
        self._job_images = job_images
        self._analyses = analyses
        self._annotations = annotations
        self._activity = activity

    def promote(self, actor: Identity, job_id: str, *, analysis_ids: list[str] | None, model: str | None,
                model_version: str | None, min_confidence: float, label_map: dict[str, str]) -> Promotion:
        """Add the chosen predictions to the job's annotation sets as drafts, for whoever may write
        annotations in the job. `analysis_ids` must be analyses of the job's images (422 naming the
        one that is not); with `model`, every completed analysis of it (and `model_version`) counts."""
        caller, job, task = self._jobs.admit(actor, job_id, "annotations.write")
        labels = {label["name"]: label.get("annotation_type", "any") for label in caller.project.labels}
        _require_labels(label_map, labels)
        image_ids = [entry.image_id for entry in self._job_images.images_of_job(job)]
        chosen = self._chosen(image_ids, analysis_ids, model, model_version)
        skipped = Skipped()
        wanted: dict[str, list[dict[str, Any]]] = {}
        best_captions: dict[str, tuple[float, str, Analysis, Prediction]] = {}
        for analysis, predictions in chosen:
            for prediction in predictions:
                if prediction.annotation_type == "caption":
                    confidence = prediction.confidence or 0.0
                    if confidence < min_confidence:
                        skipped.below_confidence += 1
                        continue
                    rank = (confidence, analysis.created_at.isoformat(), analysis, prediction)
                    if analysis.image_id not in best_captions or rank[:2] > best_captions[analysis.image_id][:2]:
                        best_captions[analysis.image_id] = rank
                    continue
                annotation = _annotation(analysis, prediction, min_confidence, label_map, labels, skipped)
                if annotation is not None:
                    wanted.setdefault(analysis.image_id, []).append(annotation)
        added = self._annotations.add_absent(actor, job_id, {image_id: wanted[image_id] for image_id in image_ids
                                                             if image_id in wanted})
        images = [PromotedImage(image_id, result.added, result.saved.rev)
                  for image_id, result in added.items() if result.saved is not None]
        captions = self._captions(actor, {image_id: found[2:] for image_id, found in best_captions.items()})
        totals = {"images": len(images), "promoted": sum(len(result.added) for result in added.values()),
                  "already_present": sum(result.present for result in added.values()),
                  "below_confidence": skipped.below_confidence, "unmapped": dict(skipped.unmapped),
                  "not_promotable": dict(skipped.not_promotable), "captions": vars(captions)}
        taken = [analysis.id for analysis, _ in chosen]
        source = f"{len(taken)} analysis(es)" if model is None else f"model {model} {model_version or ''}".strip()
        self._activity.record(actor, "job", job_id, "predictions_promoted", project_id=job.project_id,
                              summary=f"Promoted {totals['promoted']} prediction(s) of {source} to draft "
                                      f"annotations in job {job.sequence_number + 1} of \"{task.name}\"",
                              details={**totals, "analysis_ids": taken, "model": model,
                                       "model_version": model_version, "min_confidence": min_confidence})
        return Promotion(job_id, taken, totals, images)

    def _captions(self, actor: Identity, chosen: dict[str, tuple[Analysis, Prediction]]) -> Captions:
        """Each image's chosen caption prediction as its caption, unless a person wrote one."""
        result = Captions()
        if not chosen:
            return result
        if not self._access.may_global(actor, "images.caption"):
            result.not_allowed = len(chosen)
            return result
        current = self._images.find(list(chosen))
        for image_id, (analysis, prediction) in chosen.items():
            caption = current[image_id].caption if image_id in current else None
            if caption is not None and caption.get("prediction_id") == prediction.id:
                result.already_present += 1
                continue
            if caption is not None and caption.get("source") != "prediction":
                result.kept_by_person += 1
                continue
            try:
                self._images.set_caption(image_id, {
                    "text": prediction.data["text"], "tags": list(prediction.data.get("tags") or ()),
                    "source": "prediction", "updated_by": actor.sub, "updated_at": utcnow().isoformat(),
                    "analysis_id": analysis.id, "prediction_id": prediction.id, "model_name": analysis.model_name,
                    "model_version": analysis.model_version}, unless_by_a_person=True)
                result.written += 1
            except ConflictError:  # a person captioned it meanwhile
                result.kept_by_person += 1
        return result

    def _chosen(self, image_ids: list[str], analysis_ids: list[str] | None, model: str | None,
                model_version: str | None) -> list[tuple[Analysis, list[Prediction]]]:
        """The completed analyses asked for, with their predictions (read in parallel)."""
        if analysis_ids is not None:
            found = self._given(analysis_ids, set(image_ids))
        else:  # the completed analyses noted on the images' records (consistent reads, batched)
            noted = [a for facts in self._images.shared_facts(image_ids).values() for a in facts.analysis_ids]
            found = [analysis for analysis in self._analyses.find(noted).values()
                     if analysis.model_name == model and model_version in (None, analysis.model_version)]
        completed = [analysis for analysis in found if analysis.status == "completed"]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            return list(zip(completed, pool.map(lambda analysis: self._analyses.predictions(analysis.id), completed)))

    def _given(self, analysis_ids: list[str], image_ids: set[str]) -> list[Analysis]:
        """The named analyses (one BatchGetItem, consistent), each of an image of the job (else 422
        naming every one that is not)."""
        wanted = list(dict.fromkeys(analysis_ids))
        found = self._analyses.find(wanted)
        refused = [analysis_id for analysis_id in wanted
                   if analysis_id not in found or found[analysis_id].image_id not in image_ids]
        if refused:
            raise ValidationError(f"Not analyses of this job's images: {', '.join(refused[:10])}",
                                  [{"field": f"analysis_ids.{analysis_ids.index(analysis_id)}", "location": "body",
                                    "message": f"analysis '{analysis_id}' is not of an image in this job",
                                    "type": "analysis"} for analysis_id in refused])
        return [found[analysis_id] for analysis_id in wanted]


def _require_labels(label_map: dict[str, str], labels: dict[str, str]) -> None:
    """Every target of `label_map` is a label of the project (else 422 naming `label_map.<class>`)."""
    wrong = [(name, target) for name, target in label_map.items() if target not in labels]
    if wrong:
        raise ValidationError("label_map names labels the project does not have: " + ", ".join(
            f"label_map.{name} ({target!r})" for name, target in wrong[:10]),
            [{"field": f"label_map.{name}", "location": "body", "type": "label",
              "message": f"{target!r} is not in the project's label set"} for name, target in wrong])


def _annotation(analysis: Analysis, prediction: Prediction, min_confidence: float, label_map: dict[str, str],
                 labels: dict[str, str], skipped: Skipped) -> dict[str, Any] | None:
    """The draft annotation a prediction becomes, or None (counted in `skipped` with the reason)."""
    kind = PROMOTABLE.get(prediction.annotation_type)
    if kind is None:
        skipped.not_promotable[prediction.annotation_type] += 1
        return None
    confidence = prediction.confidence or 0.0
    if confidence < min_confidence:
        skipped.below_confidence += 1
        return None
    class_name = prediction.class_name or ""
    label = label_map.get(class_name, class_name)
    if labels.get(label) not in ("any", kind):
        skipped.unmapped[class_name] += 1
        return None
    annotation: dict[str, Any] = {
        "id": f"pred-{prediction.id}", "type": kind, "label": label, "state": "draft",
        "attributes": {"source": "prediction", "analysis_id": analysis.id, "prediction_id": prediction.id,
                       "model_name": analysis.model_name, "model_version": analysis.model_version,
                       "confidence": prediction.confidence},
    }
    data = prediction.data
    if kind == "bbox":
        annotation["bbox"] = [float(data["x_min"]), float(data["y_min"]), _extent(data["x_min"], data["x_max"]),
                              _extent(data["y_min"], data["y_max"])]
    elif kind == "polygon":
        annotation["points"] = [[float(x), float(y)] for x, y in data["points"]]
    return annotation


def _extent(low: float, high: float) -> float:
    """`high - low`, nudged down where float rounding would make `low + extent` pass `high` (and a
    box that touches the image's edge reach outside it)."""
    extent = float(high) - float(low)
    while float(low) + extent > float(high):
        extent = math.nextafter(extent, 0.0)
    return extent
