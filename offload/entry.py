"""The functions stage's Lambda entry point: Zappa's handler without what it imports for HTTP.

Zappa's ``handler.py`` imports werkzeug, asyncio, tarfile and, through ``zappa.utilities``, boto3 before it looks at
an event: about 40 ms of CPU on every cold start of a stage that only ever receives AWS event records (S3
notifications, the mail queue's batches, the sweep's re-sent S3 events). The stage's ``lambda_handler`` setting
points here. An event made of ``Records`` alone is routed exactly as Zappa's ``LambdaHandler.handler`` routes it (the
same mapping from ``zappa_settings.py``, the same call, the same log lines); every other event, and every setting
this module does not implement (remote settings or project archive, slim handler, Django, an exception handler,
websockets), goes to Zappa's own handler, imported then. tests/offload/test_entry.py runs both on the same events and
compares.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import time
from types import ModuleType
from typing import Any

# As Zappa's handler module does at import, under its logger's name, so the log lines read the same.
logging.basicConfig()
logger = logging.getLogger("handler")
logger.setLevel(logging.INFO)

# Settings only Zappa's handler implements: with any of them set, every event goes there.
ZAPPA_ONLY_SETTINGS = (
    "REMOTE_ENV",
    "ARCHIVE_PATH",
    "SLIM_HANDLER",
    "DJANGO_SETTINGS",
    "EXCEPTION_HANDLER",
    "WEBSOCKET_HANDLER_MODULE",
    "APP_TYPE",
)

_state: dict[str, Any] = {}

# Python's cyclic garbage collector is paused from here (Lambda's init) to the end of the first event, which is most
# of the cold start's work: importing botocore and Pillow, loading S3's model, making the clients. It walked those
# long-lived objects again and again while they were made (~15-20 ms CPU of a cold start). After a first event that
# returned, everything alive is frozen (gc.freeze: never walked again) with the little garbage the event left in
# reference cycles (~80 KB measured; tests/offload/test_coldstart_imports.py keeps it small); after one that raised, its
# traceback may hold the photo, so collection simply resumes. On Lambda only.
_gc_paused = [bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and gc.isenabled()]
if _gc_paused[0]:
    gc.disable()


def _resume_gc(*, freeze: bool) -> None:
    if _gc_paused[0]:
        _gc_paused[0] = False
        if freeze:
            gc.freeze()
        gc.enable()


def _settings() -> ModuleType | None:
    """``zappa_settings``, set up as ``LambdaHandler.__init__`` does for an events-only WSGI stage; None when the
    settings need Zappa's handler."""
    if "settings" in _state:
        return _state["settings"]
    settings = importlib.import_module("zappa_settings")
    if not hasattr(settings, "APP_MODULE") or any(getattr(settings, n, None) for n in ZAPPA_ONLY_SETTINGS):
        _state["settings"] = None
        return None
    print("Instancing..")
    if settings.LOG_LEVEL:
        level = logging.getLevelName(settings.LOG_LEVEL)
        logger.setLevel(level)
        logging.getLogger().setLevel(level)
    os.environ["SERVERTYPE"] = "AWS Lambda"
    os.environ["FRAMEWORK"] = "Zappa"
    try:
        os.environ["PROJECT"] = settings.PROJECT_NAME
        os.environ["STAGE"] = settings.API_STAGE
    except Exception:  # as Zappa: a settings file without them is not an error
        pass
    for key, value in settings.ENVIRONMENT_VARIABLES.items():
        os.environ[key] = value
    importlib.import_module(settings.APP_MODULE)  # Zappa imports the (unused here) WSGI app's module at init
    _state["settings"] = settings
    return settings


def _zappa(event: Any, context: Any) -> Any:
    import handler  # Zappa's, at the zip's root

    return handler.lambda_handler(event, context)


def _functions_for(record: dict[str, Any], mapping: dict[str, Any]) -> list[str]:
    """``LambdaHandler.get_function_for_aws_event``: the functions a record's source is mapped to."""
    if "s3" in record:
        if ":" in record["s3"]["configurationId"]:
            return [record["s3"]["configurationId"].split(":")[-1]]
    arn = None
    if "Sns" in record:
        try:
            message = json.loads(record["Sns"]["Message"])
            if message.get("command"):
                return [message["command"]]
        except ValueError:
            pass
        arn = record["Sns"].get("TopicArn")
    elif "dynamodb" in record or "kinesis" in record:
        arn = record.get("eventSourceARN")
    elif "eventSource" in record and record.get("eventSource") == "aws:sqs":
        arn = record.get("eventSourceARN")
    elif "s3" in record:
        arn = record["s3"]["bucket"]["arn"]
    if arn:
        value = mapping.get(arn)
        if value is None:
            return []
        return [value] if isinstance(value, str) else value
    return []


def _run(function: Any, event: Any, context: Any) -> Any:
    """``LambdaHandler.run_function``, its retries with fewer arguments on a TypeError included."""
    try:
        return function(event, context)
    except TypeError:
        try:
            return function(event)
        except TypeError:
            try:
                return function()
            except TypeError:
                raise RuntimeError(
                    "Function signature is invalid. Expected a function that accepts at most 2 arguments or varargs."
                ) from None


def lambda_handler(event: Any, context: Any) -> Any:
    try:
        result = _handle(event, context)
    except BaseException:
        _resume_gc(freeze=False)
        raise
    _resume_gc(freeze=True)
    return result


def _handle(event: Any, context: Any) -> Any:
    if isinstance(event, dict) and (event.get("requestContext") or {}).get("http") and "rawPath" in event:
        return _request(event, context)
    if not (isinstance(event, dict) and set(event) == {"Records"} and event["Records"]):
        return _zappa(event, context)
    settings = _settings()
    if settings is None:
        return _zappa(event, context)
    if settings.DEBUG:
        logger.debug(f"Zappa Event: {event}")
    result = None
    functions = _functions_for(event["Records"][0], settings.AWS_EVENT_MAPPING)
    if not functions:
        logger.error("Cannot find a function to process the triggered event.")
        return result
    from offload import registry, runs  # after the settings: the functions' environment is set

    for whole_function in functions:
        module, name = whole_function.rsplit(".", 1)
        function = getattr(importlib.import_module(module), name)
        job = registry.job_by_handler(whole_function)
        if job is None:
            result = _run(function, event, context)
        else:  # measured, and the record sent on the results queue (offload/runs.py)
            result = runs.measure(job, "lambda", lambda f=function: _run(f, event, context), event, _report_run)
        logger.debug(result)
    return result


def _request(event: dict[str, Any], context: Any) -> Any:
    """A function URL's request (payload 2.0): the HTTP-triggered job at its path answers, measured like any run
    (Zappa's WSGI handler is not needed: no job of this stage is a web app); an unknown path is a JSON 404."""
    settings = _settings()
    if settings is None:
        return _zappa(event, context)
    from offload import registry, runs

    path = event["rawPath"].rstrip("/") or "/"
    job = next(
        (j for j in registry.JOBS.values() if isinstance(j.trigger, registry.HTTPTrigger) and j.trigger.path == path),
        None,
    )
    if job is None:
        return {
            "statusCode": 404,
            "headers": {"Content-Type": "application/json"},
            "body": '{"error": "No such address."}',
        }
    function = job.resolve()
    return runs.measure(job, "lambda", lambda: function(event, context), event, _report_run)


def _report_run(record: dict[str, Any]) -> None:
    from offload import results

    results.publish(record)


if os.environ.get("INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT"):  # as Zappa's handler: set up at import
    _settings()


# The end of this process's initialisation, on the clock offload/runs.py's ``init_ms`` counts from its start.
READY_AT = time.clock_gettime(time.CLOCK_BOOTTIME)
