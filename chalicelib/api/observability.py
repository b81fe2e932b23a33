"""Powertools Logger (JSON, request id as correlation id) and Metrics (EMF) around every event."""
from __future__ import annotations

import time

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice.app import Request

logger = Logger(service="pixelpool")
metrics = Metrics(namespace="pixelpool")


def _request_id(event) -> str | None:
    if isinstance(event, Request):
        # API Gateway's request id; the Lambda request id when the gateway gives none.
        request_id = (event.context or {}).get("requestId")
        if request_id:
            return request_id
        context = event.lambda_context
    else:
        context = getattr(event, "context", None)
    return getattr(context, "aws_request_id", None)


def observe(event, get_response):
    """Correlate every log line of one invocation, log its outcome, flush its metrics."""
    logger.set_correlation_id(_request_id(event))
    started = time.perf_counter()
    kind = "http" if isinstance(event, Request) else type(event).__name__
    try:
        response = get_response(event)
    except Exception:
        metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        logger.exception("invocation failed", extra={"event_type": kind})
        raise
    else:
        if isinstance(event, Request):
            status = getattr(response, "status_code", 200)
            logger.info("request", extra={"method": event.method, "path": event.path, "status": status,
                                          "elapsed_ms": round((time.perf_counter() - started) * 1000, 2)})
            if status >= 500:
                metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
        return response
    finally:
        metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
        metrics.flush_metrics()
