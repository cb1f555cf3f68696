"""boardsite's terminal client: ``boardsite login | boards | upload | download`` against the site's JSON API."""

__version__ = "0.1.0"
