"""The state machine's first and last steps: check a job before anything is scored, and add up
what its batches did.

Both answer plain data the state machine branches on. A job that cannot run is answered
`{"ok": false, "reason": ...}` (the state machine fails with the reason, nothing scored); a
server-side failure raises, for the state machine's retries.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from prediction_service.bulk.job import Allowed, JobPaths, JobSpec, Run, shard_batch_name
from prediction_service.bulk.rows import row_codec
from prediction_service.bulk.sources import HEADER_PROBE_BYTES, ObjectItem, RowItem, batch_name, header_columns
from prediction_service.errors import BadInputError
from prediction_service.runtime.registry import ModelRegistry

logger = logging.getLogger(__name__)

MAX_LISTED_FAILURES = 100  # failed batches the summary names (it counts them all)


class JobRefused(ValueError):
    """A job that cannot run; the message says why, for the person who started it."""


def validate_job(raw: Any, registry: ModelRegistry, s3: Any, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The job checked: it parses, it reads and writes where the stack allows, its model (version,
    alias) exists and loads, its columns map to the model's inputs and are in the input, the input
    exists, and the output can be written (the accepted job is written there, as job.json).
    `env`: the function's environment (the stack's defaults and allowed places)."""
    env = os.environ if env is None else env
    try:
        job = _job(raw)
        refusal = Allowed.from_env(env).refusal(job)
        if refusal:
            raise JobRefused(refusal)
        route = registry.route(job.model, job.version)
        codec = row_codec(job.columns, route.spec.interface_entry(), registry.runtime(route))
        objects = _check_input(job, [job.id_column, *codec.columns], s3)
        _check_output(job, s3)
    except (JobRefused, BadInputError) as exc:
        reason = exc.message if isinstance(exc, BadInputError) else str(exc)
        logger.warning("job refused: %s", reason)
        return {"ok": False, "reason": reason}
    return {"ok": True, "job": job.model_dump(mode="json"), "source": job.input.source,
            "paths": job.paths.as_dict(), "run": Run.for_job(job, env).as_dict(), "input_objects": objects}


def _job(raw: Any) -> JobSpec:
    if isinstance(raw, dict) and isinstance(raw.get("job"), dict):
        raw = raw["job"]
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "the job"
        raise JobRefused(f"the job is not valid: {where}: {error['msg']}"[:500]) from None


def _check_input(job: JobSpec, columns: list[str], s3: Any) -> int:
    """The input's object count; refuses a missing input, or one whose header lacks a column."""
    spec = job.input
    if spec.key is not None:
        key, where = spec.key, f"s3://{spec.bucket}/{spec.key}"
        count = 1
    else:
        where = f"s3://{spec.bucket}/{spec.prefix}"
        keys = _listed(s3, spec.bucket, spec.prefix or "")
        if not keys:
            raise JobRefused(f"the input {where} holds no objects")
        if spec.bucket == job.output.bucket and job.paths.root.startswith(spec.prefix or ""):
            raise JobRefused(f"the output {job.output.prefix}{job.job_id}/ is inside the input prefix {where}: "
                             "a second run would score the first one's results; choose another output prefix")
        key, count = keys[0], len(keys)
    try:
        head = s3.get_object(Bucket=spec.bucket, Key=key, Range=f"bytes=0-{HEADER_PROBE_BYTES - 1}")["Body"].read()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise JobRefused(f"the input {where} does not exist") from None
        if code in ("AccessDenied", "403"):
            raise JobRefused(f"the input {where} cannot be read (access denied)") from None
        if code == "InvalidRange":  # an empty object
            raise JobRefused(f"the input s3://{spec.bucket}/{key} is empty") from None
        raise
    try:
        found = header_columns(spec.format_for(key), head)
    except ValueError as exc:
        raise JobRefused(f"the input s3://{spec.bucket}/{key} cannot be read: {exc}") from None
    missing = [column for column in columns if column not in found]
    if missing:
        shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
        raise JobRefused(f"the input s3://{spec.bucket}/{key} has no column {missing[0]!r} "
                         f"(its columns: {shown})")
    return count


def _listed(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            raise JobRefused(f"the input bucket {bucket!r} does not exist") from None
        if code == "AccessDenied":
            raise JobRefused(f"the input s3://{bucket}/{prefix} cannot be listed (access denied)") from None
        raise
    return keys


def _check_output(job: JobSpec, s3: Any) -> None:
    """Writes the accepted job where the results go: the proof that they can go there."""
    body = json.dumps(job.model_dump(mode="json"), indent=2).encode()
    try:
        s3.put_object(Bucket=job.output.bucket, Key=job.paths.accepted_job, Body=body, ContentType="application/json")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise JobRefused(f"the output s3://{job.output.bucket}/{job.paths.root} cannot be written ({code})") from None


def summarize(state: dict[str, Any], s3: Any, now: datetime | None = None) -> dict[str, Any]:
    """The job's summary, written beside its results: rows scored and refused, the versions that
    answered, the batches that failed (and why), and how long it took since `state["started"]`.
    FAILED when the map run failed, or when more batches failed than the job tolerates (the
    summary checks the share itself: moto's map runs do not enforce it)."""
    job = JobSpec.model_validate(state["job"])
    paths = job.paths
    bucket = job.output.bucket
    stats = _batch_stats(s3, bucket, paths)
    failed = _failed_batches(s3, state.get("map"))
    done = {s["batch"] for s in stats}
    if job.input.source == "prefix":  # a shard with no counts failed, whatever else says so
        accounted = done | {f["batch"] for f in failed}
        shards = (shard_batch_name(key) for key in _listed(s3, job.input.bucket, job.input.prefix or ""))
        failed += [{"batch": name, "error": "BatchFailed", "cause": "the batch left no results"}
                   for name in shards if name not in accounted]
    failed = [f for f in failed if f["batch"] not in done]
    versions: dict[str, int] = {}
    for s in stats:
        for version, count in s["versions"].items():
            versions[version] = versions.get(version, 0) + count
    map_error = state.get("map_error")
    tolerated = float((state.get("run") or {}).get("tolerated_failure_percentage", 0))
    over = bool(failed) and 100 * len(failed) / (len(stats) + len(failed)) > tolerated
    status = "FAILED" if map_error or over else ("PARTIAL" if failed else "SUCCEEDED")
    summary = {
        "job_id": job.job_id, "model": job.model, "version": job.version, "status": status,
        "rows": sum(s["rows"] for s in stats), "rows_scored": sum(s["scored"] for s in stats),
        "rows_refused": sum(s["refused"] for s in stats), "batches": len(stats),
        "failed_batches": len(failed), "failures": failed[:MAX_LISTED_FAILURES],
        "versions": dict(sorted(versions.items())), "duration_seconds": _duration(state.get("started"), now),
        "results": f"s3://{bucket}/{paths.root}results/", "errors": f"s3://{bucket}/{paths.root}errors/",
        "summary": f"s3://{bucket}/{paths.summary}",
    }
    if map_error:
        summary["message"] = _map_error_message(map_error, len(failed))
    elif over:  # the map run tolerated them (an engine that does not count them); the job does not
        summary["message"] = (f"{_batches(len(failed))} failed, more than the {tolerated:g}% the job tolerates; "
                              "the summary lists them")
    s3.put_object(Bucket=bucket, Key=paths.summary, Body=json.dumps(summary, indent=2).encode(),
                  ContentType="application/json")
    return summary


def _batch_stats(s3: Any, bucket: str, paths: JobPaths) -> list[dict[str, Any]]:
    keys = _listed(s3, bucket, paths.batches)

    def read(key: str) -> dict[str, Any]:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(read, keys))


def _failed_batches(s3: Any, map_output: Any) -> list[dict[str, Any]]:
    """The failed batches Distributed Map's ResultWriter lists (its manifest's FAILED files), each
    with its error and the cause's message (never a stack trace)."""
    details = map_output.get("ResultWriterDetails") if isinstance(map_output, dict) else None
    if not details:
        return []
    try:
        manifest = json.loads(s3.get_object(Bucket=details["Bucket"], Key=details["Key"])["Body"].read())
    except ClientError:
        logger.warning("the map run's manifest s3://%s/%s cannot be read", details.get("Bucket"), details.get("Key"))
        return []
    failed = []
    for result_file in manifest.get("ResultFiles", {}).get("FAILED", []):
        body = s3.get_object(Bucket=manifest.get("DestinationBucket", details["Bucket"]), Key=result_file["Key"])
        for child in json.loads(body["Body"].read()):
            failed.append({"batch": _child_batch(child.get("Input")), "error": child.get("Error") or "Failed",
                           "cause": _cause_message(child.get("Cause"))})
    return failed


def _child_batch(raw_input: Any) -> str:
    try:
        event = json.loads(raw_input) if isinstance(raw_input, str) else raw_input
        items = event["Items"]
        typed = [ObjectItem.model_validate(i) if "Key" in i else RowItem.model_validate(i) for i in items]
        return batch_name(typed)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError, ValidationError):
        return "unknown"


def _cause_message(cause: Any) -> str:
    """A Lambda error's message, without its stack trace; any other cause as it is."""
    if not isinstance(cause, str):
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause[:1000]
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"[:1000]
    return cause[:1000]


def _map_error_message(map_error: Any, failed: int) -> str:
    error = map_error.get("Error", "") if isinstance(map_error, dict) else ""
    if error == "States.ExceedToleratedFailureThreshold":
        return f"{_batches(failed)} failed, more than the job tolerates; the summary lists them"
    cause = _cause_message(map_error.get("Cause") if isinstance(map_error, dict) else None)
    return f"the map run failed: {error} {cause}".strip()


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


def _duration(started: Any, now: datetime | None) -> float | None:
    if not isinstance(started, str):
        return None
    try:
        begun = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return None
    if begun.tzinfo is None:
        begun = begun.replace(tzinfo=UTC)
    return round(((now or datetime.now(UTC)) - begun).total_seconds(), 3)
