"""CSV data files (forecast series, feature tables) parsed with the standard library and numpy."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np

from prediction_service.errors import BadInputError, IntegrityError


class Table:
    """Columns of a CSV file with a header row; `#` lines are comments."""

    def __init__(self, columns: dict[str, list[str]]) -> None:
        self._raw = columns
        self._numeric: dict[str, np.ndarray] = {}
        self._indexes: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, raw: bytes) -> Table:
        try:
            lines = [line for line in raw.decode("utf-8").splitlines() if line and not line.startswith("#")]
            rows = list(csv.reader(io.StringIO("\n".join(lines))))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise IntegrityError(f"data file is not UTF-8 CSV: {exc}") from exc
        if not rows:
            raise IntegrityError("data file has no header row")
        header, body = rows[0], rows[1:]
        if any(len(row) != len(header) for row in body):
            raise IntegrityError("data file has rows of different widths")
        return cls({name: [row[i] for row in body] for i, name in enumerate(header)})

    def __len__(self) -> int:
        return len(next(iter(self._raw.values()), []))

    def column(self, name: str) -> np.ndarray:
        """A numeric column as float64, parsed once."""
        with self._lock:
            if name not in self._numeric:
                if name not in self._raw:
                    raise IntegrityError(f"data file has no column {name!r}")
                try:
                    self._numeric[name] = np.asarray(self._raw[name], dtype=np.float64)
                except ValueError as exc:
                    raise IntegrityError(f"column {name!r} is not numeric") from exc
            return self._numeric[name]

    def rows_for_ids(self, id_column: str, ids: list[int], columns: tuple[str, ...]) -> np.ndarray:
        """The rows whose `id_column` equals each id, restricted to `columns`, in request order."""
        index = self._index(id_column)
        missing = [i for i in ids if i not in index]
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise BadInputError(f"unknown id(s) in the feature table: {shown}")
        positions = [index[i] for i in ids]
        return np.column_stack([self.column(c)[positions] for c in columns])

    def _index(self, id_column: str) -> dict[int, int]:
        ids = self.column(id_column)
        with self._lock:
            if id_column not in self._indexes:
                self._indexes[id_column] = {int(v): pos for pos, v in enumerate(ids)}
            return self._indexes[id_column]
