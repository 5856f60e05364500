"""How a template may use a secret: only whole, as `{{ secrets.NAME }}`, checked before any run.

Redaction finds a secret's value (and its URL/JSON encodings) in what is stored or shown; it cannot
find a transformed value (reversed, upper-cased, sliced, spelled out letter by letter). So nothing
may be computed over a secret: this static check of the Jinja AST refuses any filter, call, test,
subscript, slice, comparison, concatenation, loop, assignment or capture that involves `secrets`,
at create, update and dry-run time, naming the field. A secret may also not be handed to the
built-in tools whose output is computed from their input (`extract`, `llm_prompt`, `render`'s
`data`), which would transform it just the same.
"""

import functools
from collections.abc import Iterator

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from taskloom.access import Access, grant_hint
from taskloom.domain.tasks import Step, TaskFields
from taskloom.domain.templates import template_leaves
from taskloom.errors import InvalidInput, InvalidInputs

ROOT = "secrets"
WHOLE_RULE = (
    "A secret may only stand whole, as {{ secrets.NAME }} (alone or inside a larger text such as "
    "'Bearer {{ secrets.NAME }}'); nothing may filter, call, test, index, slice, compare, join, "
    "loop over or capture it."
)
# Tool -> the args that may not carry a secret (None: none of them): their output is computed from
# their input, so a secret passed in would come out transformed, past redaction.
SECRET_FREE_ARGS: dict[str, frozenset[str] | None] = {
    "agent": None,
    "extract": None,
    "llm_prompt": None,
    "render": frozenset({"data"}),
}
# Statements whose body's output goes straight into the rendered text, uncaptured.
_PASS_THROUGH: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.If,
    nodes.For,
    nodes.With,
    nodes.Scope,
    nodes.ScopedEvalContextModifier,
)


def check_task_secrets(fields: TaskFields) -> list[InvalidInput]:
    """Every misuse of a secret in a task's steps and notify policy, each naming its field."""
    problems: list[InvalidInput] = []
    for i, step in enumerate(fields.steps):
        problems += check_step_secrets(f"steps[{i}]", step)
    for where, url in notify_urls(fields):
        if "{" in url and not is_secret_reference(url):
            problems.append(
                InvalidInput(
                    where,
                    url,
                    "Give a literal URL or exactly one secret reference, '{{ secrets.NAME }}'.",
                )
            )
    return problems


def notify_urls(fields: TaskFields) -> list[tuple[str, str]]:
    """The task's notification URLs with their fields: the webhook and the Apprise URLs."""
    urls = [(f"notify.urls[{i}]", url) for i, url in enumerate(fields.notify.urls)]
    webhook = fields.notify.webhook_url
    return [("notify.webhook_url", webhook), *urls] if webhook else urls


def check_grants(fields: TaskFields, *, owner: str, access: Access) -> None:
    """Raise, naming each field, when the task uses a secret not granted to `owner`."""
    problems: list[InvalidInput] = []
    leaves = list(template_leaves([s.args for s in fields.steps], "steps"))
    leaves += notify_urls(fields)
    for path, source in leaves:
        for name in access.refused_secrets(owner, secret_names_in(source)):
            problems.append(
                InvalidInput(
                    _step_path(path),
                    f"secrets.{name}",
                    f"Secret {name!r} is not granted to {owner!r}: {grant_hint(name)}.",
                )
            )
    if problems:
        raise InvalidInputs(problems)


def secret_names_in(source: str) -> set[str]:
    template = _parsed(source)
    if template is None:
        return set()
    found = (_whole_name(n) for n in template.find_all((nodes.Getattr, nodes.Getitem)))
    return {name for name in found if name is not None}


def _step_path(path: str) -> str:
    """`steps[0][headers]`-style leaves of the args list back to `steps[0].args.headers`."""
    head, _, rest = path.partition("].")
    return f"{head}].args.{rest}" if rest else path


def check_step_secrets(where: str, step: Step) -> list[InvalidInput]:
    problems: list[InvalidInput] = []
    banned = SECRET_FREE_ARGS.get(step.tool, frozenset())
    for path, source in template_leaves(step.args, f"{where}.args"):
        misuse = misuse_of_secrets(source)
        if misuse is not None:
            problems.append(InvalidInput(path, source, f"{WHOLE_RULE} Here it is {misuse}."))
            continue
        secret_free = banned is None or _arg_name(path, where) in banned
        if secret_free and uses_secrets(source):
            problems.append(_transforming_tool(path, source, step.tool))
    return problems


def _transforming_tool(path: str, source: str, tool: str) -> InvalidInput:
    return InvalidInput(
        path,
        source,
        f"A secret may not be passed to {tool!r} here: its output is computed from this "
        "argument, so the secret would come out transformed and unredacted. Use secrets only "
        "where they are sent (http_request headers/url/body, notify webhook_url and urls, "
        "upstream tools) or whole in a render template.",
    )


def _arg_name(path: str, where: str) -> str:
    rest = path.removeprefix(f"{where}.args.")
    return rest.split(".", 1)[0].split("[", 1)[0]


def is_secret_reference(text: str) -> bool:
    """Whether `text` is exactly one whole secret, `{{ secrets.NAME }}`."""
    body = _body(text)
    if body is None or len(body) != 1 or not isinstance(body[0], nodes.Output):
        return False
    parts = body[0].nodes
    return len(parts) == 1 and _whole_name(parts[0]) is not None


def uses_secrets(source: str) -> bool:
    template = _parsed(source)
    return template is not None and any(n.name == ROOT for n in template.find_all(nodes.Name))


def misuse_of_secrets(source: str) -> str | None:
    """How the template misuses a secret (e.g. "passed through the filter 'reverse'"), or None
    when every use stands whole. A template that does not parse is left to the other checks."""
    template = _parsed(source)
    if template is None:
        return None
    parents = dict(_parent_links(template))
    for name in template.find_all(nodes.Name):
        if name.name != ROOT:
            continue
        why = _misuse_at(name, parents)
        if why is not None:
            return why
    return None


def _misuse_at(name: nodes.Name, parents: dict[int, nodes.Node]) -> str | None:
    if name.ctx != "load":
        return "reassigned"
    parent = parents.get(id(name))
    if parent is None or _whole_name(parent) is None:
        return _describe(parent)
    holder = parents.get(id(parent))
    if not isinstance(holder, nodes.Output):
        return _describe(holder)
    return _captured(holder, parents)


def _captured(output: nodes.Output, parents: dict[int, nodes.Node]) -> str | None:
    """An output inside a macro, `{% set %}` block, `{% filter %}` or call block is captured and
    can be transformed afterwards; only outputs under pass-through statements are safe."""
    node: nodes.Node | None = parents.get(id(output))
    while node is not None:
        if not isinstance(node, _PASS_THROUGH):
            return _describe(node)
        node = parents.get(id(node))
    return None


def _whole_name(node: nodes.Node) -> str | None:
    """The secret's name when `node` is `secrets.NAME` or `secrets['NAME']`."""
    if isinstance(node, nodes.Getattr) and _is_root(node.node):
        return node.attr
    if isinstance(node, nodes.Getitem) and _is_root(node.node):
        key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        return key if isinstance(key, str) else None
    return None


def _is_root(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == ROOT and node.ctx == "load"


_KINDS: tuple[tuple[type[nodes.Node] | tuple[type[nodes.Node], ...], str], ...] = (
    ((nodes.Getattr, nodes.Getitem, nodes.Slice), "indexed, sliced or read into"),
    ((nodes.Compare, nodes.Operand), "compared"),
    (nodes.Concat, "joined with ~"),
    ((nodes.BinExpr, nodes.UnaryExpr), "used in an operation"),
    ((nodes.Call, nodes.Keyword), "called or passed to a call"),
    (nodes.For, "looped over or used in a loop"),
    ((nodes.CondExpr, nodes.If), "used in a condition"),
    ((nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair), "put in a list or mapping"),
    ((nodes.Assign, nodes.AssignBlock, nodes.Macro, nodes.CallBlock), "assigned or captured"),
    ((nodes.FilterBlock, nodes.With), "captured by a block"),
    (nodes.Output, "used bare (the whole mapping), not as secrets.NAME"),
)


def _describe(node: nodes.Node | None) -> str:
    if isinstance(node, nodes.Filter):
        return f"passed through the filter {node.name!r}"
    if isinstance(node, nodes.Test):
        return f"tested with 'is {node.name}'"
    for kinds, words in _KINDS:
        if isinstance(node, kinds):
            return words
    return "used bare, not as secrets.NAME" if node is None else f"used in {type(node).__name__}"


def _parent_links(root: nodes.Node) -> Iterator[tuple[int, nodes.Node]]:
    for child in root.iter_child_nodes():
        yield id(child), root
        yield from _parent_links(child)


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment()


@functools.lru_cache(maxsize=1024)
def _parsed(source: str) -> nodes.Template | None:
    try:
        return _environment().parse(source)
    except TemplateSyntaxError:
        return None


def _body(text: str) -> list[nodes.Node] | None:
    template = _parsed(text)
    return None if template is None else list(template.body)
