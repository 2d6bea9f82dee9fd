"""Logs, metrics and traces with Powertools for AWS Lambda.

- Logs: JSON lines with the service, the Lambda request id and cold-start flag, and the
  model of a single-model request; module loggers (`logging.getLogger(__name__)`) share
  the format. Never tokens or input rows.
- Metrics: CloudWatch EMF, flushed once per invocation: Predictions, PredictionErrors,
  InferenceTime, CacheHits, CacheMisses, ModelLoadTime, CacheStaleServed, CacheEvictions,
  and the shadows' metrics (dataplane/bookkeeping.py; zeros left out); single-model
  invocations carry a `model` dimension. Always added on the request's thread. Outside
  Lambda (`make run`) POWERTOOLS_METRICS_DISABLED keeps them off stdout.
- Once a prediction's version is chosen, every log line of it carries the model, the version
  (`model_version`), the alias that chose it and the routing key's hash (never the key).
- Traces: X-Ray through Powertools Tracer, on when the template's `EnableTracing` is
  (POWERTOOLS_TRACE_DISABLED=false).
"""

from __future__ import annotations

import gc
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
    from prediction_service.catalog.routing import Route
    from prediction_service.errors import PredictionError
    from prediction_service.storage.cache import CacheStats

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

    frozen = "AWS_LAMBDA_FUNCTION_NAME" not in os.environ  # freeze in Lambda only (not in a test process)

    def counted(event: dict[str, Any], context: Any) -> Any:
        nonlocal frozen
        before = _snapshot(cache_stats())
        try:
            return handler(event, context)
        finally:
            after = _snapshot(cache_stats())
            record_cache(*(a - b for a, b in zip(after, before, strict=True)))
            if not frozen:  # after the first call, what init and the first request built stays for good:
                frozen = True  # out of the collector's sight, so later collections scan only what requests make
                gc.freeze()

    wrapped = logger.inject_lambda_context(counted, clear_state=True)
    wrapped = metrics.log_metrics(wrapped, capture_cold_start_metric=True)
    if tracer is None or tracer.disabled:  # no wrapper at all on the warm path when tracing is off
        return wrapped
    return tracer.capture_lambda_handler(wrapped, capture_response=False)


def _no_cache() -> CacheStats | None:
    return None


def _snapshot(stats: CacheStats | None) -> tuple[float, ...]:
    if stats is None:
        return (0, 0, 0.0, 0, 0)
    load_ms = sum(stats.load_seconds.values()) * 1000
    return (stats.hits, stats.s3_loads + stats.disk_loads, load_ms, stats.stale_served, stats.evictions)


@contextmanager
def observe_prediction(model: str) -> Iterator[None]:
    """Around a single-model prediction, on the request's thread: the model names the log
    lines written inside and is the metrics' `model` dimension; the prediction is counted,
    and so is its failure (the exception goes on to the app's handler)."""
    if "model" not in metrics.dimension_set:  # once per invocation (flushing clears it)
        metrics.add_dimension(name="model", value=model)
    logger.append_keys(model=model)  # (a context manager of Powertools' costs a generator more)
    try:
        yield
    except Exception:
        count_prediction(succeeded=False)
        raise  # the version stays on the log lines until the app's handler has logged the failure
    else:
        forget_route()
    finally:
        logger.remove_keys(["model"])


def count_prediction(*, succeeded: bool, inference_ms: float | None = None) -> None:
    """Count one prediction (and its failure) and its inference time. Call it on the request's
    thread: `Metrics.add_metric` is a read-modify-write that loses points across threads."""
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    if not succeeded:
        metrics.add_metric(name="PredictionErrors", unit=MetricUnit.Count, value=1)
    if inference_ms is not None:
        metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=inference_ms)


def route_keys(route: Route) -> dict[str, str | None]:
    """What a log line says of how its prediction's version was chosen (None values are left out)."""
    return {"model": route.name, "model_version": route.version, "alias": route.alias,
            "routing_key_hash": route.key_hash}


ROUTE_KEYS = ("model_version", "alias", "routing_key_hash")


def note_route(route: Route) -> None:
    """The chosen version on the prediction's log lines from here on, until `forget_route`: the
    end of the prediction, or once its failure is logged (Powertools also clears the keys at
    the next invocation)."""
    logger.append_keys(**{key: value for key, value in route_keys(route).items() if key in ROUTE_KEYS})


def forget_route() -> None:
    logger.remove_keys(list(ROUTE_KEYS))


def log_error(error: PredictionError, route: Route | None = None) -> None:
    """Log a refused or failed request: server failures at ERROR with their detail (which
    never reaches the caller), the caller's mistakes at INFO; with the version chosen for it,
    when one was (a batch item's)."""
    keys: dict[str, str | None] = route_keys(route) if route else {}
    if error.model_name:
        keys["model"] = error.model_name
    with logger.append_context_keys(**keys):
        if error.http_status >= 500:
            cause = error.__cause__
            logger.error(
                "request failed%s: %s (%s)",
                f" for model {error.model_name}" if error.model_name else "",
                error.detail,
                f"cause: {type(cause).__name__}" if cause else type(error).__name__,
            )
        else:
            logger.info("request refused (%s): %s", error.http_status, error.message)


_CACHE_METRICS = ("CacheHits", "CacheMisses", "ModelLoadTime", "CacheStaleServed", "CacheEvictions")
_CACHE_UNITS = (MetricUnit.Count, MetricUnit.Count, MetricUnit.Milliseconds, MetricUnit.Count, MetricUnit.Count)


def record_cache(*deltas: float) -> None:
    """The cache's counters over one invocation. Each metric costs microseconds to add, so
    zeros are left out (CloudWatch's Sum reads them as 0)."""
    for name, unit, value in zip(_CACHE_METRICS, _CACHE_UNITS, deltas, strict=True):
        if value:
            metrics.add_metric(name=name, unit=unit, value=value)


logging.getLogger("botocore").setLevel(logging.WARNING)
# Requests without a prediction (listing models, refused bodies) publish no metric; that is fine.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
