"""Playground runs (`POST /api/runs`): a block of a pipeline names a model; output and records.

The request and answer follow the ML playground document: `{"run": {"pipeline_uuid",
"block_uuid", "variables": {"user_ids", "probability"}, "record", ...}}` answers
`{"run": {"output": [<block output>]}}`. `record: true` writes a JSON record of the
run to the bucket under the records prefix.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from .errors import PredictionError
from .manifest import ModelSpec
from .schemas import MAX_ROWS, PredictRequest, PredictResponse, Row
from .service import PredictionService, describe_errors, elapsed_ms
from .store import S3Store

logger = logging.getLogger(__name__)


class RunVariables(BaseModel):
    """Block variables; unknown keys are accepted (the playground passes any kwargs) and ignored."""

    model_config = ConfigDict(extra="allow")

    user_ids: list[StrictInt] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    inputs: list[Row] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    probability: StrictBool = False


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_uuid: str = Field(min_length=1, max_length=256)
    block_uuid: str = Field(min_length=1, max_length=256)
    project: str | None = Field(default=None, max_length=256)
    variables: RunVariables = Field(default_factory=RunVariables)
    record: StrictBool = True
    store_variables: StrictBool = True
    run_upstream_blocks: StrictBool = False
    incomplete_only: StrictBool = False


# The playground document's request: the OpenAPI document shows it as the example.
DOCUMENT_EXAMPLE = {
    "run": {
        "pipeline_uuid": "ml_inference_online",
        "block_uuid": "ml/inference/online/predictions",
        "project": "machine_learning",
        "variables": {"probability": True, "user_ids": [1, 5, 100]},
        "record": True,
        "store_variables": True,
        "run_upstream_blocks": False,
        "incomplete_only": False,
    }
}


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [DOCUMENT_EXAMPLE]})

    run: RunSpec


class RunOutput(BaseModel):
    output: list[Any]


class RunResponse(BaseModel):
    run: RunOutput


@dataclass(frozen=True)
class RunResult:
    body: dict[str, Any]
    http_status: int
    record_key: str | None = None


def _error(status: str, message: str, started: float, http_status: int) -> RunResult:
    return RunResult({"status": status, "error_message": message, "duration_ms": elapsed_ms(started)}, http_status)


class RunRecorder:
    """Writes one JSON object per run: `<prefix>YYYY/MM/DD/<request id>.json`."""

    def __init__(self, store: S3Store, prefix: str) -> None:
        self._store = store
        self._prefix = prefix

    def write(self, record: dict[str, Any], when: dt.datetime) -> str:
        key = f"{self._prefix}{when:%Y/%m/%d}/{record['request_id']}.json"
        self._store.put(key, json.dumps(record, separators=(",", ":")).encode())
        return key


class BlockRunner:
    def __init__(self, service: PredictionService, recorder: RunRecorder) -> None:
        self._service = service
        self._recorder = recorder

    def run(self, spec: RunSpec, request_id: str, started: float | None = None) -> RunResult:
        started = time.perf_counter() if started is None else started
        model = self._service.registry.manifest().find_block(spec.pipeline_uuid, spec.block_uuid)
        if model is None:
            message = f"pipeline {spec.pipeline_uuid!r} has no block {spec.block_uuid!r}; GET /v1/models lists them"
            return _error("BadRequest", message, started, 400)
        try:
            request = PredictRequest(
                ids=spec.variables.user_ids, inputs=spec.variables.inputs, probability=spec.variables.probability
            )
        except ValidationError as exc:
            message = describe_errors(exc.errors()).replace("Value error, ", "variables: ")
            return _error("BadRequest", message, started, 400)
        if spec.run_upstream_blocks:
            try:
                model = self._refresh(model, spec.incomplete_only)
            except PredictionError as exc:
                logger.error("reloading block %s failed: %s", spec.block_uuid, exc.message)
                return _error("InternalError", exc.message, started, 500)
        outcome = self._service.predict(model.name, request, started)
        response = outcome.response
        body: dict[str, Any]
        if outcome.http_status == 200:
            body = RunResponse(run=RunOutput(output=[self._block_output(response, request)])).model_dump()
        else:
            body = _error(response.status.value, response.error_message or "", started, outcome.http_status).body
        if not spec.record:
            return RunResult(body, outcome.http_status)
        record = self._record(spec, model, request_id, response, body, started)
        try:
            key = self._recorder.write(record, dt.datetime.now(dt.UTC))
        except PredictionError as exc:
            logger.error("run %s: record not written: %s", request_id, exc.message)
            message = f"the run finished but its record could not be written: {exc.message}"
            return _error("InternalError", message, started, 500)
        return RunResult(body, outcome.http_status, key)

    def _refresh(self, model: ModelSpec, incomplete_only: bool) -> ModelSpec:
        if incomplete_only:
            self._service.registry.load(model)
            return model
        return self._service.registry.reload(model)

    @staticmethod
    def _block_output(response: PredictResponse, request: PredictRequest) -> Any:
        if request.probability and response.probabilities is not None:
            return response.probabilities
        return response.prediction

    @staticmethod
    def _record(
        spec: RunSpec,
        model: ModelSpec,
        request_id: str,
        response: PredictResponse,
        body: dict[str, Any],
        started: float,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "request_id": request_id,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "pipeline_uuid": spec.pipeline_uuid,
            "block_uuid": spec.block_uuid,
            "project": spec.project,
            "model_name": model.name,
            "model_version": model.version,
            "variables": spec.variables.model_dump(include={"user_ids", "inputs", "probability"}, exclude_none=True),
            "status": response.status.value,
            "duration_ms": elapsed_ms(started),
        }
        if spec.store_variables:
            record["output"] = body.get("run", {}).get("output")
        if response.error_message:
            record["error_message"] = response.error_message
        return record
