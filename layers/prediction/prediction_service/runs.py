"""Playground runs (`POST /api/runs`): a block of a pipeline names a model; output and records.

The request and answer follow the ML playground document: `{"run": {"pipeline_uuid",
"block_uuid", "variables": {"user_ids", "probability"}, "record", ...}}` answers
`{"run": {"output": [<block output>]}}`. `record: true` writes a JSON record of the
run to the bucket under the records prefix, whether the run succeeded or not.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .errors import BadInputError, PredictionError, StoreError, describe_errors
from .schemas import PredictRequest, RunOutput, RunResponse, RunSpec
from .outcomes import Prediction, Run
from .service import PredictionService
from .timing import elapsed_ms

if TYPE_CHECKING:
    from .manifest import ModelSpec
    from .store import S3Store

logger = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RecordNotWrittenError(PredictionError):
    """The run was made but its record could not be kept: the caller must know (500)."""

    def __init__(self, cause: StoreError) -> None:
        super().__init__(f"the run finished but its record could not be written: {cause.message}", detail=cause.detail)


class RunRecorder:
    """Writes one JSON object per run: `<prefix>YYYY/MM/DD/<request id>.json`."""

    def __init__(self, store: S3Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def write(self, record: dict[str, Any], when: dt.datetime) -> str:
        """`when` is the record's own `time`, so its key's date and its time always agree."""
        key = f"{self._prefix}{when:%Y/%m/%d}/{record['request_id']}.json"
        try:
            self._store.put(key, json.dumps(record, separators=(",", ":")).encode())
        except StoreError as exc:
            raise RecordNotWrittenError(exc) from exc
        return key


class BlockRunner:
    def __init__(
        self, service: PredictionService, recorder: RunRecorder, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self._service = service
        self._recorder = recorder
        self._clock = clock

    def run(self, spec: RunSpec, request_id: str, started: float) -> Run:
        """The block's output. Raises a PredictionError when the run cannot be made, after
        recording it if asked to (a failed run is recorded too)."""
        model = self._service.registry.manifest().find_block(spec.pipeline_uuid, spec.block_uuid)
        if model is None:
            message = f"pipeline {spec.pipeline_uuid!r} has no block {spec.block_uuid!r}; GET /v1/models lists them"
            raise BadInputError(message)
        request = _predict_request(spec)
        try:
            if spec.run_upstream_blocks:
                model = self._refresh(model, spec.incomplete_only)
            prediction = self._service.predict(model.name, request, started)
        except PredictionError as exc:
            if spec.record:
                self._write(spec, model, request_id, started, error=exc)
            raise
        response = RunResponse(run=RunOutput(output=[_block_output(prediction, request)]))
        if spec.record:
            self._write(spec, model, request_id, started, output=response.run.output)
        return Run(response, prediction.inference_ms)

    def _refresh(self, model: ModelSpec, incomplete_only: bool) -> ModelSpec:
        if incomplete_only:
            self._service.registry.load(model)
            return model
        return self._service.registry.reload(model)

    def _write(
        self,
        spec: RunSpec,
        model: ModelSpec,
        request_id: str,
        started: float,
        *,
        output: list[Any] | None = None,
        error: PredictionError | None = None,
    ) -> str:
        now = self._clock()  # one reading for the record's time and its key
        record: dict[str, Any] = {
            "request_id": request_id,
            "time": now.isoformat(timespec="milliseconds"),
            "pipeline_uuid": spec.pipeline_uuid,
            "block_uuid": spec.block_uuid,
            "project": spec.project,
            "model_name": model.name,
            "model_version": model.version,
            "variables": spec.variables.model_dump(include={"user_ids", "inputs", "probability"}, exclude_none=True),
            "status": error.status if error else "Success",
            "duration_ms": elapsed_ms(started),
        }
        if spec.store_variables and output is not None:
            record["output"] = output
        if error is not None:
            record["error_message"] = error.message
        return self._recorder.write(record, now)


def _predict_request(spec: RunSpec) -> PredictRequest:
    variables = spec.variables
    try:
        return PredictRequest(ids=variables.user_ids, inputs=variables.inputs, probability=variables.probability)
    except ValidationError as exc:
        raise BadInputError(describe_errors(exc.errors()).replace("Value error, ", "variables: ")) from exc


def _block_output(prediction: Prediction, request: PredictRequest) -> Any:
    response = prediction.response
    if request.probability and response.probabilities is not None:
        return response.probabilities
    return response.prediction
