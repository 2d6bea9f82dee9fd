"""What every request records about itself, written once for every entry point: its log lines
(the model, then the version chosen), its metrics (counted on the request's thread:
Powertools' `add_metric` loses points across threads), its shadow's outcome, and the
caller's record of it (a playground run's `record: true`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from prediction_service.dataplane.shadows import ShadowOutcome, ShadowPool
from prediction_service.dataplane.types import Failure, Inference
from prediction_service.errors import PredictionError
from prediction_service.observability import (
    count_prediction,
    log_error,
    logger,
    metrics,
    note_route,
    observe_prediction,
    route_keys,
)

if TYPE_CHECKING:
    from prediction_service.catalog.routing import Route


@dataclass(frozen=True)
class Record:
    """How one request ended, for its caller's record: its route (when one was chosen), its
    answer, its shadow's outcome, or its error."""

    route: Route | None
    inference: Inference | None = None
    shadow: ShadowOutcome | None = None
    error: PredictionError | None = None


class Recorder(Protocol):
    def __call__(self, record: Record) -> None: ...


class Ledger:
    """One single request's bookkeeping in progress."""

    def __init__(self) -> None:
        self.route: Route | None = None
        self.recorded = False

    def routed(self, route: Route) -> None:
        """The version chosen: on the request's log lines from now on."""
        self.route = route
        note_route(route)


class Bookkeeping:
    def __init__(self, shadows: ShadowPool) -> None:
        self.shadows = shadows

    @contextmanager
    def single(self, model: str, record: Recorder | None = None) -> Iterator[Ledger]:
        """Around a single-model request: its log lines and metrics name the model; a failure is
        counted, recorded (with `record`) and goes on to the app's handler, which logs it."""
        ledger = Ledger()
        with observe_prediction(model):
            try:
                yield ledger
            except PredictionError as exc:
                if record is not None and not ledger.recorded:
                    ledger.recorded = True
                    record(Record(ledger.route, error=exc))
                raise

    def finish(self, result: Inference, ledger: Ledger, record: Recorder | None = None) -> ShadowOutcome | None:
        """A single request's answer is encoded: its shadow collected, the caller's record written,
        the prediction counted."""
        (shadow,) = self.collect([result])
        if record is not None:
            ledger.recorded = True
            record(Record(result.route, result, shadow))
        self.count([result], [shadow])
        return shadow

    def collect(self, results: Sequence[Inference | Failure]) -> list[ShadowOutcome | None]:
        """The shadows' outcomes, waited for together at most SHADOW_TIMEOUT_MS from now."""
        deadline = self.shadows.deadline()
        return [result.shadow.outcome(deadline, result.arrays)
                if isinstance(result, Inference) and result.shadow is not None else None for result in results]

    def count(self, results: Sequence[Inference | Failure], shadows: Sequence[ShadowOutcome | None]) -> None:
        """Each result counted, a failure logged with its version, a shadow's outcome counted."""
        for result, shadow in zip(results, shadows, strict=True):
            if isinstance(result, Inference):
                count_prediction(succeeded=True, inference_ms=result.inference_ms)
                record_shadow(result.route, shadow)
            else:
                count_prediction(succeeded=False)
                log_error(result.error, result.route)


def record_shadow(route: Route, shadow: ShadowOutcome | None) -> None:
    """A shadow's outcome beside the prediction `route` answered: counted (on the request's thread),
    and logged when it failed or ran out of time. The prediction itself logs no line: API Gateway's
    access log has every request, and the warm path stays free of log formatting."""
    if shadow is None:
        return
    metrics.add_metric(name="ShadowRuns", unit=MetricUnit.Count, value=1)
    if shadow.error_message is not None:
        metrics.add_metric(name="ShadowFailures", unit=MetricUnit.Count, value=1)
        logger.warning("shadow failed: %s", shadow.error_message, extra={
            **route_keys(route), "shadow_version": shadow.model_version, "shadow_status": shadow.status,
            "shadow_duration_ms": shadow.duration_ms})
    elif not shadow.agrees:
        metrics.add_metric(name="ShadowDisagreements", unit=MetricUnit.Count, value=1)
