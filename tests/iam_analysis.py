"""The IAM call analysis: every AWS call a stage's code can make, read from the source (AST), and what the policy must
grant for it.

The calls are not listed by hand: boto3 client method calls (``aws.client("s3").x()``, a variable bound to a client, a
parameter named after a service), paginators and presigned URLs. Which code a stage runs is followed from its entry
points through imports and references between top-level functions, so a module imported for one helper does not drag
its other functions' calls in. Used by tests/deploy/test_iam.py (every stage) and tests/jobs/test_adding_a_job.py (a
job's own module).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from offload import registry

ROOT = Path(__file__).resolve().parents[1]

# Development tools shipped in the package but never run on Lambda (the local stack and the local job runner).
LOCAL_ONLY = {
    "boardsite.core.management.commands.devstack",
    "boardsite.core.management.commands.runjobs",
    "devstack.provision",
    "devstack.runner",
}
# Variables and parameters named after a service hold its client (``def list_keys(bucket, prefix, s3=None)``).
SERVICE_VARIABLES = {"s3": "s3", "sqs": "sqs", "ssm": "ssm", "sns": "sns", "ses": "ses", "lambda_client": "lambda"}
# Calls whose IAM action is not the operation's own name. A read that treats a missing object as normal needs
# ListBucket too: without it S3 answers 403, not 404.
ACTIONS = {
    ("s3", "ListObjectsV2"): ["s3:ListBucket"],
    ("s3", "ListObjects"): ["s3:ListBucket"],
    ("s3", "HeadObject"): ["s3:GetObject", "s3:ListBucket"],
    ("s3", "GetObject"): ["s3:GetObject", "s3:ListBucket"],
    ("s3", "DeleteObjects"): ["s3:DeleteObject"],
    ("s3", "CopyObject"): ["s3:GetObject", "s3:PutObject"],
    ("lambda", "Invoke"): ["lambda:InvokeFunction"],
}
# A presigned POST is signed by the role: the upload needs PutObject, and PutObjectTagging for its tagging field.
PRESIGNED_POST = ["s3:PutObject", "s3:PutObjectTagging"]
NOT_API = {"meta", "exceptions", "can_paginate", "close", "get_waiter"}


@dataclass
class Unit:
    """A top-level definition (or a module's other top-level statements): what it references and calls."""

    refs: set[tuple[str, str | None]] = field(default_factory=set)  # (module, name); name None = the module itself
    calls: list[tuple[str, str, str | None, int]] = field(default_factory=list)  # service, method, first arg, line


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in ("boardsite", "offload") for p in sorted((ROOT / pkg).rglob("*.py"))}


def client_service(node: ast.AST) -> str | None:
    """The service of ``*.client("svc")``, ``client("svc")``, ``make_client("svc", ...)`` (or ``x or client(...)``)."""
    if isinstance(node, ast.BoolOp):
        return next((s for s in map(client_service, node.values) if s), None)
    if isinstance(node, ast.Call):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name in ("client", "make_client") and node.args and isinstance(node.args[0], ast.Constant):
            return node.args[0].value
    return None


def parse_module(name: str, source: str) -> dict[str | None, Unit]:
    tree = ast.parse(source)
    package = name if name in all_modules() and all_modules()[name].name == "__init__.py" else name.rpartition(".")[0]
    aliases: dict[str, tuple[str, str | None]] = {}  # local name -> (module, attribute or None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.partition(".")[0]] = (a.name if a.asname else a.name.partition(".")[0], None)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for a in node.names:
                sub = f"{base}.{a.name}"
                aliases[a.asname or a.name] = (sub, None) if sub in all_modules() else (base, a.name)
    clients = dict(SERVICE_VARIABLES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                for t, v in pairs:
                    if isinstance(t, ast.Name) and (service := client_service(v)):
                        clients[t.id] = service
    top = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)} | {
        t.id: n for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    units: dict[str | None, Unit] = {}

    def scan(nodes: Iterable[ast.AST]) -> Unit:
        unit = Unit()
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, ast.Name):
                    if node.id in top:
                        unit.refs.add((name, node.id))
                    elif node.id in aliases:
                        unit.refs.add(aliases[node.id])
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    target = aliases.get(node.value.id)
                    if target and target[1] is None:
                        sub = f"{target[0]}.{node.attr}"
                        unit.refs.add((sub, None) if sub in all_modules() else (target[0], node.attr))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    owner = node.func.value
                    service = client_service(owner) or (clients.get(owner.id) if isinstance(owner, ast.Name) else None)
                    if service:
                        arg = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                        unit.calls.append((service, node.func.attr, arg, node.lineno))
        return unit

    for top_name, node in top.items():
        units[top_name] = scan([node])
    units[None] = scan(n for n in tree.body if n not in top.values())
    return units


@functools.cache
def units_of(module: str) -> dict[str | None, Unit]:
    return parse_module(module, all_modules()[module].read_text())


def reachable_calls(entry: Iterable[tuple[str, str | None]]) -> list[tuple[str, str, str | None, str]]:
    """Every AWS call in code reachable from ``entry`` (service, method, first argument, where)."""
    seen: set[tuple[str, str | None]] = set()
    todo = list(entry)
    calls = []
    while todo:
        module, name = todo.pop()
        if (module, name) in seen or module not in all_modules() or module in LOCAL_ONLY:
            continue
        seen.add((module, name))
        units = units_of(module)
        todo.append((module, None))  # importing anything from a module runs its top level
        if name is not None and name not in units:
            continue
        unit = units[name]
        todo.extend(unit.refs)
        calls += [(s, m, a, f"{module}:{line}") for s, m, a, line in unit.calls]
    return calls


def stage_entry(stage: str) -> list[tuple[str, str | None]]:
    handlers = [
        job.handler.rpartition(".") for job in registry.JOBS.values() if registry.ZAPPA_STAGES[job.side] == stage
    ]
    entry: list[tuple[str, str | None]] = [(module, attr) for module, _, attr in handlers]
    if stage == "web":
        # Django reaches views, middleware, apps, checks and commands by dotted strings: all of boardsite counts.
        entry += [(m, n) for m in all_modules() if m.startswith("boardsite") for n in units_of(m)]
    else:
        entry.append(("offload.wsgi", "application"))
    return entry


@functools.cache
def model_client(service: str):
    """A client used for ``service``'s API model only (which operation a method is): it never calls AWS."""
    return boto3.session.Session().client(
        service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def actions_for(service: str, method: str, arg: str | None) -> list[str]:
    if method == "generate_presigned_post":
        return PRESIGNED_POST
    if method in ("generate_presigned_url", "get_paginator"):
        assert arg, f"{service}.{method} without a literal operation name"
        method = arg
    operation = model_client(service).meta.method_to_api_mapping.get(method)
    assert operation, f"{service}.{method} is not an AWS API call this test knows"
    return ACTIONS.get((service, operation), [f"{service}:{operation}"])


def granted(policy: dict) -> set[str]:
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def missing_permissions(calls, policy: dict) -> list[str]:
    have = granted(policy)
    return sorted(
        f"{where}: {service}.{method} needs {action}"
        for service, method, arg, where in calls
        if method not in NOT_API
        for action in actions_for(service, method, arg)
        if action not in have
    )
