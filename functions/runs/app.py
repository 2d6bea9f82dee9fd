"""Runs function: the ML playground's `POST /api/runs` (a pipeline block runs its model)."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below;
# with SnapStart, the hooks lambda_handler registers load them before the snapshot instead.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.web.app import create_app
from prediction_service.web.routers import runs

app = create_app(
    runs.router,
    title="Playground runs",
    description="Online inference in the shape of an ML playground's block runs.",
)
handler = lambda_handler(app, cache_stats)
