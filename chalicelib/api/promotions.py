"""Promoting ML predictions into a job's annotations, as drafts to review (docs/analyses.md)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.promotions import PromoteBody, PromotionOut
from chalicelib.services.container import services

bp = Blueprint(__name__)


@endpoint(bp, "/api/v1/jobs/{job_id}/predictions/promote", "POST", body=PromoteBody, response=PromotionOut)
def promote_predictions(job_id, identity, body: PromoteBody):
    """Copy completed analyses' predictions into the job's annotations as drafts (never overwriting)."""
    promotion = services().promotions.promote(identity, job_id, analysis_ids=body.analysis_ids, model=body.model,
                                              model_version=body.model_version,
                                              min_confidence=body.min_confidence, label_map=body.label_map)
    return ok(PromotionOut.model_validate(promotion), f"Promoted {promotion.totals['promoted']} prediction(s)")
