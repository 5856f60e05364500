"""Database URLs read the way SQLAlchemy's `make_url` reads them, without importing SQLAlchemy:
the settings and the start-up checks need only the backend, the SQLite file and a form safe to
show, and SQLAlchemy costs ~0.2 s of imports that `taskloom serve` would otherwise pay before
answering its client (the store imports it once it opens)."""

import re
from dataclasses import dataclass
from urllib.parse import unquote

# sqlalchemy.engine.url._parse_url's pattern (SQLAlchemy 2.0), so both accept the same URLs.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class DatabaseUrl:
    text: str
    backend: str
    database: str | None
    _password: tuple[int, int] | None

    def shown(self) -> str:
        """The URL with its password (if any) as ***, as the user wrote it otherwise."""
        if self._password is None:
            return self.text
        start, end = self._password
        return f"{self.text[:start]}***{self.text[end:]}"


def parse(text: str) -> DatabaseUrl:
    """Raises ValueError where `make_url` raises (ArgumentError or ValueError)."""
    match = _URL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a database URL")
    if match["port"] and not match["port"].isdigit():  # make_url's int() raises ValueError
        raise ValueError(f"{text!r} is not a database URL: its port is not a number")
    database = match["database"]
    password = match.span("password") if match["password"] is not None else None
    return DatabaseUrl(
        text=text,
        backend=match["name"].partition("+")[0],
        database=unquote(database) if database is not None else None,
        _password=password,
    )
