"""The client is its own package: installable by `make` from locked packages, and never importing the site."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"


def test_the_client_never_imports_django_or_the_site():
    allowed = {"boardsite_client", "requests", "tqdm"}
    for path in (CLIENT / "src" / "boardsite_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_the_package_installs_from_the_lock_with_its_console_script():
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"boardsite": "boardsite_client.cli:main"}
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    lock = (ROOT / "requirements-dev.txt").read_text()
    for pinned in ("setuptools==", "tqdm==", "requests=="):
        assert f"\n{pinned}" in lock, f"{pinned} must be in the dev lock (make installs the client --no-deps)"
    recipe = (ROOT / "Makefile").read_text().split("$(STAMP): requirements-dev.txt", 1)[1].split("\n\n", 1)[0]
    install = "pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e client"
    assert install in recipe
    # After the prune, which removes what no lock names (the client is not in a lock).
    assert recipe.index("deploy lock --prune") < recipe.index(install)
