"""Routes of the docs function: the OpenAPI document, its Swagger UI page and the two files
that page loads, the playground.

Public: they hold no data, and a browser opening them cannot send a bearer token. The
playground asks for a token and sends it with each API call it makes. Swagger UI's script
and stylesheet come from the pinned `swagger-ui-py` package in the layer and are served
from this origin: no third-party code runs where the playground keeps its token.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import importlib.util
import json
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import swagger_ui_default_parameters
from fastapi.responses import HTMLResponse, JSONResponse, Response

from prediction_service import TITLE
from prediction_service.errors import RouteNotFoundError

router = APIRouter(include_in_schema=False)

# The only files GET /docs/{asset} serves, with their content types: Swagger UI's dist
# files as the pinned swagger-ui-py wheel ships them (layers/prediction/requirements.txt).
SWAGGER_UI_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
# The version is pinned and each URL the page uses carries a digest of the bytes, so a
# browser may keep them for a year without asking again.
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/openapi.json")
async def openapi_document(request: Request) -> JSONResponse:
    """The document the app was given (`app.state.api_document`: web/openapi.py builds it from
    every router, this one's importers)."""
    return JSONResponse(request.app.state.api_document(_root(request)))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    page, policy = _swagger_ui_page(_root(request))
    return HTMLResponse(page, headers={"content-security-policy": policy, "x-content-type-options": "nosniff"})


@router.get("/docs/{asset}")
async def swagger_ui_asset(asset: str, request: Request) -> Response:
    """Swagger UI's script or stylesheet; any other name is not a route (404)."""
    if asset not in SWAGGER_UI_ASSETS:
        raise RouteNotFoundError(request.method, request.url.path)
    return Response(
        _swagger_ui_assets()[asset].body,
        media_type=SWAGGER_UI_ASSETS[asset],
        headers={"cache-control": ASSET_CACHE_CONTROL, "x-content-type-options": "nosniff"},
    )


@router.get("/playground")
async def playground() -> HTMLResponse:
    page, policy = _playground()
    return HTMLResponse(page, headers={"content-security-policy": policy, "x-content-type-options": "nosniff"})


@functools.cache
def _playground() -> tuple[str, str]:
    """The page, and a Content-Security-Policy that allows its own inline script and style only."""
    page = files("prediction_service").joinpath("web/static/playground.html").read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    policy = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, policy


class _Asset:
    def __init__(self, body: bytes) -> None:
        self.body = body
        digest = hashlib.sha384(body).digest()
        self.integrity = f"sha384-{base64.b64encode(digest).decode()}"  # Subresource Integrity
        self.version = digest.hex()[:16]  # in the URL: new bytes, new URL, whatever a cache holds


@functools.cache
def _swagger_ui_assets() -> dict[str, _Asset]:
    """The allowed files' bytes, read once. The package is located, not imported: its Python
    code (and Jinja2, which that code needs) is not in the layer (layers/prediction/Makefile)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (layers/prediction/requirements.txt)")
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return {name: _Asset((static / name).read_bytes()) for name in SWAGGER_UI_ASSETS}


def _js_string(text: str) -> str:
    """`text` inside a single-quoted JavaScript string in an HTML <script>."""
    inner = json.dumps(text)[1:-1]
    return inner.replace("'", "\\u0027").replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.lru_cache(maxsize=16)
def _swagger_ui_page(root: str) -> tuple[str, str]:
    """The Swagger UI page for a stage prefix (`root`), and its Content-Security-Policy."""
    assets = _swagger_ui_assets()

    def url(name: str) -> str:
        return html.escape(f"{root}/docs/{name}?v={assets[name].version}")

    parameters = {**swagger_ui_default_parameters, "validatorUrl": None}  # no badge from a validator service
    settings = "".join(f"    {json.dumps(key)}: {json.dumps(value)},\n" for key, value in parameters.items())
    script = (
        "\nconst ui = SwaggerUIBundle({\n"
        f"    url: '{_js_string(root + '/openapi.json')}',\n"
        f"{settings}"
        "    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],\n"
        "})\n"
    )
    css, js = "swagger-ui.css", "swagger-ui-bundle.js"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(TITLE)} - docs</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{url(css)}" integrity="{assets[css].integrity}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{url(js)}" integrity="{assets[js].integrity}"></script>
<script>{script}</script>
</body>
</html>
"""
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    # Swagger UI sets its element styles through the DOM, which style-src does not govern: it
    # needs no 'unsafe-inline' (tests/browser renders it in Chromium and finds no violation;
    # expanding operations, "Try it out" and "Authorize" were checked there by hand too).
    policy = (
        f"default-src 'none'; script-src 'self' 'sha256-{script_hash}'; style-src 'self'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return page, policy
