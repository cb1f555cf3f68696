"""A copy of the local bucket on disk, so the local stack keeps its photos when moto (which holds them in memory)
stops: ``make run`` saves what changed every few seconds and on the way out, and restores it when moto starts, before
the bucket's event notification is wired (so nothing restored is processed again).

Local development only (``manage.py devstack``): never used against real AWS. One file per object under
``<folder>/objects/`` (named by the key's SHA-256) and ``index.json`` with each key's ETag, type, metadata and tags.
Saving is incremental: an object whose ETag is unchanged is not read again; a deleted one leaves the copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from offload import aws

log = logging.getLogger(__name__)
INDEX = "index.json"


def _file(folder: Path, key: str) -> Path:
    return folder / "objects" / hashlib.sha256(key.encode()).hexdigest()


def _load_index(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        index = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _write_index(folder: Path, index: dict[str, dict[str, Any]]) -> None:
    tmp = folder / f"{INDEX}.tmp"
    tmp.write_text(json.dumps(index))
    os.replace(tmp, folder / INDEX)  # a stack killed mid-save keeps the previous index whole


def save(s3: Any, bucket: str, folder: Path) -> dict[str, int]:
    """Bring the copy in ``folder`` up to date with ``bucket``; counts of objects copied, dropped and kept."""
    (folder / "objects").mkdir(parents=True, exist_ok=True)
    index = _load_index(folder)
    seen: set[str] = set()
    copied = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key, etag = item["Key"], item["ETag"]
            seen.add(key)
            if index.get(key, {}).get("etag") == etag:
                continue
            try:
                got = s3.get_object(Bucket=bucket, Key=key)
                tags = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
            except ClientError as exc:
                if aws.is_missing(exc):  # deleted between the listing and the read
                    continue
                raise
            path = _file(folder, key)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(got["Body"].read())
            os.replace(tmp, path)
            index[key] = {
                "etag": etag,
                "content_type": got.get("ContentType") or "binary/octet-stream",
                "metadata": got.get("Metadata") or {},
                "tags": tags,
            }
            copied += 1
    dropped = [key for key in index if key not in seen]
    for key in dropped:
        _file(folder, key).unlink(missing_ok=True)
        del index[key]
    if copied or dropped:
        _write_index(folder, index)
    return {"copied": copied, "dropped": len(dropped), "kept": len(index) - copied}


def restore(s3: Any, bucket: str, folder: Path) -> int:
    """Put every saved object back into ``bucket`` (created if missing); how many were restored."""
    index = _load_index(folder)
    if not index:
        return 0
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = s3.meta.region_name
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)
    restored = 0
    for key, entry in index.items():
        path = _file(folder, key)
        if not path.is_file():
            log.warning("the local copy of %s is missing; skipped", key)
            continue
        tagging = urlencode([(t["Key"], t["Value"]) for t in entry.get("tags", [])])
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=path.read_bytes(),
            ContentType=entry.get("content_type") or "binary/octet-stream",
            Metadata=entry.get("metadata") or {},
            **({"Tagging": tagging} if tagging else {}),
        )
        restored += 1
    return restored
