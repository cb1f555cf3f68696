"""The commands' flows against an in-process stand-in for the site and S3 (fakesite.py): login, boards, upload
(resume, skip by content, retries, 429s, hostile files) and download (resume, names). The real stack's version of
the upload and download flows is test_e2e.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat

import pytest
from boardsite_client import cli, config, tokens
from boardsite_client.files import LocalFile
from boardsite_client.manifest import Manifest
from boardsite_client.upload import manifest_path

from tests.client.fakesite import TOKEN, FakeSite


@pytest.fixture
def site(home):
    fake = FakeSite()
    yield fake
    fake.close()


def run(site, *argv, token=TOKEN, env=None):
    """The command line in-process: (exit code, stdout, stderr lines)."""
    environ = {**os.environ, "BOARDSITE_URL": site.url, **(env or {})}
    if token:
        environ["BOARDSITE_TOKEN"] = token
    out, err = io.StringIO(), io.StringIO()
    code = cli.run([str(a) for a in argv], env=environ, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue().splitlines()


def photos(folder, n, *, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"p{i:02}.jpg").write_bytes(b"\xff\xd8\xff" + f"photo {i}".encode() * (100 + i))
    return folder


def test_login_checks_the_token_and_keeps_it_0600(site, home):
    code, out, _ = run(site, "login", "--token", TOKEN, token=None)
    assert code == 0, out
    assert "Logged in to" in out
    assert "as owner" in out
    path = config.config_path(os.environ)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Later commands find the site and its token in the config.
    out = io.StringIO()
    assert cli.run(["boards", "--json"], env=dict(os.environ), stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["boards"][0]["title"] == "Holiday"


def test_a_mistyped_token_is_refused_offline(site):
    typo = TOKEN[:10] + ("x" if TOKEN[10] != "x" else "y") + TOKEN[11:]
    code, _out, err = run(site, "boards", token=typo)
    assert code == 3
    assert "checksum does not match" in err[-1]
    assert site.calls == [], "no request was made"
    code, _, err = run(site, "login", "--token", "bst_short", token=None)
    assert code == 3
    assert "cut short" in err[-1]


def test_an_unknown_token_is_an_authentication_error(site):
    body = "Z" * 30
    code, out, _err = run(site, "boards", "--json", token="bst_" + body + tokens.checksum(body))
    assert code == 3
    assert json.loads(out) == {"error": "the site refused the token: Unknown or revoked token.", "exit_code": 3}


def test_no_token_and_usage_errors(site, tmp_path):
    assert run(site, "boards", token=None)[0] == 3
    assert run(site, "upload", "7", tmp_path / "missing")[0] == 2
    assert run(site, "upload", "Nope", photos(tmp_path / "f", 1))[0] == 2
    with pytest.raises(SystemExit) as exc:
        run(site, "upload", "7")
    assert exc.value.code == 2


def test_upload_a_folder_then_rerun_skips_everything(site, tmp_path):
    folder = photos(tmp_path / "trip", 6)
    photos(folder / "day2", 3, start=6)
    (folder / "notes.txt").write_text("not a photo")
    (folder / "evil.jpg").write_text("this is text, not a JPEG")
    code, out, err = run(site, "upload", "Holiday", folder, "--json", "--parallel", "3")
    summary = json.loads(out)
    assert code == 1, summary
    assert summary["counts"] == {"ready": 9, "failed": 1}
    failed = [r for r in summary["results"] if r["state"] == "failed"]
    assert failed[0]["file"].endswith("evil.jpg")
    assert "not a JPEG" in failed[0]["error"]
    assert [s["file"].rsplit("/", 1)[1] for s in summary["skipped"]] == ["notes.txt"]
    assert summary["files"] == 10
    assert site.s3_posts == 10
    lines = [json.loads(x) for x in err]
    assert lines[0]["event"] == "progress", "not a terminal: JSON lines"
    assert {x["file"].rsplit("/", 1)[1] for x in lines if x["event"] == "file"} >= {"evil.jpg", "p00.jpg"}
    assert stat.S_IMODE(os.stat(summary["manifest"]).st_mode) == 0o600

    # The same command again: the manifest knows every file; nothing is sent, the hostile one is reported again.
    code, out, _ = run(site, "upload", "7", folder, "--json")
    again = json.loads(out)
    assert code == 1
    assert again["counts"] == {"ready": 9, "failed": 1}
    assert site.count("ticket") == 10
    assert site.s3_posts == 10

    # Without the manifest (another machine): the board has these contents already (lookup by SHA-256).
    os.remove(summary["manifest"])
    (folder / "evil.jpg").unlink()
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"present": 9}
    assert site.count("ticket") == 10


def test_duplicates_in_one_run_are_sent_once(site, tmp_path):
    folder = photos(tmp_path / "a", 2)
    (folder / "copy.jpg").write_bytes((folder / "p00.jpg").read_bytes())
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"ready": 2, "duplicate": 1}
    assert site.s3_posts == 2


def test_transient_errors_and_429s_are_retried(site, tmp_path, monkeypatch):
    site.fail = {"ticket": [429, 503], "s3": [500], "complete": [502], "status": [503]}
    site.retry_after = "0"
    code, out, _ = run(site, "upload", "7", photos(tmp_path / "f", 2), "--json", "--parallel", "1")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"ready": 2}
    assert site.count("ticket") == 4, "429 and 503 asked again"


def test_429s_for_too_long_exit_4_and_a_rerun_resumes(site, tmp_path):
    site.fail = {"ticket": [429] * 100}
    site.retry_after = "1"
    folder = photos(tmp_path / "f", 2)
    code, out, _err = run(site, "upload", "7", folder, "--json", "--max-throttle-wait", "2")
    assert code == 4
    assert "429" in json.loads(out)["error"]
    site.fail = {}
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"ready": 2}


def interrupted(site, folder, tmp_path, *, bytes_sent):
    """The manifest an interrupted run leaves: the first file ticketed, its bytes in storage or not."""
    code, _, _ = run(site, "upload", "7", folder / "p00.jpg", "--json")
    assert code == 0
    image = next(iter(site.images.values()))
    if not bytes_sent:
        image.update(data=None, status="pending", sha256=None)
    else:
        image.update(status="pending", sha256=None)
    path = manifest_path(config.state_dir(os.environ), config.slug(site.url), 7)
    manifest = Manifest(path)
    p = folder / "p00.jpg"
    st = p.stat()
    manifest.update(LocalFile(p.absolute(), st.st_size, st.st_mtime_ns), state="ticketed", image=image["id"])
    manifest.flush(force=True)
    return image


@pytest.mark.parametrize("bytes_sent", [True, False])
def test_a_file_in_flight_when_interrupted_is_confirmed_or_sent_again(site, tmp_path, bytes_sent):
    folder = photos(tmp_path / "f", 3)
    image = interrupted(site, folder, tmp_path, bytes_sent=bytes_sent)
    posts = site.s3_posts
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0, out
    results = {r["file"].rsplit("/", 1)[1]: r for r in json.loads(out)["results"]}
    assert {r["state"] for r in results.values()} == {"ready"}
    if bytes_sent:
        assert results["p00.jpg"]["image"] == image["id"], "the stored bytes were reported, not sent again"
        assert site.s3_posts == posts + 2
    else:
        assert image["status"] == "failed", "the empty ticket was abandoned"
        assert "interrupted" in image["error"]
        assert results["p00.jpg"]["image"] != image["id"]
        assert site.s3_posts == posts + 3


def test_ctrl_c_exits_130_and_keeps_the_manifest(site, tmp_path, monkeypatch):
    from boardsite_client import upload

    folder = photos(tmp_path / "f", 4)
    real = upload.Uploader._put
    sent = []

    def put(self, slot, file, ticket):
        real(self, slot, file, ticket)
        sent.append(file)
        if len(sent) == 2:
            raise KeyboardInterrupt  # as Ctrl-C would (pool.run hands a worker's exception to the main thread)

    monkeypatch.setattr(upload.Uploader, "_put", put)
    code, out, _ = run(site, "upload", "7", folder, "--json", "--parallel", "1")
    assert code == 130
    assert "resume" in json.loads(out)["error"]
    monkeypatch.setattr(upload.Uploader, "_put", real)
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"ready": 4}
    assert site.s3_posts == 4, "nothing sent twice"
    assert len(site.images) == 4


def test_download_large_variants_resumes_and_names_safely(site, tmp_path):
    folder = photos(tmp_path / "f", 5)
    assert run(site, "upload", "7", folder, "--json")[0] == 0
    names = iter(["../../etc/passwd", "same.jpg", "same.jpg", ".hidden.jpg", "a\x1bb.jpg"])
    for image in site.images.values():
        image["filename"] = next(names)
    out_dir = tmp_path / "out"
    # One file left half-written by an earlier run: carried on with a Range request.
    first = next(iter(site.images.values()))
    out_dir.mkdir()
    (out_dir / "passwd.part").write_bytes(first["data"][:100])
    code, out, _err = run(site, "download", "7", out_dir, "--json")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"downloaded": 5}
    files = sorted(p.name for p in out_dir.iterdir())
    assert ".boardsite-download.json" in files
    files.remove(".boardsite-download.json")
    assert len(files) == 5
    assert {"passwd", "hidden.jpg", "ab.jpg", "same.jpg"} <= set(files), "last component, no dot, no control chars"
    assert any(f.startswith("same (") for f in files)
    assert not (tmp_path / "etc").exists()
    digests = {hashlib.sha256((out_dir / f).read_bytes()).hexdigest() for f in files}
    assert digests == {hashlib.sha256(i["data"]).hexdigest() for i in site.images.values()}
    downloads = site.count("download")
    code, out, _ = run(site, "download", "7", out_dir, "--json")
    assert code == 0
    assert json.loads(out)["counts"] == {"present": 5}
    assert site.count("download") == downloads, "complete files are skipped without a request"


def test_download_originals_is_not_for_viewers(site, tmp_path):
    site.board["role"] = "viewer"
    code, _, err = run(site, "download", "7", tmp_path / "o", "--originals")
    assert code == 3
    assert "viewer" in err[-1]


def manifest_states(site):
    path = manifest_path(config.state_dir(os.environ), config.slug(site.url), 7)
    return sorted(e["state"] for e in json.loads(path.read_text())["files"].values())


@pytest.mark.parametrize(("open_elsewhere", "n"), [(15, 14), (19, 10)])
def test_used_up_grants_are_renewed_while_threads_race_for_them(site, tmp_path, open_elsewhere, n):
    """Open uploads elsewhere (a browser tab, an interrupted run) leave few places: the site grants a few tickets at
    a time, and a thread refused by a used-up grant keeps asking on each new one (several threads race for each)."""
    site.functions = True
    site.open_elsewhere = open_elsewhere
    code, out, err = run(site, "upload", "7", photos(tmp_path / "f", n), "--json", "--parallel", "4")
    summary = json.loads(out)
    assert code == 0, (summary, err[-5:])
    assert summary["counts"] == {"ready": n}
    assert site.count("ticket") == 0, "every ticket from the function"
    assert site.count("fn-ticket") >= n
    assert len(site.grants) > 1, "used-up grants were renewed"
    assert sum(g["used"] for g in site.grants.values()) == n
    assert manifest_states(site) == ["ready"] * n


def test_grants_refused_for_good_end_as_errors_that_a_rerun_sends(site, tmp_path):
    """The function refusing every grant is nothing about the files: they end "error" (not "failed"), after a few
    renewals that brought nothing, and the same command later sends them."""
    site.functions = True
    site.revoke_grants = True
    folder = photos(tmp_path / "f", 3)
    code, out, _ = run(site, "upload", "7", folder, "--json", "--parallel", "2")
    summary = json.loads(out)
    assert code == 1
    assert summary["counts"] == {"error": 3}
    assert all("revoked" in r["error"] for r in summary["results"])
    assert manifest_states(site) == ["error"] * 3
    assert 2 <= len(site.grants) <= 20, "renewed a few times, not forever"
    site.revoke_grants = False
    code, out, _ = run(site, "upload", "7", folder, "--json")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"ready": 3}


def test_photos_followed_after_a_resume_never_count_below_zero(site, tmp_path):
    """A resumed run follows the photos the last one left processing; settled during hashing (its first ticks poll),
    they leave the processing count at zero, not below; and a phase with nothing in it is not shown."""
    folder = photos(tmp_path / "f", 4)
    assert run(site, "upload", "7", folder, "--json")[0] == 0
    path = manifest_path(config.state_dir(os.environ), config.slug(site.url), 7)
    data = json.loads(path.read_text())
    for entry in data["files"].values():
        entry["state"] = "completed"  # interrupted while following them (they are ready on the site by now)
    path.write_text(json.dumps(data))
    photos(folder, 2, start=4)  # and two new files to hash
    code, out, err = run(site, "upload", "7", folder, "--json")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"ready": 6}
    progress = [line for line in map(json.loads, err) if line["event"] == "progress"]
    assert min(line.get("processing", 0) for line in progress) >= 0, [line.get("processing") for line in progress]
    assert progress[-1]["processing"] == 0

    # Everything followed, nothing to hash, check or send: no empty "hashing 0/0 files" phase.
    for entry in data["files"].values():
        entry["state"] = "completed"
    path.write_text(json.dumps(data))
    code, out, err = run(site, "upload", "7", folder / "p00.jpg", folder / "p01.jpg", "--json")
    assert code == 0, out
    phases = {line["phase"] for line in map(json.loads, err) if line["event"] == "progress"}
    assert not phases & {"hashing", "checking", "uploading"}, phases


def test_a_download_stopped_just_after_a_file_was_renamed_is_resumed_without_a_second_copy(site, tmp_path, monkeypatch):
    """Ctrl-C (or a kill) right after a photo reached its final name, before the run said so anywhere: the re-run
    knows that file is there and complete, and neither fetches it again nor saves a copy under another name."""
    import pathlib

    assert run(site, "upload", "7", photos(tmp_path / "f", 4), "--json")[0] == 0
    out_dir = tmp_path / "out"
    real = pathlib.Path.replace
    renamed = []

    def replace(self, target):
        result = real(self, target)
        if self.name.endswith(".part"):
            renamed.append(target)
            if len(renamed) == 2:
                raise KeyboardInterrupt  # as Ctrl-C would, the file whole under its name
        return result

    monkeypatch.setattr(pathlib.Path, "replace", replace)
    code, _, _ = run(site, "download", "7", out_dir, "--json", "--parallel", "1")
    assert code == 130
    monkeypatch.setattr(pathlib.Path, "replace", real)
    downloads = site.count("download")
    code, out, _ = run(site, "download", "7", out_dir, "--json")
    assert code == 0, out
    assert json.loads(out)["counts"] == {"present": 2, "downloaded": 2}
    assert site.count("download") == downloads + 2, "only the two photos not on disk are fetched"
    files = sorted(p.name for p in out_dir.iterdir() if p.name != ".boardsite-download.json")
    assert files == ["p00.jpg", "p01.jpg", "p02.jpg", "p03.jpg"], "no second copy under another name"
