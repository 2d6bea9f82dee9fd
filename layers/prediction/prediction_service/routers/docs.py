"""Routes of the docs function: the OpenAPI document, its Swagger UI page, the playground.

Public: they hold no data, and a browser opening them cannot send a bearer token. The
playground asks for a token and sends it with each API call it makes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from ..openapi import TITLE, api_document

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(api_document(_root(request)))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=f"{_root(request)}/openapi.json", title=f"{TITLE} - docs")


@router.get("/playground")
async def playground() -> HTMLResponse:
    page, policy = _playground()
    return HTMLResponse(page, headers={"content-security-policy": policy, "x-content-type-options": "nosniff"})


@functools.cache
def _playground() -> tuple[str, str]:
    """The page, and a Content-Security-Policy that allows its own inline script and style only."""
    page = files("prediction_service").joinpath("static/playground.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, policy
