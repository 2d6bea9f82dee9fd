"""Embeddings function: the text models through OpenAI's embeddings API (/openai/v1), for the
openai client, LangChain and LlamaIndex."""

from __future__ import annotations

# With PREFETCH_MODELS set, start fetching models now, overlapping S3 with the imports below;
# with SnapStart, the hooks lambda_handler registers load them before the snapshot instead.
from prediction_service.composition import cache_stats, prefetch_in_background

prefetch_in_background()

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.protocols.openai.schemas import error_body
from prediction_service.web.app import create_app
from prediction_service.web.routers import embeddings

app = create_app(
    embeddings.router,
    title="OpenAI-compatible embeddings",
    description="The text models through OpenAI's embeddings API: base_url=<API URL>/openai/v1.",
    error_body=error_body,
)
handler = lambda_handler(app, cache_stats)
