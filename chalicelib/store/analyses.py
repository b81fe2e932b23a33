"""ML analyses and their predictions, in AnalysesTable.

- an analysis: `pk = A#<analysis id>`, `sk = ANALYSIS`, with `image_id` and `created_key`
  (`<created_at ISO>#<id>`), so the sparse index `by_image` lists an image's analyses newest first
  in one Query;
- its predictions: `pk = A#<analysis id>`, `sk = P#<prediction id>`: one Query reads them all,
  BatchWriteItem (25 items a request) writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.errors import ConflictError, NotFoundError, StoreError
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta

ANALYSIS_SK = "ANALYSIS"
# The analyses one post may carry: their counts are one transaction (TransactWriteItems' limit).
MAX_ANALYSES_A_POST = 100
logger = Logger(child=True)


class ByImage(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_image"
        projection = AllProjection()

    image_id = UnicodeAttribute(hash_key=True)
    created_key = UnicodeAttribute(range_key=True)


class ByDataset(GlobalSecondaryIndex):
    """Sparse: the analyses of images that live in a dataset (what its purge removes)."""

    class Meta:
        index_name = "by_dataset"
        projection = KeysOnlyProjection()

    dataset_id = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class AnalysisItem(Model):
    Meta = table_meta("analyses_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    by_image = ByImage()
    by_dataset = ByDataset()
    dataset_id = UnicodeAttribute(null=True)  # set for images under `datasets/<id>/`
    id = UnicodeAttribute()
    image_id = UnicodeAttribute()
    created_key = UnicodeAttribute()
    model_name = UnicodeAttribute()
    model_version = UnicodeAttribute()
    parameters = JSONAttribute()
    status = UnicodeAttribute()
    key_id = UnicodeAttribute()
    artifacts = JSONAttribute()
    prediction_count = NumberAttribute(default=0)
    error = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class PredictionItem(Model):
    Meta = table_meta("analyses_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    annotation_type = UnicodeAttribute()
    class_name = UnicodeAttribute(null=True)
    confidence = NumberAttribute(null=True)
    data = JSONAttribute()
    storage_path = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class Analysis:
    id: str
    image_id: str
    model_name: str
    model_version: str
    parameters: dict[str, Any]
    status: str
    key_id: str
    artifacts: list[dict[str, Any]]
    prediction_count: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    dataset_id: str | None = None


@dataclass(frozen=True)
class Prediction:
    id: str
    annotation_type: str
    class_name: str | None
    confidence: float | None
    data: dict[str, Any]
    storage_path: str | None
    created_at: datetime


def analysis_pk(analysis_id: str) -> str:
    return f"A#{analysis_id}"


def _analysis(item: AnalysisItem) -> Analysis:
    return entity(Analysis, item, artifacts=list(item.artifacts or []), parameters=dict(item.parameters or {}))


def _prediction(item: PredictionItem) -> Prediction:
    confidence = None if item.confidence is None else float(item.confidence)
    return entity(Prediction, item, confidence=confidence)


def _item(analysis: Analysis) -> AnalysisItem:
    return AnalysisItem(
        pk=analysis_pk(analysis.id), sk=ANALYSIS_SK, id=analysis.id, image_id=analysis.image_id,
        created_key=f"{analysis.created_at.isoformat()}#{analysis.id}", model_name=analysis.model_name,
        model_version=analysis.model_version, parameters=analysis.parameters, status=analysis.status,
        key_id=analysis.key_id, artifacts=analysis.artifacts, prediction_count=analysis.prediction_count,
        error=analysis.error, created_at=analysis.created_at, updated_at=analysis.updated_at,
        dataset_id=analysis.dataset_id)


class AnalysisRepository:
    def create(self, analyses: list[Analysis]) -> None:
        """Store new analyses (one PutItem each, or BatchWriteItem for several)."""
        with store_errors("creating analyses"):
            if len(analyses) == 1:
                _item(analyses[0]).save(condition=AnalysisItem.pk.does_not_exist())
                return
            with AnalysisItem.batch_write() as batch:
                for analysis in analyses:
                    batch.save(_item(analysis))

    def get(self, analysis_id: str) -> Analysis:
        try:
            with store_errors("reading an analysis"):
                return _analysis(AnalysisItem.get(analysis_pk(analysis_id), ANALYSIS_SK, consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Analysis '{analysis_id}' not found") from exc

    def find(self, analysis_ids: list[str]) -> dict[str, Analysis]:
        """The analyses that exist among these ids (BatchGetItem, consistent, 100 keys a request)."""
        keys = [(analysis_pk(analysis_id), ANALYSIS_SK) for analysis_id in dict.fromkeys(analysis_ids)]
        with store_errors("reading analyses"):
            return {item.id: _analysis(item) for item in AnalysisItem.batch_get(keys, consistent_read=True)}

    def prediction_facts(self, analysis_id: str) -> list[tuple[str | None, float | None]]:
        """Each prediction's class and confidence, what Explore filters on (one Query, projected)."""
        with store_errors("reading predictions"):
            return [(item.class_name, None if item.confidence is None else float(item.confidence))
                    for item in PredictionItem.query(analysis_pk(analysis_id), PredictionItem.sk.startswith("P#"),
                                                     consistent_read=True,
                                                     attributes_to_get=["class_name", "confidence"])]

    def of_image(self, image_id: str) -> list[Analysis]:
        """An image's analyses, newest first (one Query of `by_image`)."""
        with store_errors("listing an image's analyses"):
            return [_analysis(item) for item in AnalysisItem.by_image.query(image_id, scan_index_forward=False)]

    def update(self, analysis_id: str, expected_status: str, **changes: Any) -> Analysis:
        """Set `changes` if the analysis is still in `expected_status` (else 409: someone moved it)."""
        item = AnalysisItem(pk=analysis_pk(analysis_id), sk=ANALYSIS_SK)
        actions = [getattr(AnalysisItem, name).set(value) for name, value in changes.items()]
        conflict = ConflictError(f"Analysis '{analysis_id}' is no longer '{expected_status}'",
                                 [{"analysis_id": analysis_id, "expected_status": expected_status}])
        with conditional("updating an analysis", conflict):
            item.update(actions=actions, condition=AnalysisItem.status == expected_status)
        return _analysis(item)

    def add_predictions(self, groups: dict[str, list[Prediction]], expected_status: str,
                        updated_at: datetime) -> dict[str, int]:
        """Write the predictions of these analyses (at most MAX_ANALYSES_A_POST) together with
        BatchWriteItem (25 a request, across the analyses), then count them on every analysis in one
        transaction, each still in `expected_status`; returns each analysis's new count. All or
        nothing: when the write fails, or an analysis left `expected_status` meanwhile (409 naming
        it), the predictions just written are deleted again — none stays uncounted under an
        analysis that completed, and a retry does not find half of them there."""
        items = [PredictionItem(pk=analysis_pk(analysis_id), sk=f"P#{prediction.id}", id=prediction.id,
                                annotation_type=prediction.annotation_type, class_name=prediction.class_name,
                                confidence=prediction.confidence, data=prediction.data,
                                storage_path=prediction.storage_path, created_at=prediction.created_at)
                 for analysis_id, predictions in groups.items() for prediction in predictions]
        try:
            with store_errors("writing predictions"):
                with PredictionItem.batch_write() as batch:
                    for item in items:
                        batch.save(item)
            with Transaction("counting predictions") as tx:
                for analysis_id, predictions in groups.items():
                    tx.update(AnalysisItem(pk=analysis_pk(analysis_id), sk=ANALYSIS_SK),
                              actions=[AnalysisItem.prediction_count.add(len(predictions)),
                                       AnalysisItem.updated_at.set(updated_at)],
                              condition=AnalysisItem.status == expected_status, name=analysis_id)
        except TransactionCancelled as exc:
            self._take_back(items)
            moved = [analysis_id for analysis_id in groups if exc.failed(analysis_id)]
            if moved:
                raise ConflictError(f"Analysis(es) no longer '{expected_status}': {', '.join(moved[:10])}; "
                                    "nothing was stored", [{"analysis_id": a} for a in moved]) from exc
            raise
        except StoreError:
            self._take_back(items)
            raise
        return {analysis.id: analysis.prediction_count for analysis in self.find(list(groups)).values()}

    @staticmethod
    def _take_back(items: list[PredictionItem]) -> None:
        """Delete predictions a refused post wrote (best effort: a key never written costs nothing)."""
        try:
            with store_errors("removing the predictions of a refused post"):
                with PredictionItem.batch_write() as batch:
                    for item in items:
                        batch.delete(PredictionItem(pk=item.pk, sk=item.sk))
        except StoreError:
            logger.exception("could not remove the predictions of a refused post", extra={"items": len(items)})

    def completed(self) -> dict[str, set[str]]:
        """Every completed analysis by image (a Scan of the table, projected: an administrator's
        rebuild notes them on their images, for analyses completed before images carried them)."""
        found: dict[str, set[str]] = {}
        with store_errors("listing completed analyses"):
            for item in AnalysisItem.scan((AnalysisItem.sk == ANALYSIS_SK) & (AnalysisItem.status == "completed"),
                                          attributes_to_get=["id", "image_id"]):
                found.setdefault(item.image_id, set()).add(item.id)
        return found

    def of_dataset(self, dataset_id: str) -> list[str]:
        """The ids of the analyses of a dataset's images (Query the sparse `by_dataset` index)."""
        with store_errors("reading a dataset's analyses"):
            return [item.pk.removeprefix("A#") for item in AnalysisItem.by_dataset.query(dataset_id)]

    def delete_all(self, analysis_ids: list[str]) -> int:
        """Delete analyses with their predictions (each partition read for its keys, then one
        BatchWriteItem batch across them, 25 a request); returns how many items went."""
        removed = 0
        with store_errors("deleting analyses"):
            with AnalysisItem.batch_write() as batch:
                for analysis_id in analysis_ids:
                    for item in AnalysisItem.query(analysis_pk(analysis_id), attributes_to_get=["pk", "sk"]):
                        batch.delete(AnalysisItem(pk=item.pk, sk=item.sk))
                        removed += 1
        return removed

    def predictions(self, analysis_id: str) -> list[Prediction]:
        """Every prediction of the analysis (one Query, paged by DynamoDB)."""
        with store_errors("reading predictions"):
            return [_prediction(item) for item in PredictionItem.query(
                analysis_pk(analysis_id), PredictionItem.sk.startswith("P#"), consistent_read=True)]
