"""Explore's conditions on what an image carries for every project that holds it: its caption and
its completed ML analyses (docs/analyses.md, "Predictions in Explore").

The project index (services/project_index.py) answers them in SQL over its `pred`, `analysis` and
caption column; PoolQuery (services/explore.py), the DynamoDB reference, answers them here in
memory with `shared_match`. Both read an image's completed analyses through `completed_facts`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from chalicelib.services.filters import ImageFilter
from chalicelib.store.analyses import AnalysisRepository


@dataclass(frozen=True)
class AnalysisFacts:
    """A completed ML analysis as Explore filters on it: its model and its predictions' classes and
    confidences (None for types that have none, e.g. a caption)."""

    analysis_id: str
    image_id: str
    model_name: str
    model_version: str
    predictions: tuple[tuple[str | None, float | None], ...]


def completed_facts(analyses: AnalysisRepository, analysis_ids: Iterable[str]) -> list[AnalysisFacts]:
    """The completed ones among these analyses (one BatchGetItem, consistent), each with its
    predictions' class and confidence (one projected Query each, 8 at a time)."""
    wanted = list(analysis_ids)
    if not wanted:
        return []
    found = [a for a in analyses.find(wanted).values() if a.status == "completed"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        predictions = list(pool.map(lambda a: analyses.prediction_facts(a.id), found))
    return [AnalysisFacts(a.id, a.image_id, a.model_name, a.model_version, tuple(p))
            for a, p in zip(found, predictions)]


def about_shared_facts(f: ImageFilter) -> bool:
    """Whether the filter has a caption or prediction condition."""
    return bool(f.caption) or f.has_caption is not None or f.prediction_model is not None or f.predicts()


def shared_match(f: ImageFilter, caption: str | None, analyses: list[AnalysisFacts]) -> bool:
    """The caption and prediction conditions over an image's caption and completed analyses: every
    prediction condition must hold for one and the same prediction (with a model alone, one analysis)."""
    if f.caption and (caption is None or f.caption.casefold() not in caption.casefold()):
        return False
    if f.has_caption is not None and (caption is not None) != f.has_caption:
        return False
    if f.prediction_model is None and not f.predicts():
        return True
    for analysis in analyses:
        if f.prediction_model is not None and (analysis.model_name != f.prediction_model or (
                f.prediction_model_version is not None and analysis.model_version != f.prediction_model_version)):
            continue
        if not f.predicts():
            return True
        for class_name, confidence in analysis.predictions:
            if f.predicted_class is not None and class_name != f.predicted_class:
                continue
            if f.min_confidence is not None and (confidence is None or confidence < f.min_confidence):
                continue
            if f.confidence_below is not None and (confidence is None or confidence >= f.confidence_below):
                continue
            return True
    return False
