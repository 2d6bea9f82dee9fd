"""What the service hands back to the routes: answers with the time spent in the model, and
the failures of batch items. Plain data (no numpy), so the routes import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PredictionError
from .schemas import PredictResponse, RunResponse


@dataclass(frozen=True)
class Prediction:
    """A successful answer, and the milliseconds spent in the model itself."""

    response: PredictResponse
    inference_ms: float


@dataclass(frozen=True)
class Failure:
    """A batch item that could not be predicted: its error, and how long it took to fail."""

    error: PredictionError
    duration_ms: int


@dataclass(frozen=True)
class Run:
    """A playground run's answer, and the milliseconds its model took."""

    response: RunResponse
    inference_ms: float
