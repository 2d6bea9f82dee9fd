"""Runs function: the ML playground's `POST /api/runs` (a pipeline block runs its model)."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from mangum import Mangum
from prediction_service.api import create_app
from prediction_service.observability import instrument
from prediction_service.routers import runs

app = create_app(
    runs.router,
    title="Playground runs",
    description="Online inference in the shape of an ML playground's block runs.",
)
handler = instrument(Mangum(app, lifespan="off"), cache_stats)
