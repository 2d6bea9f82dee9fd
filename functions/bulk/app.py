"""Bulk scoring, the state machine's tasks (statemachine/bulk.asl.json):

- `job_handler` (BulkJobFunction): `{"step": "validate", "job": {...}}` checks a job before
  anything is scored; `{"step": "summarize", "state": {...}}` adds up its batches.
- `batch_handler` (BulkWorkerFunction): one Distributed Map batch, scored and written to S3.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ValidationError

from prediction_service.bulk.steps import summarize, validate_job
from prediction_service.bulk.worker import score_batch
from prediction_service.composition import cache_stats, components
from prediction_service.observability import instrument
from prediction_service.storage.s3 import s3_client


@functools.cache
def data_s3() -> Any:
    """The S3 client of the jobs' own buckets (inputs and outputs), with the models' timeouts."""
    return s3_client(components().settings)


def _job_step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    step = event.get("step") if isinstance(event, dict) else None
    if step == "validate":
        return validate_job(event.get("job"), components().registry, data_s3())
    if step == "summarize" and isinstance(event.get("state"), dict) and isinstance(event["state"].get("job"), dict):
        try:
            return summarize({**event["state"], "started": event.get("started")}, data_s3())
        except ValidationError as exc:
            return {"status": "FAILED", "message": f"the state holds no valid job: {exc.error_count()} errors"}
    return {"ok": False, "reason": 'expected {"step": "validate", "job": {...}} or '
                                   '{"step": "summarize", "state": {...}, "started": "<ISO time>"}'}


def _batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return score_batch(event, components().dataplane, data_s3())


job_handler = instrument(_job_step, cache_stats)
batch_handler = instrument(_batch, cache_stats)
