"""A SQLite file the store cannot use is reported with its true cause, not as unreachable."""

from pathlib import Path

import pytest

from taskloom.errors import StoreUnavailable
from taskloom.store.sql import SqlStore


async def test_a_damaged_file_is_named_as_damaged(tmp_path: Path) -> None:
    """Opening a file that is not a SQLite database says so and names the setting."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"not a database, only some text that is long enough")
    with pytest.raises(StoreUnavailable) as caught:
        await SqlStore(f"sqlite:///{path}").open()
    assert "not a SQLite database" in caught.value.message
    assert "TASKLOOM_DATABASE_URL" in caught.value.message
    assert "reachable" not in caught.value.message


async def test_a_path_under_a_file_is_named(tmp_path: Path) -> None:
    """A database path whose folder is a regular file is refused with that cause."""
    (tmp_path / "plain").write_text("")
    with pytest.raises(StoreUnavailable, match="is a file, not a folder"):
        await SqlStore(f"sqlite:///{tmp_path / 'plain' / 'x.db'}").open()
