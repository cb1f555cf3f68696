"""WSGI entry point (runserver locally, Zappa on Lambda)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boardsite.settings")
application = get_wsgi_application()
