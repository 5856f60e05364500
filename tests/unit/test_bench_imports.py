"""bench/ is not type-checked with the package: importing every benchmark module at least catches
a name the code no longer has (a rename once broke `python -m bench` this way)."""

import importlib
import pkgutil

import bench
import pytest

MODULES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name != "__main__")


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_the_benchmark_entry_point_imports() -> None:
    importlib.import_module("bench.__main__")
