"""Cold-start hygiene: what a fresh Lambda process loads and builds before its first answer.

No timings here (bench/coldstart.py measures them); these check the mechanisms the timings rest on, each in a fresh
interpreter so that nothing this test process already imported or cached hides a regression:
- Pillow's Image.init() (it imports all ~45 format plugins) never runs to process a photo of any accepted format;
- every boto3 client of a process comes from one session (a session's setup is most of a first client's cost);
- the SnapStart prewarm loads botocore's data without a client or credentials, and a client made after it reads
  none of that data again; the web app's SnapStart init runs it, an on-demand init does not;
- the slim site-packages keep only English locales; Zappa's handler.py ships as a valid checked-hash .pyc;
- the functions stage's cold path (offload.entry, an S3 event for a JPEG) imports none of the modules taken off it
  (FUNCTIONS_COLD_PATH_FORBIDDEN) and lets botocore walk no service folders; its loader finds botocore's own models;
- on Lambda the web app's init runs without the cyclic garbage collector and freezes what it made (off Lambda nothing
  changes).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import uuid
from pathlib import Path

import botocore.exceptions
import botocore.loaders
import pytest

from deploy import build
from offload import aws
from tests.factories import image_bytes, jpeg_bytes

# Its subject does not touch the site's database or broker (.ci/run: first pass only).
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "BOARDSITE_SSM"))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**clean, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_processing_a_photo_never_imports_every_pillow_plugin(tmp_path, fmt):
    source = tmp_path / f"photo.{fmt.lower()}"
    source.write_bytes(image_bytes(fmt))
    result = run_python(
        f"""
        import json
        from pathlib import Path
        from PIL import Image
        from offload import imaging

        def refuse():
            raise AssertionError("Image.init() imports every Pillow plugin")

        Image.init = refuse
        processed = imaging.make_variants(Path({str(source)!r}).read_bytes())
        print(json.dumps([processed.format, sorted({{v.format for v in processed.variants}}), Image._initialized]))
        """
    )
    decoded, formats, initialized = json.loads(result)
    assert decoded == fmt
    assert formats == ["jpeg", "webp"]  # the default output formats were all encoded
    assert initialized == 1  # preinit only


def test_every_client_comes_from_one_session():
    result = run_python(
        """
        import json
        import botocore.session
        from offload import aws

        made = []
        original = botocore.session.Session.__init__

        def counting(self, *args, **kwargs):
            made.append(1)
            original(self, *args, **kwargs)

        botocore.session.Session.__init__ = counting
        clients = [aws.make_client(s, "eu-west-1", None) for s in ("s3", "sqs", "ssm")]
        clients.append(aws.make_client("s3", "eu-west-1", None, quick=True))
        print(json.dumps([len(made), len({id(c) for c in clients})]))
        """
    )
    assert json.loads(result) == [1, 4]


PREWARM = """
import json
import botocore.loaders
import botocore.session
from offload import aws

seen = {"clients": 0, "credentials": 0, "files": []}
_create, _credentials, _load = (
    botocore.session.Session.create_client, botocore.session.Session.get_credentials,
    botocore.loaders.JSONFileLoader.load_file,
)

def create(self, *args, **kwargs):
    seen["clients"] += 1
    return _create(self, *args, **kwargs)

def credentials(self, *args, **kwargs):
    seen["credentials"] += 1
    return _credentials(self, *args, **kwargs)

def load(self, path):
    seen["files"].append(path)
    return _load(self, path)

botocore.session.Session.create_client = create
botocore.session.Session.get_credentials = credentials
botocore.loaders.JSONFileLoader.load_file = load
"""


def test_the_prewarm_makes_no_client_and_a_client_after_it_reloads_nothing_it_loaded():
    result = run_python(
        PREWARM
        + textwrap.dedent(
            """
        aws.prewarm(("ssm", "s3"))
        after_prewarm = dict(seen, files=len(seen["files"]))
        aws.clear_caches()  # as the restore hook does: a session no client came from keeps its data
        seen["files"].clear()
        aws.make_client("ssm", "eu-west-1", None)
        aws.make_client("s3", "eu-west-1", None)
        reloaded = seen["files"]  # everything the two clients need was loaded before
        aws.clear_caches()  # now the session made clients (it holds credentials): it goes
        print(json.dumps({"prewarm": after_prewarm, "reloaded": reloaded, "sessions": len(aws._sessions)}))
        """
        )
    )
    seen = json.loads(result)
    assert seen["prewarm"]["clients"] == 0
    assert seen["prewarm"]["credentials"] == 0
    assert seen["prewarm"]["files"] >= 4  # each service's model and endpoint rules (and the partitions)
    assert seen["reloaded"] == []
    assert seen["sessions"] == 0


@pytest.mark.parametrize("snapstart", [True, False], ids=["snapstart-init", "on-demand-init"])
def test_the_web_apps_snapstart_init_prewarms_ssm_and_s3(snapstart):
    env = {"DJANGO_SETTINGS_MODULE": "boardsite.settings", "DJANGO_DEBUG": "true"}
    if snapstart:
        env |= {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "BOARDSITE_SSM_PREFIX": "/boardsite/test/"}
    result = run_python(
        """
        import json
        import django
        from offload import aws

        django.setup()
        cached = aws._sessions[0].get_component("data_loader")._cache if aws._sessions else {}
        print(json.dumps(sorted({k[1] for k in cached if k[0] == "load_service_model" and k[2] == "service-2"})))
        """,
        **env,
    )
    assert json.loads(result) == (["s3", "ssm"] if snapstart else [])


RUNTIME_STUB = """
_before, _after = [], []


def register_before_snapshot(func, *args, **kwargs):
    _before.append((func, args, kwargs))
    return func


def register_after_restore(func, *args, **kwargs):
    _after.append((func, args, kwargs))
    return func
"""


def test_the_before_snapshot_hook_loads_the_urlconf_and_compiles_the_templates(tmp_path):
    (tmp_path / "snapshot_restore_py.py").write_text(RUNTIME_STUB)
    result = run_python(
        PREWARM
        + textwrap.dedent(
            """
            import socket, sys
            sys.path.insert(0, __import__("os").environ["STUB_DIR"])

            def refuse(self, address):
                raise AssertionError(f"a connection to {address} while the snapshot is taken")

            socket.socket.connect = refuse
            import django
            django.setup()
            import snapshot_restore_py
            from django.template import engines
            before = "boardsite.urls" in sys.modules
            for func, args, kwargs in snapshot_restore_py._before:
                func(*args, **kwargs)
            loader = engines["django"].engine.template_loaders[0]
            print(json.dumps({
                "hooks": len(snapshot_restore_py._before),
                "urls": [before, "boardsite.urls" in sys.modules, "boardsite.images.views" in sys.modules],
                "templates": len(loader.get_template_cache),
                "mail templates": sorted(k for k in loader.get_template_cache if k.startswith("notifications/mail/")),
                "clients": seen["clients"],
                "credentials": seen["credentials"],
            }))
            """
        ),
        DJANGO_SETTINGS_MODULE="boardsite.settings",
        DJANGO_DEBUG="false",
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        BOARDSITE_SSM_PREFIX="/boardsite/test/",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STUB_DIR=str(tmp_path),
    )
    seen = json.loads(result)
    folder = ROOT / "boardsite" / "templates"
    templates = len(
        [p for p in folder.rglob("*.html") if not p.relative_to(folder).as_posix().startswith("notifications/mail/")]
    )
    assert seen["hooks"] == 1
    assert seen["urls"] == [False, True, True]
    assert seen["templates"] >= templates > 0
    assert seen["mail templates"] == []  # rendered by scheduled jobs only, on $LATEST, never on a restored snapshot
    assert (seen["clients"], seen["credentials"]) == (0, 0)


def test_only_english_locales_are_kept(tmp_path):
    site = tmp_path / "site-packages"
    for language in ("en", "de", "pt_BR"):
        (site / "django" / "conf" / "locale" / language).mkdir(parents=True)
        (site / "django" / "conf" / "locale" / language / "formats.py").write_text("")
        (site / "axes" / "locale" / language / "LC_MESSAGES").mkdir(parents=True)
    (site / "django" / "conf" / "locale" / "__init__.py").write_text("LANG_INFO = {}\n")
    (site / "other" / "locale" / "data").mkdir(parents=True)  # not a language folder: kept

    removed = build.prune_locales(site)

    assert sorted(str(p.relative_to(site)) for p in removed) == [
        "axes/locale/de",
        "axes/locale/pt_BR",
        "django/conf/locale/de",
        "django/conf/locale/pt_BR",
    ]
    assert sorted(p.name for p in (site / "django" / "conf" / "locale").iterdir()) == ["__init__.py", "en"]
    assert (site / "axes" / "locale" / "en" / "LC_MESSAGES").is_dir()
    assert (site / "other" / "locale" / "data").is_dir()


def test_zappas_handler_ships_as_a_valid_checked_hash_pyc(tmp_path):
    source = build.zappa_handler_source()
    assert source is not None
    assert source.name == "handler.py"
    pyc = build.compile_zappa_handler(tmp_path)
    assert pyc == tmp_path / "__pycache__" / f"handler.{sys.implementation.cache_tag}.pyc"
    header = pyc.read_bytes()[:16]
    assert build.pyc_flags_of(header) == 0b11
    # What Zappa writes to the zip's root is that very file, so Python accepts this .pyc for it.
    assert header[8:16] == importlib.util.source_hash(source.read_bytes())


# What the functions stage's cold path (Lambda's init and a first S3 event for a JPEG) must not import, and why: each
# was on it once and cost CPU on every cold start (README, "Cold starts and package sizes").
FUNCTIONS_COLD_PATH_FORBIDDEN = {
    "werkzeug": "Zappa's handler.py imports it for HTTP; offload.entry routes the stage's events without it",
    "asyncio": "Zappa's handler.py (ASGI apps)",
    "tarfile": "Zappa's handler.py (slim handler archives)",
    "zappa": "zappa.utilities imports boto3 (and Zappa's handler all of the above)",
    "boto3": "offload.aws makes botocore's clients (the same clients): boto3's import is ~20 ms more",
    "s3transfer": "boto3's S3 transfer manager",
    "PIL.ImageCms": "only for a photo whose colour profile is not sRGB",
    "offload.webp_shrink": "only for WebP originals (ctypes)",
}

COLD_PATH = """
import gc, json, sys
task, root, site = sys.argv[1:4]
sys.path[:0] = [task, root, site]
event = json.loads(sys.argv[4])
baseline, paused_collections, at_freeze = gc.get_freeze_count(), [], {}
gc.callbacks.append(lambda phase, info: phase == "start" and not gc.isenabled() and paused_collections.append(1))
freeze = gc.freeze


def measuring_freeze():
    # What the freeze will keep for good: the garbage the cold path left in reference cycles.
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    at_freeze["bytes"] = sum(sys.getsizeof(o) for o in gc.garbage)
    at_freeze["largest"] = max((sys.getsizeof(o) for o in gc.garbage), default=0)
    at_freeze["types"] = sorted({type(o).__module__ + "." + type(o).__name__ for o in gc.garbage})
    gc.garbage.clear()
    gc.set_debug(0)
    freeze()


gc.freeze = measuring_freeze
from offload.entry import lambda_handler
paused = not gc.isenabled()
result = lambda_handler(event, None)
from offload import aws
loader = aws._sessions[0].get_component("data_loader")
print(json.dumps({
    "statuses": [r["status"] for r in result["results"]],
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in {m.split(".")[0] for m in json.loads(sys.argv[5])}),
    "walks": [k[1] for k in loader._cache if k[0] == "list_available_services"],
    "gc": {"paused at init": paused, "collections while paused": len(paused_collections),
           "enabled after": gc.isenabled(), "frozen": gc.get_freeze_count() - baseline, "at freeze": at_freeze},
}))
"""


def test_the_functions_cold_path_imports_nothing_taken_off_it(tmp_path, s3):
    """A fresh interpreter as Lambda starts it (-S -I: the site-packages on the path, nothing of site's) handles an
    S3 event for a new JPEG through the stage's entry point, as the stage's settings route it; the cyclic collector
    stays paused until the event is done, then what the cold path made is frozen: only a little garbage with it,
    never a photo."""
    region = os.environ.get("AWS_REGION", "us-east-1")
    bucket = os.environ.get("BOARDSITE_BUCKET", "boardsite-media")
    (tmp_path / "zappa_settings.py").write_text(
        "APP_MODULE='offload.wsgi'\nAPP_FUNCTION='application'\nEXCEPTION_HANDLER=None\nDEBUG=False\n"
        "LOG_LEVEL='INFO'\nAPI_STAGE='functions'\nPROJECT_NAME='boardsite-functions'\nDJANGO_SETTINGS=None\n"
        f"ENVIRONMENT_VARIABLES={{'AWS_REGION': {region!r}}}\n"
        f"AWS_EVENT_MAPPING={{'arn:aws:s3:::{bucket}': ['offload.functions.process_image.handler']}}\n"
    )
    data = jpeg_bytes(size=(2400, 1800))
    key = f"originals/1/{uuid.uuid4()}.jpg"
    s3.put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="image/jpeg", Metadata={"declared-size": str(len(data))}
    )
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Post",
        "s3": {
            "configurationId": "boardsite-originals",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": key, "size": len(data)},
        },
    }
    site = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [
            *(sys.executable, "-S", "-I", "-c", COLD_PATH, str(tmp_path), str(ROOT), site),
            *(json.dumps({"Records": [record]}), json.dumps(list(FUNCTIONS_COLD_PATH_FORBIDDEN))),
        ],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {"AWS_LAMBDA_FUNCTION_NAME": "f"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["statuses"] == ["ready"]
    loaded = {m: FUNCTIONS_COLD_PATH_FORBIDDEN[m] for m in FUNCTIONS_COLD_PATH_FORBIDDEN if m in seen["modules"]}
    assert loaded == {}, f"the cold path imports what it should not: {loaded}"
    assert seen["walks"] == [], "botocore listed every service folder to load one service's model"
    gc_seen = seen["gc"]
    assert gc_seen["paused at init"]
    assert gc_seen["collections while paused"] == 1  # the measuring collection above, nothing else
    assert gc_seen["enabled after"]
    assert gc_seen["frozen"] > 10_000
    assert gc_seen["at freeze"]["bytes"] < 512 * 1024, gc_seen["at freeze"]
    assert gc_seen["at freeze"]["largest"] < 64 * 1024, gc_seen["at freeze"]  # a photo's bytes are far larger
    assert not [t for t in gc_seen["at freeze"]["types"] if t.startswith("PIL.")], gc_seen["at freeze"]["types"]


@pytest.mark.parametrize("service", ["s3", "sqs", "ssm", "sns", "ses", "lambda", "cloudfront"])
def test_the_session_loader_finds_botocores_own_models(service):
    ours, botocores = aws._Loader(), botocore.loaders.create_loader()
    missing = set()
    for type_name in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
        try:
            expected = botocores.load_service_model(service, type_name)
        except botocore.exceptions.DataNotFoundError:
            missing.add(type_name)  # SQS has no waiters: botocore's own path, and its error
            with pytest.raises(botocore.exceptions.DataNotFoundError):
                ours.load_service_model(service, type_name)
            continue
        assert ours.load_service_model(service, type_name) == expected
    assert {k[1] for k in ours._cache if k[0] == "list_available_services"} == missing


@pytest.mark.parametrize(
    ("service", "type_name", "version"),
    [("no-such-service", "service-2", None), ("s3", "no-such-model-1", None), ("s3", "service-2", "1999-01-01")],
)
def test_the_session_loader_fails_as_botocores_does(service, type_name, version):
    with pytest.raises(botocore.exceptions.BotoCoreError) as ours:
        aws._Loader().load_service_model(service, type_name, version)
    with pytest.raises(botocore.exceptions.BotoCoreError) as botocores:
        botocore.loaders.create_loader().load_service_model(service, type_name, version)
    assert (type(ours.value), str(ours.value)) == (type(botocores.value), str(botocores.value))


GC_PROBE = """
import gc, json, os, sys

baseline = gc.get_freeze_count()  # the interpreter's own
collections = {"before": 0, "paused": 0, "not paused": 0}  # during the init


def count(phase, info):
    # "before": boardsite.coldstart not loaded yet, or still being executed (the import machinery's own first steps,
    # or Zappa's handler before it imports the settings): whether one falls due there depends on the allocation
    # count, not on our code.
    if phase == "start":
        coldstart = sys.modules.get("boardsite.coldstart")
        ready = coldstart is not None and hasattr(coldstart, "paused")  # its last definition
        collections["before" if not ready else "paused" if coldstart.paused() else "not paused"] += 1


garbage = []  # what the freeze keeps for good: the init's garbage in reference cycles, in bytes
freeze = gc.freeze


def measuring_freeze():
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    garbage.append(sum(sys.getsizeof(o) for o in gc.garbage))
    gc.garbage.clear()
    gc.set_debug(0)
    freeze()


gc.freeze = measuring_freeze
gc.callbacks.append(count)
if os.environ["ENTRY"] == "boardsite.entry":  # the stage's lambda_handler: the pause, then Zappa's handler
    import boardsite.entry
else:  # Zappa's handler.py itself
    import handler
gc.callbacks.remove(count)
setup = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() - baseline, "collections": collections}
hooks = []
try:
    import snapshot_restore_py
    hooks = snapshot_restore_py._before
except ImportError:
    pass
for func, args, kwargs in hooks:
    func(*args, **kwargs)
hooks = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count() - baseline, "garbage": garbage}
print(json.dumps({"setup": setup, "hooks": hooks}))
"""


ZAPPA_WEB_SETTINGS = """# as Zappa writes it for the web stage (the keys its handler reads at init)
DJANGO_SETTINGS='boardsite.settings'
LOG_LEVEL='INFO'
DEBUG=False
API_STAGE='web'
PROJECT_NAME='boardsite-web'
ENVIRONMENT_VARIABLES={}
"""


@pytest.mark.parametrize(
    ("init", "entry"),
    [
        ("snap-start", "boardsite.entry"),
        ("snap-start", "handler"),
        ("on-demand", "boardsite.entry"),
        ("not-lambda", "boardsite.entry"),
    ],
)
def test_the_web_init_runs_without_the_cyclic_collector_and_freezes_what_it_made(tmp_path, init, entry):
    """boardsite/coldstart.py: on Lambda the collector is off from boardsite.entry (the stage's lambda_handler, which
    imports Zappa's handler.py, which sets Django up on import) or else from the settings on; once the init is over
    (the apps set up, or under SnapStart the before-snapshot prewarm) what it made is frozen and collection resumes.
    Off Lambda nothing changes."""
    (tmp_path / "snapshot_restore_py.py").write_text(RUNTIME_STUB)
    (tmp_path / "zappa_settings.py").write_text(ZAPPA_WEB_SETTINGS)
    source = build.zappa_handler_source()
    assert source is not None
    (tmp_path / "handler.py").write_text(source.read_text())  # what Zappa writes to the zip's root
    env = {
        "DJANGO_SETTINGS_MODULE": "boardsite.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "test-" + "k" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": str(tmp_path),
        "ENTRY": entry,
        "INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT": "1",  # the web stage's: Django is set up when handler.py is imported
    }
    if init != "not-lambda":
        env |= {"AWS_LAMBDA_FUNCTION_NAME": "boardsite-web", "AWS_LAMBDA_INITIALIZATION_TYPE": init}
    if init == "snap-start":
        env |= {"BOARDSITE_SSM_PREFIX": "/boardsite/test/"}
    seen = json.loads(run_python(GC_PROBE, **env))
    setup, hooks = seen["setup"], seen["hooks"]
    if init == "not-lambda":
        assert setup["enabled"]
        assert setup["frozen"] == hooks["frozen"] == 0
        assert setup["collections"]["paused"] == 0
        assert setup["collections"]["before"] + setup["collections"]["not paused"] > 0
        return
    assert setup["collections"]["paused"] == 0  # nothing collects while paused
    if init == "snap-start":  # paused through the init, until the snapshot's hook
        assert (setup["enabled"], setup["frozen"]) == (False, 0)
        # From boardsite.entry on, Zappa's imports and Django's included; through handler.py alone, from the settings
        # (Zappa's imports before them collect).
        if entry == "boardsite.entry":
            assert setup["collections"]["not paused"] == 0
        else:
            assert setup["collections"]["before"] > 0
    else:  # paused until the apps are set up; the rest of the init collects only what it makes itself
        assert setup["enabled"]
        assert setup["frozen"] > 10_000
    assert hooks["enabled"]
    assert hooks["frozen"] > 10_000
    assert len(hooks["garbage"]) == 1
    assert hooks["garbage"][0] < 1024 * 1024  # frozen for good with the rest: ~220 KB measured
