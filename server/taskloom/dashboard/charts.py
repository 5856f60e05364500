"""Inline SVG charts drawn on the server: no script, no external asset. Colours come from the
stylesheet through `st-<status>` classes; every mark has a <title> and every chart an aria-label
that says in words what it shows."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

MAX_BAR_STEP = 28.0


@dataclass(frozen=True)
class Point:
    """One run on a chart, oldest first."""

    label: str  # what the mark's tooltip says
    status: str
    duration_ms: int | None


def _svg(width: int, height: int, label: str, body: str, css: str = "chart") -> Markup:
    return Markup(
        f'<svg class="{css}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" preserveAspectRatio="none">{body}</svg>'
    )


def _longest(points: Sequence[Point]) -> int:
    return max([p.duration_ms or 0 for p in points] + [1])


def sparkline(points: Sequence[Point], width: int = 120, height: int = 28) -> Markup:
    """Durations as a line, each run a dot in its status colour."""
    if not points:
        return Markup('<span class="muted">no runs</span>')
    top, step = _longest(points), width / max(len(points), 1)
    xy = [
        (step * i + step / 2, height - 3 - (p.duration_ms or 0) / top * (height - 6))
        for i, p in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(
        f'<circle class="st-{escape(p.status)}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">'
        f"<title>{escape(p.label)}</title></circle>"
        for p, (x, y) in zip(points, xy, strict=True)
    )
    label = f"Durations of the last {len(points)} runs, longest {top} ms"
    return _svg(width, height, label, f'<polyline class="spark" points="{line}"/>{dots}')


def duration_bars(points: Sequence[Point], width: int = 640, height: int = 140) -> Markup:
    """One bar per run, its height the duration, its colour the status."""
    if not points:
        return Markup('<p class="muted">No runs yet.</p>')
    # Bars stay slim with few runs (one run is not a wall of colour).
    top, step = _longest(points), min(width / len(points), MAX_BAR_STEP)
    bars = "".join(
        _bar(i * step, step, height, (p.duration_ms or 0) / top, p) for i, p in enumerate(points)
    )
    label = f"Duration of each of the last {len(points)} runs; the longest took {top} ms"
    return _svg(width, height, label, bars)


def _bar(x: float, step: float, height: int, share: float, p: Point) -> str:
    tall = max(2.0, share * (height - 4))
    return (
        f'<rect class="st-{escape(p.status)}" x="{x + 1:.1f}" y="{height - tall:.1f}" '
        f'width="{max(step - 2, 1):.1f}" height="{tall:.1f}">'
        f"<title>{escape(p.label)}</title></rect>"
    )


def success_line(points: Sequence[Point], width: int = 640, height: int = 80) -> Markup:
    """The share of succeeded runs among the last five at each run, 0 to 100 %."""
    ended = [p for p in points if p.status not in ("running", "queued")]
    if not ended:
        return Markup('<p class="muted">No finished runs yet.</p>')
    rates = []
    for i in range(len(ended)):
        window = ended[max(0, i - 4) : i + 1]
        rates.append(sum(p.status == "succeeded" for p in window) / len(window))
    step = min(width / len(rates), MAX_BAR_STEP)  # under the duration chart's bars
    xy = [(step * i + step / 2, height - 6 - r * (height - 12)) for i, r in enumerate(rates)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    label = (
        f"Success rate over the last five runs at each of {len(ended)} runs; now {rates[-1]:.0%}"
    )
    grid = (
        f'<line class="grid" x1="0" y1="6" x2="{width}" y2="6"/>'
        f'<line class="grid" x1="0" y1="{height - 6}" x2="{width}" y2="{height - 6}"/>'
        f'<text class="axis" x="{width - 4}" y="16">100 %</text>'
        f'<text class="axis" x="{width - 4}" y="{height - 10}">0 %</text>'
    )
    dots = "".join(
        f'<circle class="rate-dot" cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{r:.0%}</title></circle>'
        for (x, y), r in zip(xy, rates, strict=True)
    )
    return _svg(width, height, label, f'{grid}<polyline class="rate" points="{line}"/>{dots}')


@dataclass(frozen=True)
class Span:
    """One step on the waterfall."""

    label: str
    status: str
    started_at: datetime | None
    duration_ms: int | None


def waterfall(
    spans: Sequence[Span], start: datetime | None, total_ms: int, width: int = 640
) -> Markup:
    """Each step a bar from its start to its end on the run's time axis."""
    row, height = 22, 22 * max(len(spans), 1)
    total = max(total_ms, 1)
    marks = []
    for i, span in enumerate(spans):
        offset = 0.0
        if start is not None and span.started_at is not None:
            offset = max(0.0, (span.started_at - start).total_seconds() * 1000)
        x = min(offset / total, 1.0) * (width - 4)
        wide = max(3.0, (span.duration_ms or 0) / total * (width - 4))
        marks.append(
            f'<rect class="st-{escape(span.status)}" x="{x:.1f}" y="{i * row + 4}" '
            f'width="{min(wide, width - x):.1f}" height="{row - 8}">'
            f"<title>{escape(span.label)}</title></rect>"
        )
    label = f"Waterfall of {len(spans)} steps over {total_ms} ms"
    return _svg(width, height, label, "".join(marks), css="chart waterfall")
