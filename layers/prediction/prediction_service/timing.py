"""Durations as the API reports them: whole milliseconds, measured, never negative."""

from __future__ import annotations

import time


def elapsed_ms(started: float) -> int:
    """Milliseconds since `started`, a `time.perf_counter()` reading."""
    return max(0, round((time.perf_counter() - started) * 1000))
