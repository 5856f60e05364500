"""Identifiers: a prefix, then 26 Crockford base32 characters that sort by creation time (ULID)."""

import secrets
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str, now: datetime) -> str:
    """`tsk_...` / `run_...`: millisecond time first, so ids sort in creation order."""
    return _encode(prefix, (int(now.timestamp() * 1000) << 80) | secrets.randbits(80))


def first_id_at(prefix: str, at: datetime) -> str:
    """The smallest id `new_id` can make at `at`: ids >= it were made at or after `at`."""
    return _encode(prefix, int(at.timestamp() * 1000) << 80)


# Every 10-bit value as its two characters: 13 lookups make the 26 (new_id runs once per run).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS = range(120, -1, -10)


def _encode(prefix: str, value: int) -> str:
    """26 characters, 5 bits each, most significant first (`value` < 2**130)."""
    return f"{prefix}_{''.join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])}"
