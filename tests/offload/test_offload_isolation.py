"""offload/ never imports Django: statically (no import statement) and at run time (no module loaded)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

OFFLOAD = Path(__file__).resolve().parents[2] / "offload"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_offload_module_imports_django_or_boardsite():
    files = sorted(OFFLOAD.rglob("*.py"))
    assert len(files) >= 8, "the offload package went missing"
    offenders = {str(f.relative_to(OFFLOAD)): sorted(_imports(f) & {"django", "boardsite"}) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_offload_module_loads_no_django():
    modules = [
        ".".join(p.relative_to(OFFLOAD.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted(OFFLOAD.rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', 'boardsite')))\n"
        "print(len(sys.modules)); assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=OFFLOAD.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
