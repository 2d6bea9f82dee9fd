"""Shadow versions: a version marked `shadow_of` another runs on the same input, started together
with the live prediction, and never changes that answer, its status, or its latency by more
than `SHADOW_TIMEOUT_MS`.

The shadow runs in a thread of its own small pool, beside the live run on the request's
thread, so it can be waited for with a bound; the data plane's bookkeeping collects it
(`Shadow.outcome`) once the answer is encoded, before the function returns: a Lambda function's threads
are frozen as soon as the handler returns, so a shadow's time is billed as the function's,
and the caller waits for it, up to the bound. A shadow that fails or overruns is logged and
counted and never seen by the caller; one that overruns keeps its thread until
it finishes, so the pool's size bounds how many can pile up (later ones then time out).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np

from prediction_service.errors import PredictionError
from prediction_service.timing import elapsed_ms

SHADOW_WORKERS = 2

# Shadow statuses, as records and logs carry them.
SUCCESS = "Success"
FAILED = "Failed"
TIMED_OUT = "TimedOut"


@dataclass(frozen=True)
class ShadowOutcome:
    """What a shadow did: its version, status, output (as the live answer gives it, when it ran),
    whether it agrees with the live output, how long it ran and why it failed."""

    model_version: str
    status: str
    duration_ms: int
    output: Any = None
    agrees: bool | None = None
    error_message: str | None = None

    def as_record(self, output: Any = None) -> dict[str, Any]:
        """What a run record keeps of it, `output` being its answer in the record's own shape."""
        record: dict[str, Any] = {"model_version": self.model_version, "status": self.status,
                                  "duration_ms": self.duration_ms}
        if self.status == SUCCESS:
            record.update(output=output, agrees=self.agrees)
        else:
            record["error_message"] = self.error_message
        return record


Arrays = list[np.ndarray]


class Shadow:
    """A shadow run in flight: `outcome()` waits for it until the deadline, never raises.
    `agrees` judges its outputs against the live ones."""

    def __init__(self, version: str, future: Future[tuple[Arrays, int]], started: float,
                 agrees: Callable[[Arrays, Arrays], bool]) -> None:
        self.version = version
        self._future = future
        self._started = started
        self._agrees = agrees

    def outcome(self, deadline: float, live: Arrays) -> ShadowOutcome:
        """Its outcome, waiting at most until `deadline` (a `time.perf_counter()` reading)."""
        try:
            output, duration_ms = self._future.result(timeout=max(0.0, deadline - time.perf_counter()))
            agrees = self._agrees(live, output)
        except FutureTimeout:
            return ShadowOutcome(self.version, TIMED_OUT, elapsed_ms(self._started),
                                 error_message="the shadow did not finish within SHADOW_TIMEOUT_MS")
        except PredictionError as exc:
            return ShadowOutcome(self.version, FAILED, elapsed_ms(self._started), error_message=exc.detail)
        except Exception as exc:  # a shadow's failure, whatever it is, stays out of the answer
            return ShadowOutcome(self.version, FAILED, elapsed_ms(self._started),
                                 error_message=f"{type(exc).__name__}: {exc}"[:500])
        return ShadowOutcome(self.version, SUCCESS, duration_ms, output, agrees)


class ShadowPool:
    """Where shadows run: apart from the batch pool, so a slow shadow never holds up live items."""

    def __init__(self, timeout_seconds: float, workers: int = SHADOW_WORKERS) -> None:
        self.timeout_seconds = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shadow")

    def start(self, version: str, run: Callable[[], Arrays], agrees: Callable[[Arrays, Arrays], bool]) -> Shadow:
        def timed() -> tuple[Arrays, int]:
            started = time.perf_counter()
            return run(), elapsed_ms(started)

        return Shadow(version, self._pool.submit(timed), time.perf_counter(), agrees)

    def deadline(self) -> float:
        """When shadows started for the request now ending must have finished."""
        return time.perf_counter() + self.timeout_seconds
