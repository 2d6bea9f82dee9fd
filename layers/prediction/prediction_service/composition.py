"""The composition root: every part of the prediction service, built once per execution
environment from the settings, with the store and clock injectable (tests pass their own)."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prediction_service.dataplane.bookkeeping import Bookkeeping
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.shadows import ShadowPool
from prediction_service.protocols.v1.service import PredictionService
from prediction_service.runtime.registry import ModelRegistry
from prediction_service.settings import Settings
from prediction_service.storage.cache import ArtifactCache, CacheStats
from prediction_service.storage.s3 import S3Store

if TYPE_CHECKING:
    from prediction_service.protocols.openai.service import EmbeddingsService
    from prediction_service.protocols.v1.runs import BlockRunner
    from prediction_service.protocols.v2.service import InferenceService

logger = logging.getLogger(__name__)


class Components:
    """The parts. The v2 and embeddings services and the runs runner are built (and their modules imported) on
    first use: a function that serves neither never pays for them at its cold start."""

    def __init__(self, settings: Settings, store: S3Store, cache: ArtifactCache, registry: ModelRegistry,
                 dataplane: DataPlane) -> None:
        self.settings = settings
        self.store = store
        self.cache = cache
        self.registry = registry
        self.dataplane = dataplane
        self.service = PredictionService(dataplane)

    @functools.cached_property
    def inference(self) -> InferenceService:
        from prediction_service.protocols.v2.service import InferenceService

        return InferenceService(self.dataplane)

    @functools.cached_property
    def embeddings(self) -> EmbeddingsService:
        from prediction_service.protocols.openai.service import EmbeddingsService

        return EmbeddingsService(self.dataplane)

    @functools.cached_property
    def runner(self) -> BlockRunner:
        from prediction_service.dataplane.records import RunRecorder
        from prediction_service.protocols.v1.runs import BlockRunner

        return BlockRunner(self.dataplane, RunRecorder(self.store, self.settings.records_prefix))


def build_components(
    settings: Settings, *, store: S3Store | None = None, clock: Callable[[], float] = time.monotonic
) -> Components:
    """Everything the functions need, over one S3 store (one S3 client per process): it reads
    models and writes run records. `clock` drives revalidation and reload periods."""
    store = store or S3Store.from_settings(settings)
    cache = ArtifactCache(
        store,
        max_bytes=settings.cache_max_bytes,
        cache_dir=settings.cache_dir,
        disk_max_bytes=settings.disk_max_bytes,
        revalidate_seconds=settings.revalidate_seconds,
        clock=clock,
    )
    registry = ModelRegistry(
        cache,
        prefix=settings.model_prefix,
        manifest_key=settings.manifest_key,
        reload_interval=settings.revalidate_seconds,
        clock=clock,
    )
    shadows = ShadowPool(settings.shadow_timeout_seconds)
    dataplane = DataPlane(registry, shadows=shadows, bookkeeping=Bookkeeping(shadows),
                          batch_workers=settings.batch_workers)
    return Components(settings, store, cache, registry, dataplane)


@functools.cache
def components() -> Components:
    """This execution environment's parts, built on first use from the environment."""
    return build_components(Settings.from_env())


def cache_stats() -> CacheStats | None:
    """The counters of this environment's artifact cache, once it exists."""
    return components().cache.stats if components.cache_info().currsize else None


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
            registry = components().registry
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
