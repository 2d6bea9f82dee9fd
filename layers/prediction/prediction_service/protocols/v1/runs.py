"""Playground runs (`POST /api/runs`): a block of a pipeline names a model; output and records.

The request and answer follow the ML playground document: `{"run": {"pipeline_uuid",
"block_uuid", "variables": {"user_ids", "probability"}, "record", ...}}` answers
`{"run": {"output": [<block output>]}}`. `record: true` writes a JSON record of the
run to the bucket under the records prefix, whether the run succeeded or not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from prediction_service.dataplane.bookkeeping import Record
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.records import RunRecorder, utc_now
from prediction_service.dataplane.types import Answer
from prediction_service.errors import BadInputError, describe_errors
from prediction_service.protocols.v1 import codec
from prediction_service.protocols.v1.schemas import PredictRequest, RunOutput, RunResponse, RunSpec
from prediction_service.timing import elapsed_ms


class BlockRunner:
    def __init__(
        self, dataplane: DataPlane, recorder: RunRecorder, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self._dataplane = dataplane
        self._registry = dataplane.registry
        self._recorder = recorder
        self._clock = clock

    def run(self, spec: RunSpec, request_id: str, started: float, routing_key: str | None = None
            ) -> Answer[RunResponse]:
        """The block's output, with the bookkeeping of every request. Raises a PredictionError when
        the run cannot be made, after recording it if asked to (a failed run is recorded too). The
        version that answers is chosen by `variables.version`, else by `routing_key` or the run's
        `user_ids`."""
        block = self._registry.manifest().find_block(spec.pipeline_uuid, spec.block_uuid)
        if block is None:
            message = f"pipeline {spec.pipeline_uuid!r} has no block {spec.block_uuid!r}; GET /v1/models lists them"
            raise BadInputError(message)
        body = _predict_request(spec)
        request = codec.infer_request(block.name, body, started=started, routing_key=routing_key)

        def encode(result: Any) -> RunResponse:
            output = [codec.answer_of(body, result.served.interface, result.arrays)]
            return RunResponse(run=RunOutput(output=output, model_name=result.route.name,
                                             model_version=result.route.version))

        def record(ended: Record) -> None:
            self._write(spec, block.name, body, request_id, started, ended)

        if spec.run_upstream_blocks:
            self._refresh(block.name, spec.incomplete_only)
        return self._dataplane.serve(request, encode, record if spec.record else None)

    def _refresh(self, name: str, incomplete_only: bool) -> None:
        if not incomplete_only:
            self._registry.reload(name)
            return
        for version in self._registry.manifest().versions(name):
            self._registry.load(version)

    def _write(self, spec: RunSpec, model: str, body: PredictRequest, request_id: str, started: float,
               ended: Record) -> str:
        now = self._clock()  # one reading for the record's time and its key
        chosen = ended.route
        record: dict[str, Any] = {
            "request_id": request_id,
            "time": now.isoformat(timespec="milliseconds"),
            "pipeline_uuid": spec.pipeline_uuid,
            "block_uuid": spec.block_uuid,
            "project": spec.project,
            "model_name": model,
            "model_version": chosen.version if chosen else None,
            "alias": chosen.alias if chosen else None,
            "routing_key_hash": chosen.key_hash if chosen else None,
            "variables": spec.variables.model_dump(include={"user_ids", "inputs", "probability", "version"},
                                                   exclude_none=True),
            "status": ended.error.status if ended.error else "Success",
            "duration_ms": elapsed_ms(started),
        }
        result, shadow = ended.inference, ended.shadow
        if spec.store_variables and result is not None:
            record["output"] = [codec.answer_of(body, result.served.interface, result.arrays)]
        if shadow is not None and result is not None:
            answer = [codec.answer_of(body, result.served.interface, shadow.output)] if shadow.output is not None \
                else None
            record["shadow"] = shadow.as_record(answer if spec.store_variables else None)
        if ended.error is not None:
            record["error_message"] = ended.error.message
        return self._recorder.write(record, now)


def _predict_request(spec: RunSpec) -> PredictRequest:
    variables = spec.variables
    try:
        return PredictRequest(ids=variables.user_ids, inputs=variables.inputs, probability=variables.probability,
                              version=variables.version)
    except ValidationError as exc:
        raise BadInputError(describe_errors(exc.errors()).replace("Value error, ", "variables: ")) from exc
