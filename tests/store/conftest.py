"""The stores the contract suite runs over.

The contract suite (tests/store/test_store_contract*.py) is written against the `Store` protocol
of `taskloom.domain.storage` alone: it never reaches below it. Each backend is one fixture below
that yields an empty, opened store of its kind, and one name in `BACKENDS`; the `store` fixture
runs every contract test once per name. A third backend is one new module under taskloom/store
implementing the protocol, plus its fixture and its name here, and the whole suite runs over it.
PostgreSQL is skipped with its reason when 127.0.0.1:5432 is unreachable, and fails under CI=true.
"""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from taskloom.domain.storage import Store
from taskloom.store.sql import SqlStore
from tests.conftest import pg_database

BACKENDS = ["sqlite_store", "postgresql_store"]


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """SqlStore over a new SQLite file in the test's temp folder."""
    async with _opened(f"sqlite:///{tmp_path / 'contract.db'}") as store:
        yield store


@pytest.fixture(scope="session")
def contract_pg_url() -> Iterator[str]:
    """One PostgreSQL database for the whole suite (creating one per test cost ~1.5 s each)."""
    yield from pg_database()


@pytest.fixture
async def postgresql_store(contract_pg_url: str) -> AsyncIterator[Store]:
    """SqlStore over the suite's PostgreSQL database, emptied first."""
    async with _opened(contract_pg_url) as store:
        tables = ", ".join(table.name for table in SQLModel.metadata.sorted_tables)
        async with store.transaction() as conn:
            await conn.execute(text(f"TRUNCATE {tables}"))
        yield store


@pytest.fixture(params=BACKENDS, ids=lambda name: name.removesuffix("_store"))
def store(request: pytest.FixtureRequest) -> Store:
    """An empty, opened store of each backend in turn."""
    opened: Store = request.getfixturevalue(request.param)
    return opened


@pytest.fixture
async def sql_store(db_url: str) -> AsyncIterator[SqlStore]:
    """The SQL implementation itself, for the tests of what is particular to it (locks, raw
    rows, migrations) rather than of the protocol."""
    async with _opened(db_url) as opened:
        yield opened
