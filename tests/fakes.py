"""Small fakes of the ports services are given (see chalicelib/services/container.py)."""
from __future__ import annotations


class WorkflowRecorder:
    """A workflow starter that remembers what it was asked to start and starts nothing."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, dict]] = []

    def __call__(self, machine: str, name: str, payload: dict) -> str:
        self.started.append((machine, name, payload))
        return f"{machine}:{name}"
