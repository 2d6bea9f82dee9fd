"""Predictions as the API serves them: one model, or many in parallel, each timed and never raising."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BadInputError, ModelNotFoundError, PredictionError
from .inference import classify, forecast, input_matrix
from .manifest import ModelSpec
from .observability import model_in_logs, record_prediction
from .registry import ModelRegistry
from .schemas import (
    BatchItem,
    BatchPredictResponse,
    ModelDetail,
    ModelInfo,
    ModelList,
    PredictRequest,
    PredictResponse,
    PredictStatus,
)

logger = logging.getLogger(__name__)

EXAMPLE_IDS = 5  # ids GET /v1/models/{name} shows for a classifier


@dataclass(frozen=True)
class Outcome:
    """A response, the HTTP status it is sent with, and the time inference took (if it ran)."""

    response: PredictResponse
    http_status: int
    inference_ms: float | None = None


def elapsed_ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))


def describe_errors(errors: Sequence[Any]) -> str:
    """A short, human message from pydantic errors: `where: what` for the first few."""
    parts = []
    for error in errors[:3]:
        if error.get("type") == "json_invalid":
            parts.append("the request body is not valid JSON")
            continue
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg', 'invalid')}")
    more = len(errors) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class PredictionService:
    def __init__(self, registry: ModelRegistry, *, batch_workers: int) -> None:
        self.registry = registry
        self._pool = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="predict")

    def list_models(self) -> ModelList:
        return ModelList(models=[self._info(spec) for spec in self.registry.manifest().models])

    def describe(self, name: str) -> ModelDetail:
        """One model with a sample of its data: the forecast window, or a few feature-table ids.

        Raises ModelNotFoundError for a name not in the manifest, PredictionError when the
        data cannot be loaded."""
        spec = self.registry.spec(name)
        window = example_ids = None
        if spec.dataset is not None and spec.lookback is not None:
            window = self.registry.table(spec.dataset).column(spec.dataset.column)[-spec.lookback :].tolist()
        if spec.features is not None:
            ids = self.registry.table(spec.features).column(spec.features.id_column)[:EXAMPLE_IDS]
            example_ids = [int(i) for i in ids]
        info = self._info(spec).model_dump()
        return ModelDetail(**info, window=window, example_ids=example_ids)

    def _info(self, spec: ModelSpec) -> ModelInfo:
        return ModelInfo(
            name=spec.name,
            version=spec.version,
            kind=spec.kind,
            lookback=spec.lookback,
            horizon=spec.horizon,
            inputs=spec.input_width,
            input_names=list(spec.inputs) if spec.inputs else None,
            classes=list(spec.classes) if spec.classes else None,
            group=spec.group,
            block=spec.block,
            loaded=self.registry.is_loaded(spec),
        )

    def predict(
        self, name: str, request: PredictRequest, started: float | None = None, *, single_model: bool = True
    ) -> Outcome:
        """Run one prediction; every failure becomes a response with its status. Counted in the metrics."""
        started = time.perf_counter() if started is None else started
        if single_model:
            with model_in_logs(name):
                outcome = self._predict(name, request, started)
        else:
            outcome = self._predict(name, request, started)
        record_prediction(name, outcome.response.status.value, outcome.inference_ms, single_model)
        return outcome

    def _predict(self, name: str, request: PredictRequest, started: float) -> Outcome:
        spec: ModelSpec | None = None
        try:
            spec = self.registry.spec(name)
            response, inference_ms = self._run(spec, request)
            response.duration_ms = elapsed_ms(started)
            return Outcome(response, 200, inference_ms)
        except ModelNotFoundError as exc:
            return self._failure(name, spec, PredictStatus.BAD_REQUEST, exc.message, started, 404)
        except BadInputError as exc:
            return self._failure(name, spec, PredictStatus.BAD_REQUEST, exc.message, started, 400)
        except PredictionError as exc:
            logger.error("prediction failed for model %s: %s (cause: %r)", name, exc.message, exc.__cause__)
            return self._failure(name, spec, PredictStatus.INTERNAL_ERROR, exc.message, started, 500)
        except Exception:
            logger.exception("unexpected error predicting with model %s", name)
            message = "the server could not predict; the error is logged"
            return self._failure(name, spec, PredictStatus.INTERNAL_ERROR, message, started, 500)

    def predict_batch(self, items: Sequence[BatchItem]) -> BatchPredictResponse:
        """Items run in parallel; each has its own status, so one failure never fails the others.

        When every item's model is already in memory the items run one after another in
        this thread instead: each takes microseconds, less than handing it to a thread.
        """
        started = time.perf_counter()
        if all(self.registry.is_ready(item.model_name) for item in items):
            results = [self._predict_item(item) for item in items]
        else:
            results = list(self._pool.map(self._predict_item, items))
        return BatchPredictResponse(duration_ms=elapsed_ms(started), predictions=results)

    def _predict_item(self, item: BatchItem) -> PredictResponse:
        request = PredictRequest(inputs=item.inputs, ids=item.ids, probability=item.probability)
        return self.predict(item.model_name, request, single_model=False).response

    def _run(self, spec: ModelSpec, request: PredictRequest) -> tuple[PredictResponse, float]:
        """The response, and the milliseconds spent in inference itself."""
        session = self.registry.session(spec)
        base = {"status": PredictStatus.SUCCESS, "model_name": spec.name, "model_version": spec.version}
        if spec.kind == "forecast":
            assert spec.lookback is not None and spec.horizon is not None
            if request.ids is not None or request.probability:
                raise BadInputError("forecast models take `inputs` (one window) or nothing, not ids or probability")
            window = self._window(spec, request)
            started = time.perf_counter()
            values = forecast(session, window, spec.horizon)
            inference_ms = (time.perf_counter() - started) * 1000
            return PredictResponse(**base, lookback=spec.lookback, prediction=values, duration_ms=0), inference_ms
        rows = self._rows(spec, request)
        started = time.perf_counter()
        labels, probabilities = classify(session, rows, len(spec.classes or ()))
        inference_ms = (time.perf_counter() - started) * 1000
        if request.probability:
            response = PredictResponse(
                **base, prediction=labels, probabilities=probabilities, classes=list(spec.classes or ()), duration_ms=0
            )
            return response, inference_ms
        return PredictResponse(**base, prediction=labels, duration_ms=0), inference_ms

    def _window(self, spec: ModelSpec, request: PredictRequest) -> np.ndarray:
        assert spec.lookback is not None and spec.dataset is not None
        if request.inputs is not None:
            if len(request.inputs) != 1:
                raise BadInputError(f"a forecast takes one window: inputs must be [[{spec.lookback} values]]")
            return input_matrix(request.inputs, spec.lookback)
        series = self.registry.table(spec.dataset).column(spec.dataset.column)
        if len(series) < spec.lookback:
            raise BadInputError(f"the model's dataset has {len(series)} points, fewer than lookback {spec.lookback}")
        return input_matrix(series[-spec.lookback :][None, :], spec.lookback)

    def _rows(self, spec: ModelSpec, request: PredictRequest) -> np.ndarray:
        columns = spec.inputs or ()
        if request.inputs is not None:
            return input_matrix(request.inputs, len(columns))
        if request.ids is None:
            raise BadInputError("a classifier needs `inputs` (rows of features) or `ids`; use POST")
        if spec.features is None:
            raise BadInputError(f"model {spec.name!r} has no feature table to look ids up in; send inputs")
        table = self.registry.table(spec.features)
        return input_matrix(table.rows_for_ids(spec.features.id_column, request.ids, columns), len(columns))

    @staticmethod
    def _failure(
        name: str, spec: ModelSpec | None, status: PredictStatus, message: str, started: float, http_status: int
    ) -> Outcome:
        response = PredictResponse(
            status=status,
            model_name=name,
            model_version=spec.version if spec else None,
            lookback=spec.lookback if spec else None,
            error_message=message,
            duration_ms=elapsed_ms(started),
        )
        return Outcome(response, http_status)
