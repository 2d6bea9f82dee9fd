"""Prediction records: one JSON object per request that asks for one, `<prefix>YYYY/MM/DD/<request id>.json`,
in the bucket the models come from."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from prediction_service.errors import RecordNotWrittenError, StoreError

if TYPE_CHECKING:
    from prediction_service.storage.s3 import S3Store


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RunRecorder:
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
