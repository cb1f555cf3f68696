"""`python -m deploy check web`: is the deployed site serving? Run it after `zappa manage web migrate` (DEPLOY.md §6)
and after every `zappa update web`.

Zappa's own check after a deploy (`touch`: a GET of `/` that fails the deploy on a 5xx) is off in the settings: on a
first deploy the home page needs tables that `migrate`, run after the deploy, creates, so it would report every
correct first deploy as failed. This is the check that replaces it, once the database is migrated:

1. ``GET <site>/healthz`` must answer 200 ``{"status": "ok"}``: the request went through API Gateway (whose
   integration assumes the web role: row 1 of issue 16), the function started, loaded its secrets from SSM, reached
   the database, and found no migration waiting;
2. ``GET <site>/`` must answer 200: a real page renders.

    python -m deploy check web [-s zappa_settings.json] [--url https://photos.example.com]

Without ``--url`` it asks AWS for the API Gateway URL Zappa made (``https://<id>.execute-api.<region>.amazonaws.com/
web``), as ``zappa status`` would. Exits 1 with the reason and what to do; prints one line per request.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.parse import config_from_settings

TIMEOUT = 30  # seconds: a cold start restores a snapshot (about a second), the first page may connect to the database


@dataclass(frozen=True)
class Answer:
    path: str
    status: int
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def get(base: str, path: str) -> Answer:
    request = urllib.request.Request(base.rstrip("/") + path, headers={"User-Agent": "boardsite-deploy-check"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Answer(path, response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(path, exc.code, exc.read())


def problems_of(health: Answer, home: Answer | None) -> list[str]:
    """What the answers say is wrong, with what to do about it (empty: the site serves)."""
    found = health.json()
    if health.status == 503 and found.get("status") == "not migrated":
        return [
            f"the database has {found.get('pending', 'some')} migration(s) to apply: run `zappa manage web migrate`, "
            "then this check again"
        ]
    if health.status == 503 and found.get("status") == "database unavailable":
        return [
            "the function cannot reach the database: check DATABASE_URL, the DATABASE_PASSWORD parameter in SSM, and "
            "that the database's security group admits the function's (DEPLOY.md §3); `zappa tail web --since 10m`"
        ]
    if health.status == 404:
        return [
            "/healthz is not there: is this boardsite, and is the code deployed the current one (`zappa update web`)?"
        ]
    if health.status in (500, 502) and not found.get("status"):
        return [
            f"/healthz answered {health.status} without reaching the site's code: if `zappa tail web --since 10m` "
            "shows no request, API Gateway could not invoke the function (the web role must trust "
            "apigateway.amazonaws.com and allow lambda:InvokeFunction: deploy the template again, DEPLOY.md §2); "
            "otherwise the log says why "
            "(a missing secret: DEPLOY.md §4)"
        ]
    if health.status != 200 or found.get("status") != "ok":
        return [f"/healthz answered {health.status}: {health.body[:300].decode(errors='replace')}"]
    if home is not None and home.status != 200:
        return [f"the home page answered {home.status}: `zappa tail web --since 10m` shows the error"]
    return []


def api_url(settings: dict[str, Any], stage: str = "web") -> str | None:
    """The URL Zappa gave the stage's API (``zappa status``): from Zappa's CloudFormation stack, else by its name."""
    from offload.aws import make_client

    cfg = config_from_settings(settings)
    name, endpoint = cfg.function_name(stage), os.environ.get("AWS_ENDPOINT_URL") or None
    api_id = None
    try:
        resource = make_client("cloudformation", cfg.region, endpoint).describe_stack_resource(
            StackName=name, LogicalResourceId="Api"
        )
        api_id = resource["StackResourceDetail"].get("PhysicalResourceId")
    except Exception:  # no stack: look the API up by name, as Zappa does
        pages = make_client("apigateway", cfg.region, endpoint).get_paginator("get_rest_apis").paginate()
        api_id = next((api["id"] for page in pages for api in page["items"] if api["name"] == name), None)
    return f"https://{api_id}.execute-api.{cfg.region}.amazonaws.com/{stage}" if api_id else None


def check(base: str, out: Any = None) -> list[str]:
    out = out or sys.stdout
    health = get(base, "/healthz")
    print(f"GET {base.rstrip('/')}/healthz -> {health.status} {health.body[:200].decode(errors='replace')}", file=out)
    home = None
    if health.status == 200:
        home = get(base, "/")
        print(f"GET {base.rstrip('/')}/ -> {home.status}", file=out)
    return problems_of(health, home)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stage", choices=["web"], help="the stage with the site (the functions stage has no HTTP)")
    parser.add_argument("-s", "--settings", default="zappa_settings.json")
    parser.add_argument("--url", help="the site's address (default: the API Gateway URL Zappa made)")
    args = parser.parse_args(argv)
    base = args.url
    if base and not base.startswith(("https://", "http://")):
        parser.error(f"--url: give the site's address with its scheme, e.g. https://{base}")
    if not base:
        settings = json.loads(Path(args.settings).read_text())
        try:
            base = api_url(settings, args.stage)
        except Exception as exc:  # no credentials, no network: say so, not a traceback
            print(f"could not ask AWS for the API's URL ({exc}); give --url", file=sys.stderr)
            return 1
        if not base:
            print(
                f"no API Gateway for {args.stage!r} in this account and region: was `zappa deploy` run?",
                file=sys.stderr,
            )
            return 1
    try:
        problems = check(base)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        print(f"{base} did not answer: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"check failed: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.stage}: {base} serves pages, migrations applied")
    return 1 if problems else 0
