"""The bucket of a unit of a job's work: the sticky share's hash, shared by the site's routing
(``boardsite/core/routing.py``) and the upload-ticket function, which places uploads as the site's door would."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000  # a share is a number of these; 1 bucket = 0.01 %


def bucket(job: str, unit: str) -> int:
    """The bucket (0 … BUCKETS-1) of a unit of a job's work: the same on every machine and in every process."""
    digest = hashlib.sha256(f"{job}\0{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS
