"""What the pages say, without a browser: triggers in words, bounded values, sessions that end,
and CSRF tokens that belong to one session."""

from datetime import UTC, datetime, timedelta

import pytest

from taskloom.clock import FrozenClock
from taskloom.dashboard import charts, views
from taskloom.dashboard.sessions import MAX_SESSIONS, Sessions

NOON = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("trigger", "words"),
    [
        ({"cron": "0 8 * * 1-5"}, "At 08:00, Monday through Friday (Europe/Berlin)"),
        ({"every": 1800}, "Every 30 minutes"),
        ({"every": "2h"}, "Every 2h"),
        ({"at": "2026-03-29T09:00:00+02:00"}, "Once, at 2026-03-29 09:00:00 CEST"),
        ({"event": "deploy.done"}, "When the event 'deploy.done' is emitted"),
        (None, "Manual only (run now)"),
    ],
)
def test_a_trigger_reads_as_words(trigger: dict[str, object] | None, words: str) -> None:
    """Each kind of trigger is said in words, a cron with the timezone it runs in."""
    assert views.trigger_words(trigger, "Europe/Berlin") == words


def test_a_long_value_shows_its_head_and_its_size() -> None:
    """A value longer than the preview shows PREVIEW_CHARS characters and says more is left."""
    shown = views.shown({"text": "x" * 10_000})
    assert shown is not None
    assert len(shown.head) == views.PREVIEW_CHARS
    assert shown.more
    assert shown.total > 10_000


def test_chart_marks_say_their_run_in_words() -> None:
    """Every bar carries its status as a class and its run as a title; the chart has a label."""
    svg = charts.duration_bars([charts.Point("run 1: failed, 20 ms", "failed", 20)])
    assert 'class="st-failed"' in svg
    assert "<title>run 1: failed, 20 ms</title>" in svg
    assert 'aria-label="Duration of each of the last 1 runs' in svg


def test_a_session_ends_after_its_time() -> None:
    """A session is found until TASKLOOM_DASHBOARD_SESSION_S has passed, then not."""
    clock = FrozenClock(NOON)
    sessions = Sessions(clock, ttl_s=60)
    opened = sessions.open("alice")
    clock.set(NOON + timedelta(seconds=59))
    assert sessions.get(opened.id) == opened
    clock.set(NOON + timedelta(seconds=60))
    assert sessions.get(opened.id) is None


def test_the_oldest_session_goes_first_past_the_limit() -> None:
    """Past MAX_SESSIONS open sessions the oldest is closed."""
    sessions = Sessions(FrozenClock(NOON), ttl_s=60)
    first = sessions.open("alice")
    for _ in range(MAX_SESSIONS):
        sessions.open("bob")
    assert sessions.get(first.id) is None


def test_a_csrf_token_belongs_to_its_session() -> None:
    """A session's CSRF token is refused for another session, and so is none."""
    sessions = Sessions(FrozenClock(NOON), ttl_s=60)
    alice, bob = sessions.open("alice"), sessions.open("bob")
    assert sessions.csrf_ok(alice, sessions.csrf(alice))
    assert not sessions.csrf_ok(bob, sessions.csrf(alice))
    assert not sessions.csrf_ok(alice, None)
