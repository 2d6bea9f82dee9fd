"""A bounded load test against `make run`'s server on 127.0.0.1: no unexpected answer under load."""

from __future__ import annotations

import asyncio

import pytest
from load_test import run_load
from support import LocalServer

pytestmark = pytest.mark.server


def test_mixed_load_from_concurrent_clients_gets_only_expected_answers(local_server: LocalServer) -> None:
    report = asyncio.run(run_load(local_server.url, local_server.token, clients=16, requests=1500, seconds=30))
    print("\nload test:", report.summary())
    assert report.errors == []
    assert report.requests >= 200, "the load test should have run long enough to mean something"
    assert set(report.kinds) == {"forecast", "forecast-window", "classify-ids", "batch", "run", "bad-width",
                                 "unknown-model", "no-token"}
