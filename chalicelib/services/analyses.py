"""ML analyses: the lifecycle pipelines drive (create, status, artifacts, predictions, finalize) and
what users read (an image's analyses, one analysis with its predictions and artifacts, exports).

Status moves: `queued → processing | failed | canceled`, `processing → completed | failed |
canceled`; anything else is 409. `completed` is reached only through `finalize`, which first
checks that every declared artifact is in S3. Predictions are posted while `processing`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.errors import ConflictError, NotFoundError, StoreError, ValidationError
from chalicelib.ids import new_id
from chalicelib.services import predictions as checks
from chalicelib.services.pipelines import Pipeline, PipelineAuth
from chalicelib.store.analyses import MAX_ANALYSES_A_POST, Analysis, AnalysisRepository, Prediction
from chalicelib.store.images import Image, ImageRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import dataset_of

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

    from chalicelib.services.activity import ActivityService
    from chalicelib.services.explore import ExploreService
    from chalicelib.services.filters import ImageFilter
    from chalicelib.services.identity import Identity
    from chalicelib.services.trash import Trash

MOVES = {
    "queued": {"processing", "failed", "canceled"},
    "processing": {"completed", "failed", "canceled"},
}
ARTIFACT_TYPES = {
    "heatmap": ("image/png", "image/jpeg", "image/webp"),
    "mask": ("image/png",),
    "json": ("application/json",),
}
CSV_COLUMNS = ["analysis_id", "image_id", "model_name", "model_version", "prediction_id", "annotation_type",
               "class_name", "confidence", "x_min", "y_min", "x_max", "y_max", "storage_path", "data"]
MAX_PROJECT_EXPORT_IMAGES = 1000
# A retried bulk post (same Idempotency-Key) answers what the first answered for this long.
IDEMPOTENCY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Upload:
    url: str
    method: str
    headers: dict[str, str]
    key: str
    expires_in: int


@dataclass(frozen=True)
class AnalysisDetail:
    analysis: Analysis
    artifacts: list[dict[str, Any]]  # each with a presigned GET `url`
    predictions: list[Prediction]


@dataclass(frozen=True)
class Export:
    format: str
    filename: str
    content_type: str
    document: dict[str, Any] | None
    csv: str | None


def _replayed(response: Any, record: Any) -> Any:
    return {**response, "replayed": True}


class AnalysisService:
    def __init__(self, settings: Settings, analyses: AnalysisRepository, images: ImageRepository, trash: "Trash",
                 artifacts: Bucket, auth: PipelineAuth, persistence: "BasePersistenceLayer",
                 activity: "ActivityService", explore: "ExploreService | None" = None) -> None:
        self._settings = settings
        self._activity = activity
        self._analyses = analyses
        self._images = images
        self._trash = trash
        self._artifacts = artifacts
        self._auth = auth
        self._explore = explore
        # A key is the pipeline's own (its key id), per analysis — or per pipeline for posts across
        # analyses (`*`): two pipelines numbering their batches alike never meet.
        self._idempotency = IdempotencyConfig(event_key_jmespath="[pipeline_key_id, analysis_id, idempotency_key]",
                                              payload_validation_jmespath="body_sha256",
                                              expires_after_seconds=IDEMPOTENCY_SECONDS, response_hook=_replayed)
        self._post_once = idempotent_function(self._post_predictions, data_keyword_argument="request",
                                              persistence_store=persistence, config=self._idempotency)

    # Pipelines -----------------------------------------------------------------------------------

    def create(self, pipeline: Pipeline, image_id: str, model_name: str, model_version: str,
               parameters: dict[str, Any]) -> Analysis:
        self._auth.require_model(model_name)
        image = self._visible(image_id)
        analysis = self._new(pipeline, image_id, model_name, model_version, parameters, image.file_path)
        self._analyses.create([analysis])
        self._activity.record(None, "analysis", analysis.id, "created",
                              summary=f"Pipeline key '{pipeline.key_id}' queued {model_name} {model_version} "
                                      f"on image {image_id}",
                              details={"pipeline_key_id": pipeline.key_id, "image_id": image_id,
                                       "model_name": model_name, "model_version": model_version})
        return analysis

    def create_batch(self, pipeline: Pipeline, image_ids: list[str], model_name: str, model_version: str,
                     parameters: dict[str, Any]) -> list[Analysis]:
        """One queued analysis per image (all or none: an unknown image refuses the whole batch)."""
        self._auth.require_model(model_name)
        wanted = list(dict.fromkeys(image_ids))
        found = self._images.find(wanted)
        hidden = self._trash.hidden_now([image.file_path for image in found.values()])
        missing = [image_id for image_id in wanted if image_id not in found or found[image_id].file_path in hidden]
        if missing:
            raise NotFoundError(f"Shared image(s) not found: {', '.join(missing[:10])}",
                                [{"image_id": image_id} for image_id in missing])
        analyses = [self._new(pipeline, image_id, model_name, model_version, parameters, found[image_id].file_path)
                    for image_id in wanted]
        self._analyses.create(analyses)
        # One entry for the request: a batch of 100 is one act of the pipeline, not 100.
        self._activity.record(None, "analysis_batch", analyses[0].id, "created",
                              summary=f"Pipeline key '{pipeline.key_id}' queued {model_name} {model_version} "
                                      f"on {len(analyses)} image(s)",
                              details={"pipeline_key_id": pipeline.key_id, "count": len(analyses),
                                       "analysis_ids": [a.id for a in analyses], "model_name": model_name,
                                       "model_version": model_version})
        return analyses

    def set_status(self, pipeline: Pipeline, analysis_id: str, status: str, error: str | None = None) -> Analysis:
        analysis = self._analyses.get(analysis_id)
        self._require_move(analysis, status)
        return self._moved(pipeline, analysis, status, error)

    def presign_artifact(self, pipeline: Pipeline, analysis_id: str, artifact_type: str, filename: str,
                         content_type: str | None, size: int) -> Upload:
        """A presigned PUT of `ml_outputs/<analysis id>/<filename>`, declared on the analysis so that
        `finalize` checks it arrived."""
        analysis = self._analyses.get(analysis_id)
        self._require_open(analysis, "receive artifacts")
        allowed = ARTIFACT_TYPES[artifact_type]
        content_type = content_type or allowed[0]
        if content_type not in allowed:
            raise ValidationError(f"content_type '{content_type}' is not allowed for a {artifact_type}; "
                                  f"allowed: {', '.join(allowed)}",
                                  [{"field": "content_type", "location": "body", "type": "artifact"}])
        limit = self._settings.ml_artifact_max_bytes
        if size > limit:
            raise ValidationError(f"size {size} is above the artifact limit of {limit} bytes",
                                  [{"field": "size", "location": "body", "type": "artifact"}])
        key = checks.artifact_prefix(analysis_id) + filename
        declared = {"artifact_type": artifact_type, "filename": filename, "key": key, "content_type": content_type,
                    "size": size}
        artifacts = [item for item in analysis.artifacts if item["filename"] != filename] + [declared]
        self._analyses.update(analysis_id, analysis.status, artifacts=artifacts, updated_at=utcnow())
        expires_in = self._settings.upload_url_ttl_seconds
        url = self._artifacts.presign_put(key, content_type, size, expires_in)
        return Upload(url=url, method="PUT", headers={"Content-Type": content_type}, key=key, expires_in=expires_in)

    def post_predictions(self, pipeline: Pipeline, analysis_id: str | None, items: list[dict[str, Any]],
                         idempotency_key: str | None, lambda_context: Any = None) -> dict[str, Any]:
        """Store up to 1,000 predictions: of one analysis (`analysis_id`), or of many, each item naming
        its `analysis_id` (a pipeline posting a batch across images: one request per 1,000, whatever
        the images). All or nothing: every item is checked before any is written. With an
        `idempotency_key`, a retry of the same post (same key, same body) answers the first answer and
        writes nothing (`replayed: true`); the same key with another body is 422. `lambda_context`
        bounds how long an interrupted post blocks its key."""
        request = {"pipeline_key_id": pipeline.key_id, "analysis_id": analysis_id or "*", "items": items,
                   "idempotency_key": idempotency_key,
                   "body_sha256": hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()}
        if not idempotency_key:
            return self._post_predictions(request=request)
        if lambda_context is not None:
            self._idempotency.register_lambda_context(lambda_context)
        try:
            return self._post_once(request=request)
        except IdempotencyValidationError as exc:
            raise ValidationError("Idempotency-Key was used before with another body",
                                  [{"field": "Idempotency-Key", "location": "header", "type": "idempotency"}]) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise ConflictError("A post with this Idempotency-Key is in progress; retry in a moment") from exc
        except IdempotencyPersistenceLayerError as exc:
            raise StoreError(f"recording the Idempotency-Key failed: {exc}") from exc

    def finalize(self, pipeline: Pipeline, analysis_id: str, status: str, error: str | None = None) -> Analysis:
        """End the analysis; `completed` only if every declared artifact is in S3 with its declared size.
        A completed analysis is noted on its image, where Explore's prediction conditions find it;
        finalizing it again as completed (a retry whose answer was lost) notes it again and answers
        the analysis as it is."""
        analysis = self._analyses.get(analysis_id)
        if analysis.status == status == "completed":
            self._images.note_analyses({analysis.image_id: {analysis_id}})
            return analysis
        self._require_move(analysis, status)
        if status == "completed":
            problems = []
            for artifact in analysis.artifacts:
                found = self._artifacts.head(artifact["key"])
                if found is None:
                    problems.append({"field": artifact["filename"], "message": "not uploaded", "type": "artifact"})
                elif found.size != artifact["size"]:
                    problems.append({"field": artifact["filename"], "type": "artifact",
                                     "message": f"{found.size} bytes, declared {artifact['size']}"})
            if problems:
                raise ValidationError("Declared artifacts missing or incomplete: " + ", ".join(
                    f"{p['field']} ({p['message']})" for p in problems), problems)
        return self._moved(pipeline, analysis, status, error)

    # Users ---------------------------------------------------------------------------------------

    def of_image(self, actor: "Identity", image_id: str) -> list[Analysis]:
        """The image's analyses, newest first (any reader of the registry image)."""
        self._visible(image_id)
        return self._analyses.of_image(image_id)

    def detail(self, actor: "Identity", analysis_id: str) -> AnalysisDetail:
        analysis = self._readable(analysis_id)
        ttl = self._settings.presign_ttl_seconds
        artifacts = [{**artifact, "url": self._artifacts.presign_get(artifact["key"], ttl, artifact["filename"])}
                     for artifact in analysis.artifacts]
        return AnalysisDetail(analysis, artifacts, self._analyses.predictions(analysis_id))

    def export(self, actor: "Identity", analysis_id: str, format: str) -> Export:
        analysis = self._readable(analysis_id)
        found = [(analysis, self._analyses.predictions(analysis_id))]
        return _export(found, f"analysis-{analysis_id}", format, {"analysis": _plain(analysis),
                                                                    "predictions": [_plain(p) for p in found[0][1]]})

    def export_project(self, actor: "Identity", project_id: str, image_filter: "ImageFilter", format: str, *,
                       model_name: str | None = None, model_version: str | None = None,
                       status: str | None = None) -> Export:
        """The analyses (with predictions) of the pool images Explore's filter selects, for whoever
        may read the pool; at most `MAX_PROJECT_EXPORT_IMAGES` images (422 beyond: narrow the filter)."""
        assert self._explore is not None, "built without Explore"
        selection = self._explore.selection_for(actor, project_id, image_filter)
        if selection.total > MAX_PROJECT_EXPORT_IMAGES:
            raise ValidationError(f"The filter selects {selection.total} images; an analyses export takes at most "
                                  f"{MAX_PROJECT_EXPORT_IMAGES}: narrow the filter",
                                  [{"field": "filter", "location": "query", "type": "too_many_images"}])
        image_ids = [entry.image_id for entry in selection.entries]
        with ThreadPoolExecutor(max_workers=8) as pool:
            per_image = list(pool.map(self._analyses.of_image, image_ids))
            chosen = [analysis for found in per_image for analysis in found
                      if (model_name is None or analysis.model_name == model_name)
                      and (model_version is None or analysis.model_version == model_version)
                      and (status is None or analysis.status == status)]
            found = list(zip(chosen, pool.map(lambda a: self._analyses.predictions(a.id), chosen)))
        document = {"project_id": project_id, "filters_applied": image_filter.applied(), "image_count": len(image_ids),
                    "analyses": [{**_plain(a), "predictions": [_plain(p) for p in predicted]}
                                 for a, predicted in found]}
        return _export(found, f"project-{project_id}-analyses", format, document)

    # Internals -----------------------------------------------------------------------------------

    def _post_predictions(self, request: dict[str, Any]) -> dict[str, Any]:
        one = request["analysis_id"] if request["analysis_id"] != "*" else None
        items = request["items"]
        groups: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            groups.setdefault(one or item["analysis_id"], []).append(position)
        if len(groups) > MAX_ANALYSES_A_POST:
            raise ValidationError(f"One post carries predictions of at most {MAX_ANALYSES_A_POST} analyses; this one "
                                  f"has {len(groups)}: split it", [{"field": "annotations", "location": "body",
                                                                    "type": "too_many_analyses"}])
        found = self._analyses.find(list(groups))
        missing = [analysis_id for analysis_id in groups if analysis_id not in found]
        if missing and one is not None:
            raise NotFoundError(f"Analysis '{one}' not found")
        if missing:
            raise NotFoundError(f"Analysis(es) not found: {', '.join(missing[:10])}",
                                [{"field": f"annotations.{groups[a][0]}.analysis_id", "location": "body",
                                  "message": f"analysis '{a}' not found", "type": "not_found"} for a in missing])
        closed = [a for a in found.values() if a.status != "processing"]
        if closed:
            raise ConflictError("Predictions are posted while an analysis is 'processing': " + ", ".join(
                f"'{a.id}' is '{a.status}'" for a in closed[:10]),
                [{"analysis_id": a.id, "status": a.status} for a in closed])
        images = self._images.find({a.image_id for a in found.values()})
        hidden = self._trash.hidden_now([image.file_path for image in images.values()])
        details: list[dict[str, Any]] = []
        for analysis_id, positions in groups.items():
            image = images.get(found[analysis_id].image_id)
            if image is None or image.file_path in hidden:
                raise NotFoundError(f"Shared image '{found[analysis_id].image_id}' not found")
            if not image.width or not image.height:
                raise ConflictError(f"Shared image '{image.id}' has no size yet (status '{image.status}')")
            details += checks.problems([items[p] for p in positions], int(image.width), int(image.height),
                                       analysis_id, positions)
        checks.refuse(details)
        now = utcnow()
        made = {analysis_id: [Prediction(id=new_id(), annotation_type=items[p]["annotation_type"],
                                         class_name=items[p].get("class_name"),
                                         confidence=items[p].get("confidence"), data=items[p].get("data") or {},
                                         storage_path=items[p].get("storage_path"), created_at=now)
                              for p in positions] for analysis_id, positions in groups.items()}
        counts = self._analyses.add_predictions(made, "processing", now)
        if one is not None:
            return {"analysis_id": one, "written": len(items), "prediction_count": counts[one], "replayed": False}
        return {"written": len(items), "replayed": False,
                "analyses": [{"analysis_id": a, "written": len(made[a]), "prediction_count": counts[a]}
                             for a in groups]}

    def _moved(self, pipeline: Pipeline, analysis: Analysis, status: str, error: str | None) -> Analysis:
        """Move the analysis (409 if someone moved it first); reaching a final status is recorded in the
        global activity log, by the pipeline's key (pipelines are not users: no actor)."""
        moved = self._analyses.update(analysis.id, analysis.status, status=status, error=error, updated_at=utcnow())
        if status == "completed":  # where Explore's prediction conditions find it
            self._images.note_analyses({analysis.image_id: {analysis.id}})
        if status not in MOVES:
            self._activity.record(None, "analysis", analysis.id, status,
                                  summary=f"Analysis {analysis.model_name} {analysis.model_version} of image "
                                          f"{analysis.image_id}: {status}",
                                  details={"pipeline_key_id": pipeline.key_id, "image_id": analysis.image_id,
                                           "model_name": analysis.model_name,
                                           "model_version": analysis.model_version,
                                           "prediction_count": moved.prediction_count, "error": error})
        return moved

    def _new(self, pipeline: Pipeline, image_id: str, model_name: str, model_version: str,
             parameters: dict[str, Any], file_path: str) -> Analysis:
        now = utcnow()
        return Analysis(id=new_id(), image_id=image_id, model_name=model_name, model_version=model_version,
                        parameters=parameters, status="queued", key_id=pipeline.key_id, artifacts=[],
                        prediction_count=0, error=None, created_at=now, updated_at=now,
                        dataset_id=dataset_of(file_path))

    def _require_move(self, analysis: Analysis, status: str) -> None:
        if status not in MOVES.get(analysis.status, set()):
            allowed = sorted(MOVES.get(analysis.status, set()))
            raise ConflictError(f"Analysis '{analysis.id}' cannot move from '{analysis.status}' to '{status}' "
                                f"(allowed: {', '.join(allowed) or 'none, it is final'})",
                                [{"from": analysis.status, "to": status, "allowed": allowed}])

    @staticmethod
    def _require_open(analysis: Analysis, what: str) -> None:
        if analysis.status not in MOVES:
            raise ConflictError(f"Analysis '{analysis.id}' is '{analysis.status}' and cannot {what}")

    def _visible(self, image_id: str) -> Image:
        image = self._images.get(image_id)
        if self._trash.hidden_now([image.file_path]):
            raise NotFoundError(f"Shared image '{image_id}' not found")
        return image

    def _readable(self, analysis_id: str) -> Analysis:
        analysis = self._analyses.get(analysis_id)
        try:
            self._visible(analysis.image_id)
        except NotFoundError as exc:
            raise NotFoundError(f"Analysis '{analysis_id}' not found") from exc
        return analysis


def _export(found: list[tuple[Analysis, list[Prediction]]], stem: str, format: str,
            document: dict[str, Any]) -> Export:
    if format == "json":
        return Export("json", f"{stem}.json", "application/json", document, None)
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for analysis, predicted in found:
        for prediction in predicted:
            box = prediction.data if prediction.annotation_type == "bounding_box" else {}
            writer.writerow({
                "analysis_id": analysis.id, "image_id": analysis.image_id, "model_name": analysis.model_name,
                "model_version": analysis.model_version, "prediction_id": prediction.id,
                "annotation_type": prediction.annotation_type, "class_name": prediction.class_name or "",
                "confidence": "" if prediction.confidence is None else prediction.confidence,
                **{name: box.get(name, "") for name in ("x_min", "y_min", "x_max", "y_max")},
                "storage_path": prediction.storage_path or "",
                "data": json.dumps(prediction.data, sort_keys=True, separators=(",", ":")),
            })
    return Export("csv", f"{stem}.csv", "text/csv", None, out.getvalue())


def _plain(entity: Any) -> dict[str, Any]:
    values = dict(vars(entity))
    for name in ("created_at", "updated_at"):
        if name in values:
            values[name] = values[name].isoformat()
    return values
