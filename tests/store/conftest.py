"""The stores the contract suite runs over.

The contract suite (tests/store/test_store_contract*.py) is written against the `Store` protocol
of `taskloom.domain.storage` alone: it never reaches below it. Each backend is one entry of
`BACKENDS`, a function that opens an empty store of that kind and closes it afterwards; the
`store` fixture is parametrised over them. A third backend is one new module under
taskloom/store implementing the protocol plus one entry here, and the whole suite runs over it.
PostgreSQL is skipped with its reason when 127.0.0.1:5432 is unreachable, and fails under CI=true.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from taskloom.domain.storage import Store
from taskloom.store.sql import SqlStore
from tests.conftest import pg_database


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """SqlStore over a SQLite file in the test's temp folder."""
    async with _opened(f"sqlite:///{tmp_path / 'contract.db'}") as store:
        yield store


@asynccontextmanager
async def postgresql_store(tmp_path: Path) -> AsyncIterator[Store]:
    """SqlStore over a fresh PostgreSQL database, dropped afterwards."""
    databases = pg_database()
    url = next(databases)
    try:
        async with _opened(url) as store:
            yield store
    finally:
        next(databases, None)


BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "postgresql": postgresql_store,
}


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store, opened (and migrated), of each backend in turn."""
    async with BACKENDS[request.param](tmp_path) as opened:
        yield opened


@pytest.fixture
async def sql_store(db_url: str) -> AsyncIterator[SqlStore]:
    """The SQL implementation itself, for the tests of what is particular to it (locks, raw
    rows) rather than of the protocol."""
    async with _opened(db_url) as opened:
        yield opened
