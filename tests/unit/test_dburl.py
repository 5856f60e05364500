"""`taskloom.dburl` reads database URLs as SQLAlchemy's `make_url` does (it replaces it where
SQLAlchemy's imports would slow down start-up)."""

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from taskloom import dburl

URLS = [
    "sqlite:///relative.db",
    "sqlite:////abs/path/taskloom.db",
    "sqlite:///:memory:",
    "sqlite+aiosqlite:////tmp/a%20b.db?timeout=5",
    "sqlite://",
    "postgresql://tl@127.0.0.1:5432/test",
    "postgresql+asyncpg://u:p%40ss@[::1]:5432/db?ssl=require",
    "mysql://u:pw@db/tl",
    "postgres://user:secret@host/db",
]


@pytest.mark.parametrize("text", URLS)
def test_backend_and_database_are_make_urls(text: str) -> None:
    ours, theirs = dburl.parse(text), make_url(text)
    assert ours.backend == theirs.get_backend_name()
    assert ours.database == theirs.database


@pytest.mark.parametrize("text", ["not a url", "sqlite:/x.db", "postgresql://h:port/db", ""])
def test_refused_where_make_url_refuses(text: str) -> None:
    with pytest.raises((ArgumentError, ValueError)):
        make_url(text)
    with pytest.raises(ValueError, match="is not a database URL"):
        dburl.parse(text)


def test_shown_hides_only_the_password() -> None:
    assert dburl.parse("mysql://u:pw@db/tl").shown() == "mysql://u:***@db/tl"
    assert dburl.parse("postgresql://tl@h/db").shown() == "postgresql://tl@h/db"
    assert dburl.parse("sqlite:////tmp/x.db").shown() == "sqlite:////tmp/x.db"
