"""A batch's rows, from what Distributed Map sends: rows its reader already read (a CSV with a
header row or JSON Lines, each item `{"index": n, "row": {...}}` as the state machine's
ItemSelector wraps it), or S3 objects under a prefix (`{"Key": ..., "Size": ...}`, from
listObjectsV2), each streamed and read here, CSV or JSON Lines by its name."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prediction_service.bulk.job import JobSpec, shard_batch_name

HEADER_PROBE_BYTES = 64 * 1024  # what the first step reads of an input to find its columns
# A CSV field may be as long as a text a model takes and more (csv's own limit is 128 KiB).
csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class SourceRow:
    """A row and where it came from (`{"index": n}`, or `{"object": key, "line": n}`); `problem`
    instead of `values` when the line itself could not be read."""

    where: dict[str, Any]
    values: Mapping[str, Any] | None
    problem: str | None = None


class RowItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    row: Any  # an object; anything else is that row's refusal, not the batch's


class ObjectItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    Key: str = Field(min_length=1, max_length=1024)


class ItemsRefused(ValueError):
    """Items that are not what the job's reader sends."""


def parse_items(job: JobSpec, items: Sequence[Any]) -> list[RowItem] | list[ObjectItem]:
    """The items as the job's reader sends them: objects for a prefix, wrapped rows otherwise."""
    model: type[BaseModel] = ObjectItem if job.input.source == "prefix" else RowItem
    shape = ('S3 objects ({"Key": ...})' if model is ObjectItem
             else 'rows as the state machine wraps them ({"index": n, "row": {...}})')
    parsed = []
    for position, item in enumerate(items):
        try:
            parsed.append(model.model_validate(item))
        except ValidationError:
            raise ItemsRefused(f"Items[{position}] is not one of this job's items: a {job.input.source} job's "
                               f"batch holds {shape}") from None
    return parsed  # type: ignore[return-value]


def batch_name(items: Sequence[RowItem] | Sequence[ObjectItem]) -> str:
    """The batch's name, from what it holds (never from when it ran): its rows' first and last
    index, or its one shard's name, or a digest of its shards' keys."""
    if isinstance(items[0], RowItem):
        indexes = [item.index for item in items]  # type: ignore[union-attr]
        return f"rows-{min(indexes):09d}-{max(indexes):09d}"
    keys = [item.Key for item in items]  # type: ignore[union-attr]
    if len(keys) == 1:
        return shard_batch_name(keys[0])
    return f"shards-{hashlib.sha256(chr(0).join(sorted(keys)).encode()).hexdigest()[:16]}"


def batch_rows(job: JobSpec, items: Sequence[RowItem] | Sequence[ObjectItem], s3: Any) -> Iterator[SourceRow]:
    """Every row of the batch, in order; a shard is streamed, never held whole."""
    for item in items:
        if isinstance(item, RowItem):
            if isinstance(item.row, dict):
                yield SourceRow({"index": item.index}, item.row)
            else:
                yield SourceRow({"index": item.index}, None, "the row is not a JSON object")
        else:
            body = s3.get_object(Bucket=job.input.bucket, Key=item.Key)["Body"]
            yield from read_rows(item.Key, job.input.format_for(item.Key), body.iter_lines(keepends=True))


def read_rows(key: str, fmt: str, lines: Iterable[bytes]) -> Iterator[SourceRow]:
    return _csv_rows(key, lines) if fmt == "csv" else _jsonl_rows(key, lines)


def _decoded(key: str, lines: Iterable[bytes], bad: list[SourceRow]) -> Iterator[str]:
    """Lines as text, one for each line read; a line that is not UTF-8 is set aside in `bad` (its
    row refused) and read as a blank line, so that the lines after it keep their numbers."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            bad.append(SourceRow({"object": key, "line": number}, None, "the line is not UTF-8 text"))
            yield "\n"


def _jsonl_rows(key: str, lines: Iterable[bytes]) -> Iterator[SourceRow]:
    bad: list[SourceRow] = []
    for number, line in enumerate(_decoded(key, lines, bad), start=1):
        yield from _drain(bad)
        if not line.strip():
            continue
        where = {"object": key, "line": number}
        try:
            value = json.loads(line)
        except ValueError:
            yield SourceRow(where, None, "the line is not JSON")
            continue
        except RecursionError:
            yield SourceRow(where, None, "the line is JSON nested too deep")
            continue
        if not isinstance(value, dict):
            yield SourceRow(where, None, "the line is not a JSON object")
            continue
        yield SourceRow(where, value)
    yield from _drain(bad)


def _csv_rows(key: str, lines: Iterable[bytes]) -> Iterator[SourceRow]:
    bad: list[SourceRow] = []
    reader = csv.reader(_decoded(key, lines, bad))
    header = next(reader, None)
    if header is None:
        return
    for fields in reader:
        yield from _drain(bad)
        where = {"object": key, "line": reader.line_num}
        if not fields:
            continue
        if len(fields) != len(header):
            yield SourceRow(where, None, f"the row has {len(fields)} fields, the header {len(header)}")
            continue
        yield SourceRow(where, dict(zip(header, fields, strict=True)))
    yield from _drain(bad)


def _drain(bad: list[SourceRow]) -> Iterator[SourceRow]:
    while bad:
        yield bad.pop(0)


def header_columns(fmt: str, head: bytes) -> list[str]:
    """The columns an input's first bytes name: its CSV header row, or its first JSON line's keys.
    Raises ValueError when they name none."""
    text = head.decode("utf-8-sig", errors="replace")
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise ValueError("it is empty")
    if fmt == "csv":
        return next(csv.reader([first]))
    try:
        value = json.loads(first)
    except ValueError:
        raise ValueError("its first line is not a JSON object (JSON Lines: one object per line)") from None
    if not isinstance(value, dict):
        raise ValueError("its first line is not a JSON object (JSON Lines: one object per line)")
    return list(value)
