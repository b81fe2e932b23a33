
from chalicelib.schemas.base import ResponseModel


class HealthOut(ResponseModel):
    status: str
    stage: str
