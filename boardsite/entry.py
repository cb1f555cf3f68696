"""The web stage's Lambda entry point: Zappa's own handler, imported with the cyclic garbage collector paused.

Zappa's ``handler.py`` imports boto3, werkzeug and asyncio, then (``INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT``) Django and
the site, all before the first event; the collector walks those long-lived objects again and again while they are
made. The stage's ``lambda_handler`` setting points here, so the pause (boardsite/coldstart.py) starts before the first
of those imports and lasts to the end of the init; everything else is Zappa's handler, unchanged, except that an
event Zappa routes to a job of the registry (a queue's batch, a schedule) is measured and recorded as a Lambda run of
that job (offload/runs.py), as every other runtime's runs are.
"""

import time
from typing import Any

from boardsite import coldstart

coldstart.pause()

from handler import keep_warm_callback  # noqa: E402 - Zappa's, at the zip's root; after the pause
from handler import lambda_handler as zappa_handler  # noqa: E402

__all__ = ["keep_warm_callback", "lambda_handler"]


def lambda_handler(event: Any, context: Any) -> Any:
    job = job_of(event)
    if job is None:  # a page, keep-warm, a command: Zappa's alone
        return zappa_handler(event, context)
    from boardsite.core.runs import record
    from offload import runs

    return runs.measure(job, "lambda", lambda: zappa_handler(event, context), event, record)


def job_of(event: Any) -> Any:
    """The registry's job Zappa will run for ``event``, found as Zappa's handler finds the function (a schedule by its
    rule's name, a queue's records by their exact ARN in the settings' event mapping); None for anything else."""
    if not isinstance(event, dict):
        return None
    from offload import registry

    path = ""
    if event.get("detail-type") == "Scheduled Event":
        resources = event.get("resources") or [""]
        path = str(resources[0]).split("/")[-1].split("-")[-1]
    elif isinstance(event.get("Records"), list) and event["Records"] and isinstance(event["Records"][0], dict):
        arn = event["Records"][0].get("eventSourceARN")
        try:
            import zappa_settings  # the zip's root: what Zappa routes by
        except ImportError:
            return None
        mapped = getattr(zappa_settings, "AWS_EVENT_MAPPING", {}).get(arn) or ""
        path = mapped[0] if isinstance(mapped, list) and len(mapped) == 1 else mapped  # Zappa's is a list
    return registry.job_by_handler(path) if isinstance(path, str) and path else None


# The end of this process's initialisation, on the clock offload/runs.py's ``init_ms`` counts from its start.
READY_AT = time.clock_gettime(time.CLOCK_BOOTTIME)
