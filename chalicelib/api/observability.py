"""Powertools Logger (JSON, request id as correlation id), Metrics (EMF) and Tracer (X-Ray) around
every event: HTTP requests, the ingest handler and every Step Functions step."""
from __future__ import annotations

import os
import threading
import time
from functools import lru_cache

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from chalice.app import Request

logger = Logger(service="pixelpool")
metrics = Metrics(namespace="pixelpool")
_FLUSHING = threading.Lock()
_cold_start = True


def tracing_enabled() -> bool:
    """Powertools' own rule: trace inside Lambda unless `POWERTOOLS_TRACE_DISABLED` is truthy, never
    under SAM local or `chalice local` (no X-Ray daemon listens there)."""
    disabled = os.getenv("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on", "y")
    local = os.getenv("AWS_SAM_LOCAL") or os.getenv("AWS_CHALICE_CLI_MODE")
    return bool(os.getenv("LAMBDA_TASK_ROOT")) and not disabled and not local


@lru_cache(maxsize=1)
def tracer():
    """The Tracer, or None where tracing is off. Built on first use because building one imports the
    X-Ray SDK even when it then disables itself, which local runs and tests need not pay for."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    # Only botocore is patched: every DynamoDB, S3, SQS and Step Functions call becomes a subsegment.
    return Tracer(service="pixelpool", patch_modules=["botocore"])


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


def _handler_name(event) -> str:
    context = event.lambda_context if isinstance(event, Request) else getattr(event, "context", None)
    return getattr(context, "function_name", None) or type(event).__name__


def observe(event, get_response):
    """Trace, correlate and log every invocation, and flush its metrics."""
    global _cold_start
    cold, _cold_start = _cold_start, False
    active = tracer()
    if active is None:
        return _observed(event, get_response)
    with active.provider.in_subsegment(f"## {_handler_name(event)}") as subsegment:
        subsegment.put_annotation("ColdStart", cold)
        subsegment.put_annotation("Service", "pixelpool")
        if isinstance(event, Request):
            subsegment.put_annotation("Route", f"{event.method} {event.context.get('resourcePath', event.path)}")
        response = _observed(event, get_response)
        if isinstance(event, Request):
            subsegment.put_annotation("Status", getattr(response, "status_code", 200))
        return response


def _observed(event, get_response):
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
        # One invocation at a time per process on Lambda; the embedded stack runs the API and the
        # steps on threads of one process, sharing Powertools' metric set: without the lock another
        # thread's flush can empty it between these adds and this flush, which then raises.
        with _FLUSHING:
            metrics.add_metric(name="Invocations", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds,
                               value=(time.perf_counter() - started) * 1000)
            metrics.flush_metrics()
