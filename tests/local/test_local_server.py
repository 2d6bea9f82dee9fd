"""`make run`'s server for real: a moto S3 server and the apps on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from generate_events import PLAYGROUND_RUN
from local_api import WEBSOCKET_REFUSED
from local_s3 import free_port
from prediction_service.errors import BadInputError, MethodNotAllowedError, RouteNotFoundError, error_body
from support import LocalServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def base_url(local_server: LocalServer) -> str:
    return local_server.url


@pytest.fixture(scope="module")
def auth(local_server: LocalServer) -> dict[str, str]:
    return local_server.auth


def test_documented_get_predict(base_url: str, auth: dict[str, str]) -> None:
    # curl "http://localhost:3000/v1/models/my_model_name/predict"
    body = httpx.get(f"{base_url}/v1/models/drive_stats_a/predict", headers=auth).json()
    assert body["status"] == "Success" and body["lookback"] == 30 and len(body["prediction"]) == 3


def test_documented_batch_sent_as_curl_sends_it(base_url: str, auth: dict[str, str]) -> None:
    # curl --request POST --url .../v1/predict --data '{...}': curl labels it form-urlencoded
    data = '{"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "drive_stats_b"}]}'
    response = httpx.post(
        f"{base_url}/v1/predict", content=data, headers={"content-type": "application/x-www-form-urlencoded", **auth}
    )
    assert response.status_code == 200
    body = response.json()
    assert [p["model_name"] for p in body["predictions"]] == ["drive_stats_a", "drive_stats_b"]
    assert all(p["status"] == "Success" for p in body["predictions"])


def test_unknown_route_is_a_json_404(base_url: str, auth: dict[str, str]) -> None:
    response = httpx.get(f"{base_url}/v1/nothing", headers=auth)
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json() == error_body(RouteNotFoundError("GET", "/v1/nothing"))
    assert response.json()["status"] == "BadRequest" and "error_message" in response.json()


def test_an_unknown_v2_route_answers_the_protocols_error_body(base_url: str, auth: dict[str, str]) -> None:
    """tritonclient's get_model_config asks for /v2/models/{name}/config, which this server does not have."""
    response = httpx.get(f"{base_url}/v2/models/user_churn/config", headers=auth)
    assert response.status_code == 404 and set(response.json()) == {"error"}


@pytest.mark.parametrize(("method", "path", "allow"), [("DELETE", "/v1/models", "GET"),
                                                       ("PUT", "/v1/models/drive_stats_a/predict", "GET, POST"),
                                                       ("GET", "/v1/predict", "POST")])
def test_a_method_the_route_lacks_is_a_json_405_with_allow(base_url: str, auth: dict[str, str], method: str,
                                                          path: str, allow: str) -> None:
    response = httpx.request(method, f"{base_url}{path}", headers=auth)
    assert response.status_code == 405 and response.headers["content-type"] == "application/json"
    assert response.headers["allow"] == allow
    assert response.json() == error_body(MethodNotAllowedError(method, allow.split(", ")))
    assert response.json()["status"] == "BadRequest" and "error_message" in response.json()


def raw_request(url: str, request_line: str, headers: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    """Send one request over a plain socket; the status line, the headers and the body of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lines = [request_line, f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer_headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(answer_headers.get("content-length", "0"))
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
    return status_line, answer_headers, body


UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
           "Sec-WebSocket-Version": "13"}


def assert_websocket_refused(url: str, path: str, headers: dict[str, str]) -> None:
    status_line, answer_headers, body = raw_request(url, f"GET {path} HTTP/1.1", {**UPGRADE, **headers})
    assert status_line.startswith("HTTP/1.1 4"), status_line  # not 101 Switching Protocols, not 500
    assert status_line.startswith("HTTP/1.1 400 "), status_line
    assert answer_headers["content-type"] == "application/json"
    assert json.loads(body) == error_body(BadInputError(WEBSOCKET_REFUSED))


@pytest.mark.parametrize(("path", "with_token"), [("/v1/models", True), ("/v1/models", False), ("/nothing", False),
                                                  ("/playground", False)])
def test_a_websocket_upgrade_is_a_json_400(local_server: LocalServer, path: str, with_token: bool) -> None:
    assert_websocket_refused(local_server.url, path, local_server.auth if with_token else {})


@pytest.fixture
def bare_local_api() -> Iterator[Callable[[str], str]]:
    """LocalApi with no routes under uvicorn in a thread, for a given `ws` choice; yields a starter."""
    import threading
    import time

    import uvicorn
    from local_api import LocalApi

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(ws: str) -> str:
        port = free_port()
        config = uvicorn.Config(LocalApi([]), host="127.0.0.1", port=port, ws=ws, log_level="error")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.parametrize("ws", ["none", "auto", "wsproto", "websockets-sansio"])
def test_the_websocket_answer_does_not_depend_on_the_websocket_library(bare_local_api: Callable[[str], str],
                                                                        ws: str) -> None:
    """uvicorn hands an upgrade over as `websocket` (with wsproto or websockets) or as `http` (without
    either, or ws="none"): the answer is the same 400 either way."""
    library = {"wsproto": "wsproto", "websockets-sansio": "websockets"}.get(ws)
    if library is not None:
        pytest.importorskip(library, reason=f"uvicorn's ws={ws!r} needs {library}, which is not installed")
    url = bare_local_api(ws)
    assert_websocket_refused(url, "/v1/models", {})
    response = httpx.get(f"{url}/v1/models")  # plain HTTP on the same server: no route here
    assert response.status_code == 404 and response.json() == error_body(RouteNotFoundError("GET", "/v1/models"))


def test_bad_request_over_http(base_url: str, auth: dict[str, str]) -> None:
    response = httpx.post(f"{base_url}/v1/models/user_churn/predict", json={"inputs": [[1, 2]]}, headers=auth)
    assert response.status_code == 400
    assert response.json()["error_message"] == "each input row must have 4 values, got 2"


@pytest.mark.parametrize("kind", ["no header", "wrong token", "token without Bearer"])
def test_every_route_refuses_requests_without_a_valid_token(local_server: LocalServer, kind: str) -> None:
    base_url = local_server.url
    headers = {"no header": {}, "wrong token": {"Authorization": "Bearer wrong-token-0123456789abcdef"},
               "token without Bearer": {"Authorization": local_server.token}}[kind]
    for method, path in [("GET", "/v1/models/drive_stats_a"), ("GET", "/v1/models"), ("GET", "/v1/models/drive_stats_a/predict"),
                         ("POST", "/v1/models/user_churn/predict"), ("POST", "/v1/predict"), ("POST", "/api/runs")]:
        response = httpx.request(method, f"{base_url}{path}", headers=headers, json={})
        assert response.status_code == 401, (method, path)
        body = response.json()
        assert body["status"] == "BadRequest" and "Authorization: Bearer" in body["error_message"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_documented_playground_request_with_probability_and_labels(base_url: str, auth: dict[str, str]) -> None:
    payload = json.loads(json.dumps(PLAYGROUND_RUN))  # the document's request, as written
    headers = {"Content-Type": "application/json", **auth}
    probabilities = httpx.post(f"{base_url}/api/runs", json=payload, headers=headers)
    assert probabilities.status_code == 200
    (rows,) = probabilities.json()["run"]["output"]
    assert len(rows) == 3 and all(len(r) == 2 and abs(sum(r) - 1) < 1e-5 for r in rows)
    payload["run"]["variables"]["probability"] = False
    labels = httpx.post(f"{base_url}/api/runs", json=payload, headers=headers).json()
    assert labels == {"run": {"output": [[r.index(max(r)) for r in rows]],  # the document's answer, plus
                              "model_name": "user_churn", "model_version": "1.0"}}  # the version that answered


def test_a_websocket_scope_without_the_denial_extension_is_closed_before_accept() -> None:
    """A server without `websocket.http.response` answers a close before accept with 403."""
    import asyncio

    from local_api import refuse_websocket

    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/v1/models", "headers": [], "extensions": {}}
    asyncio.run(refuse_websocket(scope, receive, send))
    assert [m["type"] for m in sent] == ["websocket.close"]


def test_one_long_request_does_not_freeze_the_others(base_url: str, auth: dict[str, str]) -> None:
    """64 long texts on the FP32 text model take seconds; meanwhile every other route answers
    (the handler's CPU work runs off the event loop under make run)."""
    import threading
    import time

    texts = [" ".join(f"word{i}x{j}" for j in range(200)) for i in range(64)]
    done: dict[str, object] = {}

    def long_request() -> None:
        started = time.perf_counter()
        answer = httpx.post(f"{base_url}/v1/models/all-minilm-l6-v2-fp32/predict", json={"texts": texts},
                            headers=auth, timeout=120)
        done.update(status=answer.status_code, seconds=time.perf_counter() - started)

    httpx.post(f"{base_url}/v1/models/all-minilm-l6-v2-fp32/predict", json={"texts": ["warm"]}, headers=auth,
               timeout=120)  # loaded first: the long request is compute, not a download
    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.3)
    latencies = []
    while worker.is_alive() and len(latencies) < 20:
        started = time.perf_counter()
        assert httpx.get(f"{base_url}/v1/models/drive_stats_a/predict", headers=auth, timeout=30).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    worker.join(timeout=120)
    assert done["status"] == 200
    assert latencies, "the long request ended before any other was sent"
    assert max(latencies) < 1.0, (latencies, done)  # not the long request's seconds
