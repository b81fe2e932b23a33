"""Identifiers of the records the services create."""
from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
