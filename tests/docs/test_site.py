"""The documentation: the MkDocs site builds with --strict (no broken link, anchor or nav entry),
and README.md stays a short front page whose first commands are `make run` and `make test`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# [text](target) and ![alt](target), with an optional "title"; reference-style links are not used.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_is_short_and_starts_with_make_run_and_make_test() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines: move the detail to docs/"
    first_block = FENCE.search(text)
    assert first_block is not None, "README.md has no code block"
    commands = [line.split("#", 1)[0].strip() for line in first_block.group(1).splitlines()]
    assert "make run" in commands and "make test" in commands, first_block.group(0)


def test_every_relative_link_in_the_readme_exists() -> None:
    text = FENCE.sub("", README.read_text(encoding="utf-8"))  # links only, not code
    targets = [m.group(1) for m in LINK.finditer(text)]
    assert targets, "README.md links to nothing"
    relative = [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    missing = [t for t in relative if not (README.parent / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
