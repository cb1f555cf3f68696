import logging
from pathlib import Path

from django.apps import AppConfig

log = logging.getLogger(__name__)


class CoreConfig(AppConfig):
    name = "boardsite.core"
    label = "core"

    def ready(self) -> None:
        from boardsite import coldstart, secrets
        from boardsite.core import checks  # noqa: F401  (registers the OFFLOAD_MODES check)

        if not (secrets.snapshot_init() and snapshot_prewarm()):
            coldstart.resume()  # an on-demand init is over once the apps are set up (boardsite/coldstart.py)


def snapshot_prewarm() -> bool:
    """Work done while Lambda takes the SnapStart snapshot is not done again by each instance restored from it, so do
    then what every instance's first requests would: botocore's data for the clients a restore and the first pages
    make (SSM for the secrets, S3 for the pages' images and the Content-Security-Policy), now; the URLconf with every
    view module and the compiled project templates (the cached loader keeps them) in a before-snapshot hook, which
    Lambda runs once the init is over (every app ready, the WSGI application built). Nothing here reads a credential,
    makes a client, opens a connection or touches the database (tests/core/test_snapstart.py,
    tests/offload/test_coldstart_imports.py).
    Measured here: the restore hook and the first page 0.19 s CPU without this, ~0.04 s with it. True when the
    before-snapshot hook is registered (it also ends the init's garbage-collector pause, boardsite/coldstart.py)."""
    from offload import aws

    aws.prewarm(("ssm", "s3"))
    try:
        from snapshot_restore_py import register_before_snapshot  # the Lambda Python runtime's module
    except ImportError:
        return False
    register_before_snapshot(prewarm_django)
    return True


# Templates only scheduled jobs render: they run on $LATEST, which SnapStart never serves, so a snapshot need not hold
# them compiled (the mails of boardsite/notifications/mailer.py and digest.py).
NOT_PREWARMED = ("notifications/mail/",)


def prewarm_django() -> None:
    from django.conf import settings
    from django.template import engines
    from django.urls import get_resolver

    from boardsite import coldstart

    try:
        get_resolver().url_patterns  # noqa: B018 - imports the URLconf and every view module
        for engine in engines.all():
            for folder in (Path(d) for t in settings.TEMPLATES for d in t.get("DIRS", [])):
                for path in sorted(folder.rglob("*.html")):
                    name = path.relative_to(folder).as_posix()
                    if not name.startswith(NOT_PREWARMED):
                        engine.get_template(name)
    except Exception:  # an optimisation only: the first request loads what it needs itself
        log.warning("SnapStart prewarm of the URLconf and templates failed", exc_info=True)
    finally:
        coldstart.resume()  # the snapshot holds the init's objects frozen
