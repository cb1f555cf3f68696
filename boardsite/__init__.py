"""The boardsite Django project.

The Celery app (``boardsite.celery``) is not imported here, as Django projects usually do: it loads only where Celery
is used, so the web Lambda with every job in ``lambda`` mode never imports Celery. A worker (``celery -A boardsite``)
finds ``boardsite.celery.app`` by itself; the site loads it (``settings.OFFLOAD_CELERY_APP``) on the first job it
enqueues there.
"""
