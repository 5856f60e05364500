"""How the CLI writes: tables for people, JSON for scripts, one-line errors.

In a terminal, tables are drawn by rich when they fit its width and as one record per block of
`field  value` lines when they do not, with statuses in colour. Piped, the same rows are plain
aligned columns of whole values: nothing is cut to a width nobody has. `--json` prints the
documented shapes (README, "Command line") whatever stdout is.
"""

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

STATUS_STYLES = {
    "succeeded": "green", "active": "green", "failed": "red", "interrupted": "red",
    "cancelled": "magenta", "paused": "yellow", "missed": "yellow", "queued": "cyan",
    "running": "blue", "skipped": "dim", "finished": "dim", "pending": "dim",
}  # fmt: skip
STATUS_COLUMNS = frozenset({"status", "last run"})
ID_COLUMNS = frozenset({"id", "run", "task", "task_id", "process"})


def interactive() -> bool:
    """Whether stdout is a terminal a person reads (colours, tables drawn to its width)."""
    return out.is_terminal


def emit_json(data: Any) -> None:
    """`data` as JSON on stdout: indented, keys in the documented order, never wrapped."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if interactive():
        out.print_json(text)
    else:
        sys.stdout.write(text + "\n")


def line(text: str, style: str | None = None) -> None:
    """One line of text on stdout, never wrapped (a value stays whole for `grep`)."""
    if interactive():
        out.print(text, style=style, markup=False, soft_wrap=True)
    else:
        sys.stdout.write(text + "\n")


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` as one line on stderr; return the exit to raise."""
    one_line = " ".join(message.split())
    err.print(one_line, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def when(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str = "") -> None:
    """Rows under their column names; see the module docstring for how each output shows it."""
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    if not interactive():
        _plain(columns, rows, title)
    elif _natural_width(columns, rows) <= out.width:
        _drawn(columns, rows, title)
    else:
        _records(columns, rows, title)


def _natural_width(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    return sum(widths) + 3 * len(columns) + 1  # a space either side and a border between


def _styled(column: str, value: str) -> Text:
    style = STATUS_STYLES.get(value) if column in STATUS_COLUMNS else None
    return Text(value, style=style or "")


def _pair(key: str, value: str, pad: int) -> Text:
    """`key  value`, the key dimmed (its style only: `Text + Text` would dim the value too)."""
    return Text.assemble((f"{key:<{pad}}  ", "dim"), _styled(key, value))


def _drawn(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
    grid = Table(title=title or None, title_justify="left")
    for name in columns:
        grid.add_column(name, no_wrap=name in ID_COLUMNS, overflow="fold")
    for row in rows:
        grid.add_row(*(_styled(c, v) for c, v in zip(columns, row, strict=True)))
    out.print(grid)


def _records(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
    """A terminal too narrow for the table: each row as `column  value` lines."""
    if title:
        out.print(Text(title, style="bold"))
    pad = max(len(c) for c in columns)
    for index, row in enumerate(rows):
        if index:
            out.print()
        for column, value in zip(columns, row, strict=True):
            out.print(_pair(column, value, pad), overflow="fold")


def _plain(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str) -> None:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    for row in [list(columns), *rows]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def pairs(*items: tuple[str, str]) -> None:
    """`key  value` lines, keys aligned; a status coloured in a terminal."""
    pad = max(len(k) for k, _ in items)
    for key, value in items:
        if interactive():
            out.print(_pair(key, " ".join(value.split()), pad), soft_wrap=True)
        else:
            line(f"{key:<{pad}}  {' '.join(value.split())}")
