"""docs/openai-clients.md's Python snippets, run as they are written against `make run`'s server:
each must succeed and print what its comments say it prints (`print(x)  # 2 384`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from support import ROOT, LocalServer

pytestmark = pytest.mark.server

PAGE = ROOT / "docs" / "openai-clients.md"
PYTHON = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SNIPPETS = PYTHON.findall(PAGE.read_text(encoding="utf-8"))


def promised_output(snippet: str) -> list[str]:
    """What each `print(...)  # shown` line promises: the comment, up to an explaining `: ...`."""
    lines = [line for line in snippet.splitlines() if line.lstrip().startswith("print(") and "  # " in line]
    return [line.split("  # ", 1)[1].split(": ", 1)[0].strip() for line in lines]


def test_the_page_has_a_snippet_per_client() -> None:
    assert len(SNIPPETS) == 3
    for client in ("from openai import OpenAI", "from langchain_openai", "from llama_index"):
        assert any(client in snippet for snippet in SNIPPETS), client


@pytest.mark.parametrize("snippet", SNIPPETS, ids=["openai", "langchain", "llamaindex"])
def test_each_snippet_runs_and_prints_what_it_says(local_server: LocalServer, snippet: str) -> None:
    env = {**os.environ, "API_URL": local_server.url, "TOKEN": local_server.token}
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == promised_output(snippet), result.stdout
