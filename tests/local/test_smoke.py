"""`make smoke` (scripts/smoke.py) against `make run`'s server: every check passes, and the token
never appears in what it prints."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT, LocalServer

pytestmark = pytest.mark.server

SMOKE = ROOT / "scripts" / "smoke.py"


def smoke(url: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SMOKE), "--url", url, "--token", token, *extra],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_smoke_passes_against_make_run(local_server: LocalServer) -> None:
    result = smoke(local_server.url, local_server.token)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert local_server.token not in output
    lines = result.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("PASS", "FAIL"))]
    assert len(checks) == 13 and all(line.startswith("PASS") for line in checks), output
    assert "(record: false)" in result.stdout
    assert lines[-1] == f"13/13 checks passed against {local_server.url}"


def test_smoke_with_a_trailing_slash_and_a_record(local_server: LocalServer) -> None:
    result = smoke(local_server.url + "/", local_server.token, "--record")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(a record written)" in result.stdout


def test_smoke_fails_with_a_wrong_token_and_does_not_print_it(local_server: LocalServer) -> None:
    wrong = "smoke-wrong-token-0123456789abcdef"
    result = smoke(local_server.url, wrong)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert wrong not in output and local_server.token not in output
    # the public health routes still pass; everything that needs the token fails
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASS")]
    assert len(passed) == 2 and all("/v2/health/" in line for line in passed), output


def test_smoke_refuses_a_url_without_a_scheme() -> None:
    result = smoke("127.0.0.1:3000", "any-token-0123456789")
    assert result.returncode != 0 and "--url must be" in result.stderr + result.stdout
