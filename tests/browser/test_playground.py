"""The playground page in headless Chromium (Debian's chromium + chromium-driver, installed
by scripts/ensure-packages.sh), against `make run`'s server: a forecast and a classification
clicked through, what the page shows checked against the API's own answers. Screenshots
go to test-artifacts/."""

from __future__ import annotations

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
        before = self.status()
        self.el(button).click()
        self.wait.until(lambda _: self.status() != before and not self.status().endswith("..."))
        assert self.status().startswith(until_status), self.status()
        return self.status()

    def choose_model(self, name: str) -> None:
        Select(self.el("model")).select_by_value(name)
        info = self.el("model-info")
        self.wait.until(lambda _: info.get_attribute("data-model") == name and self.el("predict").is_enabled())

    def table(self) -> list[list[str]]:
        rows = self.el("result-table").find_elements(By.TAG_NAME, "tr")
        return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")] for row in rows]

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
    assert page.click_and_wait("connect", "3 models") == "3 models. Pick one and predict."
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


def test_the_page_logged_no_error_and_broke_no_content_security_rule(page: Page) -> None:
    entries = page.driver.get_log("browser")
    assert any("status of 401" in e["message"] for e in entries), "the console log is read (the refused token is in it)"
    # the 400 and 401 answers above are expected; anything else severe (a script error,
    # a blocked inline script or style) is not
    unexpected = [e for e in entries if e["level"] == "SEVERE" and "status of 40" not in e["message"]]
    assert unexpected == [], unexpected


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
