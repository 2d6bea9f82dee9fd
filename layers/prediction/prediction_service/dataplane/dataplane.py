"""The data plane: one `infer` for every protocol and entry point.

A request names a model (and a version or alias, and a routing key) and carries a `decode`:
the protocol's codec, which turns the request's body into tensors once it knows the model
that answers. `infer` routes (catalog/routing.py), gets the version's runtime
(runtime/registry.py), decodes, starts the version's shadow beside the live run, runs, and
returns the arrays with the route, the timings and the shadow in flight. It raises the
errors of errors.py, naming the model; a batch (`serve_many`) catches each item's error.

`serve` is `infer` with the bookkeeping of a single request around it (bookkeeping.py):
the protocol's `encode` writes the answer, then the shadow is collected and the request
counted and recorded. Entry points decode, serve and encode; nothing below them knows a
protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from prediction_service.dataplane.bookkeeping import Bookkeeping, Recorder
from prediction_service.dataplane.shadows import Shadow, ShadowPool
from prediction_service.dataplane.types import Answer, Failure, Inference, InferRequest, Inputs, Served
from prediction_service.errors import UNEXPECTED, BadInputError, PredictionError
from prediction_service.timing import elapsed_ms

if TYPE_CHECKING:
    from prediction_service.catalog.routing import Route
    from prediction_service.runtime.registry import ModelRegistry

logger = logging.getLogger(__name__)
T = TypeVar("T")


class DataPlane:
    def __init__(self, registry: ModelRegistry, *, shadows: ShadowPool, bookkeeping: Bookkeeping,
                 batch_workers: int) -> None:
        self.registry = registry
        self.shadows = shadows
        self.bookkeeping = bookkeeping
        self._pool = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="predict")

    def infer(self, request: InferRequest, on_route: Callable[[Route], None] | None = None) -> Inference:
        """One prediction. Raises a PredictionError naming the model; `on_route` hears of the
        version as soon as it is chosen (the log lines of a single request carry it)."""
        chosen: Route | None = None
        try:
            chosen = self.registry.route(request.model, request.version, request.routing_key)
            if on_route is not None:
                on_route(chosen)
            return self._infer(request, chosen)
        except PredictionError as exc:
            exc.for_model(chosen.name if chosen else request.model)
            raise

    def serve(self, request: InferRequest, encode: Callable[[Inference], T],
              record: Recorder | None = None) -> Answer[T]:
        """`infer` and `encode` with the bookkeeping of a single request: its log lines name the
        model and version, it is counted (its failure too), its shadow collected once the answer
        is encoded, and `record` (if given) hears how it ended, failed or not."""
        with self.bookkeeping.single(request.model, record) as ledger:
            result = self.infer(request, on_route=ledger.routed)
            value = encode(result)
            shadow = self.bookkeeping.finish(result, ledger, record)
        return Answer(value, result, shadow)

    def serve_many(self, calls: Sequence[tuple[InferRequest, Callable[[Inference], T]]]) -> list[Answer[T] | Failure]:
        """A batch: a map over `infer` and `encode`, each item alone (one's failure is its own
        `Failure`), then every shadow collected and every item counted. Items run in parallel
        unless every model is already in memory: each then takes microseconds, less than a
        thread hop."""
        def one(call: tuple[InferRequest, Callable[[Inference], T]]) -> tuple[T, Inference] | Failure:
            return self._caught(*call)

        if all(self.registry.all_files_in_memory(request.model) for request, _ in calls):
            done = [one(call) for call in calls]
        else:
            done = list(self._pool.map(one, calls))
        settled = [d if isinstance(d, Failure) else d[1] for d in done]
        shadows = self.bookkeeping.collect(settled)
        self.bookkeeping.count(settled, shadows)
        return [d if isinstance(d, Failure) else Answer(d[0], d[1], s) for d, s in zip(done, shadows, strict=True)]

    def _caught(self, request: InferRequest, encode: Callable[[Inference], T]) -> tuple[T, Inference] | Failure:
        chosen: list[Route] = []
        try:
            result = self.infer(request, on_route=chosen.append)
            return encode(result), result
        except PredictionError as exc:
            return Failure(exc.for_model(request.model), elapsed_ms(request.started), chosen[0] if chosen else None)
        except Exception:
            logger.exception("unexpected error predicting with model %s", request.model)
            return Failure(PredictionError(UNEXPECTED, model_name=request.model), elapsed_ms(request.started),
                           chosen[0] if chosen else None)

    def _infer(self, request: InferRequest, chosen: Route) -> Inference:
        runtime = self.registry.runtime(chosen, tables=request.tables)
        if request.members and not runtime.members:
            raise BadInputError(f"model {chosen.name!r} is not an ensemble: it has no members to list")
        entry = chosen.spec
        served = Served(chosen, runtime, entry.interface_entry(), self.registry)
        inputs = request.decode(served)
        shadow = self._start_shadow(served, inputs)
        started = time.perf_counter()
        if request.members:
            arrays, member_arrays = runtime.run_with_members(inputs.outputs, inputs.feeds)
        else:
            arrays, member_arrays = runtime.run(inputs.outputs, inputs.feeds), []
        inference_ms = (time.perf_counter() - started) * 1000
        return Inference(served, inputs, arrays, inference_ms, request.started, member_arrays, shadow)

    def _start_shadow(self, served: Served, inputs: Inputs) -> Shadow | None:
        """The shadow of the version that answers, started on the same tensors now, so that it runs
        beside the live prediction (None without one)."""
        chosen = served.route
        manifest = chosen.manifest or self.registry.manifest()
        shadow = manifest.shadow_for(chosen.spec)
        if shadow is None:
            return None
        shadow_route = chosen.to(shadow)
        compare = [inputs.outputs.index(name) for name in (inputs.compare or inputs.outputs)]

        def run() -> list[np.ndarray]:
            return self.registry.runtime(shadow_route).run(inputs.outputs, inputs.feeds)

        def agrees(live: list[np.ndarray], other: list[np.ndarray]) -> bool:
            return all(served.runtime.agrees(inputs.outputs[i], np.asarray(live[i]), np.asarray(other[i]))
                       for i in compare)

        return self.shadows.start(shadow.version, run, agrees)
