"""What the data plane takes and gives: plain data, shared by the data plane, its bookkeeping and
the codecs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from prediction_service.catalog.manifest import ModelSpec
    from prediction_service.catalog.routing import Route
    from prediction_service.dataplane.shadows import Shadow, ShadowOutcome
    from prediction_service.errors import PredictionError
    from prediction_service.runtime.base import Runtime
    from prediction_service.runtime.registry import ModelRegistry
    from prediction_service.storage.tables import Table


@dataclass(frozen=True)
class Served:
    """What a codec decodes against: the route that chose the version, its runtime, and the entry
    whose interface and data the inputs follow (the version's own, or an ensemble's members')."""

    route: Route
    runtime: Runtime
    interface: ModelSpec
    _registry: ModelRegistry = field(repr=False)

    @property
    def entry(self) -> ModelSpec:
        return self.route.spec

    def table(self, ref: Any) -> Table:
        """A data table of the interface entry (a forecast's dataset, a classifier's features)."""
        return self._registry.table(self.interface, ref)


@dataclass(frozen=True)
class Inputs:
    """What a codec decoded: the tensors, the outputs to compute, and the outputs a shadow is
    judged on (default: all of them)."""

    feeds: dict[str, np.ndarray]
    outputs: list[str]
    compare: Sequence[str] | None = None


@dataclass(frozen=True)
class InferRequest:
    """One prediction as the data plane takes it. `decode` is the codec; `tables`: the codec
    reads the model's own data tables (loaded beside the model on a cold start); `members`:
    an ensemble's members' own outputs too."""

    model: str
    decode: Callable[[Served], Inputs]
    version: str | None = None
    routing_key: str | None = None
    tables: bool = False
    members: bool = False
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Inference:
    """An answer: the arrays of the outputs asked for, each member's (with `members`), the time
    spent in the model itself, and the shadow in flight (the bookkeeping collects it)."""

    served: Served
    inputs: Inputs
    arrays: list[np.ndarray]
    inference_ms: float
    started: float
    member_arrays: list[list[np.ndarray]] = field(default_factory=list)
    shadow: Shadow | None = None

    @property
    def route(self) -> Route:
        return self.served.route


@dataclass(frozen=True)
class Failure:
    """A batch item that could not be predicted: its error, how long it took to fail, and the
    route to its version when one was chosen."""

    error: PredictionError
    duration_ms: int
    route: Route | None = None




@dataclass(frozen=True)
class Answer[T]:
    """A request's encoded answer (`value`), the inference it encodes, and its shadow's outcome."""

    value: T
    inference: Inference
    shadow: ShadowOutcome | None = None

    @property
    def route(self) -> Route:
        return self.inference.route
