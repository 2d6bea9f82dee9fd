"""Inference function: any ONNX model through the Open Inference Protocol (v2): server and
model metadata, health, and inference in JSON or with Triton's binary tensor extension."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below;
# with SnapStart, the hooks lambda_handler registers load them before the snapshot instead.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.errors import protocol_error_body
from prediction_service.limits import LAMBDA_PAYLOAD_BYTES
from prediction_service.web.app import create_app
from prediction_service.web.routers import inference

app = create_app(
    inference.health,
    inference.router,
    title="Open Inference Protocol (v2)",
    description="Any ONNX model named in the manifest, in the shapes KServe, Triton and MLServer speak.",
    public_paths=inference.HEALTH_PATHS,
    binary_bodies=True,
    max_body_bytes=LAMBDA_PAYLOAD_BYTES,
    error_body=protocol_error_body,
)
handler = lambda_handler(app, cache_stats)
