"""The playground page in headless Chromium (Debian's chromium + chromium-driver, installed
by scripts/ensure-packages.sh), against `make run`'s server: a forecast and a classification
clicked through on /v1, then any model through the Open Inference Protocol (v2), what the
page shows checked against the API's own answers. Screenshots go to test-artifacts/."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from support import ROOT, LocalServer, skip_loudly

pytestmark = [pytest.mark.server, pytest.mark.browser]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    # as root in a container, without a GPU, on a machine whose only network is loopback
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ensure = [str(ROOT / "scripts/ensure-packages.sh"), "chromium=chromium", "chromedriver=chromium-driver"]
    result = subprocess.run(ensure, capture_output=True, text=True)
    if result.returncode == 3:
        skip_loudly(f"CHROMIUM CANNOT BE INSTALLED ON THIS MACHINE; browser tests skipped:\n{result.stderr[-2000:]}")
    assert result.returncode == 0, result.stderr
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to read the page's console
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    for stale in ARTIFACTS.glob("playground-*.png"):
        stale.unlink()
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The playground as a user sees it: fields to fill, buttons to click, what it shows."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.wait = WebDriverWait(driver, 20)

    def el(self, element_id: str) -> Any:
        return self.driver.find_element(By.ID, element_id)

    def fill(self, element_id: str, text: str) -> None:
        field = self.el(element_id)
        field.clear()
        field.send_keys(text)

    def status(self) -> str:
        return self.el("status").text

    def click_and_wait(self, button: str, until_status: str) -> str:
        """Click, then wait until the status line starts with `until_status` (or shows an error)."""
        # emptied first: two answers in a row may read the same ("... in 1 ms")
        self.driver.execute_script("document.getElementById('status').textContent = ''")
        self.el(button).click()
        self.wait.until(lambda _: self.status() != "" and not self.status().endswith("..."))
        assert self.status().startswith(until_status), self.status()
        return self.status()

    def choose_model(self, name: str) -> None:
        """Pick a model and wait until both its /v1 detail and its v2 metadata are shown."""
        Select(self.el("model")).select_by_value(name)
        info = self.el("model-info")
        self.wait.until(lambda _: info.get_attribute("data-model") == name)

    def table(self, element_id: str = "result-table") -> list[list[str]]:
        rows = self.el(element_id).find_elements(By.TAG_NAME, "tr")
        return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")] for row in rows]

    def outputs(self) -> dict[str, dict[str, Any]]:
        """The v2 output tables by tensor name: datatype, shape, column headings, rows (index first)."""
        shown: dict[str, dict[str, Any]] = {}
        for box in self.driver.find_elements(By.CSS_SELECTOR, "table.v2-output"):
            caption = {cls: box.find_element(By.CSS_SELECTOR, f"caption .{cls}").text
                       for cls in ("name", "datatype", "shape")}
            rows = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
                    for row in box.find_elements(By.TAG_NAME, "tr")]
            assert box.get_attribute("data-name") == caption["name"]
            shown[caption["name"]] = {"datatype": caption["datatype"], "shape": caption["shape"],
                                      "columns": rows[0], "rows": rows[1:]}
        return shown

    def raw(self) -> str:
        """The answer under "Response JSON" (collapsed, so not in .text)."""
        return self.driver.execute_script("return document.getElementById('raw').textContent")

    def request(self) -> dict[str, Any]:
        """The v2 infer request in the textarea, as JSON."""
        return json.loads(self.el("v2-request").get_attribute("value"))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        assert self.driver.save_screenshot(str(path)), f"no screenshot written to {path}"
        return path


@pytest.fixture(scope="module")
def page(browser: Any, local_server: LocalServer) -> Page:
    browser.get(f"{local_server.url}/playground")
    page = Page(browser)
    assert page.status() == "Enter a token and connect."
    return page


def api(local_server: LocalServer, method: str, path: str, body: Any = None) -> dict[str, Any]:
    response = httpx.request(method, f"{local_server.url}{path}", json=body, headers=local_server.auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_wrong_token_is_refused_on_the_page(page: Page) -> None:
    page.fill("token", "not-the-token-0123456789")
    page.click_and_wait("connect", "HTTP 401: unknown token")
    assert not page.el("model").is_enabled()


def test_forecast_shows_the_models_window_its_forecast_and_the_chart(page: Page, local_server: LocalServer) -> None:
    page.fill("token", local_server.token)
    listed = [m["name"] for m in api(local_server, "GET", "/v1/models")["models"]]
    assert "digits" in listed  # a generic ONNX model: listed by /v1, served by v2 only
    assert page.click_and_wait("connect", f"{len(listed)} models") == f"{len(listed)} models. Pick one and predict."
    page.choose_model("drive_stats_a")
    detail = api(local_server, "GET", "/v1/models/drive_stats_a")
    shown_window = [float(v) for v in page.el("window").get_attribute("value").split(",")]
    assert shown_window == detail["window"] and len(shown_window) == 30
    assert "30 points in, 3 out" in page.el("model-info").text

    status = page.click_and_wait("predict", "Success: drive_stats_a 1.0 in ")
    assert status.endswith(" ms")
    expected = api(local_server, "GET", "/v1/models/drive_stats_a/predict")["prediction"]
    assert page.table() == [["step", "forecast"]] + [[f"t+{i + 1}", f"{v:.4f}"] for i, v in enumerate(expected)]

    history, forecast = page.el("history"), page.el("forecast")
    assert history.get_attribute("data-count") == "30" and len(history.get_attribute("points").split()) == 30
    assert forecast.get_attribute("data-count") == "3" and len(forecast.get_attribute("points").split()) == 4
    assert page.el("chart-box").is_displayed()
    page.screenshot("playground-forecast.png")


def test_what_if_window_is_forecast_from_the_edited_values(page: Page, local_server: LocalServer) -> None:
    window = [round(0.45 + 0.004 * i, 3) for i in range(30)]
    page.fill("window", ", ".join(str(v) for v in window))
    page.click_and_wait("predict", "Success: drive_stats_a")
    expected = api(local_server, "POST", "/v1/models/drive_stats_a/predict", {"inputs": [window]})["prediction"]
    assert [row[1] for row in page.table()[1:]] == [f"{v:.4f}" for v in expected]


def test_classification_with_probabilities_for_user_ids(page: Page, local_server: LocalServer) -> None:
    page.choose_model("user_churn")
    assert page.el("forecast-inputs").is_displayed() is False and page.el("classifier-inputs").is_displayed()
    example_ids = api(local_server, "GET", "/v1/models/user_churn")["example_ids"]
    assert page.el("ids").get_attribute("value") == ", ".join(str(i) for i in example_ids)

    page.fill("ids", "1, 5, 100")
    page.el("probability").click()
    page.click_and_wait("predict", "Success: user_churn 1.0")
    expected = api(local_server, "POST", "/v1/models/user_churn/predict", {"ids": [1, 5, 100], "probability": True})
    classes = expected["classes"]
    assert page.table() == [["user id", "label", "P(stays)", "P(churns)"]] + [
        [str(uid), classes[label], *(f"{p:.4f}" for p in probabilities)]
        for uid, label, probabilities in zip(
            [1, 5, 100], expected["prediction"], expected["probabilities"], strict=True
        )
    ]
    assert not page.el("chart-box").is_displayed()
    page.screenshot("playground-classifier.png")


def test_labels_for_feature_rows_and_an_unknown_id_shown_as_an_error(page: Page, local_server: LocalServer) -> None:
    page.el("probability").click()  # back to labels
    page.fill("rows", "1.5, 30, 2, 4\n9.0, 1, 48, 0")
    page.click_and_wait("predict", "Success: user_churn")
    rows = [[1.5, 30, 2, 4], [9.0, 1, 48, 0]]
    expected = api(local_server, "POST", "/v1/models/user_churn/predict", {"inputs": rows})["prediction"]
    classes = api(local_server, "GET", "/v1/models/user_churn")["classes"]
    assert page.table() == [["input", "label"], ["row 1", classes[expected[0]]], ["row 2", classes[expected[1]]]]

    page.fill("rows", "")
    page.fill("ids", "1, 999999")
    status = page.click_and_wait("predict", "HTTP 400: ")
    assert "unknown id(s) in the feature table: 999999" in status
    assert '"status": "BadRequest"' in page.driver.execute_script("return document.getElementById('raw').textContent")


def shape_text(shape: list[int]) -> str:
    """A shape as the page shows it: a dynamic dimension (-1) as "any"."""
    return "[" + ", ".join("any" if d < 0 else str(d) for d in shape) + "]"


def holdout_digit(index: int) -> tuple[str, list[int]]:
    """One held-out image of models/data/digits_holdout.csv: its true label and its 64 pixels."""
    lines = [line for line in (ROOT / "models/data/digits_holdout.csv").read_text().splitlines()
             if not line.startswith("#")]
    header, *rows = csv.reader(lines)
    assert header[0] == "label" and len(header) == 65
    return rows[index][0], [int(v) for v in rows[index][1:]]


def infer(local_server: LocalServer, name: str, body: dict[str, Any]) -> Any:
    return httpx.post(f"{local_server.url}/v2/models/{name}/infer", json=body, headers=local_server.auth)


def assert_outputs_shown(shown: dict[str, dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each output's table: name, datatype, shape, and values (last dimension as columns)."""
    assert list(shown) == [o["name"] for o in expected]
    for output in expected:
        table, shape = shown[output["name"]], output["shape"]
        assert (table["datatype"], table["shape"]) == (output["datatype"], shape_text(shape))
        columns = shape[-1] if len(shape) >= 2 else 1
        assert table["columns"] == (["index", *map(str, range(columns))] if len(shape) >= 2 else ["index", "value"])
        assert len(table["rows"]) == len(output["data"]) // columns
        values = [cell for row in table["rows"] for cell in row[1:]]
        if output["datatype"].startswith("FP"):
            assert [float(v) for v in values] == pytest.approx(output["data"], rel=1e-3, abs=1e-12)  # 4 digits shown
        else:
            assert values == [str(v) for v in output["data"]]


def test_v2_shows_the_metadata_of_a_generic_model_and_prefills_a_request(page: Page, local_server: LocalServer) -> None:
    page.choose_model("digits")
    # /v1 cannot serve it: the page switches to v2 and offers no /v1 request
    assert page.el("mode-v2").is_selected() and not page.el("mode-v1").is_enabled()
    assert page.el("v2-inputs").is_displayed() and not page.el("predict").is_displayed()
    assert not page.el("forecast-inputs").is_displayed() and not page.el("classifier-inputs").is_displayed()
    assert "served by the v2 routes only" in page.el("model-info").text

    metadata = api(local_server, "GET", "/v2/models/digits")
    info = page.el("v2-info").text
    assert f"platform {metadata['platform']}" in info and f"versions {', '.join(metadata['versions'])}" in info
    assert page.table("v2-metadata") == [["", "name", "datatype", "shape"]] + [
        [role, t["name"], t["datatype"], shape_text(t["shape"])]
        for role, key in (("input", "inputs"), ("output", "outputs")) for t in metadata[key]
    ]
    assert page.table("v2-metadata")[1] == ["input", "pixels", "UINT8", "[any, 8, 8]"]
    # every input with a concrete shape (a dynamic dimension as 1) and zeros of its type
    assert page.request() == {"inputs": [
        {"name": "pixels", "datatype": "UINT8", "shape": [1, 8, 8], "data": [0] * 64},
        {"name": "min_confidence", "datatype": "FP32", "shape": [1], "data": [0]},
    ]}
    assert page.el("v2-request-label").text == "Request: POST /v2/models/digits/infer"


def test_v2_reads_a_real_digit_edited_into_the_request(page: Page, local_server: LocalServer) -> None:
    truth, pixels = holdout_digit(0)
    # as a person would: the prefilled image's 8 lines of zeros become the digit's 8 rows
    prefilled = page.el("v2-request").get_attribute("value")
    zeros = ",\n".join(["     " + ", ".join(["0"] * 8)] * 8)
    image = ",\n".join("     " + ", ".join(f"{v:2d}" for v in pixels[row * 8:row * 8 + 8]) for row in range(8))
    assert prefilled.count(zeros) == 1 and prefilled.count('"data": [0]}') == 1
    edited = prefilled.replace(zeros, image).replace('"data": [0]}', '"data": [0.0]}')  # min_confidence 0
    page.fill("v2-request", edited)
    request = json.loads(edited)
    assert request["inputs"][0]["data"] == pixels and request["inputs"][1]["data"] == [0.0]
    status = page.click_and_wait("run-v2", "OK: digits 1, 2 outputs in ")
    assert status.endswith(" ms (round trip)")

    answer = infer(local_server, "digits", request)
    assert answer.status_code == 200, answer.text
    expected = answer.json()["outputs"]
    shown = page.outputs()
    assert_outputs_shown(shown, expected)
    assert shown["label"]["rows"] == [["[0]", truth]] and truth == "four"
    assert len(shown["probabilities"]["rows"][0]) == 1 + 10  # one column per digit
    assert json.loads(page.raw())["outputs"] == expected
    page.driver.execute_script("window.scrollTo(0, 0); document.getElementById('v2-request').scrollTop = 0")
    size = page.driver.get_window_size()
    page.driver.set_window_size(size["width"], 1160)  # the whole request column in the picture
    try:
        page.screenshot("playground-v2-digits.png")  # README's docs/playground-v2.png is a copy of it
    finally:
        page.driver.set_window_size(size["width"], size["height"])


def test_v2_runs_the_prefilled_request_of_a_classifier(page: Page, local_server: LocalServer) -> None:
    page.choose_model("user_churn")
    assert page.el("mode-v1").is_selected() and page.el("classifier-inputs").is_displayed()  # /v1 stays the default
    page.el("mode-v2").click()
    assert page.el("v2-inputs").is_displayed() and not page.el("classifier-inputs").is_displayed()
    assert not page.el("predict").is_displayed()
    columns = api(local_server, "GET", "/v1/models/user_churn")["input_names"]
    assert page.el("v2-columns").text == f"Columns of X: {', '.join(columns)}."
    request = page.request()
    assert request == {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}]}

    page.click_and_wait("run-v2", "OK: user_churn 1.0, 2 outputs")
    answer = infer(local_server, "user_churn", request)
    assert answer.status_code == 200, answer.text
    shown = page.outputs()
    assert_outputs_shown(shown, answer.json()["outputs"])
    assert {name: (t["datatype"], t["shape"]) for name, t in shown.items()} == {
        "label": ("INT64", "[1]"), "probabilities": ("FP32", "[1, 2]")}


def test_v2_binary_outputs_are_decoded_like_json_ones(page: Page, local_server: LocalServer) -> None:
    rows = [[1.5, 30, 2, 4], [9, 1, 48, 0]]
    request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2, 4], "data": rows}]}
    page.fill("v2-request", json.dumps({**request, "parameters": {"binary_data_output": True}}))
    page.click_and_wait("run-v2", "OK: user_churn 1.0, 2 outputs")
    expected = infer(local_server, "user_churn", request).json()["outputs"]
    assert_outputs_shown(page.outputs(), expected)


def test_v2_a_wrong_datatype_shows_the_protocols_error(page: Page, local_server: LocalServer) -> None:
    request = {"inputs": [{"name": "X", "datatype": "INT32", "shape": [1, 4], "data": [1, 30, 2, 4]}]}
    page.fill("v2-request", json.dumps(request))
    status = page.click_and_wait("run-v2", "HTTP 400: ")
    answer = infer(local_server, "user_churn", request)
    assert answer.status_code == 400 and answer.json() == {"error": "input 'X' is FP32, not INT32"}
    assert status == "HTTP 400: input 'X' is FP32, not INT32"
    assert page.driver.find_elements(By.CSS_SELECTOR, "table.v2-output") == []
    assert json.loads(page.raw()) == answer.json()

    page.fill("v2-request", '{"inputs": [')  # not JSON: refused on the page, nothing sent
    page.click_and_wait("run-v2", "The request is not valid JSON: ")
    page.el("prefill-v2").click()
    assert page.request()["inputs"][0]["shape"] == [1, 4]


def test_v2_prefills_a_forecasters_window_and_v1_still_works(page: Page, local_server: LocalServer) -> None:
    page.choose_model("drive_stats_a")  # the v2 mode chosen above stays
    assert page.el("mode-v2").is_selected() and page.el("v2-inputs").is_displayed()
    detail = api(local_server, "GET", "/v1/models/drive_stats_a")
    request = page.request()
    assert request == {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 30], "data": detail["window"]}]}
    page.click_and_wait("run-v2", "OK: drive_stats_a 1.0, 1 output")
    forecast = page.outputs()["variable"]
    expected = api(local_server, "GET", "/v1/models/drive_stats_a/predict")["prediction"]
    assert (forecast["datatype"], forecast["shape"]) == ("FP32", "[1, 3]")
    assert [float(v) for v in forecast["rows"][0][1:]] == pytest.approx(expected, rel=1e-3)

    page.el("mode-v1").click()
    assert page.el("forecast-inputs").is_displayed() and not page.el("v2-inputs").is_displayed()
    page.click_and_wait("predict", "Success: drive_stats_a 1.0")
    assert page.table() == [["step", "forecast"]] + [[f"t+{i + 1}", f"{v:.4f}"] for i, v in enumerate(expected)]


def test_the_page_logged_no_error_and_broke_no_content_security_rule(page: Page) -> None:
    entries = page.driver.get_log("browser")
    assert any("status of 401" in e["message"] for e in entries), "the console log is read (the refused token is in it)"
    # the 400 and 401 answers above are expected; anything else severe (a script error,
    # a blocked inline script or style) is not
    unexpected = [e for e in entries if e["level"] == "SEVERE" and "status of 40" not in e["message"]]
    assert unexpected == [], unexpected
    assert [e for e in entries if "Content Security Policy" in e["message"]] == []


def test_swagger_ui_renders_from_its_own_origin_under_its_content_security_policy(
    browser: Any, local_server: LocalServer
) -> None:
    browser.get_log("browser")  # what the playground logged was checked above
    browser.get(f"{local_server.url}/docs")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock .opblock-summary-path"))
    shown = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/v1/models", "/v1/models/{name}/predict", "/v1/predict"} <= shown
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/docs/swagger-ui-bundle.js" in url for url in loaded)
    assert [url for url in loaded if not url.startswith(f"{local_server.url}/")] == []
    Page(browser).screenshot("docs-swagger-ui.png")
    # a blocked script or style (a CSP violation) or a script error is logged as SEVERE
    entries = browser.get_log("browser")
    assert [e for e in entries if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]] == []
