"""The index compactor: on a schedule, the snapshot of every project whose index changed, and the
registry's, is written again (services/kept_index.py), so change records can expire and a cold API instance
starts from a recent snapshot. Locally `make run` runs it on the same schedule (infra/local/stack.py).

Killing it half-way changes nothing: a snapshot is one S3 object, written whole or not at all, and
any snapshot plus the change log after it gives the same index.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger
from chalice import Blueprint, Rate

from chalicelib.services.container import services
from chalicelib.services.registry_index import REGISTRY

bp = Blueprint(__name__)
logger = Logger(child=True)
EVERY_MINUTES = 10


@bp.schedule(Rate(EVERY_MINUTES, unit=Rate.MINUTES), name="compact_explore_index")
def compact_explore_index(event):
    written = services().explore_index.compact_all()
    registry = services().registry_index.compact_if_behind(REGISTRY)
    logger.info("index snapshots written", extra={"projects": written, "registry": registry})
    return {"snapshots_written": written + registry}
