"""SnapStart: what runs before Lambda snapshots an initialised environment, and after it
restores one (`snapshot_restore_py`, bundled in Lambda's Python runtime).

Before the snapshot the environment does what a first request would: it loads the manifest
and the models (all, or those `SNAPSHOT_MODELS` names), predicts once with each so its
session is warm and every body's validator is built, sends one request through the handler
(refused for want of a token: Mangum, the middleware and the error body all run), then
freezes the garbage collector's view of everything loaded (`gc.freeze`), so the collections
after a restore never scan it. The snapshot then holds loaded, warmed models.

After a restore the snapshot's state must not be trusted as fresh (AWS's SnapStart
uniqueness guidance): the S3 client (its connections and credentials) is replaced, the
random generators are re-seeded, cached token hashes are dropped so they are read again,
and the manifest is revalidated (a conditional GET) and the token hashes read again in the hook
itself, which runs before the restored environment takes its first request: that request pays
for none of it.
"""

from __future__ import annotations

import gc
import logging
import os
import random
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from prediction_service.errors import PredictionError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from prediction_service.catalog.manifest import ModelSpec
    from prediction_service.composition import Components
    from prediction_service.observability import Handler

logger = logging.getLogger(__name__)

# A request no token accompanies: it runs the whole request path and answers 401.
WARM_UP_EVENT: dict[str, Any] = {
    "version": "2.0", "routeKey": "$default", "rawPath": "/v1/models", "rawQueryString": "",
    "headers": {"host": "snapshot.invalid", "user-agent": "snapstart-warm-up"},
    "requestContext": {"http": {"method": "GET", "path": "/v1/models", "protocol": "HTTP/1.1",
                                "sourceIp": "127.0.0.1", "userAgent": "snapstart-warm-up"},
                       "requestId": "snapstart-warm-up", "routeKey": "$default", "stage": "$default"},
    "isBase64Encoded": False,
}


def register_hooks(handler: Handler, app: FastAPI | None = None) -> bool:
    """Register the hooks with the runtime, `handler` being the function's own and `app` its app (to
    warm its request path and routes); False where snapshot_restore_py is not installed (outside
    Lambda), where nothing would call them."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot, handler, app)
    register_after_restore(after_restore)
    return True


def before_snapshot(handler: Handler | None = None, app: FastAPI | None = None) -> None:
    """Load and warm the models the snapshot should hold, then the request path and every route of
    the function's app (awslambda/warmup.py). A model that fails is logged and left to load on its
    first request: a snapshot is never refused for it."""
    from prediction_service.composition import components

    parts = components()
    wanted = os.environ.get("SNAPSHOT_MODELS", "all").strip()
    names = None if wanted == "all" else {n.strip() for n in wanted.split(",") if n.strip()}
    try:
        specs = [s for s in parts.registry.manifest().models if names is None or s.name in names]
    except PredictionError as exc:
        logger.warning("snapshot holds no model: the manifest could not be loaded: %s", exc.detail)
        specs = []
    for spec in specs:
        try:
            parts.registry.load(spec)
            _warm(parts, spec)
        except PredictionError as exc:
            logger.warning("snapshot without model %s: %s", spec.label, exc.detail)
    parts.service.list_models().model_dump_json()  # the listing's serializer built once
    if handler is not None:
        context = SimpleNamespace(function_name="snapstart-warm-up", function_version="$LATEST",
                                  memory_limit_in_mb=0, aws_request_id="snapstart-warm-up",
                                  invoked_function_arn="", get_remaining_time_in_millis=lambda: 0)
        handler(dict(WARM_UP_EVENT), context)
    if app is not None:
        from prediction_service.awslambda.warmup import warm_routes

        serving = [s for s in specs if s.shadow_of is None]
        logger.info("warmed %d route request(s)", warm_routes(app, parts, serving))
    logger.info("snapshot holds %d model(s)", len(specs))
    gc.collect()
    gc.freeze()  # what the snapshot holds is never scanned by a collection after a restore


def after_restore() -> None:
    """Renew what must be unique or fresh in each restored environment."""
    import numpy as np

    from prediction_service.composition import components
    from prediction_service.storage.aws import renew_session
    from prediction_service.storage.s3 import s3_client
    from prediction_service.web.auth import default_verifier

    parts = components()
    renew_session()  # credentials are resolved again, from the restored environment
    parts.store.renew(s3_client(parts.settings))
    seed = int.from_bytes(os.urandom(16), "big")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    default_verifier.cache_clear()  # with it, its SSM provider: its client and cached values
    parts.cache.expire(parts.settings.manifest_key)
    try:
        parts.registry.manifest()  # revalidated now (a conditional GET), not on the first request
        default_verifier().hashes()  # the token hashes read now (from SSM when deployed), likewise
    except Exception as exc:  # the first request tries again and answers for itself
        logger.warning("could not refresh the manifest or the token hashes after the restore: %s", exc)
    gc.freeze()  # nor the new client's data (the first request's collection would scan it all)


def _warm(parts: Components, spec: ModelSpec) -> None:
    """One prediction the way /v1 asks for it (its bodies' validators built), and one run of the
    runtime on inputs of its own types and ranks (a generic model's, or as v2 sends them)."""
    from prediction_service.catalog.routing import Route
    from prediction_service.protocols.v1.codec import example_request

    request = example_request(spec, parts.service.describe(spec.name, spec.version).example_ids)
    if request is not None:
        prediction = parts.service.predict(spec.name, request.model_copy(update={"version": spec.version}), 0.0)
        prediction.value.model_dump_json()
    manifest = parts.registry.manifest()
    runtime = parts.registry.runtime(Route(spec, manifest=manifest))
    feeds = {i.name: _zeros(i.datatype, i.shape) for i in runtime.inputs if i.datatype is not None}
    if len(feeds) == len(runtime.inputs):
        try:
            runtime.run([o.name for o in runtime.outputs if o.datatype is not None], feeds)
        except Exception as exc:  # a graph may refuse zeros (a Reshape of size 1): loaded is enough
            logger.info("model %s loaded, not warmed on zeros: %s", spec.label, str(exc).splitlines()[0][:200])


def _zeros(datatype: str, shape: tuple[int, ...]) -> Any:
    import numpy as np

    from prediction_service.runtime.base import DTYPES

    dims = tuple(1 if d < 0 else d for d in shape)
    if datatype == "BYTES":
        return np.full(dims, "warm", dtype=object)
    return np.zeros(dims, dtype=DTYPES[datatype])
