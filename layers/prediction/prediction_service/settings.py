"""Runtime settings, read once from the environment the template (or `make run`) sets."""

from __future__ import annotations

import os
from dataclasses import dataclass

MB = 1024 * 1024
# /tmp the model files may not use: left for anything else that writes there.
DISK_MARGIN_MB = 64
# Lambda's /tmp without an EphemeralStorage setting (and the most SnapStart allows).
DEFAULT_EPHEMERAL_STORAGE_MB = 512


def disk_budget(ephemeral_storage_mb: int) -> int:
    """Bytes of /tmp the model files may use on a function with that much ephemeral storage."""
    return max(ephemeral_storage_mb - DISK_MARGIN_MB, 0) * MB


DEFAULT_DISK_MAX_BYTES = disk_budget(DEFAULT_EPHEMERAL_STORAGE_MB)


@dataclass(frozen=True)
class Settings:
    model_bucket: str
    model_prefix: str = "models/"
    manifest_name: str = "manifest.yaml"
    records_prefix: str = "records/"
    s3_endpoint_url: str | None = None
    cache_dir: str = "/tmp/model-cache"
    cache_max_bytes: int = 256 * MB  # memory: parsed files, each counted at its file's size
    disk_max_bytes: int = DEFAULT_DISK_MAX_BYTES  # /tmp: the files under cache_dir
    revalidate_seconds: float = 60.0
    batch_workers: int = 4
    shadow_timeout_seconds: float = 0.25  # the most a shadow adds to its prediction's latency
    s3_connect_timeout: float = 2.0
    s3_read_timeout: float = 5.0
    s3_max_attempts: int = 2

    @property
    def manifest_key(self) -> str:
        return self.model_prefix + self.manifest_name

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        bucket = env.get("MODEL_BUCKET", "").strip()
        if not bucket:
            raise RuntimeError("MODEL_BUCKET is not set: name the S3 bucket that holds models/")
        return cls(
            model_bucket=bucket,
            model_prefix=_as_prefix(env.get("MODEL_PREFIX", cls.model_prefix)),
            records_prefix=_as_prefix(env.get("RECORDS_PREFIX", cls.records_prefix)),
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            cache_dir=env.get("MODEL_CACHE_DIR", cls.cache_dir),
            cache_max_bytes=int(env.get("MODEL_CACHE_MAX_BYTES", cls.cache_max_bytes)),
            disk_max_bytes=_disk_max_bytes(env),
            revalidate_seconds=float(env.get("MODEL_REVALIDATE_SECONDS", cls.revalidate_seconds)),
            batch_workers=int(env.get("BATCH_WORKERS", cls.batch_workers)),
            shadow_timeout_seconds=float(env.get("SHADOW_TIMEOUT_MS", cls.shadow_timeout_seconds * 1000)) / 1000,
            s3_connect_timeout=float(env.get("S3_CONNECT_TIMEOUT", cls.s3_connect_timeout)),
            s3_read_timeout=float(env.get("S3_READ_TIMEOUT", cls.s3_read_timeout)),
            s3_max_attempts=int(env.get("S3_MAX_ATTEMPTS", cls.s3_max_attempts)),
        )


def _disk_max_bytes(env: dict[str, str]) -> int:
    """MODEL_DISK_MAX_BYTES if set; else the function's ephemeral storage as the template passes it
    (EPHEMERAL_STORAGE_MB: CloudFormation cannot multiply) less DISK_MARGIN_MB."""
    explicit = env.get("MODEL_DISK_MAX_BYTES", "").strip()
    if explicit:
        return int(explicit)
    return disk_budget(int(env.get("EPHEMERAL_STORAGE_MB", "").strip() or DEFAULT_EPHEMERAL_STORAGE_MB))


def _as_prefix(value: str) -> str:
    """A key prefix ending in '/' (or empty for the bucket's root)."""
    value = value.strip().lstrip("/")
    return value if not value or value.endswith("/") else value + "/"
