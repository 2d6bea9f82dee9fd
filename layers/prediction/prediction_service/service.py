"""Predictions as the API serves them: one model, or many in parallel.

The service raises the errors of `errors.py`; the apps' exception handler answers them.
A batch catches each item's error, so one failing item never fails the others. Nothing
here logs a metric or names a request: that happens at the edge, on the request's thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import UNEXPECTED, BadInputError, ModelOutputError, PredictionError
from .inference import classify, forecast, input_matrix
from .manifest import ModelSpec
from .outcomes import Failure, Prediction
from .registry import ModelRegistry
from .schemas import BatchItem, ModelDetail, ModelInfo, ModelList, PredictRequest, PredictResponse, PredictStatus
from .text import embed
from .timing import elapsed_ms

logger = logging.getLogger(__name__)

EXAMPLE_IDS = 5  # ids GET /v1/models/{name} shows for a classifier


class PredictionService:
    def __init__(
        self, registry: ModelRegistry, *, batch_workers: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="predict")

    def list_models(self) -> ModelList:
        return ModelList(models=[self._info(spec) for spec in self.registry.manifest().models])

    def describe(self, name: str) -> ModelDetail:
        """One model with a sample of its data: the forecast window, or a few feature-table ids."""
        spec = self.registry.spec(name)
        window = example_ids = None
        if spec.dataset is not None and spec.lookback is not None:
            series = self.registry.table(spec, spec.dataset).column(spec.dataset.column)
            window = series[-spec.lookback :].tolist()
        if spec.features is not None:
            ids = self.registry.table(spec, spec.features).column(spec.features.id_column)[:EXAMPLE_IDS]
            example_ids = [int(i) for i in ids]
        return ModelDetail(**self._info(spec).model_dump(), window=window, example_ids=example_ids)

    def predict(self, name: str, request: PredictRequest, started: float) -> Prediction:
        """One prediction, timed from `started` (when the request arrived).

        Raises a PredictionError naming the model when it cannot be served."""
        try:
            spec = self.registry.spec(name)
            response, inference_ms = self._run(spec, request)
        except PredictionError as exc:
            exc.for_model(name)
            raise
        response.duration_ms = elapsed_ms(started)
        return Prediction(response, inference_ms)

    def predict_batch(self, items: Sequence[BatchItem]) -> list[Prediction | Failure]:
        """Items run in parallel, each caught alone.

        When every item's model is already in memory the items run one after another in
        this thread instead: each takes microseconds, less than handing it to a thread.
        """
        if all(self.registry.all_files_in_memory(item.model_name) for item in items):
            return [self._predict_item(item) for item in items]
        return list(self._pool.map(self._predict_item, items))

    def _predict_item(self, item: BatchItem) -> Prediction | Failure:
        started = self._clock()
        try:
            return self.predict(item.model_name, item, started)  # the item is a validated PredictRequest
        except PredictionError as exc:
            return Failure(exc, elapsed_ms(started))
        except Exception:
            logger.exception("unexpected error predicting with model %s", item.model_name)
            return Failure(PredictionError(UNEXPECTED, model_name=item.model_name), elapsed_ms(started))

    def _info(self, spec: ModelSpec) -> ModelInfo:
        return ModelInfo(
            name=spec.name,
            version=spec.version,
            kind=spec.kind,
            description=spec.description,
            lookback=spec.lookback,
            horizon=spec.horizon,
            inputs=spec.input_width,
            input_names=list(spec.inputs) if spec.inputs else None,
            classes=list(spec.classes) if spec.classes else None,
            group=spec.group,
            block=spec.block,
            max_tokens=spec.max_tokens if spec.kind == "text-embedding" else None,
            loaded=self.registry.session_in_memory(spec),
        )

    def _run(self, spec: ModelSpec, request: PredictRequest) -> tuple[PredictResponse, float]:
        """The response, and the milliseconds spent in inference itself."""
        if spec.kind == "onnx":
            raise BadInputError(
                f"model {spec.name!r} is a generic ONNX model: send it named tensors with "
                f"POST /v2/models/{spec.name}/infer (GET /v2/models/{spec.name} lists its inputs)"
            )
        if spec.kind == "text-embedding":
            return self._embed(spec, request)
        if request.texts is not None:
            raise BadInputError(f"model {spec.name!r} is a {spec.kind} model: texts are for text-embedding models")
        self._load(spec, tables=request.inputs is None)
        session = self.registry.model(spec).session
        base = {"status": PredictStatus.SUCCESS, "model_name": spec.name, "model_version": spec.version}
        if spec.kind == "forecast":
            assert spec.lookback is not None and spec.horizon is not None
            if request.ids is not None or request.probability:
                raise BadInputError("forecast models take `inputs` (one window) or nothing, not ids or probability")
            window = self._window(spec, request)
            started = time.perf_counter()
            values = forecast(session, window, spec.horizon)
            inference_ms = (time.perf_counter() - started) * 1000
            _require_finite(values, "forecast", from_caller=request.inputs is not None)
            return PredictResponse(**base, lookback=spec.lookback, prediction=values.tolist(), duration_ms=0), inference_ms
        rows = self._rows(spec, request)
        started = time.perf_counter()
        labels, probabilities = classify(session, rows, len(spec.classes or ()))
        inference_ms = (time.perf_counter() - started) * 1000
        _require_finite(probabilities, "class probabilities", from_caller=request.inputs is not None)
        if request.probability:
            response = PredictResponse(
                **base,
                prediction=labels.tolist(),
                probabilities=probabilities.tolist(),
                classes=list(spec.classes or ()),
                duration_ms=0,
            )
            return response, inference_ms
        return PredictResponse(**base, prediction=labels.tolist(), duration_ms=0), inference_ms

    def _embed(self, spec: ModelSpec, request: PredictRequest) -> tuple[PredictResponse, float]:
        if request.texts is None or request.inputs is not None or request.ids is not None or request.probability:
            raise BadInputError(f'model {spec.name!r} embeds texts: send {{"texts": ["...", ...]}}')
        self._load(spec, tables=False)
        result = embed(self.registry.model(spec), self.registry.tokenizer(spec), request.texts, spec.max_tokens)
        response = PredictResponse(
            status=PredictStatus.SUCCESS,
            model_name=spec.name,
            model_version=spec.version,
            embeddings=result.vectors.tolist(),
            token_counts=result.token_counts,
            truncated=result.truncated,
            duration_ms=0,
        )
        return response, result.inference_ms

    def _load(self, spec: ModelSpec, *, tables: bool) -> None:
        """A cold model's files all at once (the warm path only checks that they are in memory);
        `tables` when the request reads the model's own data."""
        if not self.registry.files_in_memory(spec, tables=tables):
            self.registry.load(spec, tables=tables)

    def _window(self, spec: ModelSpec, request: PredictRequest) -> np.ndarray:
        assert spec.lookback is not None and spec.dataset is not None
        if request.inputs is not None:
            if len(request.inputs) != 1:
                raise BadInputError(f"a forecast takes one window: inputs must be [[{spec.lookback} values]]")
            return input_matrix(request.inputs, spec.lookback)
        series = self.registry.table(spec, spec.dataset).column(spec.dataset.column)
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
        table = self.registry.table(spec, spec.features)
        return input_matrix(table.rows_for_ids(spec.features.id_column, request.ids, columns), len(columns))


def _require_finite(values: np.ndarray, what: str, *, from_caller: bool) -> None:
    """A non-finite output is the caller's doing when the caller chose the input (finite values
    so large that the model overflows float32), and the model's fault otherwise."""
    if np.isfinite(values).all():
        return
    if from_caller:
        raise BadInputError(
            f"the model's {what} for these inputs is not finite: the values are too large for it; "
            "send values of the magnitude it was trained on"
        )
    raise ModelOutputError(f"the model's {what} from its own data is not finite")
