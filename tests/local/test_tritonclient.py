"""An independent client as the judge of the v2 routes: NVIDIA's tritonclient (HTTP) against
`make run`'s server, in JSON and with the binary tensor extension, for every datatype the
shipped models use. Its answers are checked against /v1's answers for the same inputs and,
for digits, against the held-out images' labels."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from functools import cache
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from support import ROOT, LocalServer
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.server

CHURN_ROWS = [[1.5, 30, 2, 4], [9.0, 1, 48, 0], [0.5, 60, 3, 7], [4.0, 12, 24, 1]]
# (input binary, output binary): tritonclient's default (both), neither, and each alone
MODES = [(True, True), (False, False), (True, False), (False, True)]
MODE_IDS = ["binary", "json", "binary-in-json-out", "json-in-binary-out"]
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def client(local_server: LocalServer) -> Iterator[httpclient.InferenceServerClient]:
    # tritonclient takes host:port without the scheme
    with httpclient.InferenceServerClient(local_server.url.removeprefix("http://")) as triton:
        yield triton


@pytest.fixture(scope="module")
def auth(local_server: LocalServer) -> dict[str, str]:
    return local_server.auth


def fresh(auth: dict[str, str]) -> dict[str, str]:
    """tritonclient adds Inference-Header-Content-Length to the headers dict it is given: one per call."""
    return dict(auth)


@cache
def digits_holdout() -> tuple[np.ndarray, np.ndarray]:
    lines = [line for line in (ROOT / "models/data/digits_holdout.csv").read_text().splitlines()
             if not line.startswith("#")]
    header, *rows = csv.reader(lines)
    assert header[0] == "label" and len(header) == 65
    pixels = np.array([[int(v) for v in row[1:]] for row in rows], dtype=np.uint8).reshape(-1, 8, 8)
    return pixels, np.array([row[0] for row in rows])


def as_text(values: np.ndarray) -> list[str]:
    """BYTES outputs: bytes objects from the binary extension, str from JSON."""
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def test_live_and_ready_need_no_token(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() is True
    assert client.is_server_ready() is True


def test_server_metadata(client: httpclient.InferenceServerClient, auth: dict[str, str]) -> None:
    assert client.get_server_metadata(headers=fresh(auth)) == {
        "name": "onnx-prediction-api", "version": "0.1.0", "extensions": ["binary_tensor_data"]
    }


def test_server_metadata_needs_a_token(client: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as raised:
        client.get_server_metadata()
    assert raised.value.status() == "401" and "Authorization" in raised.value.message()


METADATA = {
    "user_churn": {
        "name": "user_churn", "versions": ["1.0", "1.1"], "platform": "onnx_onnxv1",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
    },
    "drive_stats_a": {
        "name": "drive_stats_a", "versions": ["1.0"], "platform": "onnx_onnxv1",
        "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [{"name": "variable", "datatype": "FP32", "shape": [-1, 3]}],
    },
    "digits": {
        "name": "digits", "versions": ["1"], "platform": "onnx_onnxv1",
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 8, 8]},
                   {"name": "min_confidence", "datatype": "FP32", "shape": [-1]}],
        "outputs": [{"name": "label", "datatype": "BYTES", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    },
}


@pytest.mark.parametrize("name", METADATA)
def test_model_metadata_and_readiness(client: httpclient.InferenceServerClient, auth: dict[str, str],
                                      name: str) -> None:
    assert client.get_model_metadata(name, headers=fresh(auth)) == METADATA[name]
    version = METADATA[name]["versions"][0]
    assert client.get_model_metadata(name, model_version=version, headers=fresh(auth)) == METADATA[name]
    assert client.is_model_ready(name, headers=fresh(auth)) is True
    assert client.is_model_ready(name, model_version=version, headers=fresh(auth)) is True


def test_unknown_models_and_versions_are_not_ready(client: httpclient.InferenceServerClient,
                                                   auth: dict[str, str]) -> None:
    assert client.is_model_ready("no_such_model", headers=fresh(auth)) is False
    assert client.is_model_ready("user_churn", model_version="2.0", headers=fresh(auth)) is False


def churn_infer(client: httpclient.InferenceServerClient, auth: dict[str, str], binary_in: bool,
                binary_out: bool, **kwargs: Any) -> httpclient.InferResult:
    rows = np.asarray(CHURN_ROWS, dtype=np.float32)
    x = httpclient.InferInput("X", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows, binary_data=binary_in)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in ("label", "probabilities")]
    return client.infer("user_churn", [x], outputs=outputs, headers=fresh(auth), **kwargs)


@pytest.mark.parametrize(("binary_in", "binary_out"), MODES, ids=MODE_IDS)
def test_user_churn_answers_what_v1_answers(client: httpclient.InferenceServerClient, local_server: LocalServer,
                                            binary_in: bool, binary_out: bool) -> None:
    result = churn_infer(client, local_server.auth, binary_in, binary_out)
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    assert labels.dtype == np.int64 and labels.shape == (4,)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 2)
    response = result.get_response()
    assert response["model_name"] == "user_churn" and response["model_version"] == "1.0"
    for output in response["outputs"]:
        assert ("binary_data_size" in (output.get("parameters") or {})) is binary_out
        assert ("data" in output) is not binary_out

    v1 = httpx.post(f"{local_server.url}/v1/models/user_churn/predict", headers=local_server.auth,
                    json={"inputs": CHURN_ROWS, "probability": True}).json()
    assert v1["status"] == "Success"
    assert labels.tolist() == v1["prediction"]
    np.testing.assert_allclose(probabilities, v1["probabilities"], rtol=1e-6, atol=1e-9)
    assert set(labels.tolist()) == {0, 1}  # both classes: the comparison is not trivially all-zero


@pytest.mark.parametrize(("binary_in", "binary_out"), MODES[:2], ids=MODE_IDS[:2])
def test_drive_stats_a_forecasts_what_v1_forecasts(client: httpclient.InferenceServerClient,
                                                   local_server: LocalServer, binary_in: bool,
                                                   binary_out: bool) -> None:
    """The model's own window (GET /v1/models/drive_stats_a) through v2 gives GET .../predict's forecast."""
    described = httpx.get(f"{local_server.url}/v1/models/drive_stats_a", headers=local_server.auth).json()
    window = np.asarray([described["window"]], dtype=np.float32)
    assert window.shape == (1, 30)
    x = httpclient.InferInput("X", [1, 30], "FP32")
    x.set_data_from_numpy(window, binary_data=binary_in)
    result = client.infer("drive_stats_a", [x], outputs=[httpclient.InferRequestedOutput("variable", binary_out)],
                          headers=fresh(local_server.auth))
    forecast = result.as_numpy("variable")
    assert forecast.dtype == np.float32 and forecast.shape == (1, 3)
    v1 = httpx.get(f"{local_server.url}/v1/models/drive_stats_a/predict", headers=local_server.auth).json()
    np.testing.assert_allclose(forecast[0], v1["prediction"], rtol=1e-6)


@pytest.mark.parametrize(("binary_in", "binary_out"), MODES, ids=MODE_IDS)
def test_digits_reads_the_held_out_images(client: httpclient.InferenceServerClient, auth: dict[str, str],
                                          binary_in: bool, binary_out: bool) -> None:
    """UINT8 [n, 8, 8] and FP32 [n] in; BYTES [n] and FP32 [n, 10] out."""
    pixels, names = digits_holdout()
    assert pixels.shape == (100, 8, 8)
    images = httpclient.InferInput("pixels", list(pixels.shape), "UINT8")
    images.set_data_from_numpy(pixels, binary_data=binary_in)
    confidence = httpclient.InferInput("min_confidence", [len(pixels)], "FP32")
    confidence.set_data_from_numpy(np.zeros(len(pixels), dtype=np.float32), binary_data=binary_in)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary_out) for name in ("label", "probabilities")]
    result = client.infer("digits", [images, confidence], outputs=outputs, headers=fresh(auth))
    labels, probabilities = as_text(result.as_numpy("label")), result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (100, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert labels == [DIGIT_NAMES[k] for k in probabilities.argmax(axis=1)]  # column k is digit k
    assert float(np.mean(np.asarray(labels) == names)) >= 0.9
    # above every top probability (some are 1.0 in float32) every label is "unsure"
    confidence.set_data_from_numpy(np.full(len(pixels), 1.01, dtype=np.float32), binary_data=binary_in)
    unsure = client.infer("digits", [images, confidence], outputs=outputs, headers=fresh(auth))
    assert set(as_text(unsure.as_numpy("label"))) == {"unsure"}


def test_default_outputs_are_every_output_in_binary(client: httpclient.InferenceServerClient,
                                                    auth: dict[str, str]) -> None:
    """No `outputs` asked for: tritonclient asks for binary_data_output, and gets every output."""
    x = httpclient.InferInput("X", [1, 4], "FP32")
    x.set_data_from_numpy(np.asarray([CHURN_ROWS[0]], dtype=np.float32))
    result = client.infer("user_churn", [x], headers=fresh(auth))
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probabilities"]
    assert result.as_numpy("label").tolist() == [1]


def test_a_model_version_call(client: httpclient.InferenceServerClient, auth: dict[str, str]) -> None:
    result = churn_infer(client, auth, True, True, model_version="1.0")
    assert result.get_response()["model_version"] == "1.0"
    assert result.as_numpy("label").shape == (4,)
    with pytest.raises(InferenceServerException) as raised:
        churn_infer(client, auth, True, True, model_version="2.0")
    assert raised.value.status() == "404"
    assert raised.value.message() == "model 'user_churn' has no version '2.0'; its versions: 1.0, 1.1"


def test_the_request_id_is_echoed(client: httpclient.InferenceServerClient, auth: dict[str, str]) -> None:
    for binary in (True, False):
        result = churn_infer(client, auth, binary, binary, request_id=f"judge-{binary}")
        assert result.get_response()["id"] == f"judge-{binary}"


def test_a_wrong_datatype_is_the_clients_400(client: httpclient.InferenceServerClient, auth: dict[str, str]) -> None:
    for binary in (True, False):
        x = httpclient.InferInput("X", [1, 4], "INT32")
        x.set_data_from_numpy(np.ones((1, 4), dtype=np.int32), binary_data=binary)
        with pytest.raises(InferenceServerException) as raised:
            client.infer("user_churn", [x], headers=fresh(auth))
        assert raised.value.status() == "400"
        assert raised.value.message() == "input 'X' is FP32, not INT32"


def test_an_unknown_model_is_the_clients_404(client: httpclient.InferenceServerClient, auth: dict[str, str]) -> None:
    x = httpclient.InferInput("X", [1, 4], "FP32")
    x.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    for call in (lambda: client.infer("no_such_model", [x], headers=fresh(auth)),
                 lambda: client.get_model_metadata("no_such_model", headers=fresh(auth))):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == "404"
        assert "'no_such_model' is not in the manifest" in raised.value.message()
