"""The one door to AWS for the offload side: every AWS client is made here (botocore's).

Local AWS (moto's server) and real AWS differ only in configuration: ``AWS_ENDPOINT_URL`` and the region.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, DataNotFoundError

from offload import config

log = logging.getLogger(__name__)

_BOTO_CONFIG = Config(
    # Without an explicit s3v4, botocore presigns SigV2 against a custom endpoint.
    signature_version="s3v4",
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)
# For work a person is waiting on that has a retry behind it (a deletion the sweep repeats): fail fast, once.
_QUICK_CONFIG = _BOTO_CONFIG.merge(
    Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=2)
)


# One botocore session for every client of the process. A session's first client pays for its setup (event handlers,
# endpoint and partition data): ~45 ms CPU here, then an SQS or SSM client costs 5-17 ms instead of 55-100 ms.
# botocore's, not boto3's: boto3 adds resources and S3 transfer methods this code never uses, and importing it costs
# ~20 ms CPU of a cold start on top of botocore (a boto3 client is this same botocore client; only its User-Agent
# names boto3). Creating clients from one session is not thread-safe: the lock.
_session_lock = threading.Lock()
_sessions: list[botocore.session.Session] = []
_used: list[bool] = [False]  # a client was made: the session holds credentials


class _Loader(botocore.loaders.Loader):
    """botocore's data loader, except that loading a service's model looks in that service's folder only.

    botocore's ``load_service_model`` first lists every service that has a model of that type, walking all ~450
    service folders (a listdir and a stat or two each), once for the API models and once for the endpoint rules: about
    20 ms of CPU on every cold start, to learn whether the one service asked for exists. It exists exactly when one of
    its API versions has the file, which ``list_api_versions`` tells from that service's folder alone; then the same
    file is loaded with the same extras. A service without one, and any botocore whose loader differs from the one
    this was written for (Lambda's runtime brings its own), take botocore's own path, errors included.
    tests/offload/test_coldstart_imports.py compares the models with botocore's."""

    @botocore.loaders.instance_cache
    def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        try:
            latest = self.determine_latest_version(service_name, type_name)
            api_version = api_version or latest
            model = self.load_data(os.path.join(service_name, api_version, type_name))
            self._extras_processor.process(model, self._find_extras(service_name, type_name, api_version))
        except (DataNotFoundError, AttributeError, TypeError):
            return super().load_service_model(service_name, type_name, api_version)
        return model


def _session() -> botocore.session.Session:
    if not _sessions:
        core = botocore.session.get_session()
        search_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore's create_loader reads it
        paths = (
            [os.path.expanduser(os.path.expandvars(p)) for p in search_path.split(os.pathsep)] if search_path else []
        )
        core.register_component("data_loader", _Loader(extra_search_paths=paths))
        _sessions.append(core)
    return _sessions[0]


def prewarm(services: Iterable[str]) -> None:
    """Load botocore's data for ``services`` (their API models and endpoint rules, the partitions) into the shared
    session, without making a client: no credentials are read and nothing connects, so this is safe while Lambda
    takes a SnapStart snapshot. After a restore, the SSM client the secrets need and the S3 client of the first page
    then cost ~8 ms each instead of ~80 and ~35 ms (measured here). The calls are those botocore's client factory
    makes, whose results its loader caches; on a botocore that differs, this only warms less."""
    with _session_lock:
        core = _session()
        try:
            loader = core.get_component("data_loader")
            for service in services:
                loader.load_service_model(service, "service-2", api_version=None)
                loader.load_service_model(service, "endpoint-rule-set-1", api_version=None)
            for name in ("partitions", "sdk-default-configuration"):
                loader.load_data(name)
            core.get_component("endpoint_resolver")
        except Exception:  # an optimisation only: a client made later loads what it needs itself
            log.warning("could not prewarm botocore's data for %s", list(services), exc_info=True)


def _made_once[T](make: Callable[..., T]) -> Callable[..., T]:
    """``make``'s results cached by its arguments, each made once: threads asking for the same missing one wait for
    the first (``functools.lru_cache`` would let each make its own). The local runner calls handlers in threads, and
    each extra client pays its setup again (5-17 ms CPU), each extra queue URL a request. ``cache_clear`` as
    lru_cache's."""
    made: dict[Any, T] = {}
    lock = threading.Lock()

    @functools.wraps(make)
    def cached(*args: Any, **kwargs: Any) -> T:
        key = (args, tuple(sorted(kwargs.items())))
        try:
            return made[key]  # the common case takes no lock
        except KeyError:
            pass
        with lock:
            if key not in made:
                made[key] = make(*args, **kwargs)
            return made[key]

    cached.cache_clear = made.clear  # type: ignore[attr-defined]
    return cached


@_made_once
def make_client(
    service: str, region: str, endpoint_url: str | None, quick: bool = False, config: Config | None = None
) -> Any:
    """A botocore client for this region and endpoint (cached; the web side shares it with its own settings).
    ``config`` (a module-level constant, it is part of the cache key) replaces the time-outs and retries for one
    caller."""
    kwargs: dict[str, Any] = {}
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # The local AWS accepts any credentials; never let a local run go looking for real ones.
        kwargs = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    with _session_lock:
        _used[0] = True
        return _session().create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=_BOTO_CONFIG.merge(config) if config else _QUICK_CONFIG if quick else _BOTO_CONFIG,
            **kwargs,
        )


def client(service: str) -> Any:
    """A (cached) botocore client for ``service`` configured from the environment."""
    cfg = config.load()
    return make_client(service, cfg.region, cfg.endpoint_url)


@_made_once
def _queue_url(name: str, region: str, endpoint_url: str | None) -> str:
    return make_client("sqs", region, endpoint_url).get_queue_url(QueueName=name)["QueueUrl"]


def queue_url(name: str) -> str:
    cfg = config.load()
    return _queue_url(name, cfg.region, cfg.endpoint_url)


def is_missing(exc: ClientError) -> bool:
    """Whether an S3 error says the object is not there (HEAD answers a bare 404)."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def list_keys(bucket: str, prefix: str, s3: Any = None) -> list[str]:
    s3 = s3 or client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def delete_keys(bucket: str, keys: list[str], s3: Any = None) -> None:
    s3 = s3 or client("s3")
    for start in range(0, len(keys), 1000):  # the API's batch limit
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})


def clear_caches() -> None:
    """Forget clients, queue URLs and the session with its credentials (tests reset the local AWS between cases; a
    SnapStart restore must not reuse what the snapshot holds)."""
    with _session_lock:
        make_client.cache_clear()
        _queue_url.cache_clear()
        if _used[0]:  # a session no client came from holds no credentials: its loaded data (prewarm) stays
            _sessions.clear()
            _used[0] = False
