"""Settings for every layer, read from the environment once and lazily.

On AWS the values come from the Lambda environment that `infra/template.json` sets; on a laptop
`infra/local` resolves the same template against the embedded emulator and exports the same
variables. Nothing else reads `os.environ`.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Mapping

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "PIXELPOOL_"
# Names outside the prefix that AWS itself sets in a Lambda environment.
AWS_NAMES = {"region": ("AWS_REGION", "AWS_DEFAULT_REGION")}
# The seed's names for the ML pipeline settings (its `.env`), read as well as `PIXELPOOL_<FIELD>`.
SEED_NAMES = {
    "ml_analysis_enabled": ("ML_ANALYSIS_ENABLED",),
    "ml_callback_hmac_secret": ("ML_CALLBACK_HMAC_SECRET",),
    "ml_allowed_models": ("ML_ALLOWED_MODELS",),
}


class Settings(BaseModel):
    """Validated settings. Built from `PIXELPOOL_<FIELD>` variables by `from_env`.

    A plain pydantic model rather than pydantic-settings: the latter adds ~110 ms to every cold
    start (bench/bench_cold_start.py) for an environment lookup this small.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    stage: str = "dev"
    region: str = "us-east-1"
    # Unset on AWS. Set by `make run` and the tests (embedded emulator) or by hand (LocalStack).
    aws_endpoint: str | None = None

    tags_table: str = "pixelpool-tags"
    users_table: str = "pixelpool-users"
    activity_table: str = "pixelpool-activity"
    images_table: str = "pixelpool-images"
    image_tags_table: str = "pixelpool-image-tags"
    operations_table: str = "pixelpool-operations"
    projects_table: str = "pixelpool-projects"
    pool_table: str = "pixelpool-pool"
    jobs_table: str = "pixelpool-jobs"
    job_images_table: str = "pixelpool-job-images"
    annotations_table: str = "pixelpool-annotations"
    changes_table: str = "pixelpool-changes"
    datasets_table: str = "pixelpool-datasets"
    analyses_table: str = "pixelpool-analyses"
    pipeline_signatures_table: str = "pixelpool-pipeline-signatures"
    idempotency_table: str = "pixelpool-idempotency"
    # Item reads decoded from DynamoDB's JSON by store/wire.py (off: botocore parses them).
    fast_item_reads: bool = True

    share_bucket: str = "pixelpool-share"
    datasets_bucket: str = "pixelpool-datasets"
    exports_bucket: str = "pixelpool-exports"
    cache_bucket: str = "pixelpool-cache"
    ingest_queue: str = "pixelpool-ingest"

    selfcheck_state_machine: str = ""
    index_state_machine: str = ""
    export_state_machine: str = ""
    import_state_machine: str = ""
    delete_state_machine: str = ""

    # A deleted dataset can be restored for this long; then the retention sweep purges it.
    dataset_retention_days: int = Field(default=30, ge=0, le=3650)

    # Ingestion safety (decompression bombs, huge images) and thumbnail output.
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    thumbnail_size: int = Field(default=256, ge=32, le=1024)
    # Registration answers synchronously up to this many images, else 202 with an operation.
    register_sync_limit: int = Field(default=50, ge=1, le=500)
    # Task creation answers synchronously up to this many images (and `register_sync_limit`
    # of them unregistered), else 202 with an operation.
    task_sync_limit: int = Field(default=1000, ge=1, le=5000)
    upload_max_bytes: int = Field(default=200 * 2**20, gt=0)
    upload_url_ttl_seconds: int = Field(default=900, gt=0, le=3600)
    # Datasets: one uploaded file (a ZIP, an annotation file) at most this big, in parts of at
    # least `upload_part_bytes` (S3: 5 MiB to 5 GiB a part, 10,000 parts).
    dataset_upload_max_bytes: int = Field(default=100 * 2**30, gt=0, le=5 * 2**40)
    upload_part_bytes: int = Field(default=16 * 2**20, ge=5 * 2**20, le=5 * 2**30)
    # An imported ZIP: at most this many entries and uncompressed bytes.
    import_max_members: int = Field(default=100_000, ge=1, le=1_000_000)
    import_max_bytes: int = Field(default=50 * 2**30, gt=0)

    # Token validation: issuer and audience are checked; keys come from a JWKS document,
    # fetched from `jwks_url` (Cognito) or given inline (the local issuer).
    jwt_issuer: str = "pixelpool-local"
    jwt_audience: str | None = None
    jwks_url: str | None = None
    jwks_json: str | None = None
    admin_group: str = "admin"
    # Global roles (chalicelib/services/access.py): members of `viewer_group` only read; when
    # `contributor_group` is set, so does everyone outside it.
    viewer_group: str = "viewer"
    contributor_group: str | None = None
    # A non-admin registers at most this many keys in one request (the whole share: admins only).
    register_user_limit: int = Field(default=1000, ge=1, le=10_000)

    presign_ttl_seconds: int = Field(default=3600, gt=0, le=3600)

    # ML analyses posted by external pipelines (docs/analyses.md). Off unless enabled; pipelines
    # sign with a key of the `ml_keys_secret` secret ({"keys": {id: secret}}) or, as key id
    # `default`, with `ml_callback_hmac_secret`. `ml_allowed_models`: comma-separated names.
    ml_analysis_enabled: bool = False
    ml_callback_hmac_secret: str | None = None
    ml_allowed_models: str = ""
    ml_keys_secret: str | None = None
    ml_keys_cache_seconds: int = Field(default=60, ge=0, le=3600)
    ml_signature_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    ml_artifact_max_bytes: int = Field(default=50 * 2**20, gt=0, le=5 * 2**30)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        values = {}
        for name in cls.model_fields:
            for variable in AWS_NAMES.get(name, ()) + SEED_NAMES.get(name, ()) + (PREFIX + name.upper(),):
                if environ.get(variable):
                    values[name] = environ[variable]
        return cls.model_validate(values)

    @property
    def allowed_models(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.ml_allowed_models.split(",") if name.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
