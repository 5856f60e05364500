"""Identifiers: a prefix, then 26 Crockford base32 characters that sort by creation time (ULID)."""

import secrets
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str, now: datetime) -> str:
    """`tsk_...` / `run_...`: millisecond time first, so ids sort in creation order."""
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(reversed(chars))}"
