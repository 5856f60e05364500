"""http_request against a real HTTP server on 127.0.0.1."""

import socket
from typing import Any

import pytest

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.http_request import TOOL

from .conftest import HUGE_BYTES, ITEMS, LIMIT_BYTES, ApiServer, RecordingTransport


async def call(ctx: ToolContext, **args: Any) -> Any:
    return await TOOL.invoke(args, ctx)


async def test_returns_status_headers_text_and_parsed_json(
    ctx: ToolContext, api: ApiServer
) -> None:
    """A JSON answer comes back as status, lower-case headers, text and parsed json."""
    out = await call(ctx, url=api.url("/items"))
    assert out["status"] == 200
    assert out["headers"]["content-type"] == "application/json"
    assert out["json"] == {"items": ITEMS}
    assert '"lamp"' in out["text"]


async def test_sends_method_params_headers_and_json_body(ctx: ToolContext, api: ApiServer) -> None:
    """Method, query parameters, headers and a JSON body reach the server as given."""
    out = await call(
        ctx,
        url=api.url("/echo?keep=1"),
        method="post",
        params={"q": "lamps", "tag": ["a", "b"]},
        headers={"X-Token": "t0k"},
        json={"price": 19.9},
    )
    seen = out["json"]
    assert seen["method"] == "POST"
    assert seen["query"] == [["keep", "1"], ["q", "lamps"], ["tag", "a"], ["tag", "b"]]
    assert seen["headers"]["x-token"] == "t0k"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == '{"price": 19.9}'


async def test_sends_a_raw_text_body(ctx: ToolContext, api: ApiServer) -> None:
    """A `body` string is sent unchanged."""
    out = await call(ctx, url=api.url("/echo"), method="PUT", body="raw words")
    assert out["json"]["body"] == "raw words"


async def test_a_non_json_body_gives_text_and_null_json(ctx: ToolContext, api: ApiServer) -> None:
    """A body that is not JSON is returned as text with json null."""
    out = await call(ctx, url=api.url("/text"))
    assert (out["text"], out["json"]) == ("plain words", None)


async def test_an_error_status_fails_the_step_by_default(ctx: ToolContext, api: ApiServer) -> None:
    """A 500 answer fails the step with the status and the start of the body."""
    with pytest.raises(
        StepToolError, match=r"answered 500: 'boom: database down'.*raise_for_status"
    ):
        await call(ctx, url=api.url("/fail"))


async def test_raise_for_status_false_returns_the_error_status(
    ctx: ToolContext, api: ApiServer
) -> None:
    """With raise_for_status false a 500 answer is returned for later steps to judge."""
    out = await call(ctx, url=api.url("/fail"), raise_for_status=False)
    assert (out["status"], out["text"]) == (500, "boom: database down")


@pytest.mark.slow
async def test_a_slow_server_fails_after_timeout_s(ctx: ToolContext, api: ApiServer) -> None:
    """A server slower than timeout_s fails the step with a timeout message."""
    with pytest.raises(StepToolError, match=r"did not finish within 0.2 s"):
        await call(ctx, url=api.url("/slow"), timeout_s=0.2)


async def test_a_declared_oversized_body_fails(ctx: ToolContext, api: ApiServer) -> None:
    """A Content-Length over the limit fails the step before the body is read."""
    with pytest.raises(StepToolError, match=rf"over the {LIMIT_BYTES}-byte limit.*{HUGE_BYTES}"):
        await call(ctx, url=api.url("/huge"))


async def test_a_streamed_oversized_body_fails(ctx: ToolContext, api: ApiServer) -> None:
    """A chunked body that grows past the limit fails the step; nothing partial is returned."""
    with pytest.raises(StepToolError, match=rf"over the {LIMIT_BYTES}-byte limit"):
        await call(ctx, url=api.url("/huge-stream"))


async def test_a_head_request_ignores_the_declared_body_size(
    ctx: ToolContext, api: ApiServer
) -> None:
    """HEAD returns the headers of a large resource without tripping the size limit."""
    out = await call(ctx, url=api.url("/huge"), method="HEAD")
    assert (out["status"], out["headers"]["content-length"], out["text"]) == (
        200,
        str(HUGE_BYTES),
        "",
    )


async def test_a_refused_connection_fails_with_a_hint(ctx: ToolContext) -> None:
    """A port nobody listens on fails the step naming the request and the cause."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        StepToolError, match=rf"GET http://127.0.0.1:{port}/ failed: .*ConnectError"
    ):
        await call(ctx, url=f"http://127.0.0.1:{port}/")


async def test_follows_a_relative_redirect(ctx: ToolContext, api: ApiServer) -> None:
    """A redirect is followed and the output names the final URL."""
    out = await call(ctx, url=api.url("/redirect"), params={"to": "/items"})
    assert out["json"] == {"items": ITEMS}
    assert out["url"] == api.url("/items")


async def test_a_303_after_post_becomes_a_get_without_body(
    ctx: ToolContext, api: ApiServer
) -> None:
    """A 303 answer to a POST is followed with a bodiless GET."""
    out = await call(
        ctx, url=api.url("/redirect"), method="POST", params={"to": "/echo", "status": 303}, json=1
    )
    assert (out["json"]["method"], out["json"]["body"]) == ("GET", "")


async def test_a_cross_origin_redirect_drops_credentials(ctx: ToolContext, api: ApiServer) -> None:
    """Authorization is not forwarded when a redirect leads to another origin."""
    target = api.url("/echo", host="localhost")
    out = await call(
        ctx, url=api.url("/redirect"), params={"to": target}, headers={"Authorization": "x"}
    )
    assert "authorization" not in out["json"]["headers"]
    assert out["json"]["headers"]["host"] == f"localhost:{api.port}"


async def test_a_cross_origin_redirect_drops_every_header_the_task_set(
    ctx: ToolContext, api: ApiServer
) -> None:
    """No header the task set (an API key, a custom token) follows a redirect to another origin."""
    target = api.url("/echo", host="localhost")
    headers = {"X-Api-Key": "k3y-value", "X-Custom": "c", "Cookie": "a=b", "Accept": "text/x"}
    out = await call(ctx, url=api.url("/redirect"), params={"to": target}, headers=headers)
    seen = {name.lower() for name in out["json"]["headers"]}
    assert not seen & {"x-api-key", "x-custom", "cookie", "accept-x"}
    assert out["json"]["headers"].get("accept") != "text/x"
    assert "k3y-value" not in str(out["json"])


async def test_a_same_origin_redirect_keeps_the_task_headers(
    ctx: ToolContext, api: ApiServer
) -> None:
    """A redirect within the same origin keeps every header the task set."""
    out = await call(
        ctx, url=api.url("/redirect"), params={"to": "/echo"}, headers={"X-Api-Key": "k3y"}
    )
    assert out["json"]["headers"]["x-api-key"] == "k3y"


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]/"]
)
async def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    ctx: ToolContext, api: ApiServer, transport: RecordingTransport, target: str
) -> None:
    """A redirect to a metadata, private or loopback address is refused without connecting."""
    with pytest.raises(StepToolError, match="Refused to connect"):
        await call(ctx, url=api.url("/redirect"), params={"to": target})
    assert len(transport.urls) == 1
    assert transport.urls[0].startswith(api.url("/redirect"))


async def test_a_redirect_loop_stops_after_five_redirects(
    ctx: ToolContext, api: ApiServer, transport: RecordingTransport
) -> None:
    """More than five redirects fail the step."""
    with pytest.raises(StepToolError, match="redirected more than 5 times"):
        await call(ctx, url=api.url("/loop"))
    assert len(transport.urls) == 6


async def test_a_redirect_to_another_scheme_is_refused(ctx: ToolContext, api: ApiServer) -> None:
    """A redirect to a non-HTTP URL fails the step."""
    with pytest.raises(StepToolError, match="only http:// and https://"):
        await call(ctx, url=api.url("/redirect"), params={"to": "file:///etc/passwd"})


async def test_loopback_is_refused_without_allow_hosts(
    strict_ctx: ToolContext, api: ApiServer, transport: RecordingTransport
) -> None:
    """A loopback URL is refused when the operator allowed nothing."""
    with pytest.raises(StepToolError, match=r"127.0.0.1: it is a loopback address.*ALLOW_HOSTS"):
        await call(strict_ctx, url=api.url("/items"))
    assert transport.urls == []


async def test_a_name_resolving_to_loopback_is_refused(
    strict_ctx: ToolContext, api: ApiServer, transport: RecordingTransport
) -> None:
    """A host name is checked after DNS resolution."""
    with pytest.raises(StepToolError, match=r"localhost: it resolves to 127.0.0.1 is a loopback"):
        await call(strict_ctx, url=api.url("/items", host="localhost"))
    assert transport.urls == []


async def test_an_allowed_host_name_is_reached_under_its_own_name(
    strict_ctx: ToolContext, api: ApiServer, transport: RecordingTransport
) -> None:
    """An allowed name is connected to at its vetted address, keeping its Host header."""
    strict_ctx.allow_hosts = "example.org, localhost"
    out = await call(strict_ctx, url=api.url("/echo", host="localhost"))
    assert out["json"]["headers"]["host"] == f"localhost:{api.port}"
    assert transport.urls == [api.url("/echo")]


async def test_an_allowed_network_covers_its_addresses(
    strict_ctx: ToolContext, api: ApiServer
) -> None:
    """A CIDR in allow_hosts allows every address inside it."""
    strict_ctx.allow_hosts = "127.0.0.0/8"
    out = await call(strict_ctx, url=api.url("/items"))
    assert out["status"] == 200


async def test_a_metadata_host_name_is_refused_before_resolving(strict_ctx: ToolContext) -> None:
    """A cloud metadata host name is refused by name."""
    with pytest.raises(StepToolError, match=r"metadata.google.internal: it is a cloud metadata"):
        await call(strict_ctx, url="http://metadata.google.internal/computeMetadata/v1/")


async def test_a_non_http_url_is_rejected_by_the_arguments(strict_ctx: ToolContext) -> None:
    """A file:// URL fails argument validation and names the field."""
    with pytest.raises(StepToolError, match=r"url: Value error, must start with http"):
        await call(strict_ctx, url="file:///etc/passwd")


async def test_json_and_body_together_are_rejected(strict_ctx: ToolContext) -> None:
    """Giving both json and body is an argument error."""
    with pytest.raises(StepToolError, match="either json or body"):
        await call(strict_ctx, url="https://example.org/", json={}, body="x")


async def test_timeout_s_above_300_is_rejected(strict_ctx: ToolContext) -> None:
    """timeout_s is capped at 300 seconds."""
    with pytest.raises(StepToolError, match="timeout_s: Input should be less than or equal to 300"):
        await call(strict_ctx, url="https://example.org/", timeout_s=301)
