"""The one door for work: every hand-over to a job, in every mode, passes here.

    inline  the job runs in the caller's process, now
    celery  the site enqueues it; a Celery worker runs it (routed to a queue named after the job)
    lambda  the site hands it to AWS as AWS would deliver it (publishes to the topic, sends to the queue, invokes the
            function); S3's own event starts an S3-triggered job, and a schedule a scheduled one

Callers name a channel of the registry, never a job: ``publish(registry.MAIL, message)``, ``object_created(key, ...)``
(an object the site saw arrive, as S3 would announce it) and ``report(result)`` (what an offload job run here reports).
``offload/registry.py`` binds each channel to the job it feeds, and the job's route (``boardsite/core/routing.py``:
``settings.OFFLOAD_MODES``, defaults each job's ``default_mode``, unless staff route a share of its work elsewhere)
says where each unit of that work runs. The handler is the same in every mode: the one the registry names.

Celery is named by a dotted path (``settings.OFFLOAD_CELERY_APP``, ``boardsite/celery.py``), loaded on the first job
enqueued there: a site without a job in celery mode never loads Celery, and this module imports nothing above core.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from boardsite import aws
from boardsite.core import invoke, routing, runs
from offload import registry
from offload import runs as offload_runs
from offload.events import mark_shadow, s3_object_created_event, sqs_event

log = logging.getLogger(__name__)

CELERY_TASK = "boardsite.run_job"  # the one task (boardsite/celery.py): it runs any job by name


def mode(job_name: str) -> str:
    """Where the job runs when nothing routes its work elsewhere (``OFFLOAD_MODES``, else its default)."""
    registry.get(job_name)  # unknown names fail loudly
    return routing.configured_mode(job_name)


# --- the door ---------------------------------------------------------------------------------------------------


def publish(topic: registry.Topic, message: dict[str, Any], *, message_id: str | None = None) -> Any:
    """Hand ``message`` to the job ``topic`` feeds, on the runtime its route gives ``message_id`` (the unit key).
    lambda: publish it to the topic (its queue is subscribed); otherwise the queue-shaped event the job would receive.
    Returns the handler's answer when it ran here."""
    job = registry.job_for(topic)
    message_id = message_id or str(uuid.uuid4())
    body = json.dumps(message)
    route = routing.route(job.name)
    runtime = route.runtime_for(message_id)
    event = sqs_event([(message_id, body)])
    answer = None
    if runtime == "lambda":
        aws.client("sns").publish(TopicArn=settings.TOPIC_ARNS[topic.setting], Message=body)
    else:
        answer = _run_or_enqueue(job, runtime, event)
    shadow(job, route, message_id, runtime, event)
    return answer


def send(queue: registry.Queue, body: dict[str, Any], *, key: str | None = None) -> Any:
    """Hand ``body`` to the job ``queue`` triggers, on the runtime its route gives ``key`` (the unit key; default: a
    new id). lambda: send it to the queue; otherwise the SQS event the job would receive. Returns the handler's answer
    when it ran here."""
    job = registry.job_for(queue)
    message_id = str(uuid.uuid4())
    route = routing.route(job.name)
    runtime = route.runtime_for(key or message_id)
    event = sqs_event([(message_id, json.dumps(body))])
    answer = None
    if runtime == "lambda":
        url = aws.client("sqs").get_queue_url(QueueName=queue.resolved())["QueueUrl"]
        aws.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(body))
    else:
        answer = _run_or_enqueue(job, runtime, event)
    shadow(job, route, key or message_id, runtime, event)
    return answer


def endpoint(job_name: str, unit: str) -> str:
    """Where a client sends the requests of an HTTP-triggered job for ``unit`` (a person): the runtime its route
    gives now. inline: the site's own view (``HTTPTrigger.view``); lambda: the function URL (the caller hands the
    client what it needs there, e.g. an upload grant). Measured by whoever answers."""
    job = registry.get(job_name)
    if not isinstance(job.trigger, registry.HTTPTrigger):
        raise ValueError(f"{job_name} is not started by a request")
    return routing.runtime_for(job.name, unit)


def answer[T](job_name: str, call: Callable[[], T], *, refusals: tuple[type[Exception], ...] = ()) -> T:
    """The site answering a request of an HTTP-triggered job itself (its inline runtime), measured as a run like
    every other (the function URL's answers are measured where they run). A refusal (one of ``refusals``: a 4xx the
    caller turns into its answer) is a run that did its work, as the function's own 4xx answers are; anything else
    raised is a failed run."""
    job = registry.get(job_name)
    refused: list[Exception] = []

    def run() -> T | None:
        try:
            return call()
        except refusals as exc:
            refused.append(exc)
            return None

    result = offload_runs.measure(job, "inline", run, {}, runs.record)
    if refused:
        raise refused[0]
    return result


_url_cache: dict[str, tuple[float, str]] = {}
URL_RETRY_SECONDS = 60  # a stage without a function URL (yet) is asked again after this long, not on every page


def function_url() -> str:
    """Where the functions stage's HTTP jobs answer when routed to lambda (the upload-ticket function), else "":
    ``UPLOAD_TICKET_FUNCTION_URL`` (``make run`` sets it), or the stage's function URL, asked of Lambda once per
    process (it exists once that stage is deployed with such a job on lambda: no deploy writes it here first)."""
    function = settings.LAMBDA_FUNCTIONS.get("offload", "")
    if not (settings.UPLOAD_TICKET_FUNCTION_URL or function):
        return ""  # no function stage here (and no route read: every page's policy asks)
    http = [j for j in registry.JOBS.values() if isinstance(j.trigger, registry.HTTPTrigger)]
    if not any(routing.route(j.name).names("lambda") for j in http):
        return ""  # nothing is sent there: no address to give, none to allow in the pages' policy
    if settings.UPLOAD_TICKET_FUNCTION_URL:
        return settings.UPLOAD_TICKET_FUNCTION_URL.rstrip("/")
    asked_at, found = _url_cache.get(function, (0.0, ""))
    if found or time.monotonic() - asked_at < URL_RETRY_SECONDS:
        return found
    try:
        found = aws.client("lambda").get_function_url_config(FunctionName=function)["FunctionUrl"].rstrip("/")
    except Exception:  # not deployed with a function URL (yet)
        log.warning("the functions stage %s has no function URL", function, exc_info=True)
        found = ""
    _url_cache[function] = (time.monotonic(), found)
    return found


def place(key: str) -> str:
    """Where to put a new object meant for ``key``: the key to sign for its upload. The job S3 starts for it runs on
    the runtime its route gives now, written into the key (``registry.S3Trigger.pin``): S3 notifies Lambda only for
    keys placed for it, and the site starts the others, so the route is fixed before the bytes arrive."""
    job = _s3_job(key)
    return job.trigger.pin(key, routing.runtime_for(job.name, key))  # type: ignore[union-attr]  # an S3 trigger


def object_created(key: str, *, size: int, etag: str, redelivery: bool = False) -> Any:
    """Start the job S3 starts for a new object at ``key`` (the site saw it arrive), on the runtime the key was placed
    for (``place``). For a key placed for Lambda S3's own event does, so nothing happens here unless ``redelivery``
    (that event was lost): then the event goes where S3 would have sent it, the deployed function (asynchronous
    invoke) or locally the queue the local runner polls."""
    job = _s3_job(key)
    trigger = job.trigger
    assert isinstance(trigger, registry.S3Trigger)
    route = routing.route(job.name)
    placed = trigger.pinned(key)
    if redelivery and (forced := route.forced.get(trigger.unit(key))) is not None:
        # Started again (a retry, "process again", the sweep) after staff forced this unit somewhere: it runs there.
        # (A first start keeps its placement: S3 may have notified Lambda for it already.)
        runtime = forced
    elif placed == "lambda" or (placed is not None and route.names(placed)):
        runtime = placed  # S3 has notified Lambda for it, or the site starts it where it was placed
    else:
        # Placed before routing, or for a runtime the job no longer runs on (OFFLOAD_MODES changed): where its route
        # sends it now; S3 did not notify Lambda for this key, so Lambda gets it as a redelivery would.
        runtime = route.runtime_for(trigger.unit(key))
        redelivery = redelivery or runtime == "lambda"
    event = s3_object_created_event(bucket=settings.BOARDSITE_BUCKET, key=key, size=size, etag=etag)
    if not redelivery:  # the real run first: its hand-over is what the caller waits for
        answer = None if runtime == "lambda" else _run_or_enqueue(job, runtime, event)
        shadow(job, route, trigger.unit(key), runtime, event)
        return answer
    return hand_over(job.name, runtime, event)


def hand_over(job_name: str, runtime: str, event: dict[str, Any]) -> Any:
    """Hand ``event`` (as the job receives it) to the job on ``runtime``, whatever its route says: what staff do with
    a dead letter (boardsite/control/deadletters.py). lambda: where its trigger would deliver it (its queue; an S3 job
    deployed without one, an asynchronous invoke of its function)."""
    job = registry.get(job_name)
    if runtime != "lambda":
        return _run_or_enqueue(job, runtime, event)
    function = settings.LAMBDA_FUNCTIONS.get(job.side)
    if isinstance(job.trigger, registry.S3Trigger) and function and registry.polled(job) is None:
        _invoke(job, function, event, offload_runs.unit_of(event))
        return None
    if job.queue is None:
        raise ValueError(f"{job.name} has no queue to hand work to")
    url = aws.client("sqs").get_queue_url(QueueName=job.queue.resolved())["QueueUrl"]
    if isinstance(job.trigger, registry.S3Trigger):  # the queue carries S3's event itself
        aws.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(event))
    else:
        for record in event.get("Records", []):
            aws.client("sqs").send_message(QueueUrl=url, MessageBody=record["body"])
    return None


# --- shadow runs ----------------------------------------------------------------------------------------------

# Hands shadow copies over off the caller's path (a queue send or a Celery publish takes milliseconds; the work it
# copies must not wait for it). Tests swap in a synchronous one.
SHADOW_EXECUTOR: Any = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")


def shadow(job: registry.Job, route: routing.Route, unit: str, runtime: str, event: dict[str, Any]) -> bool:
    """If the unit is sampled for a shadow run (and today's cap allows), run the same event on the other runtime
    too, marked so the handler writes only scratch output and reports it for comparison. True when one started."""
    if job.shadow is None or (target := route.shadow_for(unit)) is None or not routing.shadow_slot(route):
        return False
    shadow_runtime, noise = target
    mark = {"pair": str(uuid.uuid4()), "runtime": shadow_runtime, "primary": runtime, "noise": noise, "unit": unit}
    SHADOW_EXECUTOR.submit(_shadow_run, job.name, shadow_runtime, mark_shadow(event, mark))
    return True


def _shadow_run(job_name: str, runtime: str, event: dict[str, Any]) -> None:
    from django.db import connections

    try:
        hand_over(job_name, runtime, event)
    except Exception:  # a shadow never affects the real work
        log.warning("could not start a shadow run of %s on %s", job_name, runtime, exc_info=True)
    finally:
        if threading.current_thread().name.startswith("shadow"):
            connections.close_all()  # the executor thread's own (an inline shadow run records its run)


def _invoke(job: registry.Job, function: str, event: dict[str, Any], unit: str) -> None:
    """An asynchronous invoke by the site: throttles waited out as Lambda asks, then the job's fallback runtime
    (``OFFLOAD_FALLBACKS``), once per unit (boardsite/core/invoke.py)."""
    target = invoke.fallback_for(job.name)
    fallback = None if target is None else (lambda: _run_or_enqueue(job, target, event))
    invoke.invoke_async(job=job.name, function=function, event=event, idempotency_key=unit, fallback=fallback)


def _s3_job(key: str) -> registry.Job:
    job = registry.s3_job_for(key)
    if job is None:
        raise ValueError(f"no job starts for {key!r}: no S3 trigger's prefix covers it")
    return job


def report(result: dict[str, Any]) -> None:
    """Where an offload job run here (inline or Celery) reports a result: the results channel, as a Lambda-run job
    would (``offload.results.publish``), so the result is applied in the results job's own mode."""
    send(registry.RESULTS, result)


# --- running a job ------------------------------------------------------------------------------------------------


def _run_or_enqueue(job: registry.Job, where: str, event: dict[str, Any]) -> Any:
    if where == "inline":
        return run_job(job.name, event, "inline")
    if where == "celery":
        app = import_string(settings.OFFLOAD_CELERY_APP)  # Celery loads here, only when a job runs in celery mode
        app.send_task(CELERY_TASK, args=[job.name, event], queue=celery_queue(job.name))
        return None
    raise ValueError(f"{job.name} runs in {where} mode; its AWS trigger delivers its work")


def run_job(job_name: str, event: dict[str, Any], runtime: str = "inline") -> Any:
    """Run a job's handler in this process with the event it would get from AWS (inline mode, the Celery task), and
    record the run (``offload/runs.py``, ``core/runs.py``). A job that reports results is handed ``report`` (the
    results channel)."""
    job = registry.get(job_name)
    handler = job.resolve()
    if job.side == "offload":
        # The function reads its configuration from the environment, as on Lambda: give it the site's.
        os.environ.update(aws.offload_environment())
    if job.reports:
        return offload_runs.measure(job, runtime, lambda: handler(event, None, report=report), event, runs.record)
    return offload_runs.measure(job, runtime, lambda: handler(event, None), event, runs.record)


# --- Celery routing and beat, from the registry -------------------------------------------------------------------


def celery_schedule(trigger: registry.ScheduleTrigger) -> Any:
    """Beat's schedule for a registry trigger: seconds for rate(), a crontab (in UTC) for cron()."""
    cron = trigger.cron
    if cron is None:
        return float(trigger.every_seconds)
    from celery.schedules import crontab  # Celery loads only when a job runs in celery mode

    # EventBridge reads cron() in UTC; beat reads a crontab in the Celery app's timezone, UTC here (enable_utc, no
    # CELERY_TIMEZONE): tests/notifications/test_digest.py checks that the crontab fires at 23:00 UTC.
    return crontab(**cron.celery_fields())


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Celery beat entries for the scheduled jobs in ``celery`` mode (read from the registry)."""
    return {
        job.name: {
            "task": CELERY_TASK,
            "schedule": celery_schedule(job.trigger),
            "args": [job.name, {"source": "celery.beat", "detail-type": "Scheduled Event", "detail": {}}],
            "options": {"queue": celery_queue(job.name)},
        }
        for job in registry.JOBS.values()
        if isinstance(job.trigger, registry.ScheduleTrigger) and mode(job.name) == "celery"
    }


def celery_queue(job_name: str) -> str:
    return f"jobs.{job_name}"


def celery_queues() -> list[str]:
    """Every queue a worker must consume: read from the registry, so routing cannot drift from the jobs."""
    return [
        celery_queue(job.name) for job in registry.JOBS.values() if not isinstance(job.trigger, registry.HTTPTrigger)
    ]


def celery_worker_command(python: str) -> list[str]:
    """A worker that consumes every job's queue (``-P solo``: one job at a time, as a Lambda does), with an
    embedded beat when a scheduled job runs under Celery."""
    queues = ",".join(celery_queues())
    cmd = [python, "-m", "celery", "-A", "boardsite", "worker", "-P", "solo", "-Q", queues, "--loglevel", "INFO"]
    if beat_schedule():
        cmd += ["-B", "--schedule", str(settings.LOCAL_DIR / "celerybeat-schedule")]
    return cmd
