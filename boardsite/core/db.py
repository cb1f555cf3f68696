"""A sentence instead of a traceback when ``DATABASE_URL`` names a PostgreSQL database that is not there."""

from __future__ import annotations

import shlex
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.db.utils import ConnectionHandler


def database_problem(database: dict[str, Any] | None = None) -> str | None:
    """One sentence saying what is wrong with a PostgreSQL database (default: ``DATABASES["default"]``), or None.

    Tries one connection. A database that does not exist gets the ``createdb`` command that creates it; a server
    that does not answer says so. Other engines (SQLite creates its file) and other errors give None.
    """
    database = database if database is not None else settings.DATABASES["default"]
    if "postgresql" not in database.get("ENGINE", ""):
        return None
    # A handler of its own: the check never touches (or leaves open) the site's connections.
    database = {**database, "OPTIONS": {"connect_timeout": 5, **database.get("OPTIONS", {})}}
    connection = ConnectionHandler({"default": database})["default"]
    try:
        connection.ensure_connection()
    except OperationalError as exc:
        return _sentence(connection.settings_dict, str(exc))
    finally:
        connection.close()
    return None


def _sentence(db: dict[str, Any], error: str) -> str | None:
    name = db.get("NAME") or ""
    host, port, user = db.get("HOST") or "localhost", str(db.get("PORT") or 5432), db.get("USER") or ""
    if f'database "{name}" does not exist' in error:
        command = ["createdb", "-h", host, "-p", port] + (["-U", user] if user else []) + [name]
        return (
            f'DATABASE_URL names the PostgreSQL database "{name}" on {host}:{port}, which does not exist; '
            f"create it with `{shlex.join(command)}` (or point DATABASE_URL at another database)."
        )
    if "Connection refused" in error or "timeout expired" in error or "could not translate host name" in error:
        return (
            f"DATABASE_URL names a PostgreSQL server on {host}:{port} that does not answer; start it "
            "(or unset DATABASE_URL to use the local SQLite file)."
        )
    return None
