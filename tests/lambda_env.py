"""Run a Zappa package the way Lambda does, on this machine, with no AWS account.

``package()`` runs ``zappa package <stage> -s <settings> -o <zip>`` offline (cached by a hash of its inputs: packaging
takes half a minute). ``Artifact`` is that zip unzipped into a task folder next to a runtime folder that holds only
what Lambda's Python runtime provides (boto3 and its dependencies). ``LambdaProcess`` starts a fresh interpreter
(``-S -I``: no site-packages, no PYTHONPATH, no user site) with ``sys.path = [task, runtime, stdlib]``, cwd = task,
both folders read-only (a read-only bind mount in a private mount namespace when we are root, since root ignores
file modes), and a clean environment holding only what Lambda sets plus the function's own configuration. It then
serves events over a JSON-lines pipe, so a test or a benchmark can time the cold start (spawn → first answer) and
warm calls, each with the process's CPU time.

Used by tests/deploy/test_artifact.py and bench/coldstart.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MOTO_ACCOUNT = "123456789012"  # moto's default account id
TEST_ACCOUNT = "111122223333"  # a real-shaped account id that is not moto's default
API_ID = "a1b2c3d4e5"
REGION = "us-east-1"
BUCKET = "boardsite-media"  # the local stack's bucket (offload.config's default)
DOMAIN = "photos.example.com"
# The database the packaged settings name (its URL is inside the zip, so it cannot differ per test run without a new
# package). Each function process sees the run's own folder there: a bind mount in its private mount namespace (or,
# without root, a symlink: then two runs at once would share it).
DATABASE_DIR = Path(tempfile.gettempdir()) / "boardsite-lambda-db"
DATABASE_PATH = DATABASE_DIR / "test-db.sqlite3"
# What Lambda's python3.12 runtime has on its path besides the task: boto3 and its dependencies, nothing else.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# Cached packages kept (each a zip plus its unzipped copy, ~100 MB): the artifact tests' three per database (CI runs
# SQLite, then PostgreSQL), the played deploy's three (tests/deploy/test_played_deploy.py), the benchmark's.
CACHE_KEEP = 10

# The child: the function's prints go to stderr (CloudWatch), the answers to a private copy of stdout.
_BOOTSTRAP = r"""
import json, os, sys, time, traceback
proto = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout.reconfigure(line_buffering=True)  # as Lambda's runtime: a print reaches the log when it is made
task, runtime = sys.argv[1], sys.argv[2]
sys.path[:0] = [task, runtime]


class Context:
    def __init__(self, request_id):
        self.aws_request_id = request_id
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = os.environ["BOARDSITE_HARNESS_FUNCTION_ARN"]
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "harness"
        self._deadline = time.monotonic() + int(os.environ["BOARDSITE_HARNESS_TIMEOUT"])

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def answer(**values):
    values["cpu"] = time.process_time()
    proto.write(json.dumps(values, default=str) + "\n")


try:
    module, function = os.environ["_HANDLER"].rsplit(".", 1)  # Lambda's init phase: the module named by _HANDLER
    lambda_handler = getattr(__import__(module, fromlist=[function]), function)
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        # SnapStart: Lambda runs the before-snapshot hooks, snapshots, and later restores copies and runs the
        # after-restore hooks; we play the runtime's part. init_cpu is the snapshot's moment.
        import snapshot_restore_py
        snapshot_restore_py.run_before_snapshot()
        init_cpu = time.process_time()
        snapshot_restore_py.run_after_restore()
    else:
        init_cpu = time.process_time()
except BaseException:
    answer(phase="init", error=traceback.format_exc())
    sys.exit(1)
answer(phase="init", error=None, init_cpu=init_cpu)
for n, line in enumerate(sys.stdin):
    event = json.loads(line)
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result, error = lambda_handler(event, Context(f"harness-{n}")), None
    except Exception:
        result, error = None, traceback.format_exc()
    answer(phase="invoke", result=result, error=error, event_cpu=time.process_time() - cpu,
           event_wall=time.perf_counter() - wall)
"""


# What the Lambda python3.12 runtime provides as ``snapshot_restore_py`` (its two registration functions), plus the
# harness's own ``snapshot_and_restore()`` that runs the hooks as Lambda does around a snapshot.
_SNAPSHOT_RESTORE_PY = '''"""Harness stand-in for the Lambda runtime's snapshot_restore_py."""
_before_snapshot, _after_restore = [], []


def register_before_snapshot(func, *args, **kwargs):
    _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    _after_restore.append((func, args, kwargs))
    return func


def get_before_snapshot():
    return list(_before_snapshot)


def get_after_restore():
    return list(_after_restore)


def run_before_snapshot():
    for func, args, kwargs in reversed(_before_snapshot):  # Lambda runs before-snapshot hooks last-in first-out
        func(*args, **kwargs)


def run_after_restore():
    for func, args, kwargs in _after_restore:
        func(*args, **kwargs)


def snapshot_and_restore():
    run_before_snapshot()
    run_after_restore()
'''


# --- packaging ----------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "boardsite" / "artifacts"
    return Path(os.environ.get("BOARDSITE_ARTIFACT_CACHE", default))


def _project_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, check=True
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".venv" not in p.parts]
    return [root / n for n in sorted(names) if (root / n).is_file()]


def _shipped(relative: Path, kind: str) -> bool:
    """Whether the stage's zip holds the file (deploy/build.py ``SHIPPED``); deploy/ always counts, since the prebuild
    script there decides what is packaged."""
    from deploy import build

    return relative.parts[0] == "deploy" or relative.parts[0] in build.SHIPPED[kind]


def inputs_hash(stage: str, settings: dict[str, Any], venv: Path, root: Path = ROOT) -> str:
    """What decides the package: the settings, the project files the stage ships, the venv's installed versions."""
    digest = hashlib.sha256()
    digest.update(json.dumps([stage, settings], sort_keys=True).encode())
    digest.update(_SNAPSHOT_RESTORE_PY.encode())  # the runtime folder is cached with the package
    from deploy import build

    kind = build.stage_kind(stage, settings[stage])
    for path in _project_files(root):
        relative = path.relative_to(root)
        if _shipped(relative, kind):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    site = site_packages(venv)
    digest.update("\n".join(sorted(p.name for p in site.glob("*.dist-info"))).encode())
    return digest.hexdigest()[:20]


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def dev_venv() -> Path:
    """The venv this interpreter runs in (``VIRTUAL_ENV`` for Zappa)."""
    return Path(sys.prefix)


def zappa_package(stage: str, settings_file: Path, output: Path, *, venv: Path, root: Path = ROOT) -> None:
    """``zappa package`` offline; raises with Zappa's own output when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))}
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    command = [
        str(Path(sys.executable).parent / "zappa"),
        "package",
        stage,
        "-s",
        str(settings_file),
        "-o",
        str(output),
    ]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not output.is_file():
        raise RuntimeError(
            f"zappa package {stage} failed ({done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
        )


@dataclass
class Artifact:
    """A packaged stage: its zip, the zip unzipped (read-only) and the runtime folder beside it."""

    stage: str
    settings: dict[str, Any]  # the stage's own block of the settings file
    zip_path: Path
    task: Path
    runtime: Path

    @property
    def zip_bytes(self) -> int:
        return self.zip_path.stat().st_size

    @property
    def unzipped_bytes(self) -> int:
        with zipfile.ZipFile(self.zip_path) as z:
            return sum(i.file_size for i in z.infolist())

    @property
    def function_name(self) -> str:
        return f"{self.settings['project_name']}-{self.stage}"


def _read_only(path: Path) -> None:
    for folder, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & 0o555)
        os.chmod(folder, 0o555)


def _writable(path: Path) -> None:
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, 0o755)


def _runtime_folder(venv: Path, target: Path) -> None:
    site = site_packages(venv)
    target.mkdir(parents=True)
    for name in RUNTIME_MODULES:
        if (site / name).is_dir():
            shutil.copytree(site / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (site / f"{name}.py").is_file():
            shutil.copy2(site / f"{name}.py", target / f"{name}.py")
        else:
            raise FileNotFoundError(f"{name} is not installed in {site}: Lambda's runtime provides it")
    (target / "snapshot_restore_py.py").write_text(_SNAPSHOT_RESTORE_PY)
    # Lambda's runtime ships these compiled and valid: so do we, so that only the task's bytecode is measured.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", str(target)], check=True
    )


def _prune_cache(root: Path, keep: int) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=os.path.getmtime)
    for old in entries[:-keep] if keep else entries:
        _writable(old)
        shutil.rmtree(old, ignore_errors=True)


def package(stage: str, settings_file: Path, *, venv: Path | None = None, root: Path = ROOT) -> Artifact:
    """The stage packaged from ``settings_file``, unzipped, read-only; reused while the inputs are unchanged."""
    venv = venv or dev_venv()
    all_settings = json.loads(Path(settings_file).read_text())
    settings = all_settings[stage]
    key = f"{stage}-{inputs_hash(stage, all_settings, venv, root)}"
    cache = cache_root()
    entry = cache / key
    if not (entry / "done").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
        try:
            zappa_package(stage, Path(settings_file), building / f"{stage}.zip", venv=venv, root=root)
            with zipfile.ZipFile(building / f"{stage}.zip") as z:
                z.extractall(building / "task")
            _runtime_folder(venv, building / "runtime")
            _read_only(building / "task")
            _read_only(building / "runtime")
            (building / "done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
            try:
                building.rename(entry)
            except OSError:  # another run finished the same package first
                _writable(building)
                shutil.rmtree(building, ignore_errors=True)
        except BaseException:
            _writable(building)
            shutil.rmtree(building, ignore_errors=True)
            raise
        _prune_cache(cache, CACHE_KEEP)
    os.utime(entry)  # most recently used: kept by the pruning
    return Artifact(stage, settings, entry / f"{stage}.zip", entry / "task", entry / "runtime")


# The floor of a Python function that uses the SDK: Lambda's runtime importing boto3 and making an S3 client, nothing
# else (bench/coldstart.py measures it in the same run and sandbox as the stages, and sets goals above it).
FLOOR_HANDLER = '''"""The floor: importing the SDK Lambda's runtime provides and making an S3 client."""
import boto3

s3 = boto3.client("s3")


def lambda_handler(event, context):
    return {}
'''


def floor_artifact(folder: Path, like: Artifact) -> Artifact:
    """A package holding only ``FLOOR_HANDLER``, run as ``like`` is: its runtime folder (boto3), its settings (the
    environment Lambda gives it), the same interpreter flags and read-only folders."""
    task = folder / "floor-task"
    if task.exists():
        _writable(task)
        shutil.rmtree(task)
    task.mkdir(parents=True)
    (task / "handler.py").write_text(FLOOR_HANDLER)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", str(task)], check=True
    )
    _read_only(task)
    settings = {k: v for k, v in like.settings.items() if k not in ("snap_start", "lambda_handler")}
    return Artifact("floor", settings, like.zip_path, task, like.runtime)


def configure(target: Path, *, domain: str | None = DOMAIN, database_url: str | None = None, root: Path = ROOT) -> Path:
    """The settings an operator writes with ``python -m deploy configure``, for the local stand-ins: a real-shaped
    account, the local bucket's name and a database: by default the SQLite file at ``DATABASE_PATH`` (each process is
    given its own folder there), or ``database_url`` (the run's PostgreSQL test database)."""
    database_url = database_url or f"sqlite:///{DATABASE_PATH}"
    # configure accepts PostgreSQL only (what production runs); a SQLite run configures a stand-in and then points the
    # stages' DATABASE_URL at its file, as an operator would never do, so the packaged code reads the run's database.
    on_sqlite = database_url.startswith("sqlite")
    configured_url = "postgres://boardsite@127.0.0.1:5432/boardsite" if on_sqlite else database_url
    command = [sys.executable, "-m", "deploy", "configure", "--account", TEST_ACCOUNT, "--region", REGION]
    command += ["--bucket", BUCKET, "--database-url", configured_url, "-o", str(target)]
    if domain:
        command += ["--domain", domain]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, f"deploy configure failed:\n{done.stdout}\n{done.stderr}"
    if on_sqlite:
        settings = json.loads(target.read_text())
        for stage in settings.values():
            for env in (stage.get("aws_environment_variables", {}), stage.get("environment_variables", {})):
                if "DATABASE_URL" in env:
                    env["DATABASE_URL"] = database_url
        target.write_text(json.dumps(settings, indent=4) + "\n")
    return target


def without_prebuild(source: Path, target: Path) -> Path:
    """The same settings without ``prebuild_script``: what plain Zappa packages (the dev venv, nothing prebuilt)."""
    settings = json.loads(source.read_text())
    for stage in settings.values():
        stage.pop("prebuild_script", None)
    target.write_text(json.dumps(settings, indent=4))
    return target


# --- running ------------------------------------------------------------------------------------------------------


def _can_bind_read_only() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp"],
        capture_output=True,
    )
    return probe.returncode == 0


_BIND_READ_ONLY: bool | None = None


def lambda_environment(artifact: Artifact, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Lambda gives the function: its own variables (``aws_environment_variables``), then ours."""
    region = artifact.settings.get("aws_region", "us-east-1")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(artifact.task),
        "LAMBDA_RUNTIME_DIR": str(artifact.runtime),
        "_HANDLER": artifact.settings.get("lambda_handler", "handler.lambda_handler"),  # as Zappa sets it
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": artifact.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(artifact.settings.get("memory_size", 512)),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing-session-token",
        "BOARDSITE_HARNESS_TIMEOUT": str(artifact.settings.get("timeout_seconds", 30)),
        "BOARDSITE_HARNESS_FUNCTION_ARN": f"arn:aws:lambda:{region}:{TEST_ACCOUNT}:function:{artifact.function_name}",
    }
    if artifact.settings.get("snap_start") in ("PublishedVersions", True):
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    env.update(artifact.settings.get("aws_environment_variables") or {})
    env.update(extra or {})
    return env


@dataclass
class Answer:
    result: Any
    error: str | None
    cpu: float  # the process's CPU time so far (seconds)
    event_cpu: float = 0.0  # CPU time of this event alone
    event_wall: float = 0.0
    wall: float = 0.0  # measured by the parent: spawn → answer for the first event, send → answer for the others


@dataclass
class LambdaProcess:
    """One execution environment: started with ``start()``, events through ``invoke()``, ended by ``close()``."""

    artifact: Artifact
    env: dict[str, str]
    python: str = field(default_factory=lambda: getattr(sys, "_base_executable", sys.executable))
    process: subprocess.Popen | None = None
    init: Answer | None = None  # its ``cpu``: init (and, under SnapStart, the restore hooks) done
    init_cpu: float = 0.0  # the init up to the snapshot: the handler's import (+ before-snapshot hooks)
    started: float = 0.0
    stderr_path: Path | None = None
    invocations: int = 0
    database_dir: Path | None = None  # seen by the function at DATABASE_DIR
    flags: tuple[str, ...] = ()  # extra interpreter flags, e.g. ("-X", "importtime") (its report goes to the log)
    _last: dict[str, Any] = field(default_factory=dict)

    def start(self) -> LambdaProcess:
        global _BIND_READ_ONLY
        if _BIND_READ_ONLY is None:
            _BIND_READ_ONLY = _can_bind_read_only()
        fd, name = tempfile.mkstemp(prefix=f"lambda-{self.artifact.stage}-", suffix=".log")
        self.stderr_path = Path(name)
        command = [
            self.python,
            "-S",
            "-I",
            *self.flags,
            "-c",
            _BOOTSTRAP,
            str(self.artifact.task),
            str(self.artifact.runtime),
        ]
        if _BIND_READ_ONLY:
            mounts = [
                f"mount --bind {p} {p} && mount -o remount,bind,ro {p} {p}"
                for p in (self.artifact.task, self.artifact.runtime)
            ]
            if self.database_dir:
                DATABASE_DIR.mkdir(exist_ok=True)
                mounts.append(f"mount --bind {self.database_dir} {DATABASE_DIR}")
            command = ["unshare", "-m", "sh", "-c", f'{" && ".join(mounts)} && exec "$@"', "sh", *command]
        elif self.database_dir:
            _point_at(DATABASE_DIR, self.database_dir)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=self.artifact.task,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=fd,
            text=True,
        )
        os.close(fd)
        self.init = self._read()
        self.init_cpu = self._last.get("init_cpu", 0.0)
        if self.init.error:
            raise RuntimeError(f"init failed:\n{self.init.error}\n--- log ---\n{self.log()[-4000:]}")
        return self

    def _read(self) -> Answer:
        assert self.process is not None
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        wall = time.perf_counter() - self.started
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(f"the function process exited ({self.process.returncode}):\n{self.log()[-6000:]}")
        data = self._last = json.loads(line)
        return Answer(
            result=data.get("result"),
            error=data.get("error"),
            cpu=data["cpu"],
            event_cpu=data.get("event_cpu", 0.0),
            event_wall=data.get("event_wall", 0.0),
            wall=wall,
        )

    def invoke(self, event: dict[str, Any], *, raise_errors: bool = True) -> Answer:
        """Run one event; the first one's ``wall`` counts from the process's start (the cold start)."""
        assert self.process is not None
        assert self.process.stdin is not None
        if self.invocations:
            self.started = time.perf_counter()
        self.invocations += 1
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if answer.error and raise_errors:
            raise RuntimeError(f"the handler raised:\n{answer.error}\n--- log ---\n{self.log()[-4000:]}")
        return answer

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def close(self) -> None:
        if self.process:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None
        if self.stderr_path:
            self.stderr_path.unlink(missing_ok=True)


def _point_at(link: Path, target: Path) -> None:
    if link.is_dir() and not link.is_symlink():
        link.rmdir()  # an empty mount point left by a run as root
    temporary = link.with_name(f"{link.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(link)


@contextlib.contextmanager
def running(
    artifact: Artifact, extra_env: dict[str, str] | None = None, *, database_dir: Path | None = None
) -> Iterator[LambdaProcess]:
    """A started function process; ``database_dir`` (holding ``DATABASE_PATH``'s file name) is its database folder."""
    proc = LambdaProcess(artifact, lambda_environment(artifact, extra_env), database_dir=database_dir)
    try:
        yield proc.start()
    finally:
        proc.close()


# --- events (the shapes AWS sends) --------------------------------------------------------------------------------


def api_host(region: str) -> str:
    return f"{API_ID}.execute-api.{region}.amazonaws.com"


def rest_event(
    method: str,
    path: str,
    *,
    host: str,
    stage: str,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (payload 1.0) proxy event, as Zappa's API receives it."""
    all_headers = {
        "Host": host,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": "203.0.113.7",
        "User-Agent": "artifact-test",
        "Accept": "text/html,*/*",
        **(headers or {}),
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "artifact-test"},
            "domainName": host,
            "apiId": API_ID,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def http_event(
    method: str,
    path: str,
    *,
    host: str,
    stage: str,
    headers: dict[str, str] | None = None,
    cookies: list[str] | None = None,
    body: str | None = None,
    stage_in_path: bool = True,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event; on its default endpoint the raw path starts with the stage."""
    all_headers = {
        "host": host,
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": "203.0.113.8",
        "user-agent": "artifact-test",
        "accept": "text/html,*/*",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    raw_path = f"/{stage}{path}" if stage_in_path else path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": TEST_ACCOUNT,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": API_ID,
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.8"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    return event


def sqs_event(queue_arn: str, bodies: list[str], region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{n}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(int(time.time() * 1000)),
                    "SenderId": TEST_ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # what SQS sends
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for n, body in enumerate(bodies)
        ]
    }


def scheduled_event(rule_name: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": TEST_ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{TEST_ACCOUNT}:rule/{rule_name}"],
        "detail": {},
    }


def schedule_rule_name(function_name: str, function: str) -> str:
    """The EventBridge rule name Zappa gives a schedule (its handler routes by the function path at the end)."""
    from zappa.core import Zappa

    return Zappa.get_event_name(function_name, function)


def s3_event(bucket: str, key: str, size: int, etag: str, region: str, configuration_id: str) -> dict[str, Any]:
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Post",
                "userIdentity": {"principalId": "AWS:EXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.9"},
                "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    # Real S3 sends the notification's Id; Zappa names it after the function (no ':' in it).
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "0A1B2C3D"},
                },
            }
        ]
    }


def python_paths() -> dict[str, str]:
    """For the report: which interpreter and stdlib the function processes run with."""
    return {"python": getattr(sys, "_base_executable", sys.executable), "stdlib": sysconfig.get_paths()["stdlib"]}
