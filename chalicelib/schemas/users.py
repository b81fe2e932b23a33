
from datetime import datetime

from chalicelib.schemas.base import ResponseModel


class MeOut(ResponseModel):
    sub: str
    email: str | None
    groups: list[str]
    is_admin: bool
    first_seen_at: datetime
