"""notify through Apprise URLs, delivered to the real loopback test API: json:// and ntfy://
reach it, a refused address, an unknown scheme and a malformed URL fail the step, by name."""

import uuid

import pytest

from taskloom_tools.apprise_channel import problem
from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.notify import TOOL

from .conftest import ApiServer


def hook(api: ApiServer, scheme: str = "json") -> tuple[str, str]:
    """An Apprise URL that posts to the test API's recording endpoint, and its key."""
    key = uuid.uuid4().hex
    return f"{scheme}://127.0.0.1:{api.port}/hook/{key}", key


async def test_json_url_delivers_title_and_message(ctx: ToolContext, api: ApiServer) -> None:
    """A json:// URL posts the title and the message to the loopback server."""
    url, key = hook(api)
    out = await TOOL.invoke({"title": "Rates", "message": "EUR up", "urls": [url]}, ctx)
    assert out == {"delivered": ["log", "apprise:json"], "not_delivered": []}
    (posted,) = api.hooks[key]
    assert (posted["title"], posted["message"]) == ("Rates", "EUR up")


async def test_ntfy_url_publishes_to_its_topic(ctx: ToolContext, api: ApiServer) -> None:
    """An ntfy:// URL of a self-hosted server publishes the message to its topic."""
    topic = uuid.uuid4().hex
    url = f"ntfy://127.0.0.1:{api.port}/{topic}"
    out = await TOOL.invoke({"title": "Backup", "message": "done", "urls": [url]}, ctx)
    assert out["delivered"] == ["log", "apprise:ntfy"]
    (published,) = api.hooks[topic]
    assert (published["title"], published["message"]) == ("Backup", "done")


async def test_level_reaches_the_service(ctx: ToolContext, api: ApiServer) -> None:
    """The notification's level travels as Apprise's notification type."""
    url, key = hook(api)
    await TOOL.invoke({"message": "broken", "urls": [url], "level": "failure"}, ctx)
    assert api.hooks[key][0]["type"] == "failure"


async def test_loopback_is_refused_without_the_operators_leave(
    strict_ctx: ToolContext, api: ApiServer
) -> None:
    """An Apprise URL to a loopback address fails the step through the address guard."""
    url, key = hook(api)
    with pytest.raises(StepToolError, match=r"urls\[0\].*Refused to connect to 127\.0\.0\.1"):
        await TOOL.invoke({"message": "hi", "urls": [url]}, strict_ctx)
    assert key not in api.hooks


async def test_unknown_scheme_fails_the_step_naming_it(ctx: ToolContext) -> None:
    """A scheme Apprise does not know fails the step, naming it and the fix."""
    with pytest.raises(StepToolError, match=r"urls\[0\].*no nosuch:// service.*ntfy://"):
        await TOOL.invoke({"message": "hi", "urls": ["nosuch://x"]}, ctx)


async def test_malformed_url_fails_the_step(ctx: ToolContext) -> None:
    """A URL its service cannot parse fails the step, naming the service."""
    with pytest.raises(StepToolError, match=r"urls\[0\].*not a valid Telegram URL"):
        await TOOL.invoke({"message": "hi", "urls": ["tgram://"]}, ctx)


async def test_a_service_that_refuses_fails_the_step(ctx: ToolContext, api: ApiServer) -> None:
    """A service answering with an error status fails the step, saying so."""
    url = f"json://127.0.0.1:{api.port}/fail"
    with pytest.raises(StepToolError, match=r"did not accept the notification"):
        await TOOL.invoke({"message": "hi", "urls": [url]}, ctx)


def test_problem_tells_a_mistake_from_a_missing_service() -> None:
    """Unknown and malformed URLs are mistakes; a fine URL has no problem."""
    unknown, malformed = problem("nosuch://x"), problem("tgram://")
    assert unknown is not None
    assert unknown.is_mistake
    assert malformed is not None
    assert malformed.is_mistake
    assert problem("ntfy://my-topic") is None


def test_more_than_ten_urls_are_refused() -> None:
    """A notification names at most 10 Apprise URLs."""
    with pytest.raises(StepToolError, match="urls"):
        TOOL.parse_args({"message": "hi", "urls": ["ntfy://t"] * 11})
