"""The whole local stack in one command (what ``make run`` starts).

moto's server as AWS (S3, SQS, SNS, SES) -> idempotent provisioning -> the local function runner (S3 events via SQS)
-> the web-side job runner (results) -> a Celery worker -> Django's server. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from boardsite.core.jobs import celery_worker_command


def _wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class Command(BaseCommand):
    help = "Run the local stack: moto (AWS), function runner, job runner, Celery worker and the site."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("BOARDSITE_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("BOARDSITE_PORT", 8000)))
        parser.add_argument("--aws-port", type=int, default=int(os.environ.get("MOTO_PORT", 5005)))

    def handle(self, *args: Any, host: str, port: int, aws_port: int, **options: Any) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        bindir = Path(sys.executable).parent
        env = os.environ.copy()
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        env.setdefault("PYTHONUNBUFFERED", "1")
        origin = f"http://{host}:{port}"
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            if not os.environ.get("AWS_ENDPOINT_URL"):
                endpoint = f"http://127.0.0.1:{aws_port}"
                self.start("aws (moto)", [str(bindir / "moto_server"), "-H", "127.0.0.1", "-p", str(aws_port)], env)
                if not _wait_for(f"{endpoint}/moto-api/", 30):
                    raise CommandError(f"moto's server did not answer on {endpoint}; is port {aws_port} free?")
                env["AWS_ENDPOINT_URL"] = endpoint
                os.environ.update(
                    {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
                )
                settings.AWS_ENDPOINT_URL = endpoint
            self.step("provisioning bucket, CORS, queues and the S3 -> SQS notification")
            subprocess.run(
                [sys.executable, "-m", "offload.provision", "--origin", origin, "--origin", f"http://localhost:{port}"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            call_command("migrate", interactive=False, verbosity=0)
            call_command("demo")
            self.step(f"job modes: {', '.join(f'{k}={v}' for k, v in settings.OFFLOAD_MODES.items())}")
            self.start("functions", [sys.executable, "-m", "offload.runner"], env)
            self.start("web jobs", [sys.executable, "manage.py", "runjobs"], env)
            self.start("celery", celery_worker_command(sys.executable), env)
            self.start("site", [sys.executable, "manage.py", "runserver", "--noreload", f"{host}:{port}"], env)
            if not _wait_for(f"{origin}/", 30):
                raise CommandError(f"the site did not start on {origin}")
            self.stdout.write(self.style.SUCCESS(f"\nboardsite is running: {origin}/   (Ctrl-C stops everything)\n"))
            while True:
                for name, proc in self.children:
                    if proc.poll() is not None:
                        raise CommandError(f"{name} exited with code {proc.returncode}; stopping the stack")
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.step("stopping")
        finally:
            self.stop_all()

    def step(self, text: str) -> None:
        self.stdout.write(f"[devstack] {text}")

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.step(f"starting {name}")
        # Own process group each, so Ctrl-C reaches us once and we stop them in order.
        self.children.append((name, subprocess.Popen(cmd, env=env, start_new_session=True)))

    def stop_all(self) -> None:
        # Reverse start order, one at a time: the site and the workers finish before the local AWS goes away.
        # A second Ctrl-C must not abandon the rest (moto would keep port 5005 and break the next `make run`).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.step(f"{name} did not stop; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children.clear()
