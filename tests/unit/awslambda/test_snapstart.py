"""SnapStart's hooks, called as the runtime calls them (sam local cannot emulate SnapStart,
aws-sam-cli#4481): after before-snapshot and after-restore, the first request loads no model
from S3 and makes no S3 call at all (the after-restore hook revalidated the manifest), signs with a client made
after the restore, and checks its token against hashes read after the restore."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import pytest
import snapshot_restore_py
from support import ROOT, http_event, lambda_context, load_event, load_function

NEW_TOKEN = "token-issued-after-the-snapshot-0123456789"


def run_hooks(registry: list[Any]) -> None:
    for func, args, kwargs in registry:
        func(*args, **kwargs)


@pytest.fixture
def restored(s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The models function initialised and snapshotted, then restored with new credentials and
    new token hashes in its environment, as Lambda restores one."""
    from prediction_service.composition import components

    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    function = load_function("models")  # its import registers the hooks
    assert len(snapshot_restore_py.get_before_snapshot()) == 1 == len(snapshot_restore_py.get_after_restore())
    run_hooks(snapshot_restore_py.get_before_snapshot())
    parts = components()
    snapshot: dict[str, Any] = {"client": parts.store._client}  # noqa: SLF001 - what the snapshot holds
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "credentials-after-restore")
    monkeypatch.setenv("API_TOKEN_HASHES", hashlib.sha256(NEW_TOKEN.encode()).hexdigest())
    random.seed(7)
    np.random.seed(7)
    snapshot["random"] = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    run_hooks(snapshot_restore_py.get_after_restore())
    calls: list[tuple[str, str, str | None]] = []
    store = parts.store
    for method in ("fetch", "head", "download"):
        real = getattr(store, method)

        def counting(*args: Any, _real: Any = real, _method: str = method, **kwargs: Any) -> Any:
            key = args[0]
            etag = args[1] if _method == "fetch" and len(args) > 1 else kwargs.get("if_none_match")
            calls.append((_method, key, etag))
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, method, counting)
    return {"function": function, "parts": parts, "snapshot": snapshot, "calls": calls}


def request(function: Any, event: dict[str, Any], token: str) -> dict[str, Any]:
    event["headers"]["authorization"] = f"Bearer {token}"
    return function.handler(event, lambda_context())


def test_before_the_snapshot_every_model_is_loaded(restored: dict[str, Any]) -> None:
    registry = restored["parts"].registry
    assert all(registry.all_files_in_memory(spec.name) for spec in registry.manifest().models)


def test_the_first_request_after_restore_downloads_no_model(restored: dict[str, Any]) -> None:
    event = load_event(ROOT / "events/models_forecast_drive_stats_a.json")
    result = request(restored["function"], event, NEW_TOKEN)
    assert result["statusCode"] == 200, result["body"]
    calls = restored["calls"]
    assert calls == [], "the after-restore hook revalidated the manifest: the first request asks S3 nothing"


def test_the_first_request_signs_with_a_client_made_after_the_restore(restored: dict[str, Any]) -> None:
    client = restored["parts"].store._client  # noqa: SLF001 - which client signs is the point
    assert client is not restored["snapshot"]["client"]
    assert client._request_signer._credentials.access_key == "credentials-after-restore"  # noqa: SLF001
    result = request(restored["function"], http_event("GET", "/v1/models/user_churn"), NEW_TOKEN)
    assert result["statusCode"] == 200


def test_token_hashes_are_read_again_after_the_restore(restored: dict[str, Any]) -> None:
    from generate_events import EVENT_TOKEN

    event = http_event("GET", "/v1/models")
    assert request(restored["function"], event, EVENT_TOKEN)["statusCode"] == 401, "a hash from before the snapshot"
    assert request(restored["function"], http_event("GET", "/v1/models"), NEW_TOKEN)["statusCode"] == 200


def test_random_generators_are_reseeded(restored: dict[str, Any]) -> None:
    assert (random.random(), np.random.random()) != restored["snapshot"]["random"]


def test_a_manifest_changed_while_snapshotted_is_read_by_the_after_restore_hook(
    restored: dict[str, Any], s3: Any
) -> None:
    manifest = (ROOT / "models/manifest.yaml").read_text().replace('version: "1.0"', 'version: "1.1"', 1)
    s3.put_object(Bucket="test-models", Key="models/manifest.yaml", Body=manifest.encode())
    run_hooks(snapshot_restore_py.get_after_restore())  # another environment restored from the snapshot
    assert [(method, key) for method, key, etag in restored["calls"] if etag] == [("fetch", "models/manifest.yaml")]
    restored["calls"].clear()
    result = request(restored["function"], load_event(ROOT / "events/models_forecast_drive_stats_a.json"), NEW_TOKEN)
    assert json.loads(result["body"])["model_version"] == "1.1"
    assert restored["calls"] == [], "the first request found the manifest fresh"


@pytest.mark.parametrize("function", ["models", "batch", "runs", "inference", "embeddings"])
def test_the_warm_up_sends_every_route_a_request_it_answers_with_success(s3: Any, function: str,
                                                                        request: pytest.FixtureRequest) -> None:
    """What before_snapshot sends each route is a request the route answers (2xx), so the snapshot
    holds that route's whole path run once; checked here with the test token, route by route."""
    if function == "embeddings":  # its routes serve text models only
        request.getfixturevalue("text_s3")
    from generate_events import EVENT_TOKEN
    from prediction_service.awslambda.warmup import event, requests_for
    from prediction_service.composition import components

    loaded = load_function(function)
    parts = components()
    entries = [s for s in parts.registry.manifest().models if s.shadow_of is None]
    requests = list(requests_for(loaded.app, parts, entries))
    routes = {r.path for r in loaded.app.routes if getattr(r, "methods", None)}
    assert len(requests) >= len(routes) - 1, (requests, routes)
    for method, path, body in requests:
        result = loaded.handler(event(method, path, body, EVENT_TOKEN), lambda_context())
        assert result["statusCode"] in (200, 503), (method, path, body, result["body"])  # 503: a model not ready


def test_the_warm_up_token_is_accepted_only_while_the_warm_up_runs(s3: Any) -> None:
    from prediction_service.awslambda.warmup import event
    from prediction_service.web.auth import warm_up_token

    models = load_function("models")
    with warm_up_token() as token:
        assert models.handler(event("GET", "/v1/models", None, token), lambda_context())["statusCode"] == 200
    assert models.handler(event("GET", "/v1/models", None, token), lambda_context())["statusCode"] == 401


def test_the_warm_up_leaves_no_metric_for_the_first_request(restored: dict[str, Any]) -> None:
    from prediction_service.observability import metrics

    assert not metrics.metric_set, metrics.metric_set
