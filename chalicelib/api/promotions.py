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
    return ok(PromotionOut.model_validate(promotion), promotion_message(promotion, body.model, body.model_version))


def promotion_message(promotion, model: str | None, model_version: str | None) -> str:
    """What happened, in words: how many drafts from how many analyses, captions written, or why
    nothing was (no completed analysis matched)."""
    taken = len(promotion.analysis_ids)
    if not taken and model:
        version = f" version {model_version!r}" if model_version else ""
        return f"Nothing promoted: no completed analysis of model '{model}'{version} of this job's images"
    if not taken:
        return "Nothing promoted: none of the named analyses is completed"
    totals = promotion.totals
    said = f"Promoted {totals['promoted']} prediction(s) from {taken} completed analysis(es) as draft annotations"
    if totals["already_present"]:
        said += f" ({totals['already_present']} already there)"
    written = totals["captions"]["written"]
    return said + (f"; {written} caption(s) written" if written else "")
