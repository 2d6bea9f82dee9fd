"""The process-wide service, built once per execution environment from the environment."""

from __future__ import annotations

import functools

from .cache import ArtifactCache
from .registry import ModelRegistry
from .runs import BlockRunner, RunRecorder
from .service import PredictionService
from .settings import Settings
from .store import S3Store


@functools.cache
def default_service() -> PredictionService:
    """Built on first use and reused for every invocation the environment serves."""
    settings = Settings.from_env()
    cache = ArtifactCache(
        S3Store.from_settings(settings),
        max_bytes=settings.cache_max_bytes,
        cache_dir=settings.cache_dir,
        revalidate_seconds=settings.revalidate_seconds,
    )
    registry = ModelRegistry(cache, prefix=settings.model_prefix, manifest_key=settings.manifest_key)
    return PredictionService(registry, batch_workers=settings.batch_workers)


@functools.cache
def default_runner() -> BlockRunner:
    """Playground runs over the default service, recording to the model bucket."""
    settings = Settings.from_env()
    return BlockRunner(default_service(), RunRecorder(S3Store.from_settings(settings), settings.records_prefix))
