"""SnapStart: what runs before Lambda snapshots an initialised environment, and after it
restores one (`snapshot_restore_py`, bundled in Lambda's Python runtime).

Before the snapshot the environment does what a first request would: it loads the manifest
and the models (all, or those `SNAPSHOT_MODELS` names), runs each once so its session is
warm, and builds every answer type once. The snapshot then holds loaded models.

After a restore the snapshot's state must not be trusted as fresh (AWS's SnapStart
uniqueness guidance): the S3 client (its connections and credentials) is replaced, the
random generators are re-seeded, cached token hashes are dropped so they are read again,
and the manifest is revalidated on the first request (a conditional GET).
"""

from __future__ import annotations

import logging
import os
import random
from typing import TYPE_CHECKING

import numpy as np

from .errors import PredictionError
from .schemas import PredictRequest
from .tensors import DTYPES

if TYPE_CHECKING:
    from .composition import Components

logger = logging.getLogger(__name__)


def register_hooks() -> bool:
    """Register the hooks with the runtime; False where snapshot_restore_py is not installed
    (outside Lambda), where nothing would call them."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


def before_snapshot() -> None:
    """Load and warm the models the snapshot should hold. A model that fails is logged and left
    to load on its first request: a snapshot is never refused for it."""
    from .composition import components

    parts = components()
    wanted = os.environ.get("SNAPSHOT_MODELS", "all").strip()
    names = None if wanted == "all" else {n.strip() for n in wanted.split(",") if n.strip()}
    try:
        specs = [s for s in parts.registry.manifest().models if names is None or s.name in names]
    except PredictionError as exc:
        logger.warning("snapshot holds no model: the manifest could not be loaded: %s", exc.detail)
        return
    for spec in specs:
        try:
            parts.registry.load(spec)
            _warm(parts, spec.name)
        except PredictionError as exc:
            logger.warning("snapshot without model %s: %s", spec.name, exc.detail)
    parts.service.list_models().model_dump_json()  # every answer type's serializer built once
    logger.info("snapshot holds %d model(s)", len(specs))


def after_restore() -> None:
    """Renew what must be unique or fresh in each restored environment."""
    from .auth import default_verifier
    from .aws import renew_session
    from .composition import components
    from .store import s3_client

    parts = components()
    renew_session()  # credentials are resolved again, from the restored environment
    parts.store.renew(s3_client(parts.settings))
    seed = int.from_bytes(os.urandom(16), "big")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    default_verifier.cache_clear()  # with it, its SSM provider: its client and cached values
    parts.cache.expire(parts.settings.manifest_key)


def _warm(parts: Components, name: str) -> None:
    """One inference through the v2 service on inputs of the graph's own types and ranks."""
    spec = parts.registry.spec(name)
    if spec.kind == "text-embedding":
        parts.service.predict(name, PredictRequest(texts=["warm"]), 0.0)
        return
    model = parts.registry.model(spec)
    feeds = {i.name: _zeros(i.datatype, i.shape) for i in model.inputs if i.datatype is not None}
    if len(feeds) == len(model.inputs):
        try:
            model.session.run(None, feeds)
        except Exception as exc:  # a graph may refuse zeros (a Reshape of size 1): loaded is enough
            logger.info("model %s loaded, not warmed on zeros: %s", name, str(exc).splitlines()[0][:200])


def _zeros(datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    dims = tuple(1 if d < 0 else d for d in shape)
    if datatype == "BYTES":
        return np.full(dims, "", dtype=object)
    return np.zeros(dims, dtype=DTYPES[datatype])

