"""Per-stage slim site-packages for Zappa, byte-compiled so that Lambda never recompiles at a cold start.

``build_stage("web" | "functions", architecture)`` makes ``.build/<stage>/venv/lib/python3.12/site-packages`` holding
only what the stage imports on Lambda (``deploy/requirements-<stage>.txt``, plus Celery/Redis for the web stage when
its environment needs them), installed from wheels for the stage's architecture, so ``arm64`` gets aarch64 ``.so``
files. The prebuild script (``deploy/prebuild.py``) then points ``VIRTUAL_ENV`` at that venv and Zappa packages it
instead of the dev venv (which carries Zappa's CLI stack, boto3, Pillow for the web stage, ...).

Why checked-hash ``.pyc``: Zappa dates every zip entry 1980, so timestamp-validated ``.pyc`` never match their
sources on Lambda and every cold start recompiles everything (web 3.0 s -> 0.89 s measured here). A checked-hash
``.pyc`` is validated by the source's hash instead, so it stays valid whatever the dates; a changed source still wins.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from deploy import lock

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BUILD_DIR = ROOT / ".build"
STAGES = ("web", "functions")
# Lambda's name -> (the wheels' platform machine, ELF e_machine of its shared objects).
ARCHITECTURES = {"x86_64": ("x86_64", 62), "arm64": ("aarch64", 183)}
MANYLINUX = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")  # Lambda's python3.12 runs on glibc 2.34
# The Lambda Python runtime provides these (boto3 and its dependencies); shipping them only grows the zip.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"})
# What each stage's zip holds of the project, by inclusion: these entries are copied into the stage's site-packages
# (the zip's root on Lambda) and byte-compiled there, and the zip keeps nothing else of the project folder: Zappa
# copies the whole folder, so the stage's ``zip`` callback (``deploy.prebuild.included``) rewrites the zip to the
# build's files and Zappa's own (``keep_included``). A .env, a template written beside the code, the tooling in
# deploy/ and devstack/, the tests or another installation's settings never reach a zip.
SHIPPED: dict[str, tuple[str, ...]] = {
    "web": ("boardsite", "offload", "manage.py", "staticfiles"),
    "functions": ("offload",),
}
ZIP_CALLBACK = "deploy.prebuild.included"
# What Zappa itself writes into the zip besides the project and site-packages.
ZAPPA_FILES = frozenset({"handler.py", "zappa_settings.py", "package_info.json"})
# Zappa's ``exclude``: base names dropped at any depth of both its project copy and the site-packages it packages.
_EXCLUDE_COMMON = (
    # the zip keeps none of the project folder's own copy: these only spare Zappa copying big folders first
    *(".venv", ".build", ".git", ".local", "node_modules", "test-artifacts"),
    "tests",  # packages' own test suites
    *("boto3", "botocore", "s3transfer"),  # the Lambda runtime has these
)
# The slim site-packages already lacks the packages listed per stage; they are here in case a stage is ever packaged
# from another venv. Never exclude "__pycache__": the checked-hash .pyc are the point.
EXCLUDE: dict[str, tuple[str, ...]] = {
    "web": (*_EXCLUDE_COMMON, "PIL", "pillow.libs", "pillow_heif", "pillow_heif.libs"),
    "functions": (
        *_EXCLUDE_COMMON,
        *("boardsite", "staticfiles", "django", "celery", "kombu"),
        *("psycopg", "psycopg_binary", "psycopg_binary.libs"),
    ),
}


def ship_project(stage: str, site_packages: Path, root: Path = ROOT, *, static: bool = True) -> list[str]:
    """Copy the stage's ``SHIPPED`` entries of ``root`` into ``site_packages``, byte-compiled (checked-hash) there;
    bytecode and caches of the working tree are left behind (``static=False``: a missing staticfiles/ is skipped).
    Returns what was copied."""
    copied = []
    for name in SHIPPED[stage]:
        source, target = root / name, site_packages / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite3"))
            compile_tree(target)
        elif source.is_file():
            shutil.copy2(source, target)
            py_compile.compile(str(target), doraise=True, invalidation_mode=PYC)
        elif name == "staticfiles" and not static:
            continue
        else:
            raise SystemExit(f"the {stage} stage ships {name}, which is missing from {root}")
        copied.append(name)
    return copied


def keep_included(zip_path: Path, site_packages: Path) -> list[str]:
    """Rewrite Zappa's zip to hold only the files of the stage's build (``site_packages``: the packages and the
    project's ``SHIPPED`` entries) and ``ZAPPA_FILES``; returns the names dropped (the rest of the project folder)."""
    import zipfile

    built = {p.relative_to(site_packages).as_posix() for p in site_packages.rglob("*")}
    partial = zip_path.with_name(zip_path.name + ".partial")
    dropped = []
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(partial, "w") as target:
        for info in source.infolist():
            name = info.filename.rstrip("/")
            if name in built or name in ZAPPA_FILES:
                target.writestr(info, source.read(info), compress_type=info.compress_type)
            else:
                dropped.append(info.filename)
    partial.replace(zip_path)
    return dropped


CACHE_FORMAT = "3"  # bump when what a cached install contains changes
PYC = py_compile.PycInvalidationMode.CHECKED_HASH


canonical = lock.canonical


def read_requirements(path: Path) -> dict[str, str]:
    """The pins of a lock (following ``-r``), as {canonical name: version}."""
    return {name: pin.version for name, pin in lock.read_lock(path).items()}


def stage_hashes(stage: str, extras: Iterable[str] = ()) -> dict[str, list[str]]:
    """The sha256 of every file of each package the stage ships (every platform's wheels), from the stage locks."""
    hashes: dict[str, list[str]] = {}
    for path in _stage_files(stage, extras):
        hashes.update({name: sorted(pin.hashes) for name, pin in lock.read_lock(path).items()})
    return dict(sorted(hashes.items()))


def extras_for(environment: Mapping[str, str]) -> tuple[str, ...]:
    """The optional package sets a web stage with this environment imports: ``celery`` when a job of its
    ``OFFLOAD_MODES`` runs in celery mode or a broker is configured (the site enqueues; with a broker, work the
    control room routes to Celery at run time), ``redis`` for that broker or a Redis ``CACHE_URL``, ``cdn``
    (cryptography, to sign for CloudFront) when photos are served through it (``BOARDSITE_CDN_URL``)."""
    modes = [item.partition("=")[2].strip() for item in environment.get("OFFLOAD_MODES", "").split(",")]
    celery = "celery" in modes or bool(environment.get("CELERY_BROKER_URL", "").strip())
    redis = celery or environment.get("CACHE_URL", "").startswith(("redis://", "rediss://"))
    cdn = bool(environment.get("BOARDSITE_CDN_URL", "").strip())
    return tuple(name for name, wanted in (("celery", celery), ("redis", redis), ("cdn", cdn)) if wanted)


def _stage_files(stage: str, extras: Iterable[str]) -> list[Path]:
    if stage not in STAGES:
        raise ValueError(f"unknown stage kind {stage!r}; expected one of {', '.join(STAGES)}")
    files = [DEPLOY / f"requirements-{stage}.txt"]
    for extra in extras:
        if stage != "web":
            raise ValueError(f"the {stage} stage takes no extras (got {extra!r})")
        files.append(DEPLOY / f"requirements-{extra}.txt")
    return files


def stage_requirements(stage: str, extras: Iterable[str] = ()) -> dict[str, str]:
    """{package: version} that a stage ships, from its lock (and its extras' locks)."""
    pins: dict[str, str] = {}
    for path in _stage_files(stage, extras):
        pins.update(read_requirements(path))
    return dict(sorted(pins.items()))


def platform_tags(architecture: str) -> list[str]:
    try:
        machine = ARCHITECTURES[architecture][0]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; Lambda has {', '.join(ARCHITECTURES)}") from None
    return [f"{tag}_{machine}" for tag in MANYLINUX]


def _check_python(python: str) -> None:
    # The .pyc are this interpreter's, and Zappa packages lib/python<its own version>/site-packages.
    here = "{}.{}".format(*sys.version_info)
    if python != here:
        raise SystemExit(f"building for Python {python} needs Python {python} itself (this is {here})")


def install_site_packages(
    requirements: Mapping[str, str],
    architecture: str,
    python: str = "3.12",
    hashes: Mapping[str, Iterable[str]] | None = None,
) -> Path:
    """A byte-compiled ``--target`` install of exactly ``requirements`` for ``architecture``, every file checked
    against ``hashes`` (default: the stage locks'); cached by its inputs, so a rebuild with nothing changed costs a
    hash. Returns the cached site-packages folder (do not modify it)."""
    _check_python(python)
    if hashes is None:
        hashes = {}
        for stage in STAGES:
            hashes.update(stage_hashes(stage, ("celery", "redis", "cdn") if stage == "web" else ()))
    unhashed = sorted(name for name in requirements if not hashes.get(name))
    if unhashed:
        raise SystemExit(f"no locked hashes for {', '.join(unhashed)}: name them in a deploy/requirements-*.in")
    inputs = {
        "format": CACHE_FORMAT,
        "requirements": dict(requirements),
        "hashes": {name: sorted(hashes[name]) for name in requirements},
        "platforms": platform_tags(architecture),
        "python": python,
        "cache_tag": sys.implementation.cache_tag,
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    cache = BUILD_DIR / "cache" / f"{architecture}-{key}"
    if (cache / "inputs.json").exists():
        return cache / "site-packages"
    cache.parent.mkdir(parents=True, exist_ok=True)
    (BUILD_DIR / ".gitignore").write_text("*\n")  # build output, never committed (delete .build/ at will)
    work = cache.with_name(cache.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    target = work / "site-packages"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    cmd += ["--no-deps", "--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    cmd += [arg for tag in platform_tags(architecture) for arg in ("--platform", tag)]
    # Hash-checked: the zip holds the very files the lock names, whatever the index serves today.
    locked = work / "requirements.txt"
    work.mkdir(parents=True)
    locked.write_text(
        "".join(
            f"{name}=={version} " + " ".join(f"--hash={h}" for h in sorted(hashes[name])) + "\n"
            for name, version in requirements.items()
        )
    )
    cmd += ["--require-hashes", "--target", str(target), "-r", str(locked)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip could not install the {architecture} wheels:\n{done.stdout}{done.stderr}")
    _prune(target)
    compile_tree(target)
    (work / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(cache, ignore_errors=True)
    work.rename(cache)
    return cache / "site-packages"


def _prune(site_packages: Path) -> None:
    """Drop what Lambda never runs: console scripts, gettext sources (``.po``; Django reads only ``.mo``), and every
    language but English (``LANGUAGE_KEEP``) under the packages' ``locale`` folders."""
    shutil.rmtree(site_packages / "bin", ignore_errors=True)
    for po in site_packages.rglob("*.po"):
        po.unlink()
    prune_locales(site_packages)


# The site speaks English only (LANGUAGE_CODE en-us, no LocaleMiddleware): Django looks up en_US, then en. The other
# ~100 languages of Django and its apps (catalogues, and django.conf.locale's per-language formats) are 6.6 MiB
# unzipped and 3 MiB zipped (web zip 15.5 -> 12.5 MiB); Django skips the format module of a language that is absent.
LANGUAGE_KEEP = frozenset({"en"})


def prune_locales(site_packages: Path, keep: frozenset[str] = LANGUAGE_KEEP) -> list[Path]:
    """Remove the language folders (holding ``LC_MESSAGES`` or a ``formats.py``) of every ``locale`` folder under
    ``site_packages`` except those in ``keep``. Returns what was removed."""
    removed = []
    for locale in sorted(site_packages.rglob("locale")):
        if not locale.is_dir():
            continue
        for language in sorted(locale.iterdir()):
            is_language = (language / "LC_MESSAGES").is_dir() or (language / "formats.py").is_file()
            if language.is_dir() and is_language and language.name not in keep:
                shutil.rmtree(language)
                removed.append(language)
    return removed


def compile_tree(path: Path) -> None:
    """Checked-hash ``.pyc`` for every module under ``path``; stale ones (another mode, a deleted source) removed.
    Forced: compileall would keep a timestamp ``.pyc`` that matches its source's mtime."""
    compileall.compile_dir(path, quiet=2, force=True, invalidation_mode=PYC, workers=0)
    remove_stale_pycs(path)


def remove_stale_pycs(path: Path) -> list[Path]:
    """Delete ``.pyc`` under ``path`` that Lambda would not use or would find stale: other interpreters' or
    optimisation levels', timestamp-validated ones, and those whose source is gone. Returns what was deleted."""
    tag = sys.implementation.cache_tag
    removed = []
    for pyc in path.rglob("*.pyc"):
        source = pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")
        keep = (
            pyc.parent.name == "__pycache__"
            and pyc.name.endswith(f".{tag}.pyc")
            and pyc.name.count(".") == 2
            and source.exists()
            and pyc_flags(pyc) == 0b11  # hash-based, checked
        )
        if not keep:
            pyc.unlink()
            removed.append(pyc)
    return removed


def pyc_flags(pyc: Path) -> int:
    """The PEP 552 flags word of a ``.pyc``: 0 timestamp, 0b01 unchecked hash, 0b11 checked hash."""
    with pyc.open("rb") as f:
        return pyc_flags_of(f.read(8))


def pyc_flags_of(header: bytes) -> int:
    return int.from_bytes(header[4:8], "little")


def zappa_handler_source() -> Path | None:
    """The ``handler.py`` that ``zappa package`` copies to the zip's root: the one beside the running Zappa's own
    modules (the prebuild script runs inside Zappa's process); None when Zappa is not installed here."""
    try:
        import zappa
    except ImportError:
        return None
    source = Path(zappa.__file__).resolve().parent / "handler.py"
    return source if source.is_file() else None


def compile_zappa_handler(site_packages: Path, source: Path | None = None) -> Path | None:
    """``__pycache__/handler.cpython-312.pyc`` (checked-hash) at the root of ``site_packages``, which Zappa merges
    into the zip's root beside the ``handler.py`` it copies there after the prebuild: else Lambda compiles that
    1,000-line module on every cold start (~5 ms CPU here). Validated by the source's hash: if Zappa ever ships
    another handler.py, Python ignores this file and compiles that one."""
    source = source or zappa_handler_source()
    if source is None:
        return None
    target = site_packages / "__pycache__" / f"handler.{sys.implementation.cache_tag}.pyc"
    target.parent.mkdir(exist_ok=True)
    py_compile.compile(str(source), cfile=str(target), dfile="handler.py", doraise=True, invalidation_mode=PYC)
    return target


def collectstatic(root: Path = ROOT) -> None:
    """``manage.py collectstatic`` into STATIC_ROOT with the production settings (``DJANGO_DEBUG=false``: the storage
    that writes hashed, compressed files); ``--clear`` so nothing stale ships."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BOARDSITE_SSM"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "boardsite.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "collectstatic-only-" + "x" * 40,  # the settings refuse to load without one
    }
    cmd = [sys.executable, "manage.py", "collectstatic", "--noinput", "--clear", "--verbosity", "0"]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"collectstatic failed:\n{done.stdout}{done.stderr}")


def build_stage(
    stage: str,
    architecture: str = "x86_64",
    python: str = "3.12",
    *,
    environment: Mapping[str, str] | None = None,
    static: bool = True,
) -> Path:
    """Build ``.build/<stage>/venv`` for Zappa and return the venv (what ``VIRTUAL_ENV`` must name).

    ``environment`` is the stage's Lambda environment (decides Celery/Redis for the web stage). ``static``: run
    collectstatic for the web stage.
    """
    started = time.perf_counter()
    requirements = stage_requirements(stage, extras_for(environment or {}) if stage == "web" else ())
    cached = install_site_packages(requirements, architecture, python)
    venv = BUILD_DIR / stage / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    site_packages = venv / "lib" / f"python{python}" / "site-packages"
    site_packages.parent.mkdir(parents=True)
    # Hard links: the cached tree is never modified, and a link is as good as a copy to Zappa (it copies the files).
    shutil.copytree(cached, site_packages, copy_function=_link_or_copy)
    compile_zappa_handler(site_packages)
    if stage == "web" and static:
        collectstatic(ROOT)
    ship_project(stage, site_packages, static=static)
    manifest = {
        "stage": stage,
        "architecture": architecture,
        "python": python,
        "requirements": requirements,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (venv.parent / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return venv


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --- checks on what was built or packaged ---------------------------------------------------------------------------


def elf_machine(header: bytes) -> int | None:
    """The ELF ``e_machine`` of a file starting with ``header`` (at least 20 bytes); None when it is not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def is_shared_object(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def foreign_shared_objects(files: Iterable[tuple[str, bytes]], architecture: str) -> list[str]:
    """Names of the shared objects among ``files`` ((name, first bytes)) not built for ``architecture``."""
    expected = ARCHITECTURES[architecture][1]
    return [name for name, header in files if is_shared_object(name) and elf_machine(header) != expected]


def tree_headers(path: Path) -> list[tuple[str, bytes]]:
    out = []
    for file in sorted(path.rglob("*")):
        if file.is_file() and not file.is_symlink() and is_shared_object(file.name):
            with file.open("rb") as f:
                out.append((str(file.relative_to(path)), f.read(20)))
    return out


# --- settings and the command line ----------------------------------------------------------------------------------


def load_settings(path: Path) -> dict[str, Any]:
    """A Zappa settings file (JSON, or YAML/TOML as Zappa also reads)."""
    text = path.read_text()
    if path.suffix in (".yml", ".yaml"):
        import yaml  # a Zappa dependency: present wherever zappa is

        return yaml.safe_load(text)
    if path.suffix == ".toml":
        import toml

        return toml.loads(text)
    return json.loads(text)


def stage_config(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A stage's settings with ``extends`` applied as Zappa does (a shallow update of the base stage's)."""
    if name not in settings:
        raise SystemExit(f"no stage {name!r} in the settings (stages: {', '.join(settings)})")
    stage = dict(settings[name])
    base = stage.pop("extends", None)
    return {**stage_config(settings, base), **stage} if base else stage


def stage_kind(name: str, stage: Mapping[str, Any]) -> str:
    """web or functions: from the stage's prebuild script (``deploy.prebuild.<kind>``), else its name."""
    script = stage.get("prebuild_script", "")
    kind = script.rsplit(".", 1)[-1] if script.startswith("deploy.prebuild.") else name
    if kind not in STAGES:
        raise SystemExit(f"stage {name!r}: cannot tell whether it is {' or '.join(STAGES)} (set its prebuild_script)")
    return kind


def stage_environment(stage: Mapping[str, Any]) -> dict[str, str]:
    """The Lambda environment a stage gets: ``environment_variables`` and ``aws_environment_variables``."""
    return {**stage.get("environment_variables", {}), **stage.get("aws_environment_variables", {})}


def stage_python(stage: Mapping[str, Any]) -> str:
    return str(stage.get("runtime", "python3.12")).removeprefix("python")


def build_from_settings(name: str, stage: Mapping[str, Any], *, architecture: str | None = None) -> Path:
    return build_stage(
        stage_kind(name, stage),
        architecture or stage.get("architecture", "x86_64"),
        stage_python(stage),
        environment=stage_environment(stage),
    )


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy build STAGE [-s zappa_settings.json] [--architecture arm64]``: build a stage's slim venv
    as its prebuild script would (without the deployability check), and say what it holds."""
    parser = argparse.ArgumentParser(prog="python -m deploy build", description=main.__doc__)
    parser.add_argument("stage", help="a stage of the settings file (web, functions)")
    parser.add_argument("-s", "--settings_file", default="zappa_settings.json")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), help="default: the stage's")
    args = parser.parse_args(argv)
    settings = load_settings(Path(args.settings_file))
    stage = stage_config(settings, args.stage)
    venv = build_from_settings(args.stage, stage, architecture=args.architecture)
    manifest = json.loads((venv.parent / "build.json").read_text())
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    size = tree_size(site_packages) / 2**20
    print(f"{venv}: {len(manifest['requirements'])} packages, {size:.1f} MiB, {manifest['architecture']}")
    print(f"  {', '.join(f'{k}=={v}' for k, v in manifest['requirements'].items())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
