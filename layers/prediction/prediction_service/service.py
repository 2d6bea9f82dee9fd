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

from .ensembles import soft_vote, weighted_mean
from .errors import UNEXPECTED, BadInputError, ModelOutputError, PredictionError
from .inference import classify, forecast, input_matrix, outputs_agree
from .manifest import Manifest, ModelSpec
from .outcomes import Failure, Prediction
from .registry import ModelRegistry
from .routing import Route, ids_key, route
from .schemas import (
    BatchItem,
    MemberPrediction,
    ModelDetail,
    ModelInfo,
    ModelList,
    PredictRequest,
    PredictResponse,
    PredictStatus,
)
from .shadows import Shadow, ShadowPool, ShadowRun
from .text import embed
from .timing import elapsed_ms

logger = logging.getLogger(__name__)

EXAMPLE_IDS = 5  # ids GET /v1/models/{name} shows for a classifier


class PredictionService:
    def __init__(
        self,
        registry: ModelRegistry,
        *,
        batch_workers: int,
        shadows: ShadowPool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.registry = registry
        self.shadows = shadows
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="predict")

    def list_models(self) -> ModelList:
        manifest = self.registry.manifest()
        return ModelList(models=[self._info(manifest, manifest.get(name)) for name in manifest.names()])

    def describe(self, name: str, version: str | None = None) -> ModelDetail:
        """One model (a version of it, if named) with a sample of its data: the forecast window,
        or a few feature-table ids."""
        manifest = self.registry.manifest()
        spec = manifest.get(name, version)
        window = example_ids = None
        data = self._served_specs(manifest, spec)[0]
        if data.dataset is not None and data.lookback is not None:
            series = self.registry.table(data, data.dataset).column(data.dataset.column)
            window = series[-data.lookback :].tolist()
        if data.features is not None:
            ids = self.registry.table(data, data.features).column(data.features.id_column)[:EXAMPLE_IDS]
            example_ids = [int(i) for i in ids]
        return ModelDetail(**self._info(manifest, spec).model_dump(), window=window, example_ids=example_ids)

    def route(self, name: str, version: str | None = None, key: str | None = None) -> Route:
        """The version that answers a request for `name` (see routing.py). Raises ModelNotFoundError
        or VersionNotFoundError (404s)."""
        return route(self.registry.manifest(), name, version, key)

    def route_request(
        self, name: str, request: PredictRequest, key: str | None = None, version: str | None = None
    ) -> Route:
        """The version that answers `request`: the one it (or `version`, from the query string)
        names, else one chosen by `key` (X-Routing-Key) or, without a key, by the request's ids."""
        return self.route(name, version or request.version, key or ids_key(request.ids))

    def predict(
        self, name: str, request: PredictRequest, started: float, *, routing_key: str | None = None
    ) -> Prediction:
        """One prediction, timed from `started` (when the request arrived), routed by the request's
        version, else by `routing_key` or its ids. Raises a PredictionError naming the model."""
        try:
            chosen = self.route_request(name, request, routing_key)
        except PredictionError as exc:
            exc.for_model(name)
            raise
        return self.predict_route(chosen, request, started)

    def predict_route(self, chosen: Route, request: PredictRequest, started: float) -> Prediction:
        """The prediction of the version `chosen` names; its shadow, if it has one, starts once the
        answer is computed."""
        try:
            response, inference_ms = self._run(chosen.spec, request, chosen)
        except PredictionError as exc:
            exc.for_model(chosen.name)
            raise
        response.duration_ms = elapsed_ms(started)
        return Prediction(response, inference_ms, chosen, self._start_shadow(chosen, request, response))

    def predict_batch(self, items: Sequence[BatchItem], routing_key: str | None = None) -> list[Prediction | Failure]:
        """Items run in parallel, each caught alone.

        When every item's model is already in memory the items run one after another in
        this thread instead: each takes microseconds, less than handing it to a thread.
        """
        def one(item: BatchItem) -> Prediction | Failure:
            return self._predict_item(item, routing_key)

        if all(self.registry.all_files_in_memory(item.model_name) for item in items):
            return [one(item) for item in items]
        return list(self._pool.map(one, items))

    def _predict_item(self, item: BatchItem, routing_key: str | None) -> Prediction | Failure:
        started = self._clock()
        chosen: Route | None = None
        try:
            chosen = self.route_request(item.model_name, item, routing_key)
            return self.predict_route(chosen, item, started)  # the item is a validated PredictRequest
        except PredictionError as exc:
            return Failure(exc.for_model(item.model_name), elapsed_ms(started), chosen)
        except Exception:
            logger.exception("unexpected error predicting with model %s", item.model_name)
            return Failure(PredictionError(UNEXPECTED, model_name=item.model_name), elapsed_ms(started), chosen)

    def _info(self, manifest: Manifest, spec: ModelSpec) -> ModelInfo:
        versions = manifest.versions(spec.name)
        shadows = {v.shadow_of: v.version for v in versions if v.shadow_of is not None}
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
            versions=[v.version for v in versions],
            aliases=manifest.aliases.get(spec.name) or None,
            shadows=shadows or None,
            members=[m.model for m in spec.members] if spec.members else None,
            loaded=all(self.registry.session_in_memory(s) for s in self._served_specs(manifest, spec)),
        )

    def _run(self, spec: ModelSpec, request: PredictRequest, chosen: Route) -> tuple[PredictResponse, float]:
        """The response, and the milliseconds spent in inference itself. `chosen`: the route of the
        request (its key and manifest route an ensemble's members)."""
        if spec.kind == "onnx":
            raise BadInputError(
                f"model {spec.name!r} is a generic ONNX model: send it named tensors with "
                f"POST /v2/models/{spec.name}/infer (GET /v2/models/{spec.name} lists its inputs)"
            )
        if request.members and spec.kind != "ensemble":
            raise BadInputError(f"model {spec.name!r} is not an ensemble: it has no members to list")
        if spec.kind == "ensemble":
            return self._ensemble(spec, request, chosen)
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
            response = PredictResponse(**base, lookback=spec.lookback, prediction=values.tolist(), duration_ms=0)
            return response, inference_ms
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

    def _ensemble(self, spec: ModelSpec, request: PredictRequest, chosen: Route) -> tuple[PredictResponse, float]:
        """Every member's answer on the same request, combined (ensembles.py); each member follows
        its own version or routing, with the request's key."""
        assert spec.members is not None
        manifest = chosen.manifest or self.registry.manifest()
        members = [route(manifest, m.model, m.version, chosen.key).spec for m in spec.members]
        inner = request.model_copy(update={"version": None, "members": False, "probability": spec.classes is not None})
        answers = [self._run(member, inner, chosen) for member in members]
        weights = [m.weight for m in spec.members]
        inference_ms = sum(ms for _, ms in answers)
        base = {"status": PredictStatus.SUCCESS, "model_name": spec.name, "model_version": spec.version}
        listed = [MemberPrediction(model_name=a.model_name, model_version=a.model_version or "",
                                   prediction=a.prediction,
                                   probabilities=a.probabilities if request.probability else None)
                  for a, _ in answers] if request.members else None
        if spec.classes is None:
            values = weighted_mean([np.asarray(a.prediction) for a, _ in answers], weights)
            return PredictResponse(**base, lookback=spec.lookback, prediction=values.tolist(), members=listed,
                                   duration_ms=0), inference_ms
        labels, probabilities = soft_vote([np.asarray(a.probabilities) for a, _ in answers], weights)
        if request.probability:
            return PredictResponse(**base, prediction=labels.tolist(), probabilities=probabilities.tolist(),
                                   classes=list(spec.classes), members=listed, duration_ms=0), inference_ms
        return PredictResponse(**base, prediction=labels.tolist(), members=listed, duration_ms=0), inference_ms

    @staticmethod
    def _served_specs(manifest: Manifest, spec: ModelSpec) -> list[ModelSpec]:
        """The versions whose files serve `spec`: itself, or an ensemble's members."""
        return manifest.members_of(spec) if spec.kind == "ensemble" else [spec]

    def _start_shadow(self, chosen: Route, request: PredictRequest, live: PredictResponse) -> Shadow | None:
        """The shadow of the version that answered, started on the same request (None without one)."""
        shadow = (chosen.manifest or self.registry.manifest()).shadow_for(chosen.spec)
        if shadow is None:
            return None

        def run() -> ShadowRun:
            answer, _ = self._run(shadow, request, chosen)
            return ShadowRun(answer, agrees(shadow, live, answer))

        return self.shadows.start(shadow.version, run)

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


def agrees(spec: ModelSpec, live: PredictResponse, shadow: PredictResponse) -> bool:
    """Whether a shadow's answer agrees with the live one: the same labels for a classifier, every
    value within 1% for a forecast, every embedding at a cosine of 0.99 or more for a text model."""
    if spec.kind == "text-embedding":
        a, b = np.asarray(live.embeddings), np.asarray(shadow.embeddings)
        return bool(a.shape == b.shape and (np.sum(a * b, axis=1) >= 0.99).all())
    return outputs_agree(live.prediction, shadow.prediction)
