"""`python -m deploy schedule STAGE`: Zappa's ``schedule``, then ``wire``, so no trigger runs unwired.

``zappa schedule STAGE`` puts back every trigger the settings list (schedules, the S3 notification, SQS event source
mappings) but creates SQS mappings without partial batch responses or a concurrency bound; ``python -m deploy
wire`` then sets them (deploy/wire.py). Use it instead of ``zappa schedule`` alone, for example after ``zappa
unschedule STAGE``, which removes the stage's SQS mappings along with its schedules (Zappa passes no excluded
services there), or after ``zappa rollback``.

    python -m deploy schedule web [-s zappa_settings.json] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deploy import wire, zappa_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy schedule", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage")
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    path = Path(args.settings).resolve()
    settings = json.loads(path.read_text())
    if args.stage not in settings:
        parser.error(f"no stage {args.stage!r} in {args.settings}")
    if args.dry_run:
        print(f"$ {zappa_cli.shown(['schedule', args.stage, '-s', str(path)])}")
        print(f"$ python -m deploy wire {args.stage} -s {path}")
        return 0
    try:
        zappa_cli.run(["schedule", args.stage, "-s", str(path)])
    except zappa_cli.ZappaFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    done, problems = wire.wire(args.stage, settings[args.stage], endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    for line in done:
        print(line)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if problems else 0
