"""The /v1 API over the data plane: list and describe models, predict one, predict a batch.

The service raises the errors of `errors.py`; the apps' exception handler answers them. A
batch answers each item alone, so one failing item never fails the others.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from prediction_service.catalog.manifest import (
    ClassifierEntry,
    EnsembleEntry,
    ForecastEntry,
    Manifest,
    ModelSpec,
    TextEntry,
)
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.types import Answer, Failure
from prediction_service.errors import error_body
from prediction_service.protocols.v1 import codec
from prediction_service.protocols.v1.schemas import (
    BatchItem,
    ModelDetail,
    ModelInfo,
    ModelList,
    PredictRequest,
    PredictResponse,
)

EXAMPLE_IDS = 5  # ids GET /v1/models/{name} shows for a classifier


Prediction = Answer[PredictResponse]  # an answer, its inference and its shadow's outcome


class PredictionService:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
        self.registry = dataplane.registry

    def list_models(self) -> ModelList:
        manifest = self.registry.manifest()
        return ModelList(models=[self._info(manifest, manifest.get(name)) for name in manifest.names()])

    def describe(self, name: str, version: str | None = None) -> ModelDetail:
        """One model (a version of it, if named) with a sample of its data: the forecast window,
        or a few feature-table ids."""
        manifest = self.registry.manifest()
        entry = manifest.get(name, version)
        data = entry.interface_entry()
        window = example_ids = None
        if isinstance(data, ForecastEntry):
            series = self.registry.table(data, data.dataset).column(data.dataset.column)
            window = series[-data.lookback :].tolist()
        if isinstance(data, ClassifierEntry) and data.features is not None:
            ids = self.registry.table(data, data.features).column(data.features.id_column)[:EXAMPLE_IDS]
            example_ids = [int(i) for i in ids]
        return ModelDetail(**self._info(manifest, entry).model_dump(), window=window, example_ids=example_ids)

    def predict(self, name: str, body: PredictRequest, started: float, *, routing_key: str | None = None,
                version: str | None = None) -> Prediction:
        """One prediction with its bookkeeping, timed from `started` (when the request arrived)."""
        request = codec.infer_request(name, body, started=started, version=version, routing_key=routing_key)
        return self.dataplane.serve(request, lambda result: codec.encode(body, result))

    def predict_batch(self, items: Sequence[BatchItem], routing_key: str | None = None) -> list[Prediction | Failure]:
        """Each item alone (in parallel when models must load), counted and its shadow collected."""
        calls = [(codec.infer_request(item.model_name, item, started=time.perf_counter(), routing_key=routing_key),
                  functools.partial(codec.encode, item)) for item in items]
        return self.dataplane.serve_many(calls)

    @staticmethod
    def item_response(result: Prediction | Failure, request_id: str) -> PredictResponse:
        """One batch item's answer: its prediction, or its error in the one error body."""
        if isinstance(result, Answer):
            return result.value
        return PredictResponse(**error_body(result.error, request_id), duration_ms=result.duration_ms)

    def _info(self, manifest: Manifest, entry: ModelSpec) -> ModelInfo:
        versions = manifest.versions(entry.name)
        shadows = {v.shadow_of: v.version for v in versions if v.shadow_of is not None}
        return ModelInfo(
            name=entry.name,
            version=entry.version,
            kind=entry.kind,
            description=entry.description,
            group=entry.group,
            block=entry.block,
            versions=[v.version for v in versions],
            aliases=manifest.aliases.get(entry.name) or None,
            shadows=shadows or None,
            members=[m.model for m in entry.members] if isinstance(entry, EnsembleEntry) else None,
            loaded=self.registry.session_in_memory(entry),
            **_interface_fields(entry.interface_entry()),
        )


def _interface_fields(entry: ModelSpec) -> dict[str, Any]:
    """What GET /v1/models says of a model's inputs and outputs."""
    if isinstance(entry, ForecastEntry):
        return {"lookback": entry.lookback, "horizon": entry.horizon, "inputs": entry.lookback}
    if isinstance(entry, ClassifierEntry):
        return {"inputs": len(entry.inputs), "input_names": list(entry.inputs), "classes": list(entry.classes)}
    if isinstance(entry, TextEntry):
        return {"max_tokens": entry.max_tokens}
    return {}
