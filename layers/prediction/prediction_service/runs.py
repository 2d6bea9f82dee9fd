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
from .outcomes import Run
from .routing import Route
from .schemas import PredictRequest, PredictResponse, RunOutput, RunResponse, RunSpec
from .service import PredictionService
from .timing import elapsed_ms

if TYPE_CHECKING:
    from .manifest import ModelSpec
    from .shadows import ShadowOutcome
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

    def run(
        self,
        spec: RunSpec,
        request_id: str,
        started: float,
        routing_key: str | None = None,
        on_route: Callable[[Route], None] | None = None,
    ) -> Run:
        """The block's output. Raises a PredictionError when the run cannot be made, after
        recording it if asked to (a failed run is recorded too). The version that answers is
        chosen by `variables.version`, else by `routing_key` or the run's `user_ids`; `on_route`
        hears of it as soon as it is chosen (the edge puts it on the log lines)."""
        block = self._service.registry.manifest().find_block(spec.pipeline_uuid, spec.block_uuid)
        if block is None:
            message = f"pipeline {spec.pipeline_uuid!r} has no block {spec.block_uuid!r}; GET /v1/models lists them"
            raise BadInputError(message)
        request = _predict_request(spec)
        chosen: Route | None = None
        try:
            if spec.run_upstream_blocks:
                self._refresh(block.name, spec.incomplete_only)
            chosen = self._service.route_request(block.name, request, routing_key)
            if on_route is not None:
                on_route(chosen)
            prediction = self._service.predict_route(chosen, request, started)
        except PredictionError as exc:
            if spec.record:
                self._write(spec, block, chosen, request_id, started, error=exc)
            raise
        output = [_block_output(prediction.response, request)]
        response = RunResponse(run=RunOutput(output=output, model_name=chosen.name, model_version=chosen.version))
        (shadow,) = self._service.shadows.collect([prediction.shadow])
        if spec.record:
            self._write(spec, block, chosen, request_id, started, output=output, request=request, shadow=shadow)
        return Run(response, prediction.inference_ms, chosen, shadow)

    def _refresh(self, name: str, incomplete_only: bool) -> None:
        registry = self._service.registry
        if not incomplete_only:
            registry.reload(name)
            return
        for version in registry.manifest().versions(name):
            registry.load(version)

    def _write(
        self,
        spec: RunSpec,
        block: ModelSpec,
        chosen: Route | None,
        request_id: str,
        started: float,
        *,
        output: list[Any] | None = None,
        request: PredictRequest | None = None,
        shadow: ShadowOutcome | None = None,
        error: PredictionError | None = None,
    ) -> str:
        now = self._clock()  # one reading for the record's time and its key
        record: dict[str, Any] = {
            "request_id": request_id,
            "time": now.isoformat(timespec="milliseconds"),
            "pipeline_uuid": spec.pipeline_uuid,
            "block_uuid": spec.block_uuid,
            "project": spec.project,
            "model_name": block.name,
            "model_version": chosen.version if chosen else None,
            "alias": chosen.alias if chosen else None,
            "routing_key_hash": chosen.key_hash if chosen else None,
            "variables": spec.variables.model_dump(include={"user_ids", "inputs", "probability", "version"},
                                                   exclude_none=True),
            "status": error.status if error else "Success",
            "duration_ms": elapsed_ms(started),
        }
        if spec.store_variables and output is not None:
            record["output"] = output
        if shadow is not None and request is not None:
            answer = [_block_output(shadow.output, request)] if shadow.output is not None else None
            record["shadow"] = shadow.as_record(answer if spec.store_variables else None)
        if error is not None:
            record["error_message"] = error.message
        return self._recorder.write(record, now)


def _predict_request(spec: RunSpec) -> PredictRequest:
    variables = spec.variables
    try:
        return PredictRequest(ids=variables.user_ids, inputs=variables.inputs, probability=variables.probability,
                              version=variables.version)
    except ValidationError as exc:
        raise BadInputError(describe_errors(exc.errors()).replace("Value error, ", "variables: ")) from exc


def _block_output(response: PredictResponse, request: PredictRequest) -> Any:
    """What a block answers: class probabilities when asked for, else the prediction."""
    if request.probability and response.probabilities is not None:
        return response.probabilities
    return response.prediction
