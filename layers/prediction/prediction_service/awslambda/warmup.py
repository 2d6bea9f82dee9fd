"""Requests that take every route of a function's app the whole way (token checked, body
validated, model run, answer written), for SnapStart's snapshot: the first request after a
restore then finds every validator built and every code path run once.

The requests carry a token made for the occasion, accepted only while the warm-up runs
(web/auth.py `warm_up_token`) and never written anywhere; they go through Mangum and the
event guard but not the Powertools wrappers, and whatever metrics they add are cleared.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute

from prediction_service.errors import PredictionError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from prediction_service.catalog.manifest import ModelSpec
    from prediction_service.composition import Components

logger = logging.getLogger(__name__)


def warm_routes(app: FastAPI, parts: Components, entries: list[ModelSpec]) -> int:
    """Send each route of `app` a request it answers for each model in `entries`; the number sent."""
    from mangum import Mangum

    from prediction_service.awslambda.event_guard import refuse_malformed_events
    from prediction_service.observability import metrics
    from prediction_service.web.auth import warm_up_token

    handler = refuse_malformed_events(Mangum(app, lifespan="off"), app.state.error_body)
    sent = 0
    with warm_up_token() as token:
        for method, path, body in requests_for(app, parts, entries):
            handler(event(method, path, body, token), _CONTEXT)
            sent += 1
    metrics.clear_metrics()  # the warm-up's predictions are not the function's
    return sent


def requests_for(app: FastAPI, parts: Components, entries: list[ModelSpec]) -> Iterator[tuple[str, str, Any]]:
    """(method, path, body) for every route of `app`: once, or once per model for a route that names one."""
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(route.methods or ()):
            if not any(p in route.path for p in NAMES_A_MODEL):
                body = _body(method, route.path, parts, entries, None)
                if body is not _SKIP:
                    yield method, route.path, body
                continue
            for entry in entries:
                body = _body(method, route.path, parts, entries, entry)
                if body is not _SKIP:
                    path = route.path.replace("{version}", entry.version)
                    for parameter in NAMES_A_MODEL:
                        path = path.replace(parameter, entry.name)
                    yield method, path, body


NAMES_A_MODEL = ("{name}", "{model}")  # the path parameters that name a model (v1 and v2, OpenAI's)
_SKIP = object()


def _body(method: str, path: str, parts: Components, entries: list[ModelSpec], entry: ModelSpec | None) -> Any:
    """The body a route takes for `entry` (None: no body), or _SKIP when the route has nothing to ask of it."""
    if path.startswith("/openai/"):
        return _openai_body(method, entries, entry)
    if method == "GET":  # a forecast from the model's own data is the one GET that predicts
        predicts = path.endswith("/predict") and entry is not None
        return _SKIP if predicts and _v1_request(parts, entry) != {} else None
    if path.endswith("/infer") and entry is not None:
        return _infer_body(parts, entry)
    if path == "/v1/models/{name}/predict" and entry is not None:
        request = _v1_request(parts, entry)
        return _SKIP if request is None else request
    if path == "/v1/predict":
        items = [{"model_name": e.name, **r} for e in entries if (r := _v1_request(parts, e)) is not None]
        return {"predictions": items[:16]} if items else _SKIP
    if path == "/api/runs":
        blocks = [(e, r) for e in entries if e.group and (r := _v1_request(parts, e)) is not None]
        if not blocks:
            return _SKIP
        block, request = blocks[0]
        variables = {"user_ids": request["ids"]} if "ids" in request else {}
        return {"run": {"pipeline_uuid": block.group, "block_uuid": block.block or block.name, "record": False,
                        "variables": variables}}
    return _SKIP


def _openai_body(method: str, entries: list[ModelSpec], entry: ModelSpec | None) -> Any:
    """OpenAI's routes take text models only: a model list, each text model, an embedding of each."""
    from prediction_service.catalog.manifest import TextEntry

    if entry is not None:
        return None if isinstance(entry, TextEntry) else _SKIP
    if method == "GET":
        return None
    texts = [e for e in entries if isinstance(e, TextEntry)]
    return {"model": texts[0].name, "input": "warm"} if texts else _SKIP


def _v1_request(parts: Components, entry: ModelSpec) -> dict[str, Any] | None:
    from prediction_service.protocols.v1.codec import example_request

    try:
        request = example_request(entry, parts.service.describe(entry.name, entry.version).example_ids)
    except PredictionError:
        return None
    return None if request is None else request.model_dump(exclude_defaults=True)


def _infer_body(parts: Components, entry: ModelSpec) -> Any:
    """A v2 infer request of one row of zeros (a word, for texts) of each input's datatype."""
    from prediction_service.catalog.routing import Route

    try:
        runtime = parts.registry.runtime(Route(entry, manifest=parts.registry.manifest()))
    except PredictionError:
        return _SKIP
    inputs = []
    for spec in runtime.inputs:
        if spec.datatype is None:
            return _SKIP
        shape = [1 if d < 0 else d for d in spec.shape]
        count = 1
        for d in shape:
            count *= d
        value: Any = "warm" if spec.datatype == "BYTES" else (False if spec.datatype == "BOOL" else 0)
        inputs.append({"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": [value] * count})
    return {"inputs": inputs}


def event(method: str, path: str, body: Any, token: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for the request."""
    headers = {"host": "snapshot.invalid", "user-agent": "snapstart-warm-up", "authorization": f"Bearer {token}"}
    request: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                                    "userAgent": "snapstart-warm-up"},
                           "requestId": "snapstart-warm-up", "routeKey": "$default", "stage": "$default"},
        "isBase64Encoded": False,
    }
    if body is not None:
        headers["content-type"] = "application/json"
        request["body"] = json.dumps(body)
    return request


class _Context:
    function_name = "snapstart-warm-up"
    function_version = "$LATEST"
    memory_limit_in_mb = 0
    aws_request_id = "snapstart-warm-up"
    invoked_function_arn = ""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 0


_CONTEXT = _Context()
