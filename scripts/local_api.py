"""Serve the API locally the way the template defines it, with S3 emulated by a moto server.

    python scripts/local_api.py [--port 3000] [--moto-port 5055]

Starts a moto S3 server on 127.0.0.1 in a process of its own (scripts/local_s3.py),
creates a bucket, publishes models/ to it, then serves every function's FastAPI app
under the routes `template.yaml` gives it, on http://127.0.0.1:PORT. No AWS account
and no Docker needed; `sam local start-api` serves the same routes from Lambda containers.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
LOCAL_BUCKET = "local-models"


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str
    code_uri: Path
    handler: str

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{[^/{}]+\+\}", ".+", self.path)
        regex = re.sub(r"\{([^/{}]+)\}", r"[^/]+", regex)
        return re.compile(f"^{regex}$")


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml, keeping intrinsic functions (!Ref, !Sub...) as plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template(template: Path = ROOT / "template.yaml") -> dict[str, Any]:
    return yaml.load(template.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass


def template_routes(template: Path = ROOT / "template.yaml") -> list[Route]:
    """Every HttpApi event of every function in the template."""
    doc = load_template(template)
    routes = []
    for name, resource in doc["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for event in props.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                p = event["Properties"]
                routes.append(Route(name, p["Method"].upper(), p["Path"], template.parent / props["CodeUri"], props["Handler"]))
    return routes


def load_function_app(route: Route) -> Any:
    """The ASGI app behind a function's handler (the FastAPI `app` its module wraps with Mangum)."""
    module_name, _, _ = route.handler.rpartition(".")
    unique = f"{route.function}_{module_name}"
    if unique not in sys.modules:
        spec = importlib.util.spec_from_file_location(unique, route.code_uri / f"{module_name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    return sys.modules[unique].app


class LocalApi:
    """An ASGI app that sends each request to the function the template routes it to.

    What no function serves is answered here in the API's one error body (errors.error_body;
    under /v2 the protocol's `{"error": ...}`, under /openai OpenAI's `{"error": {...}}`):
    404 for an unknown route, 405 with `Allow` for a method the route lacks (API Gateway
    answers both with its own `{"message": "Not Found"}`, which we cannot change), and 400 for
    a WebSocket upgrade (an HTTP API serves no WebSocket), before any token is checked.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = [(r.pattern, r.method, load_function_app(r)) for r in routes]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] == "websocket" or _asks_for_websocket(scope):
            await refuse_websocket(scope, receive, send)
            return
        from prediction_service.errors import MethodNotAllowedError, RouteNotFoundError

        matching = [(m, app) for pattern, m, app in self._routes if pattern.match(scope["path"])]
        chosen = next((app for m, app in matching if m == scope["method"]), None)
        if chosen is not None:
            await chosen(scope, receive, send)
        elif matching:
            # API Gateway answers 404 here too; the local server says what HTTP says.
            allowed = sorted({m for m, _ in matching})
            error = MethodNotAllowedError(scope["method"], allowed)
            await error_response(error, scope["path"])(scope, receive, send)
        else:
            error = RouteNotFoundError(scope["method"], scope["path"])
            await error_response(error, scope["path"])(scope, receive, send)


WEBSOCKET_REFUSED = "this API serves plain HTTP requests, not WebSocket"


def error_response(error: Any, path: str = "/") -> Any:
    """A Starlette JSONResponse carrying `error` (a PredictionError) in the error body of the
    protocol `path` belongs to: the Open Inference Protocol's under /v2, OpenAI's under /openai,
    else the API's one error body."""
    from prediction_service.errors import error_body, protocol_error_body
    from prediction_service.protocols.openai.schemas import error_body as openai_error_body
    from starlette.responses import JSONResponse

    writer = error_body
    if path == "/v2" or path.startswith("/v2/"):
        writer = protocol_error_body
    elif path == "/openai" or path.startswith("/openai/"):
        writer = openai_error_body
    return JSONResponse(writer(error), status_code=error.http_status, headers=error.headers)


def _asks_for_websocket(scope: dict[str, Any]) -> bool:
    """An HTTP request asking to upgrade to WebSocket: what uvicorn passes on as `http` when it
    has no WebSocket library (`ws="none"`, or neither websockets nor wsproto installed)."""
    return scope["type"] == "http" and any(k == b"upgrade" and v.strip().lower() == b"websocket"
                                           for k, v in scope["headers"])


async def refuse_websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """400 in the one error body, whichever way the server hands over the upgrade request.

    uvicorn with a WebSocket library (wsproto, websockets) gives a `websocket` scope with the
    `websocket.http.response` extension: the denial is an ordinary HTTP response. Without the
    extension, closing before accepting makes the server answer 403. Without a WebSocket
    library the request arrives as `http` and is answered as one.
    """
    from prediction_service.errors import BadInputError
    from starlette.websockets import WebSocket

    response = error_response(BadInputError(WEBSOCKET_REFUSED), scope.get("path", "/"))
    if scope["type"] != "websocket":
        await response(scope, receive, send)
        return
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close()


def text_models() -> Path:
    """The directory models/build_text_model.py builds all-MiniLM-L6-v2 into (cached after the first time)."""
    sys.path.insert(0, str(ROOT / "models"))
    from build_text_model import build

    return build().out


def configure_environment(endpoint: str, bucket: str = LOCAL_BUCKET) -> None:
    """Fake credentials and the settings the template gives the functions, pointed at moto."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.update(MODEL_BUCKET=bucket, S3_ENDPOINT_URL=endpoint)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no CloudWatch here: keep EMF off stdout
    os.environ.setdefault("MODEL_CACHE_DIR", str(ROOT / ".local" / "model-cache"))
    os.environ["SHARED_SERVER"] = "1"  # one server, many callers: CPU work off the event loop (web/concurrency.py)
    sys.path.insert(0, str(ROOT / "layers" / "prediction"))


def local_token() -> str:
    """The token `make run` accepts: $API_TOKEN, else one made once and kept in .local/api-token."""
    token = os.environ.get("API_TOKEN", "").strip()
    if token:
        return token
    path = ROOT / ".local" / "api-token"
    if not path.exists():
        from new_token import new_token

        path.parent.mkdir(exist_ok=True)
        path.write_text(new_token()[0] + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--moto-port", type=int, default=5055)
    args = parser.parse_args(argv)

    import uvicorn
    from local_s3 import MotoServer, create_bucket

    # moto runs in a process of its own, stopped as the `with` block ends: make SIGTERM end it too
    # (uvicorn, after its graceful shutdown, raises again the SIGTERM it caught).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with MotoServer(args.moto_port) as moto:
        configure_environment(moto.url)
        token = local_token()
        os.environ["API_TOKEN_HASHES"] = hashlib.sha256(token.encode()).hexdigest()
        # models/ and the text models (built from the pinned package once, then cached)
        keys = create_bucket(moto.client(), LOCAL_BUCKET, text_models=text_models())
        print(f"moto S3 on {moto.url}: s3://{LOCAL_BUCKET} holds {len(keys)} objects from models/", flush=True)
        routes = template_routes()
        for route in routes:
            print(f"  {route.method:5} {route.path:30} -> {route.function}", flush=True)
        print(f"serving on http://{args.host}:{args.port}  (Ctrl-C stops)", flush=True)
        print(f"every API request needs the header:  Authorization: Bearer {token}", flush=True)
        print(f"playground: http://{args.host}:{args.port}/playground   "
              f"API reference: http://{args.host}:{args.port}/docs", flush=True)
        uvicorn.run(LocalApi(routes), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
