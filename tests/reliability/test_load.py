"""A bounded load test against `make run`'s server on 127.0.0.1: no unexpected answer under load."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from load_test import run_load
from support import ROOT, free_port, serving

pytestmark = pytest.mark.server

TOKEN = "load-test-token-0123456789abcdef"


def test_mixed_load_from_concurrent_clients_gets_only_expected_answers(tmp_path: Any) -> None:
    port, moto_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "scripts/local_api.py"), "--port", str(port), "--moto-port", str(moto_port)]
    env = {**os.environ, "API_TOKEN": TOKEN, "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with serving(command, ready_url=f"{url}/v1/models", headers=headers, log_path=tmp_path / "server.log",
                 timeout=60, cwd=ROOT, env=env):
        report = asyncio.run(run_load(url, TOKEN, clients=16, requests=1500, seconds=30))
    print("\nload test:", report.summary())
    assert report.errors == []
    assert report.requests >= 200, "the load test should have run long enough to mean something"
    assert set(report.kinds) == {"forecast", "forecast-window", "classify-ids", "batch", "run", "bad-width",
                                 "unknown-model", "no-token"}
