"""schemathesis against `make run`'s server: every operation of /openapi.json, with its
default checks (server errors, status codes, response schemas, content types, headers,
negative and positive data, Allow on 405) over the examples, coverage, fuzzing and
stateful phases. Bounded: a fixed seed and a fixed number of examples per operation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import ROOT, LocalServer, venv_tool

pytestmark = pytest.mark.server

MAX_EXAMPLES = 100
SEED = 20261123


def test_schemathesis_finds_no_failure(local_server: LocalServer, tmp_path: Path) -> None:
    command = [
        venv_tool("schemathesis"), "--no-color", "--config-file", str(ROOT / "tests/contract/schemathesis.toml"),
        "run", f"{local_server.url}/openapi.json",
        "--header", f"Authorization: Bearer {local_server.token}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "18 selected / 18 total" in result.stdout, "every operation of the document is tested"
    assert local_server.token not in result.stdout, "schemathesis must not print the token"
