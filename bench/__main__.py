"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks, print the table."""

import argparse
import asyncio
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from bench import (
    chaos,
    dashboard,
    firing,
    footprint,
    history,
    hostile,
    priority,
    retention,
    stdio_bench,
    tokens,
)
from bench.common import Config, Row

BENCHMARKS: dict[str, Callable[[Config], Awaitable[list[Row]]]] = {
    "cold_start": stdio_bench.cold_start,
    "tool_latency": stdio_bench.tool_latency,
    "firing": firing.throughput,
    "lateness": firing.lateness_per_minute,
    "burst": firing.lateness_burst,
    "history": history.history,
    "dashboard": dashboard.dashboard,
    "processes": firing.processes,
    "footprint": footprint.footprint,
    "tokens": tokens.tools_list,
    "chaos": chaos.chaos,
    "hostile": hostile.hostile_neighbour,
    "priority": priority.priority_burst,
    "retention": retention.retention,
}
# Seconds one benchmark may take; chaos kills 100 workers on each of two stores.
TIMEOUT_S = {"chaos": 1800}


def _num(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | figure | value | baseline | baseline value | ratio | target | met |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        ratio = (
            "" if r.ratio is None else f"{r.ratio:.2f}x" if r.ratio >= 0.1 else f"{r.ratio:.2g}x"
        )
        lines.append(
            f"| {r.bench} | {r.metric} | {_num(r.value, r.unit)} | {r.baseline} | "
            f"{_num(r.baseline_value, r.unit if r.baseline_value is not None else '')} | "
            f"{ratio} | {r.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> str:
    import os

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"{mem:.0f} GiB, Python {platform.python_version()}"
    )


async def main(cfg: Config, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        started = time.perf_counter()
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        try:
            got = await asyncio.wait_for(BENCHMARKS[name](cfg), TIMEOUT_S.get(name, 600))
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            got = [Row(name, f"FAILED: {type(exc).__name__}: {str(exc)[:120]}", float("nan"), "")]
        rows += got
        print(f"   {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        for r in got:
            print(f"   {r.metric}: {_num(r.value, r.unit)}", file=sys.stderr, flush=True)
    return rows


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, ~4 minutes")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="repeatable")
    parser.add_argument("--profile", action="store_true", help="py-spy the firing worker")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp databases and logs")
    args = parser.parse_args()
    cfg = Config(quick=args.quick, keep=args.keep, profile=args.profile)
    names = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    try:
        rows = asyncio.run(main(cfg, names))
    finally:
        if not cfg.keep:
            shutil.rmtree(cfg.workdir, ignore_errors=True)
    print(f"\nMachine: {machine()}")
    mode = "quick" if cfg.quick else "full"
    print(f"Mode: {mode}; {time.perf_counter() - started:.0f} s; workdir {cfg.workdir}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    cli()
