"""CSV data files: columns, id lookups, and refusal of broken files."""

from __future__ import annotations

import numpy as np
import pytest
from prediction_service.errors import BadInputError, IntegrityError
from prediction_service.storage.tables import Table

CSV = b"# a comment\nuser_id,a,b\n1,0.5,2\n5,1.5,3\n100,2.5,4\n"


def test_rows_for_ids_come_back_in_request_order() -> None:
    table = Table.parse(CSV)
    rows = table.rows_for_ids("user_id", [100, 1, 100], ("a", "b"))
    assert rows.tolist() == [[2.5, 4.0], [0.5, 2.0], [2.5, 4.0]]
    assert len(table) == 3


def test_unknown_ids_are_named_in_the_error() -> None:
    with pytest.raises(BadInputError, match="7, 8"):
        Table.parse(CSV).rows_for_ids("user_id", [1, 7, 8], ("a",))


def test_column_is_float64() -> None:
    assert Table.parse(CSV).column("a").dtype == np.float64


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "no header"),
        (b"a,b\n1\n", "different widths"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_broken_files_are_integrity_errors(raw: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        Table.parse(raw)


def test_missing_or_text_columns_are_integrity_errors() -> None:
    table = Table.parse(b"id,name\n1,x\n")
    with pytest.raises(IntegrityError, match="no column"):
        table.column("other")
    with pytest.raises(IntegrityError, match="not numeric"):
        table.column("name")
