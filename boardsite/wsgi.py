"""WSGI entry point: runserver locally, and the web stage's ``app_function`` on Lambda.

As the stage's ``app_function`` (beside ``django_settings``), this module is what Zappa's handler imports first of the
site, so the init's garbage-collector pause (boardsite/coldstart.py) also covers Django's own import (~30 ms CPU of
collections); with ``django_settings`` alone Zappa imports Django before any of the site's code.
"""

import os

from boardsite import coldstart

coldstart.pause()

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after the pause

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boardsite.settings")
application = get_wsgi_application()
