"""How `python -m deploy` commands run Zappa's own CLI (schedule, move): as a subprocess, from the project root.

The command is the ``zappa`` script beside this Python, or ``BOARDSITE_ZAPPA`` when set (the played deploy in the
tests runs Zappa through ``python -m tests.zappa_on_moto zappa``, which works around gaps of the local AWS).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ZappaFailed(Exception):
    """A Zappa command exited non-zero (its own output has already been printed)."""


def command() -> list[str]:
    override = os.environ.get("BOARDSITE_ZAPPA")
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).parent / "zappa"
    return [str(beside) if beside.is_file() else shutil.which("zappa") or "zappa"]


def shown(args: list[str]) -> str:
    """The command as an operator would type it."""
    return shlex.join(["zappa", *args])


def run(args: list[str], *, echo: Callable[[str], None] = print) -> None:
    """Run ``zappa ARGS`` from the project root (where Zappa finds the prebuild script and packages from)."""
    echo(f"$ {shown(args)}")
    sys.stdout.flush()  # before Zappa writes to the same stream
    done = subprocess.run([*command(), *args], cwd=ROOT)
    if done.returncode != 0:
        raise ZappaFailed(f"`{shown(args)}` exited with {done.returncode}")
