"""The self-check: every table, bucket and queue the stack defines is reachable from its code.

It runs as a small Step Functions chain (plan → Map over probes → summary, Catch → failure
report) so that a deployment, or a laptop, proves its state-machine wiring end to end.
"""
from __future__ import annotations

from chalicelib.config import Settings, get_settings
from chalicelib.errors import ValidationError
from chalicelib.store.resources import PROBES


def plan(settings: Settings | None = None) -> list[dict[str, str]]:
    settings = settings or get_settings()
    return [
        *({"kind": "table", "name": name} for name in (settings.tags_table, settings.users_table, settings.activity_table,
                                                        settings.images_table, settings.image_tags_table,
                                                        settings.operations_table)),
        *({"kind": "bucket", "name": name} for name in (settings.share_bucket, settings.datasets_bucket,
                                                         settings.exports_bucket, settings.cache_bucket)),
        {"kind": "queue", "name": settings.ingest_queue},
    ]


def probe(kind: str, name: str) -> dict[str, str]:
    """Check one resource; raises `NotFoundError` when it is not there."""
    if kind not in PROBES:
        raise ValidationError(f"Unknown probe kind '{kind}'")
    return {"kind": kind, "name": name, **PROBES[kind](name)}


def summarize(results: list[dict[str, str]]) -> dict:
    unhealthy = [result for result in results if result.get("status") not in ("ACTIVE",)]
    return {"status": "degraded" if unhealthy else "ok", "checked": len(results), "unhealthy": unhealthy}


def failure(error: dict) -> dict:
    """What the Catch path reports: the error Step Functions caught, in plain words."""
    return {"status": "failed", "error": error.get("Error", "Unknown"), "cause": error.get("Cause", "")}
