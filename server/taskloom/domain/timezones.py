"""Timezone names an author may write that do not mean what they think.

`EST` is a valid tz database name, but a fixed -05:00 with no daylight saving time: a task at
"9:00 EST" runs at 10:00 in New York all summer. Abbreviations (`PST`, `CET`, `IST`), the POSIX
rule zones (`EST5EDT`) and the fixed `Etc/GMT+5` offsets are refused with the IANA zone the author
most likely meant.
"""

import re

# Abbreviation (upper case) -> the IANA zone(s) people usually mean by it.
ABBREVIATIONS = {
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "ET": "America/New_York",
    "EST5EDT": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "CT": "America/Chicago",
    "CST6CDT": "America/Chicago",
    "MST": "America/Denver (or America/Phoenix, which keeps no daylight saving time)",
    "MDT": "America/Denver",
    "MT": "America/Denver",
    "MST7MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "PT": "America/Los_Angeles",
    "PST8PDT": "America/Los_Angeles",
    "AKST": "America/Anchorage",
    "AKDT": "America/Anchorage",
    "HST": "Pacific/Honolulu",
    "AST": "America/Halifax",
    "ADT": "America/Halifax",
    "NST": "America/St_Johns",
    "BRT": "America/Sao_Paulo",
    "ART": "America/Argentina/Buenos_Aires",
    "WET": "Europe/Lisbon",
    "WEST": "Europe/Lisbon",
    "BST": "Europe/London",
    "CET": "Europe/Berlin (or Europe/Paris, Europe/Madrid, ...)",
    "CEST": "Europe/Berlin (or Europe/Paris, Europe/Madrid, ...)",
    "MET": "Europe/Berlin",
    "MEZ": "Europe/Berlin",
    "EET": "Europe/Athens (or Europe/Helsinki, Europe/Bucharest, ...)",
    "EEST": "Europe/Athens (or Europe/Helsinki, Europe/Bucharest, ...)",
    "MSK": "Europe/Moscow",
    "SAST": "Africa/Johannesburg",
    "WAT": "Africa/Lagos",
    "CAT": "Africa/Maputo",
    "EAT": "Africa/Nairobi",
    "IST": "Asia/Kolkata (India), Europe/Dublin (Ireland) or Asia/Jerusalem (Israel)",
    "PKT": "Asia/Karachi",
    "ICT": "Asia/Bangkok",
    "WIB": "Asia/Jakarta",
    "SGT": "Asia/Singapore",
    "HKT": "Asia/Hong_Kong",
    "PHT": "Asia/Manila",
    "JST": "Asia/Tokyo",
    "KST": "Asia/Seoul",
    "AWST": "Australia/Perth",
    "ACST": "Australia/Adelaide",
    "ACDT": "Australia/Adelaide",
    "AEST": "Australia/Sydney (or Australia/Brisbane, which keeps no daylight saving time)",
    "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland",
    "NZDT": "Pacific/Auckland",
}
_FIXED_OFFSET = re.compile(r"^Etc/GMT[+-]\d{1,2}$")
_NOT_A_PLACE = frozenset({"localtime", "Factory"})


def legacy_zone_problem(name: str) -> str | None:
    """Why `name` is a poor trigger timezone, with the zone to use instead; None when it is fine."""
    meant = ABBREVIATIONS.get(name.upper())
    if meant is not None:
        return (
            f"{name!r} is an abbreviation or a fixed offset, not a place: it does not follow "
            f"daylight saving time the way the place does. Use the IANA zone {meant}"
        )
    if _FIXED_OFFSET.match(name):
        return (
            f"{name!r} is a fixed offset (its sign is inverted: Etc/GMT+5 is UTC-05:00) with no "
            "daylight saving time. Use the IANA zone of the place, e.g. 'America/New_York', or "
            "'UTC'"
        )
    if name in _NOT_A_PLACE:
        return f"{name!r} is not a place. Use an IANA zone such as 'Europe/Berlin' or 'UTC'"
    return None
