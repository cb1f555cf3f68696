"""Two jobs a team adds, each its module's code plus one registry entry (README, "Adding a job"); nothing else names
them. tests/jobs/test_adding_a_job.py loads them with ``BOARDSITE_EXTRA_JOBS=tests.jobs_added`` and checks that every
runtime, trigger, permission and resource follows.

- ``make_contact_sheet``: an offload function (no Django) that S3 starts for each object under ``contact-sheets/``,
  through a queue of its own, so it has a dead-letter queue of its own; it writes a one-line sheet beside it and
  reports ``contact_sheet.made``, which the web side applies (``contact_sheet_apply``).
- ``purge_old_notifications``: a scheduled web job that deletes in-site notifications older than 90 days.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from offload import aws, config, registry, results
from offload.events import parse_s3_event

INBOX = "contact-sheets/"
SHEETS = "contact-sheet-pages/"
MADE = "contact_sheet.made"
KEEP_DAYS = 90


def make_contact_sheet(event: dict[str, Any], context: Any = None, *, report: results.Report | None = None) -> dict:
    """For each new object under ``INBOX``: a sheet naming it and its size under ``SHEETS``, then a report."""
    report = report or results.publish
    s3 = aws.client("s3")
    made = []
    for created in parse_s3_event(event):
        head = s3.head_object(Bucket=created.bucket, Key=created.key)
        sheet = SHEETS + registry.unplaced(created.key).removeprefix(INBOX) + ".txt"  # not under its runtime
        s3.put_object(Bucket=config.load().bucket, Key=sheet, Body=f"{created.key}: {head['ContentLength']} bytes\n")
        result = {"type": MADE, "key": created.key, "sheet": sheet, "bytes": head["ContentLength"]}
        report(result)
        made.append(result)
    return {"results": made}


def applied_dir() -> Path:
    return Path(os.environ.get("BOARDSITE_LOCAL_DIR", ".local")) / "contact-sheets"


def contact_sheet_apply(*, result: dict[str, Any]) -> bool:
    """The web side's half: record the sheet (a file per sheet, so every process of the test sees it)."""
    folder = applied_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / (Path(result["key"]).name + ".json")
    partial = final.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps(result))
    partial.replace(final)  # atomic: the test, in another process, never reads a half-written file
    return True


def purge_old_notifications(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    from django.utils import timezone

    from boardsite.notifications.models import Notification

    deleted, _ = Notification.objects.filter(created_at__lt=timezone.now() - dt.timedelta(days=KEEP_DAYS)).delete()
    return {"deleted": deleted}


JOBS = (
    registry.Job(
        name="make_contact_sheet",
        handler="tests.jobs_added.make_contact_sheet",
        # Through a queue of its own (S3 -> SQS -> Lambda), so a dead-letter queue of its own: the queue's redrive.
        # The site also hands a new object to the door itself (here the test does, as the site would), so it runs in
        # inline and celery mode too.
        trigger=registry.S3Trigger(
            INBOX,
            local_queue=registry.Queue("boardsite-contact-sheets", "BOARDSITE_CONTACT_SHEETS_QUEUE"),
            via_queue=True,
            started_by_site=True,
        ),
        timeout=30,
        memory=512,
        side="offload",
        description="write a contact sheet for each new object under contact-sheets/",
        reports={MADE: "tests.jobs_added.contact_sheet_apply"},
        grants=(registry.Grant(("s3:GetObject",), (INBOX,)), registry.Grant(("s3:PutObject",), (SHEETS,))),
    ),
    registry.Job(
        name="purge_old_notifications",
        handler="tests.jobs_added.purge_old_notifications",
        trigger=registry.ScheduleTrigger("rate(1 day)"),
        timeout=30,
        memory=512,
        side="web",
        description=f"delete in-site notifications older than {KEEP_DAYS} days",
    ),
)
