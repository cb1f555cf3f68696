"""Cold start, warm latency and size of each Zappa stage: plain Zappa against ours, ratios in one run.

    .venv/bin/python bench/coldstart.py [--cold 5] [--warm 20] [--stages web,functions] [--check]

"plain": ``zappa package`` with the dev venv and no prebuild script (the settings' ``prebuild_script`` removed; static
files collected beforehand so that its pages render); "ours": the settings as ``python -m deploy configure`` writes
them (the prebuild script builds the stage's slim, byte-compiled site-packages). Both are run the way Lambda runs
them (tests/lambda_env.py: the unzipped package read-only, boto3 in a separate runtime folder, a clean environment,
``python3.12 -S -I``), against moto's server and a migrated SQLite database in a temporary folder.

- cold: a fresh process, from its start to the first event's answer (Lambda's init + first invoke; for the web
  stage's SnapStart, also the restore hook). CPU time is the process's own (``time.process_time`` at the answer);
  wall is measured by this script (spawn → answer). "init CPU": the init up to the snapshot's moment (the handler's
  import, and before-snapshot hooks under SnapStart), which a SnapStart restore skips.
- warm: further events in the same process; CPU and wall of the event alone.
- events: web ``GET /`` through API Gateway (REST payload 1.0); functions an S3 ObjectCreated event for a fresh
  small JPEG under ``originals/`` each time (so no run hits the duplicate check).

Goals (this machine): web cold start <= 0.5 s, functions <= 0.25 s (CPU time), web zip <= 25 MiB, functions zip
<= 15 MiB. ``--check`` exits 1 when "ours" misses one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import lambda_env  # noqa: E402 (after the path is set)

MIB = 1024 * 1024
GOALS = {  # stage: (cold start CPU seconds, zip bytes)
    "web": (0.5, 25 * MIB),
    "functions": (0.25, 15 * MIB),
}
SECRET_KEY = "bench-only-secret-key-" + "b" * 40


@dataclass
class Figures:
    zip_bytes: int
    unzipped_bytes: int
    init_cpu: float  # the init up to the snapshot (under SnapStart: what the snapshot saves on each cold start)
    cold_cpu: float
    cold_wall: float
    warm_cpu: float
    warm_wall: float


def small_jpeg(seed: int) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (1024, 768), (seed * 37 % 255, 120, 200))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


class Stack:
    """moto's server (provisioned as the site expects) and a migrated SQLite database, both temporary."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.folder = Path(tempfile.mkdtemp(prefix="boardsite-coldstart-"))
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ.get("MOTO_PORT", 0)), verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # The packaged settings name lambda_env.DATABASE_PATH; each function process sees this folder there.
        self.database_url = f"sqlite:///{self.folder / lambda_env.DATABASE_PATH.name}"
        os.environ.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            BOARDSITE_LOCAL_DIR=str(self.folder),
        )
        from offload import provision

        provision.provision(origins=["http://127.0.0.1"])
        from offload import aws

        aws.client("ssm").put_parameter(  # the web stage reads its secret key from SSM (BOARDSITE_SSM_PREFIX)
            Name="/boardsite/prod/DJANGO_SECRET_KEY", Value=SECRET_KEY, Type="SecureString", Overwrite=True
        )
        env = {**os.environ, "DATABASE_URL": self.database_url}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)

    def put_original(self) -> dict[str, Any]:
        from offload import aws

        data = small_jpeg(uuid.uuid4().int % 255)
        key = f"originals/1/{uuid.uuid4()}.jpg"
        s3 = aws.client("s3")
        s3.put_object(
            Bucket=lambda_env.BUCKET,
            Key=key,
            Body=data,
            ContentType="image/jpeg",
            Metadata={"declared-size": str(len(data))},
        )
        etag = s3.head_object(Bucket=lambda_env.BUCKET, Key=key)["ETag"].strip('"')
        return {"key": key, "size": len(data), "etag": etag}

    def close(self) -> None:
        import shutil

        self.moto.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def event_maker(stack: Stack, artifact: lambda_env.Artifact):  # noqa: ANN201
    region = artifact.settings.get("aws_region", "us-east-1")
    if artifact.stage == "web":
        host = lambda_env.api_host(region)
        return lambda: lambda_env.rest_event("GET", "/", host=host, stage=artifact.stage)

    def s3_event() -> dict[str, Any]:
        obj = stack.put_original()
        return lambda_env.s3_event(
            lambda_env.BUCKET, obj["key"], obj["size"], obj["etag"], region, configuration_id=artifact.function_name
        )

    return s3_event


def check_answer(stage: str, result: Any) -> None:
    if stage == "web":
        if not result or result.get("statusCode") != 200:
            raise RuntimeError(f"web answered {str(result)[:300]}")
    else:
        statuses = [r.get("status") for r in (result or {}).get("results", [])]
        if statuses != ["ready"]:
            raise RuntimeError(f"functions answered {str(result)[:300]}")


def measure(stack: Stack, artifact: lambda_env.Artifact, cold_runs: int, warm_runs: int) -> Figures:
    env = {"AWS_ENDPOINT_URL": stack.endpoint}
    make_event = event_maker(stack, artifact)
    init_cpu, cold_cpu, cold_wall, warm_cpu, warm_wall = [], [], [], [], []
    for n in range(cold_runs):
        events = [make_event() for _ in range(1 + (warm_runs if n == 0 else 0))]
        with lambda_env.running(artifact, env, database_dir=stack.folder) as proc:
            first = proc.invoke(events[0])
            check_answer(artifact.stage, first.result)
            init_cpu.append(proc.init_cpu)
            cold_cpu.append(first.cpu)
            cold_wall.append(first.wall)
            for event in events[1:]:
                answer = proc.invoke(event)
                check_answer(artifact.stage, answer.result)
                warm_cpu.append(answer.event_cpu)
                warm_wall.append(answer.wall)
    return Figures(
        zip_bytes=artifact.zip_bytes,
        unzipped_bytes=artifact.unzipped_bytes,
        init_cpu=statistics.median(init_cpu),
        cold_cpu=statistics.median(cold_cpu),
        cold_wall=statistics.median(cold_wall),
        warm_cpu=statistics.median(warm_cpu) if warm_cpu else 0.0,
        warm_wall=statistics.median(warm_wall) if warm_wall else 0.0,
    )


def settings_files(folder: Path, source: Path | None) -> dict[str, Path]:
    """Settings files: "ours" as ``python -m deploy configure`` writes them, "plain" the same without the prebuild."""
    ours = lambda_env.configure(folder / "ours.json") if source is None else source
    return {"plain": lambda_env.without_prebuild(ours, folder / "plain.json"), "ours": ours}


def collect_static() -> None:
    """Plain Zappa ships the project folder as it is: collect the static files first, or its pages cannot render."""
    from deploy import build

    build.collectstatic(ROOT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=5, help="fresh processes per stage and variant (median)")
    parser.add_argument("--warm", type=int, default=20, help="warm events after the first cold start (median)")
    parser.add_argument("--stages", default="web,functions")
    parser.add_argument("--variants", default="plain,ours")
    parser.add_argument(
        "--plain-venv",
        type=Path,
        help="the venv plain Zappa packages (default: this dev venv; requirements.txt + zappa compares sizes fairly)",
    )
    parser.add_argument("--settings", type=Path, help="deployable settings to use (default: deploy configure's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--check", action="store_true", help="exit 1 when 'ours' misses a goal")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]

    folder = Path(tempfile.mkdtemp(prefix="boardsite-coldstart-settings-"))
    files = settings_files(folder, args.settings)
    figures: dict[tuple[str, str], Figures] = {}
    stack = Stack()
    try:
        for stage in stages:
            for variant in variants:
                print(f"packaging and running {stage} ({variant})...", file=sys.stderr, flush=True)
                if stage == "web" and variant == "plain":
                    collect_static()
                venv = args.plain_venv if variant == "plain" else None
                artifact = lambda_env.package(stage, files[variant], venv=venv)
                figures[stage, variant] = measure(stack, artifact, args.cold, args.warm)
    finally:
        stack.close()

    print(
        f"{'stage':<10} {'variant':<6} {'zip MiB':>8} {'unzip MiB':>9} {'init CPU s':>10} {'cold CPU s':>10} "
        f"{'-init s':>8} {'cold wall s':>11} {'warm CPU ms':>11} {'warm wall ms':>12}"
    )
    for (stage, variant), f in figures.items():
        print(
            f"{stage:<10} {variant:<6} {f.zip_bytes / MIB:>8.1f} {f.unzipped_bytes / MIB:>9.1f} {f.init_cpu:>10.3f} "
            f"{f.cold_cpu:>10.3f} {f.cold_cpu - f.init_cpu:>8.3f} {f.cold_wall:>11.3f} {f.warm_cpu * 1000:>11.1f} "
            f"{f.warm_wall * 1000:>12.1f}"
        )
    print("-init: the cold start after the snapshot's moment (under SnapStart, what a restore costs: hooks + event)")
    for stage in stages:
        if (stage, "plain") in figures and (stage, "ours") in figures:
            p, o = figures[stage, "plain"], figures[stage, "ours"]
            print(
                f"{stage}: ours/plain  zip {o.zip_bytes / p.zip_bytes:.2f}  unzipped "
                f"{o.unzipped_bytes / p.unzipped_bytes:.2f}  cold CPU {o.cold_cpu / p.cold_cpu:.2f}  cold wall "
                f"{o.cold_wall / p.cold_wall:.2f}  warm CPU {o.warm_cpu / max(p.warm_cpu, 1e-9):.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps({f"{s}/{v}": vars(f) for (s, v), f in figures.items()}, indent=2))

    missed = []
    for stage in stages:
        if (stage, "ours") not in figures:
            continue
        f = figures[stage, "ours"]
        cold_goal, zip_goal = GOALS[stage]
        if f.cold_cpu > cold_goal:
            missed.append(f"{stage} cold start {f.cold_cpu:.3f} s CPU > {cold_goal} s")
        if f.zip_bytes > zip_goal:
            missed.append(f"{stage} zip {f.zip_bytes / MIB:.1f} MiB > {zip_goal / MIB:.0f} MiB")
    if ("web", "ours") in figures:
        f = figures["web", "ours"]
        print(f"web under SnapStart (as deployed): restore + first page {f.cold_cpu - f.init_cpu:.3f} s CPU")
    for line in missed:
        print(f"goal missed: {line}")
    if not missed:
        print("all goals met" if "ours" in variants else "no 'ours' figures to check")
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
