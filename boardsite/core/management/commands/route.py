"""Show or change where each job's work runs (the control page does the same; every change is recorded).

python manage.py route                                              # every job's route
python manage.py route process_image --share 5 --why "first canary" # 5 % on Lambda, the rest where it runs now
python manage.py route process_image --steps 5,25,100 --bake 600 --why "move it"   # 5 %, then 25 %, then all
python manage.py route process_image --share 0 --why "back"         # all of it back on the baseline
python manage.py route process_image --force KEY=lambda --why "try this one"       # one unit key (--unforce KEY)
python manage.py route process_image --history                      # who changed what, when and why
"""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from boardsite.core import routing
from boardsite.core.models import RouteChange
from offload import registry


class Command(BaseCommand):
    help = "Show or change where each job's work runs: a runtime, a share, or steps (boardsite/core/routing.py)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("job", nargs="?")
        parser.add_argument("--share", help="the share of the work on the canary, in %% (0-100, steps of 0.01)")
        parser.add_argument("--steps", help="shares to reach one after the other, in %%: 5,25,100")
        parser.add_argument("--bake", type=int, help="seconds at each step before the next (default 300)")
        parser.add_argument(
            "--canary",
            choices=registry.MODES,
            help="where the share runs (default: lambda, or celery for a job in lambda mode)",
        )
        parser.add_argument("--baseline", choices=registry.MODES, help="where the rest runs (default: its mode)")
        parser.add_argument("--shadow", help="the share of the work also run in shadow on the other runtime, in %%")
        parser.add_argument("--shadow-cap", type=int, help="at most this many shadow runs a day (default 1000)")
        parser.add_argument("--force", action="append", default=[], metavar="KEY=RUNTIME")
        parser.add_argument("--unforce", action="append", default=[], metavar="KEY")
        parser.add_argument("--why", default="", help="the reason, recorded with the change (required to change)")
        parser.add_argument("--history", action="store_true", help="the job's recorded changes, newest first")

    def handle(self, *args: Any, job: str | None, **options: Any) -> None:
        if job is None:
            for name in registry.JOBS:
                self.stdout.write(f"{name}: {routing.route(name).describe()}")
            return
        if job not in registry.JOBS:
            raise CommandError(f"there is no job {job!r}; the jobs are: {', '.join(registry.JOBS)}")
        if options["history"]:
            for change in RouteChange.objects.filter(job=job)[:50]:
                self.stdout.write(f"{change.at:%Y-%m-%d %H:%M:%S} {change.by} ({change.source}): {change.why}")
                self.stdout.write(f"    from {routing.audit_text(change.before)}")
                self.stdout.write(f"    to   {routing.audit_text(change.after)}")
            return
        force: dict[str, str | None] = {}
        for item in options["force"]:
            unit, sep, runtime = item.rpartition("=")
            if not sep or not unit:
                raise CommandError(f"--force takes KEY=RUNTIME, not {item!r}")
            force[unit] = runtime
        force.update({unit: None for unit in options["unforce"]})
        try:
            share = None if options["share"] is None else routing.parse_share(options["share"])
            steps = None if options["steps"] is None else [routing.parse_share(s) for s in options["steps"].split(",")]
            shadow = None if options["shadow"] is None else routing.parse_share(options["shadow"])
        except routing.RouteError as exc:
            raise CommandError(str(exc)) from None
        change = {
            "share": share,
            "steps": steps,
            "bake_seconds": options["bake"],
            "canary": options["canary"],
            "baseline": options["baseline"],
            "force": force or None,
            "shadow_share": shadow,
            "shadow_daily_cap": options["shadow_cap"],
        }
        if all(value is None for value in change.values()):
            self.stdout.write(f"{job}: {routing.route(job).describe()}")
            return
        try:
            route = routing.route_set(
                job=job, by=f"command:{getpass.getuser()}", source="command", why=options["why"], **change
            )
        except routing.RouteError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{job}: {route.describe()}" + (f"; next {_steps(route)}" if route.steps else ""))


def _steps(route: routing.Route) -> str:
    return " -> ".join(f"{s / 100:g} %" for s in route.steps) + f", {route.bake_seconds} s each"
