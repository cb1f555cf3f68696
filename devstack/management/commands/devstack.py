"""The whole local stack in one command (what ``make run`` starts).

moto's server as AWS (S3, SQS, SNS, SES) -> idempotent provisioning -> the local function runner (S3 events via SQS)
-> the web-side job runner (results) -> a Celery worker -> Django's server.

devstack supervises them: a child that exits is started again after 1, 2, 4 … 30 s (the delay starts over once a
child has run for a minute), and only Ctrl-C or SIGTERM stop the stack, every process it started, moto last. If moto
itself dies it is started again on the same port and provisioned again.

moto keeps S3 in memory: devstack copies the bucket to ``BOARDSITE_LOCAL_DIR/s3`` every ``SNAPSHOT_SECONDS`` and on
the way out, and puts it back when moto starts (``devstack/snapshot.py``), before the bucket's events are wired, so the
photos of earlier runs are still there and nothing is processed twice.

With ``BOARDSITE_CDN=local`` (or ``--cdn``) the photos come through the CloudFront mode (``boardsite/images/cdn.py``):
a local stand-in for the distribution (``devstack/cdn.py``) on ``--cdn-port`` checks the signed cookies and URLs
with a key pair kept in ``BOARDSITE_LOCAL_DIR/cdn``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from boardsite.core.db import database_problem
from boardsite.core.jobs import celery_worker_command
from devstack import runner, snapshot
from devstack.backoff import Backoff
from offload import registry
from offload import runs as offload_runs
from offload.aws import make_client

HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long starts its back-off over
AWS = "moto"
SNAPSHOT_SECONDS = 10


LOCAL_CDN_KEY_ID = "KLOCALSTANDIN"


def local_cdn_keys(folder: Path) -> Path:
    """The local key pair (made once, kept with the local data): the public key's path."""
    public = folder / "public.pem"
    if not public.exists():
        from devstack.cdn import new_key_pair

        _, private_pem, public_pem = new_key_pair()
        folder.mkdir(parents=True, exist_ok=True)
        private = folder / "private.pem"
        private.touch(mode=0o600)  # readable by its owner only, before it holds the key
        private.write_text(private_pem)
        public.write_text(public_pem)
    return public


def snapshot_dir() -> Path:
    return Path(settings.LOCAL_DIR) / "s3"


def beyond_modes(raw_faults: str, pinned: Iterable[str]) -> list[str]:
    """What makes the jobs behave otherwise than their modes say, as the stack starts: the faults ``OFFLOAD_FAULTS``
    injects (as ``offload/runs.py`` reads them, with the entries it ignores) and the jobs ``OFFLOAD_PINNED`` keeps on
    their mode whatever the control room says. Nothing when neither is set."""
    lines = []
    entries = [entry.strip() for entry in raw_faults.split(";") if entry.strip()]
    shown, ignored = [], []
    for entry in entries:
        parsed = offload_runs.faults(entry)
        if not parsed:
            ignored.append(entry)
            continue
        ((job, runtime), (fail, slow)) = next(iter(parsed.items()))
        what = [f"fail:{fail * 100:g}"] * bool(fail) + [f"slow:{slow * 1000:g}"] * bool(slow) or ["nothing"]
        unknown = ""
        if job not in registry.JOBS:
            unknown = " (no such job)"
        elif runtime not in (*registry.MODES, "*"):
            unknown = " (no such runtime)"
        shown.append(f"{job if runtime == '*' else f'{job}@{runtime}'}={','.join(what)}{unknown}")
    if entries:
        text = ", ".join(shown) or "none"
        if ignored:
            text += f"; ignored, not job@runtime=fail:PERCENT,slow:MS: {', '.join(ignored)}"
        lines.append(f"faults injected (OFFLOAD_FAULTS): {text}")
    if pinned:
        names = [name + (" (no such job)" if name not in registry.JOBS else "") for name in sorted(pinned)]
        lines.append(f"pinned to their OFFLOAD_MODES mode (OFFLOAD_PINNED): {', '.join(names)}")
    return lines


def _wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(url):
            return True
        time.sleep(0.2)
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _kill_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)  # exits since it last ran fine for HEALTHY_AFTER_SECONDS
    restart_at: float | None = field(default=None)
    log: Path | None = None  # its output goes here instead of the terminal


class Command(BaseCommand):
    help = "Run the local stack: moto (AWS), function runner, job runner, Celery worker and the site."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("BOARDSITE_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("BOARDSITE_PORT", 8000)))
        parser.add_argument("--aws-port", type=int, default=int(os.environ.get("MOTO_PORT", 5005)))
        parser.add_argument(
            "--cdn",
            action="store_true",
            default=os.environ.get("BOARDSITE_CDN", "").strip().lower() == "local",
            help="serve photos through a local CloudFront stand-in (BOARDSITE_CDN=local)",
        )
        parser.add_argument("--cdn-port", type=int, default=int(os.environ.get("BOARDSITE_CDN_PORT", 5006)))
        parser.add_argument(
            "--functions-port",
            type=int,
            default=int(os.environ.get("BOARDSITE_FUNCTIONS_PORT", 5007)),
            help="the functions stage's function URL, locally: the upload-ticket function (BOARDSITE_FUNCTIONS_PORT)",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=int(os.environ.get("BOARDSITE_RUNNER_CONCURRENCY", runner.DEFAULT_CONCURRENCY)),
            help="invocations of each local function at once (BOARDSITE_RUNNER_CONCURRENCY; the registry's reserved "
            "concurrency caps it)",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        aws_port: int,
        cdn: bool,
        cdn_port: int,
        functions_port: int,
        concurrency: int,
        **options: Any,
    ) -> None:
        if concurrency < 1:
            raise CommandError(f"--concurrency must be at least 1, got {concurrency}")
        if problem := database_problem():
            raise CommandError(problem)
        own_aws = not os.environ.get("AWS_ENDPOINT_URL")
        wanted = [("the site", host, port, "--port or BOARDSITE_PORT")]
        if own_aws:
            wanted.append(("moto", "127.0.0.1", aws_port, "--aws-port or MOTO_PORT"))
        if cdn:
            wanted.append(("the CloudFront stand-in", host, cdn_port, "--cdn-port or BOARDSITE_CDN_PORT"))
        wanted.append(("the function URL", host, functions_port, "--functions-port or BOARDSITE_FUNCTIONS_PORT"))
        for what, where, number, option in wanted:
            if _port_in_use(where, number):
                raise CommandError(
                    f"port {number} for {what} is in use (another `make run`?); choose another with {option}"
                )
        self.children: list[Child] = []
        self.aws_port = aws_port
        self.snapshot_at = time.monotonic()
        bindir = Path(sys.executable).parent
        self.env = os.environ.copy()
        self.env.setdefault("AWS_ACCESS_KEY_ID", "local")
        self.env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.origin = f"http://{host}:{port}"
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        # Started in the background by a non-interactive shell, SIGINT arrives ignored: Ctrl-C / kill -INT must stop us.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            if own_aws:
                endpoint = f"http://127.0.0.1:{aws_port}"
                # moto logs every request (the runners poll twice a second): to a file, not over the stack's own lines.
                moto = [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(aws_port)]
                self.start(Child(AWS, moto, log=Path(settings.LOCAL_DIR) / "moto.log"))
                if not _wait_for(f"{endpoint}/moto-api/", 30):
                    raise CommandError(f"moto's server did not answer on {endpoint}; is port {aws_port} free?")
                self.env["AWS_ENDPOINT_URL"] = endpoint
                os.environ.update(
                    {k: self.env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
                )
                settings.AWS_ENDPOINT_URL = endpoint
            if own_aws:
                self.restore_snapshot()
            self.step("provisioning bucket, CORS, queues, topics and S3 -> SQS notifications")
            if error := self.provision():
                raise CommandError(f"provisioning failed: {error}")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("createcachetable", verbosity=0)  # does nothing unless a database cache is configured
            call_command("demo")
            self.step(f"job modes: {', '.join(f'{k}={v}' for k, v in settings.OFFLOAD_MODES.items())}")
            for line in beyond_modes(os.environ.get("OFFLOAD_FAULTS", ""), settings.OFFLOAD_PINNED):
                self.step(line)
            if cdn:
                self.start(Child("cdn", self.local_cdn(host, cdn_port)))
            self.start(Child("function URL", self.function_url(host, functions_port)))
            at_once = ["--concurrency", str(concurrency)]
            self.start(Child("functions", [sys.executable, "-m", "devstack.runner", *at_once]))
            self.start(Child("web jobs", [sys.executable, "manage.py", "runjobs", *at_once]))
            self.start(Child("celery", celery_worker_command(sys.executable)))
            self.start(Child("site", [sys.executable, "manage.py", "runserver", "--noreload", f"{host}:{port}"]))
            self.supervise()
        except KeyboardInterrupt:
            self.step("stopping")
        finally:
            self.stop_all()

    def function_url(self, host: str, port: int) -> list[str]:
        """The upload-ticket function's server (``devstack/function_urls.py``) and what the site needs to send
        people there: its address and the key that signs their grants (made once, kept in the local folder)."""
        key_file = Path(settings.LOCAL_DIR) / "upload-grant.key"
        if not os.environ.get("UPLOAD_GRANT_KEY"):
            if not key_file.exists():
                key_file.parent.mkdir(parents=True, exist_ok=True)
                key_file.write_text(secrets.token_urlsafe(32))
                key_file.chmod(0o600)
            self.env["UPLOAD_GRANT_KEY"] = key_file.read_text().strip()
        self.env["UPLOAD_TICKET_FUNCTION_URL"] = f"http://{host}:{port}"
        origins = [self.origin, self.origin.replace("127.0.0.1", "localhost")]
        cmd = [sys.executable, "-m", "devstack.function_urls", "--host", host, "--port", str(port)]
        return cmd + [arg for origin in dict.fromkeys(origins) for arg in ("--origin", origin)]

    def local_cdn(self, host: str, port: int) -> list[str]:
        """The stand-in's command; the site (started after) signs for it with the same local key pair."""
        public = local_cdn_keys(Path(settings.LOCAL_DIR) / "cdn")
        self.env.update(
            BOARDSITE_CDN_URL=f"http://{host}:{port}",  # the site's host: its host-only cookies reach this port too
            BOARDSITE_CDN_COOKIE_DOMAIN="",
            BOARDSITE_CDN_KEY_ID=LOCAL_CDN_KEY_ID,
            BOARDSITE_CDN_PRIVATE_KEY=(public.parent / "private.pem").read_text(),
        )
        self.step(f"photos through the local CloudFront stand-in on http://{host}:{port} (BOARDSITE_CDN=local)")
        cmd = [sys.executable, "-m", "devstack.cdn", "--host", host, "--port", str(port)]
        return [*cmd, "--key-id", LOCAL_CDN_KEY_ID, "--public-key", str(public)]

    def s3(self) -> Any:
        return make_client("s3", settings.AWS_REGION, self.env["AWS_ENDPOINT_URL"])

    def restore_snapshot(self) -> None:
        """Put the photos of earlier runs back into the new (empty) local S3, before provisioning wires the bucket's
        events: nothing restored is processed again."""
        restored = snapshot.restore(self.s3(), settings.BOARDSITE_BUCKET, snapshot_dir())
        self.snapshot_at = time.monotonic()
        if restored:
            self.step(f"restored {restored} objects of the local S3 from {snapshot_dir()}")

    def save_snapshot(self, *, quiet: bool = True) -> None:
        try:
            counts = snapshot.save(self.s3(), settings.BOARDSITE_BUCKET, snapshot_dir())
        except Exception as exc:  # moto away (it is restarted and restored): the next round saves
            if not quiet:
                self.step(f"could not save the local S3 to {snapshot_dir()}: {exc}")
            return
        finally:
            self.snapshot_at = time.monotonic()
        if not quiet:
            self.step(f"saved the local S3 to {snapshot_dir()} ({counts['copied']} new, {counts['dropped']} removed)")

    def step(self, text: str) -> None:
        self.stdout.write(f"[devstack] {text}")

    def provision(self) -> str | None:
        """Run the idempotent provisioning; the last line of its error output when it fails."""
        port = self.origin.rsplit(":", 1)[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "devstack.provision",
                "--origin",
                self.origin,
                "--origin",
                f"http://localhost:{port}",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode == 0:
            return None
        return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]

    def start(self, child: Child) -> None:
        if child not in self.children:
            self.children.append(child)
        # Own process group each, so Ctrl-C reaches us once and we stop them in order.
        output = None
        if child.log is not None:
            child.log.parent.mkdir(parents=True, exist_ok=True)
            output = child.log.open("a")
        child.proc = subprocess.Popen(
            child.cmd, env=self.env, start_new_session=True, stdout=output, stderr=subprocess.STDOUT if output else None
        )
        if output is not None:
            output.close()  # the child has its own descriptor
        child.started = time.monotonic()
        where = f"; its log: {child.log}" if child.log else ""
        self.step(f"starting {child.name} (pid {child.proc.pid}){where}")

    def supervise(self) -> None:
        """Restart whatever exits, with back-off, until Ctrl-C / SIGTERM (a KeyboardInterrupt)."""
        announced = False
        site = next(c for c in self.children if c.name == "site")
        while True:
            for child in self.children:
                self.tend(child)
            aws = next((c for c in self.children if c.name == AWS), None)
            if aws is not None and aws.proc is not None and time.monotonic() - self.snapshot_at >= SNAPSHOT_SECONDS:
                self.save_snapshot()
            if not announced and site.proc is not None and _answers(f"{self.origin}/"):
                self.stdout.write(
                    self.style.SUCCESS(f"\nboardsite is running: {self.origin}/   (Ctrl-C stops everything)\n")
                )
                announced = True
            time.sleep(0.5)

    def tend(self, child: Child) -> None:
        now = time.monotonic()
        if child.proc is not None:
            code = child.proc.poll()
            if code is None:
                if now - child.started >= HEALTHY_AFTER_SECONDS:
                    child.backoff.reset()
                return
            _kill_group(child.proc.pid, signal.SIGKILL)  # whatever the dead child left behind in its group
            child.proc = None
            delay = child.backoff.next()
            child.restart_at = now + delay
            if child.name == AWS:
                self.stdout.write(
                    self.style.ERROR(
                        f"[devstack] !!! the local AWS (moto) exited with code {code}: what it held in memory is "
                        f"gone (queued events; objects since the last copy, at most {SNAPSHOT_SECONDS} s old). "
                        f"Restarting it on port {self.aws_port} in {delay:g} s, restoring the objects from "
                        f"{snapshot_dir()} and provisioning again."
                    )
                )
            else:
                self.step(f"{child.name} exited with code {code}; restarting in {delay:g} s")
        elif child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            self.start(child)
            if child.name == AWS:
                self.restore_aws(child)

    def restore_aws(self, child: Child) -> None:
        endpoint = self.env["AWS_ENDPOINT_URL"]
        error = None if _wait_for(f"{endpoint}/moto-api/", 30) else f"moto's server did not answer on {endpoint}"
        if error is None:
            self.restore_snapshot()
        error = error or self.provision()
        if error:
            self.step(f"the local AWS did not come back ({error}); trying again")
            _kill_group(child.proc.pid, signal.SIGKILL)  # tend() sees it exit and backs off
            return
        self.stdout.write(
            self.style.ERROR(
                f"[devstack] !!! the local AWS is back and provisioned again, its objects restored from the copy "
                f"saved every {SNAPSHOT_SECONDS} s: photos uploaded in the last seconds before it died may have lost "
                "their bytes (they show as missing)"
            )
        )

    def stop_all(self) -> None:
        # The site and the workers together (each runner may be in a 5 s long poll), then the local AWS last, so
        # nothing loses AWS mid-job. A second Ctrl-C must not abandon the rest (moto would keep its port and break
        # the next `make run`).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        running = [c for c in reversed(self.children) if c.proc is not None]
        aws = [c for c in running if c.name == AWS]
        others = [c for c in running if c not in aws]
        for group in (others, aws):
            if group is aws and aws and aws[0].proc.poll() is None:
                self.save_snapshot(quiet=False)  # the workers have stopped: nothing writes any more
            for child in group:
                if child.proc.poll() is None:
                    _kill_group(child.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in group:
                proc = child.proc
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.step(f"{child.name} did not stop; killing it")
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                _kill_group(proc.pid, signal.SIGKILL)  # anything it started and left behind in its group
        self.children.clear()
