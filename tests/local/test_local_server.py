"""`make run`'s server for real: a moto S3 server and the apps on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest
from generate_events import PLAYGROUND_RUN
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
    response = httpx.get(f"{base_url}/v2/nothing", headers=auth)
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}


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
        assert response.json()["message"] == "Unauthorized"
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
    assert labels == {"run": {"output": [[r.index(max(r)) for r in rows]]}}
