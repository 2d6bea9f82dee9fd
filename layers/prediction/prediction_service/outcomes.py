"""What the service hands back to the routes: answers with the time spent in the model, the
version that answered and how it was chosen, the shadow running beside it, and the failures
of batch items. Plain data (no numpy), so the routes import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import PredictionError
from .schemas import PredictResponse, RunResponse

if TYPE_CHECKING:
    from .routing import Route
    from .shadows import Shadow, ShadowOutcome


@dataclass(frozen=True)
class Prediction:
    """A successful answer, the milliseconds spent in the model itself, the route that chose its
    version, and its shadow if that version has one (running: the edge collects it)."""

    response: PredictResponse
    inference_ms: float
    route: Route
    shadow: Shadow | None = None


@dataclass(frozen=True)
class Failure:
    """A batch item that could not be predicted: its error, how long it took to fail, and the
    route to its version when one was chosen."""

    error: PredictionError
    duration_ms: int
    route: Route | None = None


@dataclass(frozen=True)
class Run:
    """A playground run's answer, the milliseconds its model took, its route and its shadow's outcome."""

    response: RunResponse
    inference_ms: float
    route: Route
    shadow: ShadowOutcome | None = None
