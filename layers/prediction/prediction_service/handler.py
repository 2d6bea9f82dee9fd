"""A function's Lambda handler: its FastAPI app behind Mangum, observed by Powertools."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mangum import Mangum

from .event_guard import refuse_malformed_events
from .observability import Handler, instrument

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .cache import CacheStats


def lambda_handler(app: FastAPI, cache_stats: Callable[[], CacheStats | None] | None = None) -> Handler:
    """The handler `template.yaml` names (`app.handler`). `cache_stats`: the artifact cache's
    counters, published as metrics after each invocation (functions that read models).
    Malformed events are refused in the app's own error body."""
    return instrument(refuse_malformed_events(Mangum(app, lifespan="off"), app.state.error_body), cache_stats)
