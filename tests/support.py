"""Helpers the test modules share (kept out of conftest.py so they import by a plain name)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, NoReturn

import httpx

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "test-models"


def publish_document(s3: Any, document: dict[str, Any], tmp_path: Path) -> None:
    """Publish models/ with another manifest, as `make publish-models` would, and start afresh."""
    import shutil

    import yaml
    from prediction_service.composition import components
    from publish_models import publish

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models, dirs_exist_ok=True)
    (models / "manifest.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    publish(s3, BUCKET, models_dir=models)
    components.cache_clear()


def publish_with(s3: Any, tmp_path: Path, name: str, model: bytes) -> None:
    """Publish models/ plus one new model: its file and a three-line manifest entry, nothing else."""
    import hashlib
    import shutil

    from publish_models import publish

    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    (models / f"{name}.onnx").write_bytes(model)
    digest = hashlib.sha256(model).hexdigest()
    with (models / "manifest.yaml").open("a") as manifest:
        manifest.write(f"\n  - name: {name}\n    file: {name}.onnx\n    sha256: {digest}\n")
    publish(s3, BUCKET, models_dir=models)


def shipped_model_names() -> set[str]:
    """The names models/manifest.yaml gives (the tests follow it rather than repeat it)."""
    import yaml

    return {m["name"] for m in yaml.safe_load((ROOT / "models/manifest.yaml").read_text())["models"]}


class CountingStore:
    """The real S3 store (prediction_service.storage.s3.S3Store), counting its reads; optionally slow
    or failing, to stage races and faults. Injected through composition.build_components.

    `fetches` has every GET of an object whose body was read, in memory or streamed to a file
    (`download` adds `(key, None)`); `downloads` only the streamed ones; `heads` the requests that
    read no body: HEADs, and the GETs of `fetch_small` that only told a size or failed."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.fetches: list[tuple[str, str | None]] = []
        self.downloads: list[str] = []
        self.heads: list[str] = []
        self.fail: Exception | None = None
        self._lock = threading.Lock()

    def fetch(self, key: str, if_none_match: str | None = None) -> Any:
        with self._lock:
            self.fetches.append((key, if_none_match))
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return self.inner.fetch(key, if_none_match)

    def fetch_small(self, key: str, limit: int) -> Any:
        time.sleep(self.delay)
        try:
            if self.fail is not None:
                raise self.fail
            result = self.inner.fetch_small(key, limit)
        except Exception:
            with self._lock:
                self.heads.append(key)
            raise
        with self._lock:
            if hasattr(result, "body"):
                self.fetches.append((key, None))
            else:
                self.heads.append(key)
        return result

    def head(self, key: str) -> Any:
        with self._lock:
            self.heads.append(key)
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return self.inner.head(key)

    def download(self, key: str, out: Any, info: Any) -> Any:
        with self._lock:
            self.fetches.append((key, None))
            self.downloads.append(key)
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return self.inner.download(key, out, info)

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        if self.fail is not None:
            raise self.fail
        self.inner.put(key, body, content_type)


@dataclass(frozen=True)
class LocalServer:
    """A running `scripts/local_api.py`: its base URL and the token it accepts."""

    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name (every function has an app.py)."""
    module_name = f"function_{name}_app"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def lambda_context(name: str = "test-function") -> Any:
    return SimpleNamespace(
        function_name=name,
        function_version="$LATEST",
        aws_request_id="00000000-0000-0000-0000-000000000000",
        memory_limit_in_mb=1024,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def load_event(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def skip_loudly(reason: str) -> NoReturn:
    """Skip, and say so in the log where nobody can miss it (the test needs the machine, not a fix)."""
    import pytest

    print(f"\n{'!' * 70}\n{reason}\n{'!' * 70}", file=sys.stderr)
    pytest.skip(reason)


def venv_tool(name: str) -> str:
    """A command installed beside this Python (the project venv), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


@contextmanager
def serving(
    command: list[str], *, ready_url: str, headers: dict[str, str], log_path: Path, timeout: float, **popen: Any
) -> Iterator[None]:
    """Run a server process for the duration of the block, once `ready_url` answers 200.

    Fails the test with the server's log if it exits or is not ready within `timeout` seconds.
    """
    with log_path.open("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(ready_url, headers=headers, timeout=60).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{command[0]} did not serve {ready_url}:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.5)
            yield
        finally:
            process.terminate()
            process.wait(timeout=60)


def http_event(method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API event for any request, shaped like the files in events/ (gateway-approved)."""
    event = load_event(ROOT / "events" / "models_predict_ids_labels.json")
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    token = event["headers"]["authorization"]  # the event files' test token, which the tests accept
    event["headers"] = {"content-type": "application/json", "authorization": token, **(headers or {})}
    event.pop("pathParameters", None)
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body
    return event
