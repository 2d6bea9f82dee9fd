"""A batch's output: its scored rows (JSON Lines, or CSV), its refused rows (JSON Lines, each with
its reason) and its counts, each one S3 object whose key the batch's name decides. Rows are
spooled (in memory, then on /tmp past a few MB) and each object is written once, at the end:
a batch that fails half way leaves nothing half written, and running it again overwrites its
own keys."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections import Counter
from typing import IO, Any

import pydantic_core

from prediction_service.bulk.job import JobPaths, OutputFormat

SPOOL_BYTES = 8 * 1024 * 1024  # past this a batch's rows go to /tmp


class BatchWriter:
    def __init__(self, paths: JobPaths, batch: str, output_format: OutputFormat) -> None:
        self.paths, self.batch, self.format = paths, batch, output_format
        self.results: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed in write()
        self.errors: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.versions: Counter[str] = Counter()
        self.scored = self.refused = 0
        self._header: list[str] | None = None

    def scored_row(self, row_id: Any, version: str, record: dict[str, Any]) -> None:
        line = {"id": row_id, "model_version": version, **record}
        if self.format == "csv":
            self._csv_row(_flat(line))
        else:
            self.results.write(pydantic_core.to_json(line) + b"\n")
        self.versions[version] += 1
        self.scored += 1

    def refused_row(self, where: dict[str, Any], row_id: Any, reason: str) -> None:
        self.errors.write(pydantic_core.to_json({"id": row_id, **where, "reason": reason}) + b"\n")
        self.refused += 1

    def stats(self) -> dict[str, Any]:
        """What the batch did, the same whenever it runs (the summary adds them up)."""
        return {"batch": self.batch, "rows": self.scored + self.refused, "scored": self.scored,
                "refused": self.refused, "versions": dict(sorted(self.versions.items())),
                "results": self.paths.results(self.batch),
                "errors": self.paths.errors(self.batch) if self.refused else None}

    def write(self, s3: Any, bucket: str) -> dict[str, Any]:
        """The batch's objects: results (even when empty, so a rerun finds the same keys), errors
        when a row was refused, and its counts last (the summary counts a batch done by them)."""
        stats = self.stats()
        content = "text/csv" if self.format == "csv" else "application/x-ndjson"
        with self.results, self.errors:
            _put(s3, bucket, stats["results"], self.results, content)
            if self.refused:
                _put(s3, bucket, stats["errors"], self.errors, "application/x-ndjson")
        s3.put_object(Bucket=bucket, Key=self.paths.batch_stats(self.batch), Body=json.dumps(stats).encode(),
                      ContentType="application/json")
        return stats

    def _csv_row(self, flat: dict[str, Any]) -> None:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self._header is None:
            self._header = list(flat)
            writer.writerow(self._header)
        writer.writerow([flat.get(name, "") for name in self._header])
        self.results.write(out.getvalue().encode("utf-8"))


def _put(s3: Any, bucket: str, key: str, body: IO[bytes], content_type: str) -> None:
    body.seek(0)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def _flat(line: dict[str, Any]) -> dict[str, Any]:
    """A record as CSV cells: an object's fields as `name_field` columns, a list as JSON text."""
    flat: dict[str, Any] = {}
    for name, value in line.items():
        if isinstance(value, dict):
            for field, inner in value.items():
                flat[f"{name}_{field}"] = _cell(inner)
        else:
            flat[name] = _cell(value)
    return flat


def _cell(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else value
