"""Models function: list and describe models, forecast from a model's own data, predict on caller data."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below;
# with SnapStart, the hooks lambda_handler registers load them before the snapshot instead.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.web.app import create_app
from prediction_service.web.routers import models

app = create_app(
    models.router,
    title="Model predictions",
    description="Predictions from the ONNX models named in the manifest.",
)
handler = lambda_handler(app, cache_stats)
