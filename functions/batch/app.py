"""Batch function: several models in one request, run in parallel, each with its own status."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below;
# with SnapStart, the hooks lambda_handler registers load them before the snapshot instead.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.web.app import create_app
from prediction_service.web.routers import batch

app = create_app(
    batch.router,
    title="Batch predictions",
    description="Many models in one request, for ensembling and A/B tests.",
)
handler = lambda_handler(app, cache_stats)
