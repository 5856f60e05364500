"""Secret exfiltration through a real `taskloom serve --transport http` with two principals: every
transform of a secret is refused at create, update and dry run, naming the field; a principal
without a grant cannot use it at all; and after legitimate runs no form of the value (as is,
reversed, upper-cased, spaced, dotted, base64) is in the database, its WAL, the logs or any
answer."""

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from fastmcp.exceptions import ToolError

from tests.fixtures.api_server import ApiServer
from tests.fixtures.taskloom_process import HttpServer, http_server
from tests.hostile.conftest import named

pytestmark = pytest.mark.slow

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
SECRET = "Zq7-plum-Kettle-4410"
HOOK_SECRET_NAME = "HOOK_URL"

TRANSFORMS = [
    "{{ secrets.API_TOKEN|reverse }}",
    "{{ secrets.API_TOKEN|list|join('.') }}",
    "{{ secrets.API_TOKEN|upper }}",
    "{{ secrets.API_TOKEN|lower }}",
    "{{ secrets.API_TOKEN[::-1] }}",
    "{{ secrets.API_TOKEN[0] }}",
    "{{ secrets.API_TOKEN[1:] }}",
    "{{ 'x' ~ secrets.API_TOKEN }}",
    "{{ secrets.API_TOKEN + 'x' }}",
    "{{ secrets.API_TOKEN == 'guess' }}",
    "{{ secrets.API_TOKEN > 'M' }}",
    "{{ 'Z' in secrets.API_TOKEN }}",
    "{% for c in secrets.API_TOKEN %}{{ c }} {% endfor %}",
    "{{ secrets.API_TOKEN.replace('a', 'b') }}",
    "{{ secrets.API_TOKEN.encode() }}",
    "{{ secrets.API_TOKEN|tojson|b64encode }}",
    "{{ secrets.API_TOKEN|urlencode }}",
    "{{ secrets['API_TOKEN']|reverse }}",
    "{{ secrets|dictsort }}",
    "{{ secrets.items()|list }}",
    "{{ secrets }}",
    "{{ secrets.API_TOKEN is startingwith('Z') }}",
    "{{ secrets.API_TOKEN if true else '' }}",
    "{{ [secrets.API_TOKEN]|join }}",
    "{{ '%s'|format(secrets.API_TOKEN) }}",
    "{% set t = secrets.API_TOKEN %}{{ t|reverse }}",
    "{% set t %}{{ secrets.API_TOKEN }}{% endset %}{{ t|reverse }}",
    "{% filter reverse %}{{ secrets.API_TOKEN }}{% endfilter %}",
    "{% macro m() %}{{ secrets.API_TOKEN }}{% endmacro %}{{ m()|reverse }}",
    "{% with t = secrets.API_TOKEN %}{{ t|upper }}{% endwith %}",
    "{% if secrets.API_TOKEN|length > 3 %}long{% endif %}",
    "Bearer {{ secrets.API_TOKEN|trim }}",
]


def forms(value: str) -> list[str]:
    """The shapes a leaked secret could take."""
    return [
        value,
        value[::-1],
        value.upper(),
        value.lower(),
        " ".join(value),
        ".".join(value),
        base64.b64encode(value.encode()).decode().rstrip("="),
        base64.b64encode(json.dumps(value).encode()).decode().rstrip("="),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api: ApiServer) -> Iterator[HttpServer]:
    """Alice is granted both secrets, bob neither."""
    db = tmp_path_factory.mktemp("secrets") / "t.db"
    env = {
        "TASKLOOM_HTTP_TOKENS": f"alice={ALICE},bob={BOB}",
        "TASKLOOM_SECRET_GRANTS": f"API_TOKEN=alice;{HOOK_SECRET_NAME}=alice",
        "TASKLOOM_SECRET_API_TOKEN": SECRET,
        f"TASKLOOM_SECRET_{HOOK_SECRET_NAME}": api.url(f"/hook/{SECRET}"),
        "TASKLOOM_HTTP_ALLOW_HOSTS": "127.0.0.1",
        "TASKLOOM_LOG_LEVEL": "debug",
    }
    with http_server(db, **env) as running:
        yield running


def client(server: HttpServer, token: str) -> Client[StreamableHttpTransport]:
    return Client(StreamableHttpTransport(f"{server.url}/mcp", auth=token), timeout=120)


def render(template: str) -> dict[str, Any]:
    return {"id": "say", "tool": "render", "args": {"template": template}}


def header(template: str) -> dict[str, Any]:
    return {
        "id": "call",
        "tool": "http_request",
        "args": {"url": "https://example.invalid/", "headers": {"X-Key": template}},
    }


async def refused(c: Client[Any], tool: str, args: dict[str, Any]) -> str:
    with pytest.raises(ToolError) as caught:
        await c.call_tool(tool, args)
    return str(caught.value)


@pytest.mark.parametrize("template", TRANSFORMS)
async def test_a_transformed_secret_is_refused_at_create_update_and_dry_run(
    server: HttpServer, template: str
) -> None:
    """Each transform is refused at create_task, update_task and dry_run, naming the field."""
    async with client(server, ALICE) as alice:
        message = await refused(
            alice, "create_task", {"name": named("t"), "steps": [render(template)]}
        )
        assert "steps[0].args.template" in message
        assert "may only stand whole" in message
        ok = await alice.call_tool("create_task", {"name": named("t"), "steps": [render("hi")]})
        task_id = ok.structured_content["task"]["id"]  # type: ignore[index]
        patch = {"task_id": task_id, "steps": [header(template)]}
        message = await refused(alice, "update_task", patch)
        assert "steps[0].args.headers.X-Key" in message
        message = await refused(alice, "dry_run", {"steps": [render(template)]})
        assert "steps[0].args.template" in message


WHOLE = "{{ secrets.API_TOKEN }}"
COMPUTING_STEPS = [
    {"id": "x", "tool": "extract", "args": {"data": WHOLE, "expression": "@"}},
    {"id": "x", "tool": "render", "args": {"template": "{{ t }}", "data": {"t": WHOLE}}},
    {"id": "x", "tool": "llm_prompt", "args": {"prompt": f"Reverse {WHOLE}"}},
]


@pytest.mark.parametrize("step", COMPUTING_STEPS, ids=["extract", "render-data", "llm_prompt"])
async def test_a_whole_secret_is_refused_where_a_tool_would_compute_on_it(
    server: HttpServer, step: dict[str, Any]
) -> None:
    """A secret passed to a tool whose output is computed from it is refused at create."""
    async with client(server, ALICE) as alice:
        message = await refused(alice, "create_task", {"name": named("t"), "steps": [step]})
    assert "may not be passed to" in message
    assert f"'{step['tool']}'" in message


async def test_a_principal_without_a_grant_cannot_use_the_secret(server: HttpServer) -> None:
    """Bob, with no grant, is refused a whole secret at create and dry run, naming the grant."""
    steps = [render("key={{ secrets.API_TOKEN }}")]
    async with client(server, BOB) as bob:
        for tool, args in [
            ("create_task", {"name": named("t"), "steps": steps}),
            ("dry_run", {"steps": steps}),
        ]:
            message = await refused(bob, tool, args)
            assert "steps[0].args.template" in message
            assert "'API_TOKEN' is not granted to 'bob'" in message
            assert "TASKLOOM_SECRET_GRANTS" in message
        hook = {
            "name": named("t"),
            "steps": [render("hi")],
            "notify": {"webhook_url": "{{ secrets.HOOK_URL }}"},
        }
        message = await refused(bob, "create_task", hook)
        assert "notify.webhook_url" in message
        assert SECRET not in message  # fmt: skip


async def test_legitimate_runs_leave_no_form_of_the_secret_anywhere(
    server: HttpServer, api: ApiServer
) -> None:
    """Runs that use secrets whole succeed, and no form of the value is stored, logged or shown."""
    answers: list[Any] = []
    key = uuid.uuid4().hex
    steps = [
        {
            "id": "call",
            "tool": "http_request",
            "args": {
                "url": api.url("/echo") + "?k={{ secrets.API_TOKEN }}",
                "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
            },
        },
        render("got {{ steps.call.output.json.headers.authorization }} / {{ secrets.API_TOKEN }}"),
        {
            "id": "tell",
            "tool": "notify",
            "args": {
                "message": f"{{{{ steps.say.output }}}} {WHOLE}",
                "webhook_url": api.url(f"/hook/{key}"),
            },
        },
    ]
    task = {
        "name": named("uses a secret"),
        "steps": steps,
        "notify": {"on": "always", "webhook_url": "{{ secrets.HOOK_URL }}"},
    }
    async with client(server, ALICE) as alice:
        created = await alice.call_tool("create_task", task)
        answers.append(created.structured_content)
        task_id = created.structured_content["task"]["id"]  # type: ignore[index]
        ran = await alice.call_tool("run_task", {"task_id": task_id})
        answers.append(ran.structured_content)
        assert ran.structured_content["run"]["status"] == "succeeded", ran  # type: ignore[index]
        dry = await alice.call_tool("dry_run", {"steps": steps})
        answers.append(dry.structured_content)
        for tool, args in [
            ("get_task", {"task_id": task_id}),
            ("get_run", {"run_id": ran.structured_content["run"]["id"]}),  # type: ignore[index]
            ("task_history", {}),
            ("list_tasks", {}),
            ("scheduler_status", {}),
        ]:
            answers.append((await alice.call_tool(tool, args)).structured_content)
        answers.append(await alice.read_resource(f"taskloom://tasks/{task_id}"))
    shown = answers[3]["task"]["notify"]["webhook_url"]
    assert shown == "{{ secrets.HOOK_URL }}"
    assert api.hooks[key], "the notify step's webhook was not called"
    assert api.hooks[SECRET], "the task's secret webhook_url was not used"
    assert "[secret:API_TOKEN]" in json.dumps(answers[1])
    places = {
        "answers": json.dumps(answers, default=str),
        "log": server.log.read_text(errors="replace"),
        **{p.name: p.read_bytes().decode("latin-1") for p in server.log.parent.glob("t.db*")},
    }
    stored = "".join(text for place, text in places.items() if place.startswith("t.db"))
    assert "[secret:API_TOKEN]" in stored  # the scan reads where the runs were written
    for place, text in places.items():
        for form in forms(SECRET):
            assert form not in text, (place, form)
