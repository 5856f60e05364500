"""A store opened (and migrated) on the parametrised database: SQLite file or PostgreSQL."""

from collections.abc import AsyncIterator

import pytest

from taskloom.store.sql import Store


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = Store(db_url)
    await s.open()
    yield s
    await s.close()
