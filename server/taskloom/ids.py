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


def _encode(prefix: str, value: int) -> str:
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
