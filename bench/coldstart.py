"""Cold start, warm latency and size of each Zappa stage: plain Zappa, ours and the SDK's floor, in one run.

    .venv/bin/python bench/coldstart.py [--cold 9] [--warm 15] [--plain-venv DIR] [--web-on-demand] [--check]

"plain": ``zappa package`` with a venv holding ``requirements.txt`` and Zappa (``--plain-venv``; default this dev
venv) and no prebuild script (the settings' ``prebuild_script`` removed; static files collected beforehand so that its
pages render); "ours": the settings as ``python -m deploy configure`` writes them (the prebuild script builds the
stage's slim, byte-compiled site-packages); "floor": a package whose handler only imports boto3 and makes an S3
client (tests/lambda_env.py, ``FLOOR_HANDLER``): what any Python function that talks to AWS pays before its own code.
All are run the way Lambda runs them (tests/lambda_env.py: the unzipped package read-only, boto3 in a separate runtime
folder, a clean environment, ``python3.12 -S -I``), against moto's server and a migrated SQLite database in a
temporary folder. The machine is shared and noisy, so the processes of one round (one of each package) run one after
the other, and the goals compare figures of the same rounds: each round's difference or ratio, then their median.

- cold: a fresh process, from its start to the first event's answer (Lambda's init + first invoke; for the web
  stage's SnapStart, also the restore hook). CPU time is the process's own (``time.process_time`` at the answer);
  wall is measured by this script (spawn → answer). "init CPU": the init up to the snapshot's moment (the handler's
  import, and before-snapshot hooks under SnapStart), which a SnapStart restore skips.
- warm: further events in the same process (first round only); CPU and wall of the event alone.
- events: web ``GET /`` through API Gateway (REST payload 1.0); functions an S3 ObjectCreated event for a fresh
  small JPEG under ``originals/`` each time (so no run hits the duplicate check); the floor an empty event.

Goals (``--check`` exits 1 when one is missed or was not measured):
- functions, fresh process (import + first event): at most the floor + 0.10 s CPU;
- web as deployed (SnapStart: restore + first page): at most 0.10 s CPU;
- web, fresh process: at most 0.4x plain Zappa's;
- zips: web at most 25 MiB, functions at most 15 MiB.
The cold-start figures rest on each stage's entry point (its ``lambda_handler``: offload.entry, boardsite.entry);
the run prints the ones it ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import lambda_env  # noqa: E402 (after the path is set)

MIB = 1024 * 1024
FUNCTIONS_OVER_FLOOR = 0.10  # s CPU: functions import + first event, above the floor of the same rounds
WEB_SNAPSTART = 0.10  # s CPU: web restore + first page
WEB_FRESH_RATIO = 0.4  # web fresh process, ours / plain Zappa's of the same rounds
ZIP_GOALS = {"web": 25 * MIB, "functions": 15 * MIB}
SECRET_KEY = "bench-only-secret-key-" + "b" * 40


@dataclass
class Samples:
    """One package's figures: a value per fresh process (round) for the cold start, per event for warm ones."""

    zip_bytes: int
    unzipped_bytes: int
    init_cpu: list[float] = field(default_factory=list)  # up to the snapshot (under SnapStart, what a restore skips)
    cold_cpu: list[float] = field(default_factory=list)
    cold_wall: list[float] = field(default_factory=list)
    warm_cpu: list[float] = field(default_factory=list)
    warm_wall: list[float] = field(default_factory=list)

    @property
    def after_init(self) -> list[float]:
        """Per process, the cold start after the snapshot's moment: under SnapStart, restore hooks + first event."""
        return [c - i for c, i in zip(self.cold_cpu, self.init_cpu, strict=True)]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: list[float]) -> str:
    """``median [min-max]`` in seconds."""
    return f"{median(values):.3f} [{min(values):.3f}-{max(values):.3f}]" if values else "-"


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
        from devstack import provision

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
    if artifact.stage == "floor":
        return dict
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
    if stage == "floor":
        if result != {}:
            raise RuntimeError(f"the floor answered {str(result)[:300]}")
    elif stage == "web":
        if not result or result.get("statusCode") != 200:
            raise RuntimeError(f"web answered {str(result)[:300]}")
    else:
        statuses = [r.get("status") for r in (result or {}).get("results", [])]
        if statuses != ["ready"]:
            raise RuntimeError(f"functions answered {str(result)[:300]}")


def measure(stack: Stack, artifacts: dict[str, lambda_env.Artifact], cold_runs: int, warm_runs: int) -> dict:
    """Rounds of one fresh process per package, in turn (so that the machine's load drifts across all of them alike);
    the first round's processes also answer ``warm_runs`` further events."""
    env = {"AWS_ENDPOINT_URL": stack.endpoint}
    samples = {name: Samples(a.zip_bytes, a.unzipped_bytes) for name, a in artifacts.items()}
    makers = {name: event_maker(stack, a) for name, a in artifacts.items()}
    for n in range(cold_runs):
        for name, artifact in artifacts.items():
            s, make_event = samples[name], makers[name]
            events = [make_event() for _ in range(1 + (warm_runs if n == 0 else 0))]
            with lambda_env.running(artifact, env, database_dir=stack.folder) as proc:
                first = proc.invoke(events[0])
                check_answer(artifact.stage, first.result)
                s.init_cpu.append(proc.init_cpu)
                s.cold_cpu.append(first.cpu)
                s.cold_wall.append(first.wall)
                for event in events[1:]:
                    answer = proc.invoke(event)
                    check_answer(artifact.stage, answer.result)
                    s.warm_cpu.append(answer.event_cpu)
                    s.warm_wall.append(answer.wall)
        print(f"round {n + 1}/{cold_runs} done", file=sys.stderr, flush=True)
    return samples


def settings_files(folder: Path, source: Path | None) -> dict[str, Path]:
    """Settings files: "ours" as ``python -m deploy configure`` writes them, "plain" the same without the prebuild."""
    ours = lambda_env.configure(folder / "ours.json") if source is None else source
    return {"plain": lambda_env.without_prebuild(ours, folder / "plain.json"), "ours": ours}


def collect_static() -> None:
    """Plain Zappa ships the project folder as it is: collect the static files first, or its pages cannot render."""
    from deploy import build

    build.collectstatic(ROOT)


def goals(samples: dict[str, Samples], stages: list[str]) -> list[tuple[str, bool | None]]:
    """Each goal as (what was measured, met?); None when its figures were not measured."""
    out: list[tuple[str, bool | None]] = []
    if "functions" in stages:
        ours, floor = samples.get("functions/ours"), samples.get("floor")
        if ours and floor:
            above = [o - f for o, f in zip(ours.cold_cpu, floor.cold_cpu, strict=True)]
            line = f"functions fresh process - floor: {spread(above)} s CPU (goal <= {FUNCTIONS_OVER_FLOOR})"
            out.append((line, median(above) <= FUNCTIONS_OVER_FLOOR))
        else:
            out.append(("functions - floor: not measured (needs the 'ours' variant and the floor)", None))
    if "web" in stages:
        ours, plain = samples.get("web/ours"), samples.get("web/plain")
        if ours:
            line = (
                f"web under SnapStart (restore + first page): {spread(ours.after_init)} s CPU (goal <= {WEB_SNAPSTART})"
            )
            out.append((line, median(ours.after_init) <= WEB_SNAPSTART))
        else:
            out.append(("web under SnapStart: not measured (needs the 'ours' variant)", None))
        if ours and plain:
            ratio = [o / p for o, p in zip(ours.cold_cpu, plain.cold_cpu, strict=True)]
            line = f"web fresh process, ours / plain: {median(ratio):.2f} [{min(ratio):.2f}-{max(ratio):.2f}]"
            out.append((f"{line} (goal <= {WEB_FRESH_RATIO})", median(ratio) <= WEB_FRESH_RATIO))
        else:
            out.append(("web ours / plain: not measured (needs both variants)", None))
    for stage in stages:
        ours = samples.get(f"{stage}/ours")
        if ours:
            line = f"{stage} zip {ours.zip_bytes / MIB:.1f} MiB (goal <= {ZIP_GOALS[stage] / MIB:.0f} MiB)"
            out.append((line, ours.zip_bytes <= ZIP_GOALS[stage]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=9, help="rounds: fresh processes per package (median)")
    parser.add_argument("--warm", type=int, default=15, help="warm events after the first cold start (median)")
    parser.add_argument("--stages", default="web,functions")
    parser.add_argument("--variants", default="plain,ours")
    parser.add_argument(
        "--plain-venv",
        type=Path,
        help="the venv plain Zappa packages (default: this dev venv; requirements.txt + zappa compares sizes fairly)",
    )
    parser.add_argument("--settings", type=Path, help="deployable settings to use (default: deploy configure's)")
    parser.add_argument(
        "--web-on-demand",
        action="store_true",
        help="also run each web package as an on-demand init (no SnapStart: how $LATEST starts for its schedules and "
        "queues), for information",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed or not measured")
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]

    # Packages are cached (tests/lambda_env.py); on a shared machine other runs prune the shared cache, which would
    # remove a package while this run uses it: a cache of the bench's own.
    os.environ.setdefault("BOARDSITE_ARTIFACT_CACHE", str(ROOT / ".build" / "coldstart-artifacts"))
    folder = Path(tempfile.mkdtemp(prefix="boardsite-coldstart-settings-"))
    files = settings_files(folder, args.settings)
    artifacts: dict[str, lambda_env.Artifact] = {}
    for stage in stages:
        for variant in variants:
            print(f"packaging {stage} ({variant})...", file=sys.stderr, flush=True)
            if stage == "web" and variant == "plain":
                collect_static()
            venv = args.plain_venv if variant == "plain" else None
            artifacts[f"{stage}/{variant}"] = artifact = lambda_env.package(stage, files[variant], venv=venv)
            if stage == "web" and args.web_on_demand:
                settings = {k: v for k, v in artifact.settings.items() if k != "snap_start"}
                artifacts[f"web/{variant} od"] = dataclasses.replace(artifact, settings=settings)
    like = artifacts.get("functions/ours") or next(iter(artifacts.values()))
    artifacts["floor"] = lambda_env.floor_artifact(folder, like)
    stack = Stack()
    try:
        samples = measure(stack, artifacts, args.cold, args.warm)
    finally:
        stack.close()

    print(f"{args.cold} rounds; CPU and wall in seconds, median [min-max] of the fresh processes; warm: median ms")
    print(
        f"{'package':<16} {'zip MiB':>7} {'unzip MiB':>9} {'init CPU':>9} {'cold CPU':>21} {'after init':>9} "
        f"{'cold wall':>9} {'warm CPU':>8} {'warm wall':>9}"
    )
    for name, s in samples.items():
        sizes = f"{'-':>7} {'-':>9}" if name == "floor" else f"{s.zip_bytes / MIB:>7.1f} {s.unzipped_bytes / MIB:>9.1f}"
        print(
            f"{name:<16} {sizes} {median(s.init_cpu):>9.3f} {spread(s.cold_cpu):>21} {median(s.after_init):>9.3f} "
            f"{median(s.cold_wall):>9.3f} {median(s.warm_cpu) * 1000:>8.1f} {median(s.warm_wall) * 1000:>9.1f}"
        )
    print("after init: the cold start after the snapshot's moment (under SnapStart, what a restore costs)")
    if args.web_on_demand:
        print("web/... od: the same package started on demand (no SnapStart hooks: Lambda's $LATEST)")
    for stage in stages:  # what the goals rest on (README): each stage's own entry point in front of Zappa's handler
        if f"{stage}/ours" in artifacts:
            entry = artifacts[f"{stage}/ours"].settings.get("lambda_handler", "handler.lambda_handler")
            print(f"{stage} entry point: {entry}" + (" (Zappa's own)" if entry == "handler.lambda_handler" else ""))
    for stage in stages:
        if f"{stage}/plain" in samples and f"{stage}/ours" in samples:
            p, o = samples[f"{stage}/plain"], samples[f"{stage}/ours"]
            warm = median(o.warm_cpu) / max(median(p.warm_cpu), 1e-9)
            print(
                f"{stage}: ours/plain  zip {o.zip_bytes / p.zip_bytes:.2f}  unzipped "
                f"{o.unzipped_bytes / p.unzipped_bytes:.2f}  warm CPU {warm:.2f}"
            )
    results = goals(samples, stages)
    for line, met in results:
        print(f"{'met' if met else 'MISSED' if met is False else 'NOT MEASURED'}: {line}")
    if args.json:
        args.json.write_text(json.dumps({name: asdict(s) for name, s in samples.items()}, indent=2))
    return 1 if args.check and not all(met for _, met in results) else 0


if __name__ == "__main__":
    sys.exit(main())
