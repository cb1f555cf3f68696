"""`python -m deploy move JOB celery|lambda`: move one job between Lambda and Celery workers, every trigger wired.

Rewrites the settings as ``configure --mode JOB=MODE`` would (every other choice is read back from the file; keys
``configure`` never writes are kept), then runs Zappa in the order in which no upload is processed twice, and
``python -m deploy wire`` after every Zappa command that touches triggers. The job's stage is the one that triggers
it (``functions`` for the offload side's jobs, ``web`` for the rest); the web stage is always updated, since
the site reads ``OFFLOAD_MODES`` from its zip.

To Celery (start the workers first, with the web stage's environment and the functions role's permissions):

    zappa unschedule STAGE            with the current settings, which still list the job's trigger (Zappa removes
                                      only what the settings list; it also removes the stage's SQS mappings)
    (the settings are rewritten)
    zappa schedule STAGE              the stage's other triggers back          (STAGE web: `zappa update web` does it)
    python -m deploy wire STAGE
    zappa update web                  the site now enqueues the job
    python -m deploy wire web

Between the unschedule and the update nothing runs the job at once; the site's sweep hands unfinished uploads over
again after PROCESSING_RETRY_SECONDS, so none is lost. Back to Lambda:

    (the settings are rewritten)
    zappa update web                  the site stops enqueueing the job
    zappa schedule STAGE              the job's trigger back                   (STAGE web: done by the update)
    python -m deploy wire STAGE, and wire web

then stop the workers once their queue is empty.

    python -m deploy move JOB celery --broker-url redis://jobs.internal:6379/0 [-s zappa_settings.json]
    python -m deploy move JOB lambda [--dry-run]

``--dry-run`` prints the commands and writes nothing. A Zappa command that fails stops the move; what is left to do
is printed (the settings file says where the move was going).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy import lint, wire, zappa_cli
from deploy.generate import build_settings
from deploy.lint import check_settings
from deploy.parse import config_from_settings
from offload import registry

MODES = ("celery", "lambda")


class MoveError(Exception):
    pass


def rewrite(settings: dict[str, Any], job: str, mode: str, broker_url: str | None) -> dict[str, Any]:
    """The settings with ``job`` in ``mode``: what ``configure`` writes for the file's choices plus that one."""
    cfg = config_from_settings(settings)
    modes = dict(cfg.modes)
    if mode == "lambda":
        modes.pop(job, None)
    else:
        modes[job] = mode
    if problem := registry.modes_problem(modes):
        raise MoveError(f"{problem} (boardsite.E003)")
    broker = (broker_url or cfg.broker_url) if "celery" in modes.values() else None
    try:
        new = build_settings(dataclasses.replace(cfg, modes=modes, broker_url=broker))
    except ValueError as exc:
        raise MoveError(str(exc)) from None
    for name, stage in settings.items():
        for key, value in stage.items():
            new.get(name, {}).setdefault(key, value)  # e.g. "touch": configure never writes it
    problems = check_settings(new)
    if problems:
        raise MoveError("the rewritten settings fail the registry check:\n  " + "\n  ".join(problems))
    return new


Step = tuple[str, Callable[[], None]]


def plan(job: str, mode: str, path: Path, write: Callable[[], None], wire_stage: Callable[[str], None]) -> list[Step]:
    """The steps of the move, each with the command an operator would type."""
    stage = registry.ZAPPA_STAGES[registry.get(job).side]
    settings = ["-s", str(path)]

    def zappa(*args: str) -> Step:
        return zappa_cli.shown([*args, *settings]), lambda: zappa_cli.run([*args, *settings])

    def wired(name: str) -> Step:
        return f"python -m deploy wire {name} -s {path}", lambda: wire_stage(name)

    written: Step = (f"(rewrite {path}: OFFLOAD_MODES {job}={mode}, the events of its stage)", write)
    if mode == "celery":
        steps = [zappa("unschedule", stage), written]
        if stage != "web":
            steps += [zappa("schedule", stage), wired(stage)]
        return [*steps, zappa("update", "web"), wired("web")]
    steps = [written, zappa("update", "web")]
    if stage != "web":
        steps += [zappa("schedule", stage), wired(stage)]
    return [*steps, wired("web")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy move", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("job", choices=sorted(registry.JOBS))
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    parser.add_argument("--broker-url", help="Celery's broker (moving to celery; default: the file's)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, change nothing")
    args = parser.parse_args(argv)
    path = Path(args.settings).resolve()
    settings = json.loads(path.read_text())
    current = lint.deployed_modes(settings).get(args.job, "lambda")
    if current == args.mode:
        print(f"{args.job} already runs in {args.mode} mode in {args.settings}: nothing to move")
        return 0
    try:
        new = rewrite(settings, args.job, args.mode, args.broker_url)
    except MoveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    problems: list[str] = []

    def write() -> None:
        path.write_text(json.dumps(new, indent=4) + "\n")  # as configure writes it

    def wire_stage(name: str) -> None:
        done, found = wire.wire(name, new[name], endpoint_url=endpoint)
        for line in done:
            print(f"  {line}")
        problems.extend(found)

    steps = plan(args.job, args.mode, path, write, wire_stage)
    if args.dry_run:
        print("\n".join(f"$ {shown}" for shown, _ in steps))
        return 0
    for i, (shown, step) in enumerate(steps):
        try:
            if not shown.startswith("zappa "):  # zappa_cli.run prints its own
                print(f"$ {shown}" if not shown.startswith("(") else shown, flush=True)
            step()
        except (zappa_cli.ZappaFailed, OSError) as exc:
            left = "\n".join(f"  {s}" for s, _ in steps[i:])
            print(f"error: {exc}. The move stopped here; what is left:\n{left}", file=sys.stderr)
            return 1
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.job} now runs in {args.mode} mode; every trigger of both stages is wired")
    return 0
