"""Whether a step's resolved arguments and output can be stored as JSON.

A template may resolve to something JSON cannot hold (a method such as `dict.keys`, a set, a
date object from an upstream tool). The runner fails that step with the path of the offending
value, so it is never the database write that fails and the run always gets its final record.
"""

import math
from typing import Any, NamedTuple

_SCALARS = (str, int, float, bool, type(None))


class Unstorable(NamedTuple):
    path: str
    value: Any

    def describe(self) -> str:
        kind = type(self.value).__name__
        shown = repr(self.value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return f"{self.path} is a {kind} ({shown}), which cannot be stored as JSON"


def find_unstorable(value: Any, path: str) -> Unstorable | None:
    """The first value inside `value` that JSON cannot represent, with its path, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return Unstorable(path, value)
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, _SCALARS):  # json.dumps writes str, number and null keys
                return Unstorable(f"{path} key {key!r}", key)
            found = find_unstorable(item, f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_unstorable(item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return Unstorable(path, value)


def storable_copy(value: Any) -> Any:
    """`value` with everything JSON cannot hold replaced by a short description, for the record
    of a step that failed because of it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {str(key): storable_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_copy(item) for item in value]
    return f"<{type(value).__name__}: not JSON>"
