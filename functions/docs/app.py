"""Docs function: the whole API's OpenAPI document (/openapi.json), its Swagger UI (/docs)
and the playground page (/playground). Public pages: no bearer token, no model loaded."""

from __future__ import annotations

from prediction_service.awslambda.handler import lambda_handler
from prediction_service.web.app import create_app
from prediction_service.web.openapi import api_document
from prediction_service.web.routers import docs

app = create_app(
    docs.router, title="Prediction API docs", description="The API's contract and playground.", public=True
)
app.state.api_document = api_document
handler = lambda_handler(app)
