"""llm_prompt, with the Anthropic API faked at the HTTP transport only."""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import httpx2
import pytest
from tests.fixtures.anthropic import message_json

from taskloom_tools.base import StepToolError, ToolContext
from taskloom_tools.llm_prompt import TOOL

Handler = Callable[[httpx2.Request], httpx2.Response]


def error_json(kind: str, message: str) -> Any:
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }


class FakeApi:
    """Answers every request with `answer`, keeping the requests it saw."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.answer: Handler = lambda request: httpx2.Response(200, json=message_json())

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answer(request)

    def body(self, index: int = 0) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def llm_ctx(api: FakeApi, http: httpx.AsyncClient) -> AsyncIterator[ToolContext]:
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(api)) as anthropic_http:
        yield ToolContext(
            http=http,
            anthropic_api_key="sk-ant-test",
            anthropic_http=anthropic_http,
            anthropic_max_retries=0,
        )


async def test_returns_text_model_and_usage(llm_ctx: ToolContext) -> None:
    """The answer's text, model, stop reason and token usage are the output."""
    out = await TOOL.invoke({"prompt": "Summarise"}, llm_ctx)
    assert out == {
        "text": "Two issues are open.",
        "model": "claude-sonnet-4-6",
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 25, "output_tokens": 7},
    }


async def test_sends_prompt_system_model_and_max_tokens(llm_ctx: ToolContext, api: FakeApi) -> None:
    """The Messages API request carries the prompt, system, model and max_tokens given."""
    args = {"prompt": "Hi", "system": "Be brief.", "model": "claude-haiku-4-5", "max_tokens": 50}
    await TOOL.invoke(args, llm_ctx)
    assert api.requests[0].url.path == "/v1/messages"
    assert api.requests[0].headers["authorization"] == "Bearer sk-ant-test"
    assert api.body() == {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.",
    }


async def test_uses_the_default_model_and_no_system(llm_ctx: ToolContext, api: FakeApi) -> None:
    """Without model and system the context's default model is sent and no system prompt."""
    llm_ctx.default_model = "claude-opus-4-6"
    await TOOL.invoke({"prompt": "Hi"}, llm_ctx)
    assert api.body() == {
        "model": "claude-opus-4-6",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }


async def test_joins_the_text_blocks_of_the_answer(llm_ctx: ToolContext, api: FakeApi) -> None:
    """Several text blocks are joined into one text."""
    answer = message_json()
    answer["content"] = [{"type": "text", "text": "One. "}, {"type": "text", "text": "Two."}]
    api.answer = lambda request: httpx2.Response(200, json=answer)
    out = await TOOL.invoke({"prompt": "Hi"}, llm_ctx)
    assert out["text"] == "One. Two."


async def test_leaves_an_injected_client_open(llm_ctx: ToolContext) -> None:
    """The caller's Anthropic HTTP client is still usable after a call."""
    await TOOL.invoke({"prompt": "Hi"}, llm_ctx)
    assert llm_ctx.anthropic_http is not None
    assert not llm_ctx.anthropic_http.is_closed


async def test_without_a_key_asks_for_anthropic_api_key(llm_ctx: ToolContext, api: FakeApi) -> None:
    """With no API key the step fails naming ANTHROPIC_API_KEY, without calling the API."""
    llm_ctx.anthropic_api_key = None
    with pytest.raises(StepToolError, match="llm_prompt needs an Anthropic API key: set ANTHROPIC"):
        await TOOL.invoke({"prompt": "Hi"}, llm_ctx)
    assert api.requests == []


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (401, "authentication_error", r"rejected the API key \(401: invalid x-api-key\)"),
        (403, "permission_error", r"may not use model 'claude-sonnet-4-6' \(403"),
        (404, "not_found_error", r"Model 'claude-sonnet-4-6' was not found \(404"),
        (429, "rate_limit_error", r"rate-limited the request \(429.*Retry later"),
        (400, "invalid_request_error", r"refused the request \(400: invalid x-api-key\)"),
        (529, "overloaded_error", r"failed or is overloaded \(529"),
        (422, "invalid_request_error", r"answered 422: invalid x-api-key"),
    ],
)
async def test_api_errors_become_clear_step_errors(
    llm_ctx: ToolContext, api: FakeApi, status: int, kind: str, expected: str
) -> None:
    """Each API error status fails the step with what it means and what to do."""
    api.answer = lambda request: httpx2.Response(status, json=error_json(kind, "invalid x-api-key"))
    with pytest.raises(StepToolError, match=expected):
        await TOOL.invoke({"prompt": "Hi"}, llm_ctx)


async def test_a_connection_failure_names_the_api_address(
    llm_ctx: ToolContext, api: FakeApi
) -> None:
    """An unreachable API fails the step naming the address and ANTHROPIC_BASE_URL."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    api.answer = refuse
    llm_ctx.anthropic_base_url = "https://llm-gateway.example"
    with pytest.raises(StepToolError, match=r"reach the Anthropic API at https://llm-gateway.exa"):
        await TOOL.invoke({"prompt": "Hi"}, llm_ctx)
    assert str(api.requests[0].url) == "https://llm-gateway.example/v1/messages"


async def test_temperature_is_not_an_argument(llm_ctx: ToolContext) -> None:
    """temperature is rejected as an unknown argument (the API no longer accepts it)."""
    with pytest.raises(StepToolError, match="temperature: Extra inputs are not permitted"):
        await TOOL.invoke({"prompt": "Hi", "temperature": 0.2}, llm_ctx)
