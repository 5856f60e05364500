"""The outage record: two log lines per outage whatever the number of failures, and the reason
given to fires that fall inside it."""

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from taskloom.scheduling.outage import Outage

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    """A hundred failed operations in one outage make one warning, and its end one more."""
    outage = Outage(T0)
    with capture_logs() as logs:
        for _ in range(100):
            outage.failed("claim", ConnectionRefusedError("refused"))
        outage.succeeded(T0 + timedelta(seconds=30))
    assert [(e["event"], e.get("failed_operations")) for e in logs] == [
        ("database_unreachable", None),
        ("database_reachable_again", 100),
    ]


def test_fires_inside_an_outage_get_its_reason() -> None:
    """A fire between the last success before the outage and the first after it names the
    outage; fires outside it get no reason."""
    outage = Outage(T0)
    outage.failed("heartbeat", TimeoutError())
    outage.succeeded(T0 + timedelta(seconds=30))
    inside = outage.reason(T0 + timedelta(seconds=10))
    assert inside is not None
    assert inside.startswith("the database was unreachable from 2026-11-30T12:00:00+00:00")
    assert outage.reason(T0 + timedelta(seconds=31)) is None
