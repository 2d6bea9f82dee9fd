"""Logs, metrics and traces with Powertools for AWS Lambda.

- Logs: JSON lines with the service, the Lambda request id and cold-start flag, and the
  model of a single-model request; module loggers (`logging.getLogger(__name__)`) share
  the format. Never tokens or input rows.
- Metrics: CloudWatch EMF, flushed once per invocation: Predictions,
  PredictionErrors, CacheHits, CacheMisses, ModelLoadTime and InferenceTime (zeros left out);
  single-model invocations carry a `model` dimension. Outside Lambda (`make run`)
  POWERTOOLS_METRICS_DISABLED keeps them off stdout.
- Traces: X-Ray through Powertools Tracer, on when the template's `EnableTracing` is
  (POWERTOOLS_TRACE_DISABLED=false).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from .cache import CacheStats

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "prediction-api")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PredictionApi"), service=SERVICE)
# The X-Ray SDK is imported only when tracing is on: it would cost the cold start otherwise.
TRACING = os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false"
tracer = Tracer(service=SERVICE) if TRACING else None

Handler = Callable[[dict[str, Any], Any], Any]


def share_log_format() -> None:
    """Give the library's module loggers the same JSON format and level as `logger`."""
    copy_config_to_registered_loggers(source_logger=logger, include={"prediction_service"})


def instrument(handler: Handler, cache_stats: Callable[[], CacheStats | None] | None = None) -> Handler:
    """A Lambda handler with request ids in its logs, metrics flushed after each call, and traces.

    `cache_stats` gives the artifact cache's counters; their change over the call is
    published as CacheHits, CacheMisses and ModelLoadTime.
    """
    share_log_format()
    if cache_stats is None:
        cache_stats = _no_cache

    def counted(event: dict[str, Any], context: Any) -> Any:
        before = _snapshot(cache_stats())
        try:
            return handler(event, context)
        finally:
            after = _snapshot(cache_stats())
            record_cache(*(a - b for a, b in zip(after, before, strict=True)))

    wrapped = logger.inject_lambda_context(counted, clear_state=True)
    wrapped = metrics.log_metrics(wrapped, capture_cold_start_metric=True)
    if tracer is None or tracer.disabled:  # no wrapper at all on the warm path when tracing is off
        return wrapped
    return tracer.capture_lambda_handler(wrapped, capture_response=False)


def _no_cache() -> CacheStats | None:
    return None


def _snapshot(stats: CacheStats | None) -> tuple[int, int, float]:
    if stats is None:
        return (0, 0, 0.0)
    return (stats.hits, stats.s3_loads + stats.disk_loads, sum(stats.load_seconds.values()) * 1000)


@contextmanager
def model_in_logs(model: str) -> Iterator[None]:
    """Name the model in the log lines written inside the block."""
    logger.append_keys(model=model)
    try:
        yield
    finally:
        logger.remove_keys(["model"])


def record_prediction(model: str, status: str, inference_ms: float | None, single_model: bool) -> None:
    """Count one prediction (and its error) and its inference time; called once per prediction."""
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    if status != "Success":
        metrics.add_metric(name="PredictionErrors", unit=MetricUnit.Count, value=1)
    if inference_ms is not None:
        metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=inference_ms)
    if single_model and "model" not in metrics.dimension_set:  # once per invocation (flushing clears it)
        metrics.add_dimension(name="model", value=model)


def record_cache(hits: float, misses: float, load_ms: float) -> None:
    """Each metric costs microseconds to add, so zeros are left out (CloudWatch's Sum reads them as 0)."""
    if hits:
        metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=hits)
    if misses:
        metrics.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=misses)
        metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=load_ms)


logging.getLogger("botocore").setLevel(logging.WARNING)
# Requests without a prediction (listing models, refused bodies) publish no metric; that is fine.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
