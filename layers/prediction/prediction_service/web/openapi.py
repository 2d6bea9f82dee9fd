"""One OpenAPI document for the whole API, built from every function's router.

Each function serves its own routes; API Gateway joins them under one URL, and so does
this document. Authentication is API Gateway's (a Lambda authorizer) and the apps'
middleware, not a FastAPI dependency, so the bearer scheme is added here; request
validation errors are answered with 400 (ErrorBody), not FastAPI's default 422.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from fastapi.openapi.utils import get_openapi

from prediction_service import TITLE, __version__
from prediction_service.protocols.v2.schemas import InferenceRequest
from prediction_service.web.routers import batch, embeddings, inference, models, runs

DESCRIPTION = (
    "Predictions from ONNX models kept in S3, served by AWS Lambda behind API Gateway. "
    "Every route but the v2 health probes takes `Authorization: Bearer <token>`. The /v2 routes "
    "speak the Open Inference Protocol (KServe v2) with Triton's binary tensor extension; the /openai/v1 "
    "routes, OpenAI's embeddings API (a client's `base_url` is `<API URL>/openai/v1`)."
)
BEARER = {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "an API token (scripts/new_token.py)"}}


@functools.cache
def _document() -> dict[str, Any]:
    routes = [*models.router.routes, *batch.router.routes, *runs.router.routes, *inference.health.routes,
              *inference.router.routes, *embeddings.router.routes]
    document = get_openapi(title=TITLE, version=__version__, description=DESCRIPTION, routes=routes)
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation["responses"].pop("422", None)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    # The v2 infer routes read their body by hand (it may be binary): add its schema.
    request = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(request.pop("$defs", {}))
    schemas["InferenceRequest"] = request
    document["components"]["securitySchemes"] = BEARER
    document["security"] = [{"bearerAuth": []}]
    return document


def api_document(root_path: str = "") -> dict[str, Any]:
    """The document as a client at `root_path` (an API Gateway stage, or "") must see it."""
    document = copy.deepcopy(_document())
    if root_path:
        document["servers"] = [{"url": root_path}]
    return document
