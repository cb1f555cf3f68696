"""What the Lambda artifacts carry (deploy/build.py, deploy/prebuild.py) and what the shipped code imports.

Import checks run in fresh subprocesses: a module another test loaded would hide what a cold Lambda loads.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from PIL import Image

from deploy import build, prebuild

# Its subject does not touch the site's database or broker (.ci/run: first pass only).
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
STAGE_EXTRAS = [("web", ()), ("web", ("celery", "redis")), ("web", ("cdn",)), ("functions", ())]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "boardsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done


# --- the stages' package lists ----------------------------------------------------------------------------------------


def project_pins() -> dict[str, str]:
    return build.read_requirements(ROOT / "requirements-dev.txt")  # the dev lock: every package, transitive too


def pin_mismatches(pins: dict[str, str]) -> list[str]:
    """Pins that differ from the dev lock's (what `make test` installs and runs the tests with)."""
    project = project_pins()
    problems = []
    for name, version in pins.items():
        expected = project.get(name)
        if expected is None:
            problems.append(f"{name}=={version}: not in requirements-dev.txt, so never tested")
        elif version != expected:
            problems.append(f"{name}=={version}: the project has {expected}")
    return problems


@pytest.mark.parametrize("path", sorted((ROOT / "deploy").glob("requirements-*.txt")), ids=lambda p: p.name)
def test_stage_pins_match_the_project(path):
    pins = build.read_requirements(path)
    assert pins
    assert pin_mismatches(pins) == []


@pytest.mark.parametrize("stage", build.STAGES)
def test_a_stage_ships_only_what_it_includes(stage, tmp_path):
    """The zip holds the project by inclusion: a .env, a template or another installation's settings file written
    beside the code (DEPLOY.md §1), the tooling packages and the tests never reach it, whatever their names."""
    root, site = tmp_path / "project", tmp_path / "site-packages"
    site.mkdir()
    for name in ("boardsite", "offload", "devstack", "deploy", "tests", "staticfiles"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("X = 1\n")
    (root / "offload" / "__pycache__").mkdir()
    (root / "offload" / "__pycache__" / "stale.cpython-312.pyc").write_bytes(b"old")
    for name in ("manage.py", ".env", "template.json", "zappa_settings.staging.json", "notes.txt"):
        (root / name).write_text("x = 1\n")
    assert build.ship_project(stage, site, root) == list(build.SHIPPED[stage])
    assert sorted(p.name for p in site.iterdir() if p.name != "__pycache__") == sorted(build.SHIPPED[stage])
    assert not (site / "offload" / "__pycache__" / "stale.cpython-312.pyc").exists()
    pycs = list((site / "offload").rglob("*.pyc"))
    assert pycs
    assert {build.pyc_flags(p) for p in pycs} == {0b11}


def test_a_differing_pin_is_caught():
    assert pin_mismatches({"django": "5.2.19"}) == []
    assert pin_mismatches({"django": "5.2.18"}) == ["django==5.2.18: the project has 5.2.19"]
    assert pin_mismatches({"asgiref": "0.1"}) == [f"asgiref==0.1: the project has {project_pins()['asgiref']}"]
    assert pin_mismatches({"left-pad": "1.0"}) == ["left-pad==1.0: not in requirements-dev.txt, so never tested"]
    assert build.read_requirements(ROOT / "requirements.txt")["psycopg"] == "3.3.9"  # extras stripped


def test_stage_installs_check_every_file_against_the_lock(tmp_path, monkeypatch):
    """A wheel whose bytes are not the locked ones is refused (here: a hash no file has)."""
    monkeypatch.setattr(build, "BUILD_DIR", tmp_path)
    with pytest.raises(SystemExit, match=r"(?i)hash"):
        build.install_site_packages(
            {"durationpy": project_pins()["durationpy"]}, "x86_64", hashes={"durationpy": ["0" * 64]}
        )
    with pytest.raises(SystemExit, match="no locked hashes for left-pad"):
        build.install_site_packages({"left-pad": "1.0"}, "x86_64")


def missing_dependencies(pins: dict[str, str]) -> list[str]:
    """Dependencies (for Linux, Python 3.12) of the listed packages that are neither listed nor in Lambda's runtime.
    Installs are --no-deps, so a missing one would be an ImportError on Lambda. Zappa's own dependencies are its CLI's:
    the handler needs only what requirements-zappa.txt lists (checked by import below)."""
    missing = []
    for name in pins:
        if name == "zappa":
            continue
        for raw in importlib.metadata.requires(name) or []:
            req = Requirement(raw)
            extras = ["binary"] if name == "psycopg" else [""]  # requirements.txt has psycopg[binary]
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            dep = build.canonical(req.name)
            if dep not in pins and dep not in build.RUNTIME_PROVIDED:
                missing.append(f"{name} needs {dep}")
    return missing


@pytest.mark.parametrize(("stage", "extras"), STAGE_EXTRAS)
def test_stage_lists_hold_every_dependency(stage, extras):
    assert missing_dependencies(build.stage_requirements(stage, extras)) == []


def test_a_missing_dependency_is_caught():
    assert missing_dependencies({"django": "5.2.19"}) == ["django needs asgiref", "django needs sqlparse"]


def test_each_stage_lists_only_what_it_imports():
    web = build.stage_requirements("web")
    functions = build.stage_requirements("functions")
    for runtime in ("boto3", "botocore", "s3transfer"):
        assert runtime not in web
        assert runtime not in functions
    assert {"django", "psycopg-binary", "whitenoise", "zappa", "werkzeug"} <= set(web)
    assert not {"pillow", "pillow-heif", "celery", "kombu", "redis", "troposphere", "setuptools"} & set(web)
    assert {"pillow", "pillow-heif", "zappa"} <= set(functions)
    assert not {"django", "celery", "kombu", "psycopg", "psycopg-binary", "whitenoise"} & set(functions)
    assert {"celery", "kombu", "billiard", "redis"} <= set(build.stage_requirements("web", ("celery", "redis")))


def test_celery_ships_only_when_a_job_runs_in_celery_mode():
    lambda_modes = "process_image=lambda,apply_results=lambda,sweep_uploads=lambda,sweep_storage=lambda"
    assert build.extras_for({}) == ()
    assert build.extras_for({"OFFLOAD_MODES": lambda_modes}) == ()
    assert build.extras_for({"OFFLOAD_MODES": "process_image=lambda,sweep_uploads=celery"}) == ("celery", "redis")
    assert build.extras_for({"CACHE_URL": "rediss://cache.example:6379/0"}) == ("redis",)
    # A broker with every job on Lambda: the control room may route work to Celery at run time.
    assert build.extras_for({"OFFLOAD_MODES": lambda_modes, "CELERY_BROKER_URL": "redis://jobs:6379/0"}) == (
        "celery",
        "redis",
    )
    assert build.extras_for({"BOARDSITE_CDN_URL": "https://media.photos.example.com"}) == ("cdn",)
    assert "cryptography" not in build.stage_requirements("web")  # only a CloudFront web stage pays its 4 MB
    assert {"cryptography", "cffi"} <= set(build.stage_requirements("web", ("cdn",)))
    with pytest.raises(ValueError, match="no extras"):
        build.stage_requirements("functions", ("celery",))


def test_zappas_handler_needs_only_the_listed_packages():
    """Import zappa.handler as Lambda does and map every third-party module it loads to its distribution."""
    done = run_python(
        """
        import sys, importlib.metadata as md
        dists = md.packages_distributions()
        before = set(sys.modules)
        import zappa.handler, zappa.ext.django_zappa
        tops = {m.split(".")[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)
        print(sorted({d for t in tops for d in dists.get(t, [])}))
        """
    )
    loaded = {build.canonical(d) for d in json.loads(done.stdout.replace("'", '"'))}
    zappa = set(build.read_requirements(ROOT / "deploy" / "requirements-zappa.txt"))
    assert loaded - build.RUNTIME_PROVIDED - {"certifi"} == zappa  # certifi: botocore's, optional


# --- checked-hash bytecode --------------------------------------------------------------------------------------------


def test_compile_tree_leaves_only_checked_hash_pycs(tmp_path):
    import py_compile

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    for name in ("a.py", "sub/b.py", "gone.py"):
        (pkg / name).write_text("X = 1\n")
    py_compile.compile(str(pkg / "a.py"))  # timestamp-validated: stale on Lambda (zip entries dated 1980)
    py_compile.compile(str(pkg / "gone.py"))
    (pkg / "gone.py").unlink()  # a pyc whose source is gone would still import
    cache = pkg / "__pycache__"
    (cache / "a.cpython-311.pyc").write_bytes(b"other interpreter")
    (cache / f"a.{sys.implementation.cache_tag}.opt-1.pyc").write_bytes(b"optimised")
    assert build.pyc_flags(cache / f"a.{sys.implementation.cache_tag}.pyc") == 0

    build.compile_tree(pkg)

    pycs = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.pyc"))
    tag = sys.implementation.cache_tag
    assert pycs == [f"__pycache__/a.{tag}.pyc", f"sub/__pycache__/b.{tag}.pyc"]
    assert {build.pyc_flags(pkg / p) for p in pycs} == {0b11}


# --- import hygiene -----------------------------------------------------------------------------------------------

WEB_AS_ZAPPA_LOADS_IT = """
    import sys
    from zappa.ext.django_zappa import get_django_wsgi
    from django.urls import URLResolver, get_resolver

    get_django_wsgi("boardsite.settings")  # what Zappa's handler does at init (django.setup and the WSGI app)

    def walk(patterns):  # resolving every URL module imports every view
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns)
            else:
                p.callback

    walk(get_resolver().url_patterns)
    import boardsite.core.results  # the event handlers
    import boardsite.images.cleanup, boardsite.images.results, boardsite.images.sweep
    heavy = ("celery", "kombu", "PIL", "pillow_heif")
    print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
"""


@pytest.mark.parametrize(
    "modes",
    [
        "process_image=lambda,apply_results=lambda,sweep_uploads=lambda,sweep_storage=lambda",
        "process_image=celery,apply_results=celery,sweep_uploads=celery",  # Celery loads on dispatch, not before
    ],
)
def test_the_web_app_loads_neither_celery_nor_pillow(modes):
    done = run_python(WEB_AS_ZAPPA_LOADS_IT, OFFLOAD_MODES=modes)
    assert done.stdout.strip() == "[]"


def test_dispatch_in_celery_mode_enqueues_through_the_projects_app():
    done = run_python(
        """
        import sys, django
        django.setup()
        from boardsite.core import jobs
        assert "celery" not in sys.modules
        queue = jobs.celery_queue("process_image")
        jobs.object_created("originals/b/i.jpg", size=1, etag="e")  # the door: S3's event, handed to Celery
        assert "celery" in sys.modules
        from boardsite.celery import app, run_job_task
        assert run_job_task.app is app
        with app.connection_for_read() as conn:
            message = conn.SimpleQueue(queue).get(timeout=10)
            print(message.headers["task"], message.payload[0][0])
            message.ack()
        """,
        OFFLOAD_MODES="process_image=celery,apply_results=inline",
    )
    assert done.stdout.split() == ["boardsite.run_job", "process_image"]


def test_the_celery_worker_finds_the_app_and_the_task():
    # What `celery -A boardsite worker` does first: find the app, then import the task modules.
    done = run_python(
        """
        from celery.app.utils import find_app
        app = find_app("boardsite")
        app.loader.import_default_modules()
        print(app.main, "boardsite.run_job" in app.tasks)
        """
    )
    assert done.stdout.split() == ["boardsite", "True"]


def test_process_image_loads_no_django_and_pillow_heif_only_for_a_heic(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    for name, fmt in (("photo.jpg", "JPEG"), ("photo.heic", "HEIF")):
        out = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(out, fmt)
        (tmp_path / name).write_bytes(out.getvalue())
    done = run_python(
        f"""
        import sys
        from pathlib import Path
        def loaded():
            return sorted({{m.split(".")[0] for m in sys.modules}} & {{"django", "boardsite", "PIL", "pillow_heif"}})
        import offload.functions.process_image
        print(loaded())
        from offload import imaging
        imaging.make_variants(Path({str(tmp_path / "photo.jpg")!r}).read_bytes())
        print(loaded())
        assert imaging.make_variants(Path({str(tmp_path / "photo.heic")!r}).read_bytes()).format == "HEIF"
        print(loaded())
        """
    )
    assert done.stdout.splitlines() == ["[]", "['PIL']", "['PIL', 'pillow_heif']"]


# --- the prebuild entry points --------------------------------------------------------------------------------------


def test_prebuild_finds_the_settings_file_and_the_stage():
    settings = {
        "web": {"prebuild_script": "deploy.prebuild.web"},
        "web_eu": {"extends": "web", "aws_region": "eu-west-1"},
        "functions": {"prebuild_script": "deploy.prebuild.functions", "architecture": "arm64"},
    }
    assert prebuild.settings_file(["zappa", "package", "web"]) == Path("zappa_settings.json")
    assert prebuild.settings_file(["zappa", "package", "web", "-s", "x.json"]) == Path("x.json")
    assert prebuild.settings_file(["zappa", "update", "--settings_file=y.yml", "web"]) == Path("y.yml")
    assert prebuild.stage_name(["zappa", "package", "web_eu", "-o", "w.zip"], settings, "web") == "web_eu"
    assert build.stage_config(settings, "web_eu")["prebuild_script"] == "deploy.prebuild.web"
    assert prebuild.stage_name(["zappa", "package", "functions"], settings, "functions") == "functions"
    with pytest.raises(SystemExit, match="cannot tell which stage"):
        prebuild.stage_name(["zappa", "deploy", "--all"], settings, "web")  # web and web_eu both use it
    assert build.stage_kind("functions", settings["functions"]) == "functions"


def test_prebuild_refuses_what_deploy_lint_refuses(tmp_path, monkeypatch):
    import types

    stages = types.ModuleType("deploy.lint")
    stages.check_deployable = lambda name, stage: [f"{name}: account id 123456789012 is a placeholder"]
    monkeypatch.setitem(sys.modules, "deploy.lint", stages)
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps({"web": {"prebuild_script": "deploy.prebuild.web"}}))
    with pytest.raises(SystemExit, match=r"(?s)refusing to package stage 'web'.*placeholder"):
        prebuild.prebuild("web", ["zappa", "package", "web", "-s", str(path)])


# --- architecture: every shared object matches the stage's ---------------------------------------------------------


def test_elf_machine():
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x03\x00"
    assert build.elf_machine(header + (62).to_bytes(2, "little")) == 62
    assert build.elf_machine(header + (183).to_bytes(2, "little")) == 183
    assert build.elf_machine(b"#!/bin/sh\n" + b"\0" * 10) is None
    assert build.is_shared_object("PIL/_imaging.cpython-312-x86_64-linux-gnu.so")
    assert build.is_shared_object("pillow.libs/libjpeg-8a13c6e0.so.62.4.0")
    assert not build.is_shared_object("PIL/Image.py")


@pytest.mark.parametrize("architecture", sorted(build.ARCHITECTURES))
@pytest.mark.parametrize(("stage", "extras"), STAGE_EXTRAS)
def test_stage_site_packages_match_the_architecture(stage, extras, architecture):
    requirements = build.stage_requirements(stage, extras)
    site_packages = build.install_site_packages(requirements, architecture)
    inputs = json.loads((site_packages.parent / "inputs.json").read_text())
    assert inputs["requirements"] == requirements
    assert inputs["platforms"][0] == f"manylinux_2_28_{build.ARCHITECTURES[architecture][0]}"
    assert build.install_site_packages(requirements, architecture) == site_packages  # cached: no second install
    objects = build.tree_headers(site_packages)
    assert len(objects) >= (20 if stage == "functions" else 3)  # psycopg-binary, markupsafe, ... / Pillow's libs
    assert build.foreign_shared_objects(objects, architecture) == []
    other = next(a for a in build.ARCHITECTURES if a != architecture)
    assert len(build.foreign_shared_objects(objects, other)) == len(objects)  # the check can fail


def packaged(stage: str, architecture: str, tmp_path: Path) -> zipfile.ZipFile:
    """`zappa package <stage>` on the project's settings with this architecture (prebuild script included)."""
    settings = json.loads((ROOT / "zappa_settings.json").read_text())
    config = settings[stage]
    config["architecture"] = architecture
    config["prebuild_script"] = f"deploy.prebuild.{stage}"
    config["exclude"] = sorted(set(config.get("exclude", [])) | set(build.EXCLUDE[stage]))
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps({stage: config}))
    out = tmp_path / f"{stage}.zip"
    # The `zappa` console script, with one difference: the project's settings may hold placeholders (an account id
    # to fill in) that deploy.lint rightly refuses; that refusal has its own tests, so here it is stubbed out.
    code = textwrap.dedent(
        f"""
        import sys, types
        del sys.path[0]  # as under the console script: the working directory is not on the path
        stub = types.ModuleType("deploy.lint")
        stub.check_deployable = lambda name, stage: []
        sys.modules["deploy.lint"] = stub
        sys.argv = ["zappa", "package", {stage!r}, "-s", {str(path)!r}, "-o", {str(out)!r}]
        from zappa.cli import handle
        handle()
        """
    )
    env = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    cmd = [sys.executable, "-c", code]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return zipfile.ZipFile(out)


@pytest.mark.parametrize("stage", build.STAGES)
def test_zappa_packages_the_slim_arm64_build(stage, tmp_path):
    with packaged(stage, "arm64", tmp_path) as zf:
        infos = zf.infolist()
        names = {i.filename for i in infos}
        tops = {n.split("/")[0] for n in names}
        objects = [(i.filename, zf.open(i).read(20)) for i in infos if build.is_shared_object(i.filename)]
        assert objects
        assert build.foreign_shared_objects(objects, "arm64") == []
        pycs = [i for i in infos if i.filename.endswith(".pyc")]
        assert {build.pyc_flags_of(zf.open(i).read(16)) for i in pycs} == {0b11}, "only checked-hash bytecode"
        tag = sys.implementation.cache_tag
        assert f"offload/functions/__pycache__/process_image.{tag}.pyc" in names
        assert f"zappa/__pycache__/handler.{tag}.pyc" in names
        assert not tops & {"boto3", "botocore", "s3transfer", "troposphere", "setuptools", "yaml", "tests", "deploy"}
        assert not tops & {"celery", "kombu", ".venv", ".build", ".git", "devstack", "bench", "README.md", "Makefile"}
        assert "handler.py" in names
        assert "zappa_settings.py" in names
        if stage == "web":
            assert {"django", "boardsite", "psycopg_binary", "whitenoise", "staticfiles"} <= tops
            assert "staticfiles/boardsite/board.js" in names or any(
                n.startswith("staticfiles/boardsite/board.") and n.endswith(".js") for n in names
            )
            assert not tops & {"PIL", "pillow_heif", "pillow.libs"}
            assert f"boardsite/__pycache__/settings.{tag}.pyc" in names
        else:
            assert {"PIL", "pillow_heif", "offload"} <= tops
            assert not tops & {"django", "boardsite", "psycopg", "psycopg_binary", "staticfiles"}
