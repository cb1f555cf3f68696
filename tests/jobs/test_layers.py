"""The imports point one way: no import circles, no app importing an app above it, ``offload`` free of Django.

Read from the source with ``ast`` (nothing is imported): every ``import`` and ``from ... import`` in every .py file
under boardsite/, offload/ and deploy/, at module level and inside functions alike (a lazy import is still a
dependency, only a later one). ``from x import y`` counts as an import of the module ``x.y`` when there is one, else
of ``x``.

The apps' order, bottom to top (README, "Where things live"): core (with the project's plain helpers ``aws``,
``secrets``, ``coldstart``), mail, accounts, boards, images, notifications; the project's settings, URLs, Celery app
and entry points above them all. An app imports only apps below it. Producers announce events with their own signals
(``images/signals.py``, ``boards/signals.py``) that the apps above connect to, rather than importing them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("boardsite", "offload", "deploy", "devstack")

# Bottom to top. The plain project modules beside the apps sit with core (they import no app) or on top (they wire
# the apps together).
LAYERS: list[tuple[str, ...]] = [
    ("boardsite.core", "boardsite.aws", "boardsite.secrets", "boardsite.coldstart"),
    ("boardsite.mail",),
    ("boardsite.accounts",),
    ("boardsite.boards",),
    ("boardsite.invitations",),  # invitations by address: accounts and boards below it, the board page above
    ("boardsite.images",),
    ("boardsite.avatars",),  # profile pictures: images' upload path and cleanup, shown through accounts.avatars
    ("boardsite.notifications",),
    ("boardsite.api",),  # the JSON API for programs: boards, photos, downloads, its OpenAPI document
    ("boardsite.control",),  # the migration control room: it reads every app's runs and photos
    ("boardsite", "boardsite.settings", "boardsite.urls", "boardsite.celery", "boardsite.entry", "boardsite.wsgi"),
]
APPS = (
    "boardsite.mail",
    "boardsite.accounts",
    "boardsite.boards",
    "boardsite.invitations",
    "boardsite.images",
    "boardsite.avatars",
    "boardsite.notifications",
    "boardsite.api",
    "boardsite.control",
)

# Edges allowed although they break a rule, each with why (none today: issue 17 removed the last). Any other circle
# or upward import fails; an entry whose edge is gone fails too (the last tests say when).
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path, module: str, modules: Iterable[str]) -> set[str]:
    """Every module ``path`` imports (ours as module names, others by their full dotted name)."""
    known = set(modules)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from boardsite.notifications import events`` imports the module boardsite.notifications.events.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found


def internal(name: str, known: set[str]) -> str | None:
    """The module of ours that ``name`` is, or is inside (``import a.b.c`` of a known ``a.b``); None if not ours."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between our modules, every imported name per module)."""
    files = source_files()
    known = set(files)
    graph: dict[str, set[str]] = {}
    raw: dict[str, set[str]] = {}
    for module, path in files.items():
        raw[module] = imported_names(path, module, known)
        targets = {internal(name, known) for name in raw[module]}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph, raw


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that matches ``module``; None outside the Django project."""
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    return None if best is None else best[0]


def app_of(module: str) -> str | None:
    return next((app for app in APPS if module == app or module.startswith(app + ".")), None)


def upward_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    out = []
    for source, targets in graph.items():
        for target in targets:
            low, high = layer_of(source), layer_of(target)
            if low is not None and high is not None and high > low:
                out.append((source, target))
    return sorted(out)


def not_allowed(edges: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{a} -> {b}" for a, b in edges if (a, b) not in ALLOWED]


GRAPH, RAW = import_graph()


def test_the_graph_is_read():
    # A reader that found nothing would pass every test below.
    assert "boardsite.notifications.receivers" in GRAPH
    assert "boardsite.images.signals" in GRAPH["boardsite.notifications.receivers"]
    assert "boardsite.core.jobs" in GRAPH["devstack.management.commands.runjobs"]
    assert "celery.schedules" in RAW["boardsite.core.jobs"]  # inside a function


def test_no_import_circles():
    allowed_removed = {module: {t for t in targets if (module, t) not in ALLOWED} for module, targets in GRAPH.items()}
    assert circles(allowed_removed) == [], "modules that import each other, directly or around a circle"


def test_no_app_imports_an_app_above_it():
    assert not_allowed(upward_edges(GRAPH)) == [], f"the order, bottom to top: {[p[0] for p in LAYERS]}"


def test_core_imports_no_app():
    core = [
        (source, target)
        for source, targets in GRAPH.items()
        if layer_of(source) == 0
        for target in targets
        if app_of(target) is not None or layer_of(target) == len(LAYERS) - 1
    ]
    assert not_allowed(core) == []


def test_offload_never_imports_django_or_the_site():
    # offload runs as Lambda functions without Django (DESIGN.md): not even lazily.
    bad = [
        f"{module} -> {name}"
        for module, names in RAW.items()
        if module == "offload" or module.startswith("offload.")
        for name in names
        if name.split(".")[0] in ("boardsite", "django")
    ]
    assert bad == []


def test_runtime_never_imports_the_tooling():
    # devstack/ and deploy/ never ship in a zip (deploy/build.py SHIPPED): what does ship must not need them.
    bad = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] in ("boardsite", "offload")
        for target in targets
        if target.split(".")[0] in ("devstack", "deploy")
    ]
    assert bad == []


def test_every_allowed_edge_still_exists():
    # Once an edge is gone its entry must go too, or it would quietly allow the edge back.
    assert [f"{a} -> {b}" for a, b in ALLOWED if b not in GRAPH.get(a, set())] == []


def test_the_checks_catch_a_bad_import():
    # The checks themselves, on a graph with one planted wrong edge each (the real tree stays clean).
    planted = {module: set(targets) for module, targets in GRAPH.items()}
    planted["boardsite.boards.selectors"].add("boardsite.images.selectors")
    assert "boardsite.boards.selectors -> boardsite.images.selectors" in not_allowed(upward_edges(planted))
    assert ["boardsite.boards.selectors", "boardsite.images.selectors"] in circles(planted)


def test_tests_share_helpers_through_shared_modules():
    """A test module imports helpers from tests/factories.py, tests/helpers.py and the like, never from another test
    module or a conftest (whose fixtures pytest hands out by name)."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
