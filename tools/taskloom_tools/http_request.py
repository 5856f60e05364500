"""`http_request`: call an HTTP API or fetch a page."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from taskloom_tools.base import StepTool, StepToolError, ToolArgs, ToolContext, typed_run

if TYPE_CHECKING:
    from taskloom_tools.fetch import Outgoing

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
QueryValue = str | int | float | bool | list[str | int | float | bool]

DESCRIPTION = """\
Send one HTTP request and return the response.

Output: {"status": 200, "url": "<final URL after redirects>", "headers": {"content-type": ...},
"text": "<body as text>", "json": <body parsed as JSON, or null when it is not JSON>}.
Header names are lower-case. Redirects are followed (at most 5).

By default a status of 400 or above fails the step with the status and the start of the body; set
"raise_for_status": false to get the response anyway and let later steps decide.

Only public http/https addresses are reachable: loopback, private, link-local and cloud metadata
addresses are refused (also after DNS resolution and on redirects) unless the operator allows them.
A body over the server's size limit (5 MB by default) fails the step instead of being cut short.

Example: {"url": "https://api.example.com/v1/items", "params": {"q": "lamps", "limit": 10},
"headers": {"Authorization": "Bearer {{ secrets.EXAMPLE_TOKEN }}"}}; a later step reads
{{ steps.<this step id>.output.json.items }}."""


class HttpRequestArgs(ToolArgs):
    url: str = Field(description="http:// or https:// URL to call", min_length=1)
    method: Method = Field(default="GET", description="HTTP method")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers")
    params: dict[str, QueryValue] = Field(
        default_factory=dict,
        description="query parameters added to the URL; a list repeats the key",
    )
    json_body: Any = Field(
        default=None,
        alias="json",
        description="a JSON value to send as the body (sets Content-Type: application/json)",
    )
    body: str | None = Field(default=None, description="a raw text body (instead of json)")
    timeout_s: float = Field(
        default=30, gt=0, le=300, description="seconds for the whole exchange, redirects included"
    )
    raise_for_status: bool = Field(
        default=True,
        description="fail the step when the final status is 400 or above; false returns it",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestArgs:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either json or body, not both")
        return self


async def http_request(args: HttpRequestArgs, ctx: ToolContext) -> dict[str, Any]:
    from taskloom_tools.fetch import fetch  # imports httpx: only when a step runs

    outgoing = _outgoing(args)
    fetched = await fetch(ctx, outgoing, args.timeout_s)
    if args.raise_for_status and fetched.status >= 400:
        raise StepToolError(
            f"{outgoing.describe()} answered {fetched.status}: {_snippet(fetched.text)!r}. "
            "Check the URL and arguments, or set raise_for_status to false to handle the "
            "status in a later step."
        )
    return {
        "status": fetched.status,
        "url": fetched.url,
        "headers": fetched.headers,
        "text": fetched.text,
        "json": fetched.json(),
    }


def _outgoing(args: HttpRequestArgs) -> Outgoing:
    import httpx

    from taskloom_tools.fetch import Outgoing

    url = httpx.URL(args.url)
    if args.params:
        url = url.copy_merge_params(args.params)
    headers = dict(args.headers)
    content = None
    if args.json_body is not None:
        content = json.dumps(args.json_body, ensure_ascii=False).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif args.body is not None:
        content = args.body.encode()
    return Outgoing(args.method, url, headers, content)


def _snippet(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


TOOL = StepTool(
    name="http_request",
    description=DESCRIPTION,
    args_model=HttpRequestArgs,
    run=typed_run(HttpRequestArgs, http_request),
    read_only=False,
    open_world=True,
)
