"""Who may see and use what when several principals share one server.

A principal is the name of an HTTP bearer token (TASKLOOM_HTTP_TOKENS). With one principal or
none (stdio, or HTTP on loopback without tokens) the server has a single user, who owns every
secret and is the operator. With several, a secret is usable only by the principals it is granted
to (TASKLOOM_SECRET_GRANTS), and process details are shown only to operators (TASKLOOM_OPERATORS).
"""

from dataclasses import dataclass

from taskloom.errors import TaskloomError
from taskloom.settings import Settings

GRANTS_SETTING = "TASKLOOM_SECRET_GRANTS"


@dataclass(frozen=True)
class Access:
    principals: frozenset[str]
    operators: frozenset[str]
    grants: dict[str, frozenset[str]]
    local_owner: str

    @classmethod
    def from_settings(cls, settings: Settings) -> "Access":
        names = {p.partition("=")[0].strip() for p in settings.http_tokens.split(",")}
        return cls(
            principals=frozenset(n for n in names if n),
            operators=frozenset(n.strip() for n in settings.operators.split(",") if n.strip()),
            grants=parse_grants(settings.secret_grants),
            local_owner=settings.owner,
        )

    @property
    def shared(self) -> bool:
        """Several principals: secrets are granted, process details are for operators."""
        return len(self.principals) > 1

    def is_operator(self, principal: str | None) -> bool:
        """None is the local user (stdio, or HTTP without tokens): the machine's operator."""
        return principal is None or not self.shared or principal in self.operators

    def may_use_secret(self, owner: str, name: str) -> bool:
        if not self.shared:
            return True
        # Tasks made by the local user (stdio on the same database) are the operator's own.
        if owner == self.local_owner and owner not in self.principals:
            return True
        return owner in self.grants.get(name, frozenset())

    def refused_secrets(self, owner: str, names: set[str]) -> list[str]:
        return sorted(n for n in names if not self.may_use_secret(owner, n))


def parse_grants(text: str) -> dict[str, frozenset[str]]:
    """`API_TOKEN=alice,bob;OTHER=carol` -> {"API_TOKEN": {alice, bob}, "OTHER": {carol}}."""
    grants: dict[str, frozenset[str]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, who = entry.partition("=")
        principals = frozenset(p.strip() for p in who.split(",") if p.strip())
        if not sep or not name.strip() or not principals:
            raise TaskloomError(
                f"{GRANTS_SETTING} entry {entry[:60]!r} is not NAME=principal[,principal]; "
                "write e.g. API_TOKEN=alice,bob;OTHER=carol."
            )
        grants[name.strip()] = grants.get(name.strip(), frozenset()) | principals
    return grants


def grant_hint(name: str) -> str:
    return f"ask the operator to add it to {GRANTS_SETTING} (e.g. {name}=<your principal>)"
