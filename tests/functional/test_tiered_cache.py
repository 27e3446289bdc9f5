"""A shared remote cache through the CLI: real files, the fake container runner, and moto's S3
server over real HTTP. Each "machine" is its own local cache directory."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import __version__, cli
from nativebuild.cache.keys import build_key
from nativebuild.cache.s3 import open_remote
from nativebuild.config.settings import resolve
from nativebuild.pipeline import run as pipeline
from nativebuild.reporting import NullReporter
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.moto_server import (
    S3,
    Identities,
    dead_endpoint,
    denied_endpoint,
    identities,
    moto_endpoint,
    s3,
)
from tests.wheelfactory import make_tree

__all__ = ["dead_endpoint", "denied_endpoint", "identities", "moto_endpoint", "s3"]  # fixtures
IMAGE = "example/build:{arch}"


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_sdist("markupsafe", "2.1.5")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    return runner


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    make_tree(
        root,
        {
            "requirements.txt": "markupsafe==2.1.5\nsix==1.16.0\n",
            "app/handler.py": "def handler(event, context):\n    return 1\n",
        },
    )
    return root


def build_args(project: Path, cache: Path) -> list[str]:
    return [
        "-r", str(project / "requirements.txt"), "--runtime", "python3.9", "--arch", "x86_64",
        "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
        "--project", str(project),
    ]  # fmt: skip


def run_build(
    project: Path, cache: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    args = ["build", *build_args(project, cache), "--src", str(project / "app")]
    args += ["-o", str(project / "dist"), "--json", *extra]
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": "", **(env or {})})
    out = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, out, result.stderr


def warnings_in(err: str) -> int:
    """The warnings of a build, but for python3.9's deprecation notice, which every build here
    gets (its dates are behind us)."""
    lines = [line for line in err.splitlines() if line.startswith("warning:")]
    return len([line for line in lines if "python3.9 is deprecated since" not in line])


def cache_cmd(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.app, ["cache", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def sources(result: dict[str, Any]) -> dict[str, str]:
    return {w["name"]: w["source"] for w in result["wheels"]}


def sha(result: dict[str, Any]) -> str:
    return str(result["archives"][0]["sha256"])


def test_second_machine_downloads_what_the_first_compiled(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    code, first, err = run_build(project, tmp_path / "machine-a", "--cache", s3.url)
    assert code == 0, err
    assert first["containers_started"] == 2  # resolution and compile
    assert sources(first) == {"markupsafe": "compiled", "six": "download"}
    assert any(k.endswith("/manifest.json") for k in s3.objects())

    # Machine B: an empty cache directory, the same bucket, named by NATIVEBUILD_CACHE.
    code, second, err = run_build(project, tmp_path / "b", env={"NATIVEBUILD_CACHE": s3.url})
    assert code == 0, err
    assert second["containers_started"] == 0
    assert sources(second) == {"markupsafe": "cache", "six": "cache"}
    assert sha(second) == sha(first)
    assert fake.containers_started == 2

    code, out, _ = cache_cmd("stats", "--cache-dir", str(tmp_path / "b"), "--json")
    assert code == 0
    lookups = json.loads(out)["lookups"]
    assert lookups["built"] == {"local": 0, "remote": 1, "miss": 0, "hit_rate": 1.0}
    assert lookups["json"]["remote"] == 1  # the resolution


def built_payload(s3: S3) -> str:
    [payload] = [k for k in s3.objects() if "/v1/built/" in k and k.endswith(".whl")]
    return payload


def test_corrupted_remote_wheel_is_rejected_evicted_and_rebuilt(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    _, first, _ = run_build(project, tmp_path / "a", "--cache", s3.url)
    payload = built_payload(s3)
    good = s3.read(payload)
    s3.write(payload, good[:-10] + b"0123456789")  # same size, bytes changed

    code, second, err = run_build(project, tmp_path / "b", "--cache", s3.url)
    assert code == 0, err
    assert warnings_in(err) == 1
    assert "Rejected the remote cache entry" in err
    assert "evicted it" in err
    assert sources(second)["markupsafe"] == "compiled"
    assert second["containers_started"] == 1  # the compile; the resolution came from S3
    assert sha(second) == sha(first), "the poisoned bytes never reached the archive"
    assert s3.read(built_payload(s3)) == good, "the rebuilt wheel was uploaded again"

    code, third, err = run_build(project, tmp_path / "c", "--cache", s3.url)
    assert (code, third["containers_started"], warnings_in(err)) == (0, 0, 0)


def manifests(objects: list[str]) -> dict[str, str]:
    """Remote built-wheel manifests by cache key."""
    return {
        k.split("/")[-2]: k for k in objects if "/v1/built/" in k and k.endswith("/manifest.json")
    }


def test_manifests_carry_the_full_cache_key(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    code, _, err = run_build(project, tmp_path / "a", "--cache", s3.url)
    assert code == 0, err
    [(key, name)] = manifests(s3.objects()).items()
    [local] = list((tmp_path / "a" / "v1" / "built").rglob("manifest.json"))
    assert local.parent.name == key
    wheel = s3.read(built_payload(s3))
    for document in (json.loads(s3.read(name)), json.loads(local.read_bytes())):
        fields = document["key"]
        assert build_key(fields) == key
        assert (fields["name"], fields["version"]) == ("markupsafe", "2.1.5")
        assert fields["build_image_id"] == fake.image  # the build image's digest
        assert document["wheel_sha256"] == hashlib.sha256(wheel).hexdigest()
        assert document["nativebuild"] == __version__


def test_remote_entry_filed_under_another_key_is_rejected_evicted_and_rebuilt(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    """A manifest and wheel that agree with each other, but were built from other inputs (here
    another build image) and filed under this key, never reach an archive."""
    run_build(project, tmp_path / "old-image", "--cache", s3.url)
    [(old_key, old_manifest)] = manifests(s3.objects()).items()
    old_payload = built_payload(s3)
    fake.image = "sha256:" + "2" * 64
    _, first, _ = run_build(project, tmp_path / "a", "--cache", s3.url)
    [new_key] = set(manifests(s3.objects())) - {old_key}
    new_dir = manifests(s3.objects())[new_key].rsplit("/", 1)[0]
    sha256, filename = old_payload.split("/")[-2:]
    s3.write(f"{new_dir}/{sha256}/{filename}", s3.read(old_payload))
    s3.write(f"{new_dir}/manifest.json", s3.read(old_manifest))  # the wheel sha256 matches

    code, second, err = run_build(project, tmp_path / "b", "--cache", s3.url)
    assert code == 0, err
    assert warnings_in(err) == 1, err
    assert "Rejected the remote cache entry" in err
    assert "key fields hash to" in err
    assert "evicted it" in err
    assert sources(second)["markupsafe"] == "compiled"
    assert second["containers_started"] == 1  # the compile; the resolution came from S3
    assert sha(second) == sha(first)
    assert build_key(json.loads(s3.read(f"{new_dir}/manifest.json"))["key"]) == new_key

    code, third, err = run_build(project, tmp_path / "c", "--cache", s3.url)
    assert (code, third["containers_started"], warnings_in(err)) == (0, 0, 0)


def test_local_entry_filed_under_another_key_is_evicted_and_rebuilt(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    _, first, _ = run_build(project, tmp_path / "cache")
    [local] = list((tmp_path / "cache" / "v1" / "built").rglob("manifest.json"))
    document = json.loads(local.read_bytes())
    local.write_text(json.dumps({**document, "key": {**document["key"], "version": "2.1.4"}}))
    code, second, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert warnings_in(err) == 1, err
    assert "Removed corrupt cache entry" in err
    assert "key fields hash to" in err
    assert sources(second)["markupsafe"] == "compiled"
    assert sha(second) == sha(first)


def test_corrupted_remote_file_is_fetched_from_the_index_instead(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    _, first, _ = run_build(project, tmp_path / "a", "--cache", s3.url)
    [six] = [k for k in s3.objects() if k.endswith("six-1.16.0-py3-none-any.whl")]
    s3.write(six, b"truncated")
    code, second, err = run_build(project, tmp_path / "b", "--cache", s3.url)
    assert code == 0, err
    assert "Rejected the remote cache entry" in err
    assert sources(second)["six"] == "download"
    assert sha(second) == sha(first)


def test_readonly_pulls_but_never_pushes_or_deletes(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    code, _, err = run_build(project, tmp_path / "untrusted", "--cache", s3.url, "--cache-readonly")
    assert code == 0, err
    assert s3.objects() == []

    _, first, _ = run_build(project, tmp_path / "trusted", "--cache", s3.url)
    payload = built_payload(s3)
    s3.write(payload, b"poison")
    before = s3.objects()
    code, second, err = run_build(
        project, tmp_path / "pr", "--cache", s3.url, env={"NATIVEBUILD_CACHE_READONLY": "1"}
    )
    assert code == 0, err
    assert "left it in place" in err
    assert s3.objects() == before
    assert s3.read(payload) == b"poison"
    assert sha(second) == sha(first)


@pytest.mark.parametrize("endpoint", ["dead", "denied"])
def test_unusable_remote_warns_once_and_the_build_goes_on(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3, request: pytest.FixtureRequest,
    endpoint: str,
) -> None:  # fmt: skip
    url = request.getfixturevalue(f"{endpoint}_endpoint")
    env = {"NATIVEBUILD_CACHE_ENDPOINT_URL": url}
    started = time.monotonic()
    code, first, err = run_build(project, tmp_path / "cache", "--cache", s3.url, env=env)
    assert code == 0, err
    assert time.monotonic() - started < 30
    assert warnings_in(err) == 1, err
    assert "remote cache" in err
    assert "local cache only" in err
    assert "Traceback" not in err
    assert "testing" not in err  # no credentials in messages
    assert first["containers_started"] == 2
    # Warm locally: the remote is never asked, so there is nothing to warn about.
    code, again, err = run_build(project, tmp_path / "cache", "--cache", s3.url, env=env)
    assert (code, again["containers_started"], warnings_in(err)) == (0, 0, 0)


def test_cache_only_fails_naming_the_packages_before_any_container(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, s3: S3
) -> None:
    index.add_both("pyyaml", "6.0.1")
    (project / "requirements.txt").write_text("pyyaml==6.0.1\nsix==1.16.0\n--no-binary pyyaml\n")
    code, _, err = run_build(project, tmp_path / "a", "--cache", s3.url, "--cache-only")
    assert code == 13, err
    assert "pyyaml 6.0.1" in err
    assert "six" not in err.split("compiling:")[1].split(".")[0]
    assert fake.containers_started == 0
    assert not (project / "dist").exists()
    planned = CliRunner().invoke(
        cli.app, ["plan", *build_args(project, tmp_path / "a"), "--cache-only", "--json"]
    )
    assert planned.exit_code == 13

    code, _, err = run_build(project, tmp_path / "a", "--cache", s3.url)
    assert code == 0, err
    code, result, err = run_build(project, tmp_path / "b", "--cache", s3.url, "--cache-only")
    assert code == 0, err
    assert result["containers_started"] == 0


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "v1").rglob("*")}


def test_no_cache_reads_and_keeps_nothing(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    run_build(project, cache, "--cache", s3.url)
    local_before, remote_before = snapshot(cache), s3.objects()
    throwaway = tmp_path / "tmp"
    throwaway.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(throwaway))
    code, result, err = run_build(project, cache, "--cache", s3.url, "--no-cache")
    assert code == 0, err
    assert result["containers_started"] == 2
    assert set(sources(result).values()) == {"compiled", "download"}
    assert snapshot(cache) == local_before
    assert s3.objects() == remote_before
    assert list(throwaway.iterdir()) == []


def build_on_a_thread(project: Path, machine: Path, index: FakeIndex, url: str) -> Any:
    cli_settings = {
        "requirements": str(project / "requirements.txt"), "src": str(project / "app"),
        "runtime": "python3.9", "arch": ["x86_64"], "build-image": IMAGE, "glibc": "2.31",
        "cache-dir": str(machine), "output": str(machine / "dist"), "cache": url,
    }  # fmt: skip
    settings = resolve(cli=cli_settings, file_table={}, env={}, project_dir=project, cwd=project)
    runner = FakeRunner(index)
    return pipeline.build(
        settings, runner=runner, env={}, reporter=NullReporter(), uv=FakeUv(index)
    )


def test_concurrent_builds_writing_the_same_keys_leave_a_consistent_cache(
    project: Path, tmp_path: Path, index: FakeIndex, s3: S3
) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    def machine(n: int) -> None:
        try:
            results.append(build_on_a_thread(project, tmp_path / f"m{n}", index, s3.url))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=machine, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.archives[0].sha256 for r in results}) == 1

    remote = open_remote(s3.url, endpoint_url=s3.endpoint)
    entries = list(remote.entries())
    assert {e.kind for e in entries} == {"built", "file", "json"}
    for entry in entries:
        if entry.kind == "built":
            work = tmp_path / "check" / entry.key
            work.mkdir(parents=True)
            got = remote.fetch_built(entry.key, work)
            assert isinstance(got, tuple), got
            payloads = [k for k in s3.objects() if f"/{entry.key}/" in k and k.endswith(".whl")]
            assert len(payloads) == 1
        elif entry.kind == "file":
            data = s3.read(remote.file_name(entry.key, entry.filename))
            assert hashlib.sha256(data).hexdigest() == entry.key
        else:
            kind, key = entry.key.split("/")
            assert isinstance(remote.fetch_json(kind, key), dict)

    late = build_on_a_thread(project, tmp_path / "late", index, s3.url)
    assert late.containers_started == 0
    assert late.archives[0].sha256 == results[0].archives[0].sha256


def age(path: Path, days: float) -> None:
    moment = time.time() - days * 86400
    os.utime(path, (moment, moment))


def test_cache_commands(project: Path, tmp_path: Path, fake: FakeRunner, s3: S3) -> None:
    cache = tmp_path / "cache"
    code, out, _ = cache_cmd("path", "--cache-dir", str(cache))
    assert (code, out.strip()) == (0, str(cache))
    _, cold, _ = run_build(project, cache)
    _, warm, _ = run_build(project, cache)
    assert warm["containers_started"] == 0

    code, out, _ = cache_cmd("ls", "--cache-dir", str(cache), "--json")
    listed = {(e["kind"], e["name"]) for e in json.loads(out)}
    assert ("file", "six-1.16.0-py3-none-any.whl") in listed
    assert any(kind == "built" and "markupsafe" in name for kind, name in listed)

    code, out, _ = cache_cmd("stats", "--cache-dir", str(cache), "--json")
    stats = json.loads(out)
    assert stats["builds"] == 2
    assert stats["lookups"]["built"] == {"local": 1, "remote": 0, "miss": 1, "hit_rate": 0.5}
    assert stats["kinds"]["built"]["entries"] == 1

    # push from this machine, pull on another: it then builds offline, no container.
    code, out, err = cache_cmd("push", "--cache-dir", str(cache), "--cache", s3.url)
    assert code == 0, err
    assert "pushed" in out
    other = tmp_path / "other"
    code, out, err = cache_cmd("pull", "--cache-dir", str(other), "--cache", s3.url)
    assert code == 0, err
    code, pulled, err = run_build(project, other)
    assert (code, pulled["containers_started"], sha(pulled)) == (0, 0, sha(cold))
    code, out, _ = cache_cmd("ls", "--cache", s3.url, "--remote", "--json")
    assert {e["kind"] for e in json.loads(out)} == {"built", "file", "json"}

    # verify: a damaged local wheel is found, evicted, and the command says so (exit 9).
    [six] = list((cache / "v1" / "files").rglob("six-1.16.0-py3-none-any.whl"))
    six.chmod(0o644)
    six.write_bytes(b"damaged")
    code, out, err = cache_cmd("verify", "--cache-dir", str(cache))
    assert code == 9
    assert "1 bad" in out
    assert not six.exists()
    assert cache_cmd("verify", "--cache-dir", str(cache))[0] == 0


def test_prune_evicts_least_recently_used_first(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    cache = tmp_path / "cache"
    run_build(project, cache)
    markers = {p.parent.name: p for p in (cache / "used").rglob("*") if p.is_file()}
    for marker in (cache / "used").rglob("*"):
        if marker.is_file():
            age(marker, 40)
    for entry in (cache / "v1").rglob("*"):
        age(entry, 40)
    [built_marker] = list((cache / "used" / "built").iterdir())
    age(built_marker, 1)  # the compiled wheel was used yesterday
    assert markers

    code, out, err = cache_cmd("prune", "--cache-dir", str(cache), "--older-than", "30d")
    assert code == 0, err
    assert "evicted file six-1.16.0-py3-none-any.whl" in out
    assert "built" not in out
    assert list((cache / "v1" / "built").rglob("*.whl"))
    assert not list((cache / "v1" / "files").rglob("six-*.whl"))

    code, out, _ = cache_cmd("prune", "--cache-dir", str(cache), "--max-size", "0", "--dry-run")
    assert "would evict built" in out
    assert list((cache / "v1" / "built").rglob("*.whl")), "--dry-run evicts nothing"
    assert cache_cmd("prune", "--cache-dir", str(cache), "--max-size", "1X")[0] == 2
    assert cache_cmd("prune", "--cache-dir", str(cache))[0] == 2


def test_prune_drops_the_records_of_output_folders_that_are_gone(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    from nativebuild.pipeline import quick

    cache = tmp_path / "cache"
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    for output in (kept, gone):
        assert run_build(project, cache, "-o", str(output))[0] == 0
    records = {p.stem: p for p in (cache / "builds").glob("*.json")}
    assert len(records) == 2
    for number, record in enumerate(records.values()):  # a quick answer from each record
        argv = ("build", "--cache-dir", str(cache), f"-o{number}")
        invocation = quick.Invocation(argv=argv, cwd=str(tmp_path), env={}, mode=())
        answer = quick.Answer(record=record, record_sha256="0" * 64, config={}, links={}, output=[])
        quick.remember(invocation, answer)
    assert len(list((cache / "builds" / "quick").glob("*.json"))) == 2
    for archive in gone.iterdir():
        archive.unlink()

    code, out, err = cache_cmd("prune", "--cache-dir", str(cache), "--older-than", "30d")
    assert code == 0, err
    assert f"evicted record {gone}" in out
    assert f"evicted quick {gone}" in out
    assert str(kept) not in out
    assert "evicted built" not in out
    assert "evicted file" not in out
    [left] = (cache / "builds").glob("*.json")
    [answer] = (cache / "builds" / "quick").glob("*.json")
    assert json.loads(answer.read_text())["record"] == str(left)
    code, again, err = run_build(project, cache, "-o", str(kept))
    assert (code, again["containers_started"]) == (0, 0), err

    code, out, err = cache_cmd("prune", "--cache-dir", str(cache), "--max-size", "0")
    assert code == 0, err
    assert f"evicted record {kept}" in out
    assert not list((cache / "builds").rglob("*.json"))


@pytest.mark.parametrize(
    ("text", "size"), [("1G", 10**9), ("500M", 5 * 10**8), ("10k", 10**4), ("2.5GB", 25 * 10**8)]
)
def test_parse_size(text: str, size: int) -> None:
    from nativebuild.cache.maintenance import parse_size

    assert parse_size(text) == size


def test_choose_prune_takes_the_oldest_until_it_fits() -> None:
    from nativebuild.cache.maintenance import LocalEntry, choose_prune

    def entry(key: str, size: int, used: float) -> LocalEntry:
        return LocalEntry(kind="file", key=key, name=key, path=Path(key), size=size, last_used=used)

    entries = [entry("new", 10, 900), entry("old", 10, 100), entry("mid", 10, 500)]
    chosen = choose_prune(entries, now=1000, max_size=15, older_than=None)
    assert [e.key for e in chosen] == ["old", "mid"]
    chosen = choose_prune(entries, now=1000, max_size=None, older_than=450)
    assert [e.key for e in chosen] == ["old", "mid"]
    assert choose_prune(entries, now=1000, max_size=30, older_than=None) == []


def test_digest_pinned_build_from_a_warm_bucket_needs_no_engine(
    project: Path, tmp_path: Path, fake: FakeRunner, s3: S3
) -> None:
    pinned = ("--build-image", "example/build@sha256:" + "3" * 64)
    code, first, err = run_build(project, tmp_path / "a", "--cache", s3.url, *pinned)
    assert code == 0, err
    fake.engine_down = True
    code, second, err = run_build(project, tmp_path / "b", "--cache", s3.url, *pinned)
    assert code == 0, err
    assert second["containers_started"] == 0
    assert sha(second) == sha(first)


def test_read_only_credentials_pull_and_say_once_that_they_cannot_push(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, s3: S3,
    identities: Identities,
) -> None:  # fmt: skip
    url = f"{identities.url}/{tmp_path.name}"
    writer = {**identities.writer, "AWS_ENDPOINT_URL_S3": identities.endpoint}
    reader = {**identities.reader, "AWS_ENDPOINT_URL_S3": identities.endpoint}
    code, first, err = run_build(project, tmp_path / "trusted", "--cache", url, env=writer)
    assert (code, warnings_in(err)) == (0, 0), err
    code, second, err = run_build(project, tmp_path / "fork", "--cache", url, env=reader)
    assert (code, second["containers_started"], warnings_in(err)) == (0, 0, 0), err
    assert sha(second) == sha(first)

    index.add_both("pyyaml", "6.0.1")
    (project / "requirements.txt").write_text("pyyaml==6.0.1\nsix==1.16.0\n--no-binary pyyaml\n")
    code, third, err = run_build(project, tmp_path / "fork", "--cache", url, env=reader)
    assert code == 0, err
    assert sources(third)["pyyaml"] == "compiled"
    assert warnings_in(err) == 1
    assert "Not uploading to the remote cache" in err
