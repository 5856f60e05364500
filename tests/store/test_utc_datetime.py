"""SQLite keeps times as naive UTC text; they come back aware UTC whatever form the text has."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from taskloom.store.tables import UTCDateTime

TEXTS = [
    "2026-11-28 14:59:30.839455",  # as the store writes them
    "2026-11-28 14:59:30",
    "2026-11-28 14:59:30.8",
    "2026-11-28T14:59:30",
    "2026-11-28",
    "2026-11-28 14:59:30+02:00",  # an offset: converted, not replaced
    "2026-11-28 14:59:30.000001",
]


@pytest.mark.parametrize("text", TEXTS)
def test_sqlite_text_reads_as_the_driver_parse_then_utc(text: str) -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime().dialect_impl(dialect)
    read = column.result_processor(dialect, None)
    usual = TypeDecorator.result_processor(column, dialect, None)  # parse + process_result_value
    assert read is not None
    assert usual is not None
    got, expected = read(text), usual(text)
    assert got == expected
    assert got is not None
    assert got.tzinfo is UTC
    assert got.isoformat() == expected.isoformat()


def test_null_stays_null() -> None:
    dialect = sqlite.dialect()
    read = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert read is not None
    assert read(None) is None


def test_written_and_read_back_through_the_column() -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime().dialect_impl(dialect)
    write = column.bind_processor(dialect)
    read = column.result_processor(dialect, None)
    assert write is not None
    assert read is not None
    at = datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=UTC)
    assert read(write(at)) == at
