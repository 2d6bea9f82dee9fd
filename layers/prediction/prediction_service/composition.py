"""The process-wide service, built once per execution environment from the environment."""

from __future__ import annotations

import functools
import logging
import os
import threading

from .cache import ArtifactCache, CacheStats
from .registry import ModelRegistry
from .runs import BlockRunner, RunRecorder
from .service import PredictionService
from .settings import Settings
from .store import S3Store

logger = logging.getLogger(__name__)


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


def cache_stats() -> CacheStats | None:
    """The counters of this environment's artifact cache, once the service exists."""
    return default_service().registry.cache_stats if default_service.cache_info().currsize else None


@functools.cache
def default_runner() -> BlockRunner:
    """Playground runs over the default service, recording to the model bucket."""
    settings = Settings.from_env()
    return BlockRunner(default_service(), RunRecorder(S3Store.from_settings(settings), settings.records_prefix))


def prefetch_in_background() -> threading.Thread | None:
    """Start loading the manifest and models in a thread, so S3 and session creation overlap
    with the rest of the cold start (the imports that follow). `PREFETCH_MODELS`: `none`
    (default), `all`, or a comma-separated list of model names. Failures are only
    logged: a request then loads what it needs itself.

    Off by default: on two cores with a nearby S3 (bench/cold_start.py) the thread's CPU
    work competes with the imports for the GIL and the cold start got longer. It pays
    where S3 is slow to answer, so that its waits overlap the imports."""
    wanted = os.environ.get("PREFETCH_MODELS", "none").strip()
    if wanted == "none":
        return None

    def prefetch() -> None:
        try:
            registry = default_service().registry
            names = None if wanted == "all" else {n.strip() for n in wanted.split(",")}
            for spec in registry.manifest().models:
                if names is None or spec.name in names:
                    registry.load(spec)
        except Exception as exc:  # never let a prefetch failure break init
            logger.warning("prefetch stopped (requests will load models themselves): %s", exc)

    # Not a daemon: exiting while onnxruntime builds a session in it would abort the process.
    thread = threading.Thread(target=prefetch, name="prefetch-models")
    thread.start()
    return thread
