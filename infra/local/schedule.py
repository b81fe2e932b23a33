"""Scheduled functions for the embedded stack: what an EventBridge schedule does on AWS.

Every function the app declares with `@schedule(Rate(...))` is invoked with a scheduled event on
its rate, through the same in-process Lambda dispatch Step Functions uses. `run_all` invokes them
once, now (tests, and `make run` users who do not want to wait).
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from aws_lambda_powertools import Logger
from chalice.app import Rate

logger = Logger(service="pixelpool-local", child=True)
SECONDS = {Rate.MINUTES: 60, Rate.HOURS: 3600, Rate.DAYS: 86400}


def scheduled_functions(app) -> dict[str, float]:
    """Function name → period in seconds, for each `Rate` schedule of the app."""
    found = {}
    for source in app.event_sources:
        expression = getattr(source, "schedule_expression", None)
        if isinstance(expression, Rate):
            found[source.name] = expression.value * SECONDS[expression.unit]
    return found


def event(region: str) -> dict[str, Any]:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region, "resources": [], "detail": {}}


class Scheduler:
    def __init__(self, periods: dict[str, float], invoke: Callable[[str, dict], Any], region: str) -> None:
        self.periods = periods
        self._invoke = invoke
        self._region = region
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_all(self) -> dict[str, Any]:
        return {name: self._invoke(name, event(self._region)) for name in self.periods}

    def start(self) -> "Scheduler":
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        due = {name: time.monotonic() + period for name, period in self.periods.items()}
        while not self._stop.wait(1.0):
            for name, at in due.items():
                if time.monotonic() >= at:
                    due[name] = time.monotonic() + self.periods[name]
                    try:
                        self._invoke(name, event(self._region))
                    except Exception:  # the next run tries again, as the schedule would
                        logger.exception("scheduled function failed", extra={"function": name})
