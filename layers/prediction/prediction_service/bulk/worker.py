"""The worker: one Distributed Map batch, `{"Items": [...], "BatchInput": {"job": {...}}}`, scored
through the data plane and written to S3 (sinks.py).

Each row routes by its id as a request with that routing key would (a weighted alias keeps a
row on one version, run after run); the rows of one version run together, at most
`rows_per_call` at a time. A malformed row is refused alone and the batch goes on; when the
model refuses a whole call, its rows are scored one by one so that only the bad ones are
refused. Anything else (S3 down, a model that cannot load) fails the batch, for the state
machine to retry. A batch event that is not one is answered `{"refused": reason}`: the state
machine fails that batch with the reason and never retries it.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prediction_service.bulk.job import JobSpec
from prediction_service.bulk.rows import RowCodec, RowError, row_codec
from prediction_service.bulk.sinks import BatchWriter
from prediction_service.bulk.sources import ItemsRefused, SourceRow, batch_name, batch_rows, parse_items
from prediction_service.catalog.routing import Route
from prediction_service.dataplane.dataplane import DataPlane
from prediction_service.dataplane.types import InferRequest
from prediction_service.errors import BadInputError

logger = logging.getLogger(__name__)

# Distributed Map sends at most 256 KiB of items a batch; the state machine's ItemSelector wraps
# each row in {"index", "row"}. Past these a batch did not come from it.
MAX_BATCH_ITEMS = 10_000
MAX_BATCH_EVENT_BYTES = 1024 * 1024


class BatchInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job: JobSpec


class BatchEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Items: list[Any] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    BatchInput: BatchInput


class BatchRefused(ValueError):
    """An event that is not a batch this worker can take; the message says why."""


def read_event(event: Any) -> BatchEvent:
    if not isinstance(event, dict):
        raise BatchRefused('the event is not a Distributed Map batch: expected {"Items": [...], "BatchInput": {...}}')
    size = len(json.dumps(event, separators=(",", ":"), default=str))
    if size > MAX_BATCH_EVENT_BYTES:
        raise BatchRefused(f"the batch event has {size} bytes; a batch may have at most {MAX_BATCH_EVENT_BYTES} "
                           "(lower the state machine's batch size)")
    try:
        return BatchEvent.model_validate(event)
    except ValidationError as exc:
        raise BatchRefused(f"the event is not a Distributed Map batch of a bulk job: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the event"
    return f"{where}: {error['msg']}"[:300]


@dataclass
class _Parsed:
    source: SourceRow
    row_id: Any
    route: Route
    value: Any


class BatchScorer:
    """Scores one batch's rows. A codec per version that answers (built once each)."""

    def __init__(self, dataplane: DataPlane, job: JobSpec) -> None:
        self.dataplane, self.job = dataplane, job
        self.registry = dataplane.registry
        self._codecs: dict[str, RowCodec] = {}
        self._fixed: Route | None = None

    def codec(self, route: Route) -> RowCodec:
        version = route.spec.version
        if version not in self._codecs:
            runtime = self.registry.runtime(route)
            self._codecs[version] = row_codec(self.job.columns, route.spec.interface_entry(), runtime)
        return self._codecs[version]

    def score(self, rows: Iterable[SourceRow], writer: BatchWriter) -> None:
        first = self.registry.route(self.job.model, self.job.version)
        self._fixed = first if first.alias is None else None  # a named version, or the only one: every row's
        for window in _chunks(rows, self.codec(first).window):
            self._score_window(window, writer)

    def _score_window(self, window: Sequence[SourceRow], writer: BatchWriter) -> None:
        outcomes: dict[int, tuple[str, Any, Any]] = {}  # position -> ("scored", version, record) | ("refused", ...)
        by_version: dict[str, list[tuple[int, _Parsed]]] = {}
        for position, source in enumerate(window):
            parsed = self._parse(source)
            if isinstance(parsed, str):
                outcomes[position] = ("refused", _row_id(source, self.job.id_column), parsed)
            else:
                by_version.setdefault(parsed.route.spec.version, []).append((position, parsed))
        for group in by_version.values():
            codec = self.codec(group[0][1].route)
            for chunk in _chunks(group, codec.rows_per_call):
                outcomes.update(self._run(codec, chunk))
        for position, source in enumerate(window):
            kind, row_id, value = outcomes[position]
            if kind == "refused":
                writer.refused_row(source.where, row_id, value)
            else:
                version, record = value
                writer.scored_row(row_id, version, record)

    def _parse(self, source: SourceRow) -> _Parsed | str:
        """The row checked and routed, or the reason it is refused."""
        if source.values is None:
            return source.problem or "the row could not be read"
        row_id = source.values.get(self.job.id_column)
        if row_id is None or row_id == "":
            return f"the id column {self.job.id_column!r} is missing"
        if not isinstance(row_id, str | int) or isinstance(row_id, bool):
            return f"the id column {self.job.id_column!r} must be text or a whole number"
        if isinstance(row_id, str) and not _is_unicode(row_id):
            return f"the id column {self.job.id_column!r} holds a lone surrogate"
        route = self._fixed or self.registry.route(self.job.model, self.job.version, str(row_id))
        try:
            return _Parsed(source, row_id, route, self.codec(route).parse(source.values))
        except RowError as exc:
            return str(exc)

    def _run(self, codec: RowCodec, chunk: Sequence[tuple[int, _Parsed]]) -> Iterator[tuple[int, tuple[str, Any, Any]]]:
        """One data-plane call for the chunk; if the model refuses it, each row alone."""
        route = chunk[0][1].route
        version = route.spec.version
        request = InferRequest(self.job.model, decode=lambda served: codec.inputs([p.value for _, p in chunk]),
                               version=version, routing_key=str(chunk[0][1].row_id))
        try:
            records = self.dataplane.serve(request, lambda result: codec.records(result.arrays)).value
        except BadInputError as exc:
            if len(chunk) > 1:
                for one in chunk:
                    yield from self._run(codec, [one])
                return
            position, parsed = chunk[0]
            yield position, ("refused", parsed.row_id, f"the model refused the row: {exc.message}")
            return
        for (position, parsed), record in zip(chunk, records, strict=True):
            yield position, ("scored", parsed.row_id, (version, record))


def _row_id(source: SourceRow, column: str) -> Any:
    """The row's id as the outputs carry it (an id that cannot be written as JSON, as text)."""
    value = None if source.values is None else source.values.get(column)
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) and not _is_unicode(value) else value


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _chunks[T](values: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(values)
    while chunk := list(itertools.islice(iterator, max(size, 1))):
        yield chunk


def score_batch(event: Any, dataplane: DataPlane, s3: Any) -> dict[str, Any]:
    """The handler's work: the batch's counts and keys, or `{"refused": reason}`."""
    started = time.perf_counter()
    try:
        batch = read_event(event)
        job = batch.BatchInput.job
        items = parse_items(job, batch.Items)
    except (BatchRefused, ItemsRefused) as exc:
        logger.warning("batch refused: %s", exc)
        return {"refused": str(exc)}
    name = batch_name(items)
    writer = BatchWriter(job.paths, name, job.output.format)
    try:
        BatchScorer(dataplane, job).score(batch_rows(job, items, s3), writer)
    except BadInputError as exc:  # the model or version vanished since the job was checked
        return {"refused": f"batch {name}: {exc.message}"}
    stats = writer.write(s3, job.output.bucket)
    logger.info("batch %s: %d rows scored, %d refused", name, stats["scored"], stats["refused"])
    return {**stats, "seconds": round(time.perf_counter() - started, 3)}
