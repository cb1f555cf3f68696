"""Zappa's ``prebuild_script`` entry points: ``"prebuild_script": "deploy.prebuild.web"`` (or ``.functions``).

Zappa calls the function with no arguments, from the repository root, in its own process, before it packages; it
reads ``VIRTUAL_ENV`` afterwards. So each entry point: finds its stage in the settings file Zappa was given, refuses a
settings file that cannot be deployed (``deploy.lint.check_deployable``), builds the stage's slim site-packages for
the stage's architecture (``deploy.build``), and points ``VIRTUAL_ENV`` at it. Before ``zappa deploy|update`` it
also reads from the account what AWS would refuse half-way (``deploy.account``: the concurrency quota, the VPC's DNS
flags and subnets' zones); ``zappa package`` calls no AWS.

Zappa loads this file as a top-level module named ``prebuild`` (it imports it from the ``deploy`` folder, not as
``deploy.prebuild``), with the ``zappa`` script's folder first on ``sys.path``: hence absolute imports, after putting
the repository root on the path.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy import account, build  # noqa: E402 - needs the root on sys.path first (see above)

SETTINGS_FLAGS = ("-s", "--settings_file")


def web() -> None:
    prebuild("web")


def functions() -> None:
    prebuild("functions")


def settings_file(argv: list[str]) -> Path:
    """The settings file Zappa was given (``-s``/``--settings_file``); Zappa's default otherwise."""
    for i, arg in enumerate(argv):
        if arg in SETTINGS_FLAGS and i + 1 < len(argv):
            return Path(argv[i + 1])
        for flag in SETTINGS_FLAGS:
            if arg.startswith(flag + "="):
                return Path(arg.split("=", 1)[1])
    return Path("zappa_settings.json")


def stage_name(argv: list[str], settings: dict[str, Any], kind: str) -> str:
    """The stage Zappa is packaging: the first command-line word naming a stage of the settings whose prebuild
    script is this one; else (``--all``) the only stage with this script."""
    script = f"deploy.prebuild.{kind}"
    mine = [name for name in settings if build.stage_config(settings, name).get("prebuild_script") == script]
    for arg in argv[1:]:
        if arg in mine:
            return arg
    if len(mine) == 1:
        return mine[0]
    raise SystemExit(f"{script}: cannot tell which stage is being packaged (stages using it: {mine or 'none'})")


def deployability_problems(name: str, stage: dict[str, Any], settings: dict[str, Any] | None = None) -> list[str]:
    """``deploy.lint.check_deployable`` (placeholders, ARNs, secrets...) and, given the whole file, the registry's
    check of every trigger (``check_settings``), when that module exists."""
    problems: list[str] = []
    try:
        lint = importlib.import_module("deploy.lint")
    except ModuleNotFoundError as exc:
        if exc.name != "deploy.lint":
            raise
        return problems
    problems += lint.check_deployable(name, stage)
    if settings is not None and hasattr(lint, "check_settings"):
        problems += lint.check_settings(settings)
    return problems


def prebuild(kind: str, argv: list[str] | None = None) -> Path:
    argv = sys.argv if argv is None else argv
    path = settings_file(argv)
    settings = build.load_settings(path)
    name = stage_name(argv, settings, kind)
    stage = build.stage_config(settings, name)
    problems = deployability_problems(name, stage, settings)
    if problems:
        raise SystemExit(f"refusing to package stage {name!r} of {path}:\n" + "\n".join(f"  - {p}" for p in problems))
    command = account.zappa_command(argv)
    found = account.problems(command, name, stage)
    for note in (p for p in found if p.startswith("note:")):
        print(f"deploy.prebuild: {note}", file=sys.stderr)
    refused = [p for p in found if not p.startswith("note:")]
    if refused:
        raise SystemExit(
            f"refusing to {command} stage {name!r}: the account would refuse it\n"
            + "\n".join(f"  - {p}" for p in refused)
        )
    venv = build.build_from_settings(name, stage)
    os.environ["VIRTUAL_ENV"] = str(venv)  # Zappa packages this venv's site-packages, not the one it runs from
    print(f"deploy.prebuild: stage {name!r} ({kind}, {stage.get('architecture', 'x86_64')}) built in {venv}")
    return venv


def included(zappa_cli: Any) -> list[str]:
    """Zappa's ``zip`` callback (``callbacks.zip`` of both stages), run after Zappa wrote the zip and before it
    uploads it: the zip keeps the stage's build (what ``VIRTUAL_ENV`` names: the packages and the project's
    ``build.SHIPPED`` entries) and Zappa's own files, nothing else of the project folder Zappa copied."""
    venv = Path(os.environ["VIRTUAL_ENV"])
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    if not (venv.parent / "build.json").exists():
        raise SystemExit(f"deploy.prebuild.included: {venv} is not a stage build (run the stage's prebuild_script)")
    dropped = build.keep_included(Path(zappa_cli.zip_path), site_packages)
    tops = sorted({name.split("/")[0] for name in dropped})
    print(f"deploy.prebuild: the zip holds the stage's build only (left out of the project folder: {', '.join(tops)})")
    return dropped
