"""`make run`'s server for real: a moto S3 server and the apps on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import ROOT

pytestmark = pytest.mark.server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port, moto_port = free_port(), free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "local_api.py"), "--port", str(port), "--moto-port", str(moto_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"local server did not start:\n{log.read()}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_documented_get_predict(base_url: str) -> None:
    # curl "http://localhost:3000/v1/models/my_model_name/predict"
    body = httpx.get(f"{base_url}/v1/models/drive_stats_a/predict").json()
    assert body["status"] == "Success" and body["lookback"] == 30 and len(body["prediction"]) == 3


def test_documented_batch_sent_as_curl_sends_it(base_url: str) -> None:
    # curl --request POST --url .../v1/predict --data '{...}': curl labels it form-urlencoded
    data = '{"predictions": [{"model_name": "drive_stats_a"}, {"model_name": "drive_stats_b"}]}'
    response = httpx.post(
        f"{base_url}/v1/predict", content=data, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    body = response.json()
    assert [p["model_name"] for p in body["predictions"]] == ["drive_stats_a", "drive_stats_b"]
    assert all(p["status"] == "Success" for p in body["predictions"])


def test_unknown_route_is_a_json_404(base_url: str) -> None:
    response = httpx.get(f"{base_url}/v2/nothing")
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}


def test_bad_request_over_http(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/models/user_churn/predict", json={"inputs": [[1, 2]]})
    assert response.status_code == 400
    assert response.json()["error_message"] == "each input row must have 4 values, got 2"
