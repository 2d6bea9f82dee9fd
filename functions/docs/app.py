"""Docs function: the whole API's OpenAPI document (/openapi.json), its Swagger UI (/docs)
and the playground page (/playground). Public pages: no bearer token, no model loaded."""

from __future__ import annotations

from prediction_service.app import create_app
from prediction_service.handler import lambda_handler
from prediction_service.routers import docs

app = create_app(
    docs.router, title="Prediction API docs", description="The API's contract and playground.", public=True
)
handler = lambda_handler(app)
