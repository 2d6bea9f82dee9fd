"""A function's Lambda handler: its FastAPI app behind Mangum, observed by Powertools."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mangum import Mangum

from prediction_service.awslambda.event_guard import refuse_malformed_events
from prediction_service.observability import Handler, instrument

if TYPE_CHECKING:
    from fastapi import FastAPI

    from prediction_service.storage.cache import CacheStats


def lambda_handler(app: FastAPI, cache_stats: Callable[[], CacheStats | None] | None = None) -> Handler:
    """The handler `template.yaml` names (`app.handler`). Malformed events are refused in the
    app's own error body. `cache_stats`, for the functions that serve models: the artifact
    cache's counters, published as metrics after each invocation; and SnapStart's hooks are
    registered for them (snapstart.py: they run only where SnapStart is on)."""
    handler = instrument(refuse_malformed_events(Mangum(app, lifespan="off"), app.state.error_body), cache_stats)
    if cache_stats is not None:
        from prediction_service.awslambda.snapstart import register_hooks

        register_hooks(handler, app)
    return handler
