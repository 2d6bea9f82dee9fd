"""Shared fixtures: fake AWS credentials, an S3 bucket holding models/ (moto), the function apps
(`models`, `batch`, `inference`, `embeddings`: functions/<name>/app.py, loaded once a module)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_s3 import free_port, in_process_s3
from support import BUCKET, ROOT, LocalServer, load_function, serving

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    MODEL_BUCKET=BUCKET,
    PREFETCH_MODELS="none",  # the default; tests that prefetch say so
)
os.environ.pop("S3_ENDPOINT_URL", None)
os.environ.pop("API_TOKEN_HASHES_PARAMETER", None)
os.environ.pop("AWS_PROFILE", None)

# Powertools' log handler keeps the stdout it is created with: create it now, under the session's
# capture, not inside one test's capsys (whose stream is closed when that test ends).
import prediction_service.observability  # noqa: E402, F401


@pytest.fixture(autouse=True)
def token_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Accept the event files' test token, and rebuild the verifier around each test."""
    from generate_events import EVENT_TOKEN_HASH
    from prediction_service.web.auth import default_verifier

    monkeypatch.setenv("API_TOKEN_HASHES", EVENT_TOKEN_HASH)
    default_verifier.cache_clear()
    yield EVENT_TOKEN_HASH
    default_verifier.cache_clear()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "model-cache"
    monkeypatch.setenv("MODEL_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def s3(cache_dir: Path) -> Iterator[Any]:
    """moto's S3 with the bucket holding models/ as `make publish-models` uploads it."""
    from prediction_service.composition import components

    with in_process_s3(BUCKET) as client:
        components.cache_clear()
        yield client
        components.cache_clear()


@pytest.fixture(scope="session")
def text_model_dir() -> Path:
    """all-MiniLM-L6-v2 converted by models/build_text_model.py: built once from the pinned package, then cached."""
    from local_api import text_models

    return text_models()


@pytest.fixture
def text_s3(s3: Any, text_model_dir: Path) -> Any:
    """The `s3` bucket with the text models published too, as `make publish-models` uploads them."""
    from prediction_service.composition import components
    from publish_models import publish

    publish(s3, BUCKET, text_models=text_model_dir)
    components.cache_clear()
    return s3


@pytest.fixture(scope="module")
def models() -> Any:
    return load_function("models")


@pytest.fixture(scope="module")
def batch() -> Any:
    return load_function("batch")


@pytest.fixture(scope="module")
def inference() -> Any:
    return load_function("inference")


@pytest.fixture(scope="module")
def embeddings() -> Any:
    return load_function("embeddings")


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """`make run`'s server for real: scripts/local_api.py (moto S3 + the function apps) on 127.0.0.1."""
    server = LocalServer(url=f"http://127.0.0.1:{free_port()}", token="local-server-test-token-0123456789")
    command = [sys.executable, str(ROOT / "scripts" / "local_api.py"), "--port", server.url.rsplit(":", 1)[1],
               "--moto-port", str(free_port())]
    env = {**os.environ, "API_TOKEN": server.token, "MODEL_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with serving(command, ready_url=f"{server.url}/v1/models", headers=server.auth, log_path=log_path, timeout=60,
                 cwd=ROOT, env=env):
        yield server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """After the run: the screenshots kept, and the REPORT lines of every `sam local` invocation
    (Init Duration, Max Memory Used)."""
    artifacts = sorted((ROOT / "test-artifacts").glob("*.png"))
    if artifacts:
        terminalreporter.write_sep("-", "test artifacts")
        for path in artifacts:
            terminalreporter.write_line(str(path.relative_to(ROOT)))
    module = sys.modules.get("test_sam_local")
    if module is not None and module.REPORTS:
        terminalreporter.write_sep("-", "sam local REPORT lines")
        for line in module.report_table():
            terminalreporter.write_line(line)
