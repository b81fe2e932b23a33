"""Settings for every layer, read from the environment once and lazily.

On AWS the values come from the Lambda environment that `infra/template.json` sets; on a laptop
`infra/local` resolves the same template against the embedded emulator and exports the same
variables. Nothing else reads `os.environ`.
"""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELPOOL_", extra="ignore")

    stage: str = "dev"
    region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    # Unset on AWS. Set by `make run` and the tests (embedded emulator) or by hand (LocalStack).
    aws_endpoint: str | None = None

    tags_table: str = "pixelpool-tags"
    users_table: str = "pixelpool-users"
    activity_table: str = "pixelpool-activity"

    share_bucket: str = "pixelpool-share"
    datasets_bucket: str = "pixelpool-datasets"
    exports_bucket: str = "pixelpool-exports"
    cache_bucket: str = "pixelpool-cache"
    ingest_queue: str = "pixelpool-ingest"

    selfcheck_state_machine: str = ""

    # Token validation: issuer and audience are checked; keys come from a JWKS document,
    # fetched from `jwks_url` (Cognito) or given inline (the local issuer).
    jwt_issuer: str = "pixelpool-local"
    jwt_audience: str | None = None
    jwks_url: str | None = None
    jwks_json: str | None = None
    admin_group: str = "admin"

    presign_ttl_seconds: int = Field(default=3600, gt=0, le=3600)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
