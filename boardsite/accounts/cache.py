"""Django's database cache with an atomic ``incr``: the shared cache when no Redis is configured (``CACHE_URL``).

Counters (sign-ups per address) must hold across every web process and Lambda instance, so they live in a shared
store. Django's ``DatabaseCache.incr`` is a read then a write: two requests at once both read 4 and both write 5, which
is why django-ratelimit's check calls it "does not support atomic increment" (E003). This ``incr`` writes only if the
value is still the one it read (compare-and-swap in one UPDATE) and tries again otherwise, so no increment is lost on
SQLite or PostgreSQL.

Culling: Django's, past ``MAX_ENTRIES`` rows, deletes the expired rows and then the lowest third of the live keys,
throttle counters among them, so a client making new keys (resets for made-up addresses) could wipe everyone's
counters. Here only expired rows are ever deleted: a table full of live counters grows until they expire.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends.db import DatabaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.utils import timezone

from boardsite.accounts.models import CacheEntry

_ATTEMPTS = 100


class AtomicIncrDatabaseCache(DatabaseCache):
    def __init__(self, table: str, params: dict[str, Any]) -> None:
        super().__init__(table, params)
        if table != CacheEntry._meta.db_table:
            raise ImproperlyConfigured(f"{type(self).__name__} needs LOCATION {CacheEntry._meta.db_table!r}.")

    def _cull(self, db: str, cursor: Any, now: Any, num: int) -> None:
        connection = connections[db]
        table = connection.ops.quote_name(self._table)
        expires = connection.ops.quote_name("expires")
        cursor.execute(f"DELETE FROM {table} WHERE {expires} < %s", [connection.ops.adapt_datetimefield_value(now)])

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        key = self.make_and_validate_key(key, version=version)
        entries = CacheEntry.objects.using(router.db_for_write(self.cache_model_class))
        for _ in range(_ATTEMPTS):
            stored = entries.filter(cache_key=key, expires__gt=timezone.now()).values_list("value", flat=True).first()
            if stored is None:
                raise ValueError(f"Key '{key}' not found.")  # as BaseCache.incr says it
            value = pickle.loads(base64.b64decode(stored.encode())) + delta
            encoded = base64.b64encode(pickle.dumps(value, self.pickle_protocol)).decode("latin1")
            if entries.filter(cache_key=key, value=stored).update(value=encoded):
                return value
        raise ValueError(f"Key '{key}' changed {_ATTEMPTS} times while being incremented.")

    def decr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        return self.incr(key, -delta, version)
