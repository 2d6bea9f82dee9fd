"""Docs function: the whole API's OpenAPI document (/openapi.json), its Swagger UI (/docs)
and the playground page (/playground). Public pages: no bearer token, no model loaded."""

from __future__ import annotations

from mangum import Mangum
from prediction_service.api import create_app
from prediction_service.observability import instrument
from prediction_service.routers import site

app = create_app(
    site.router, title="Prediction API docs", description="The API's contract and playground.", public=True
)
handler = instrument(Mangum(app, lifespan="off"))
