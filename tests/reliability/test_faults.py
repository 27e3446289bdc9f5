"""Concurrency, cache corruption, hostile packages, secrets and resource faults, driven through
the CLI with the fakes of tests/fakes.py (no Docker): each a clear error or a correct build,
never a corrupt cache or a half-written archive."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import json
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from tests.fakes import FakeIndex, FakeRunner, FakeUv, IndexFile
from tests.gitrepo import bare_clone, make_repo, project_files
from tests.gitservers import http_git_server, ssh_server
from tests.reliability.harness import (
    REPO,
    REQUIREMENTS,
    build_args,
    check_cache,
    driver_command,
    driver_env,
    make_index,
    make_project,
    partial_outputs,
    run_fake,
)
from tests.wheelfactory import RawMember, make_tree, make_wheel, symlink_member

CORRUPT = "Removed corrupt cache entry"


@pytest.fixture(scope="module")
def pickled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("index"))


def sha_of(stdout: str) -> str:
    return str(json.loads(stdout)["archives"][0]["sha256"])


# --- 2. concurrency ------------------------------------------------------------------------

SETS = {
    "full-a": REQUIREMENTS,
    "full-b": REQUIREMENTS,
    "overlap-1": "six==1.16.0\nmarkupsafe==2.1.5\n",
    "overlap-2": "requests==2.31.0\nbigdata==1.0\nmarkupsafe==2.1.5\n",
}


def test_four_builds_at_once_on_one_cache_match_serial_builds(
    pickled: Path, tmp_path: Path
) -> None:
    projects = {name: make_project(tmp_path / name, reqs) for name, reqs in SETS.items()}
    serial = {}
    for name, project in projects.items():
        done = run_fake(pickled, build_args(project, tmp_path / f"alone-{name}", tmp_path / "x"))
        assert done.returncode == 0, done.stderr
        serial[name] = sha_of(done.stdout)
    shared = tmp_path / "shared-cache"
    processes = {
        name: subprocess.Popen(
            driver_command(pickled, build_args(project, shared, tmp_path / f"out-{name}")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=driver_env(),
            cwd=REPO,
        )
        for name, project in projects.items()
    }
    for name, process in processes.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name}: {err}"
        assert sha_of(out) == serial[name], name
        assert CORRUPT not in err
        assert partial_outputs(tmp_path / f"out-{name}") == []
    checked = check_cache(shared)
    assert checked.corrupt == []
    assert len(list((shared / "v1" / "built").glob("*/*"))) == 1, "markupsafe cached once"
    assert len(list((shared / "v1" / "files").glob("*/*/*"))) == 5
    print(f"RELIABILITY concurrency builds=4 entries={checked.entries} corrupt=0")


# --- 3. corruption -------------------------------------------------------------------------


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("victim", ["built wheel", "built manifest", "downloaded wheel"])
def test_a_corrupted_entry_is_detected_evicted_and_rebuilt_with_one_warning(
    pickled: Path, tmp_path: Path, victim: str
) -> None:
    project = make_project(tmp_path / "project")
    args = build_args(project, tmp_path / "cache", tmp_path / "out")
    first = run_fake(pickled, args)
    assert first.returncode == 0, first.stderr
    data = tmp_path / "cache" / "v1"
    [target] = {
        "built wheel": list(data.glob("built/*/*/*.whl")),
        "built manifest": list(data.glob("built/*/*/manifest.json")),
        "downloaded wheel": list(data.glob("files/*/*/six-*.whl")),
    }[victim]
    flip_byte(target)
    second = run_fake(pickled, args)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(CORRUPT) == 1, second.stderr
    sources = {w["name"]: w["source"] for w in json.loads(second.stdout)["wheels"]}
    expected_source = "download" if victim == "downloaded wheel" else "compiled"
    assert sources["six" if victim == "downloaded wheel" else "markupsafe"] == expected_source
    assert sha_of(second.stdout) == sha_of(first.stdout)
    assert check_cache(tmp_path / "cache").corrupt == []
    third = run_fake(pickled, args)
    assert CORRUPT not in third.stderr


# --- in-process builds with the fakes ------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_sdist("markupsafe", "2.1.5")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner, uv = FakeRunner(index), FakeUv(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    return runner


def cli_build(
    project: Path, cache: Path, output: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli.app, build_args(project, cache, output, *extra),
        env={"SOURCE_DATE_EPOCH": "", "PIP_CONFIG_FILE": "/dev/null", **(env or {})},
    )  # fmt: skip
    assert "Traceback" not in result.stderr
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    return result.exit_code, result.stdout, result.stderr


# --- 4. hostile packages -------------------------------------------------------------------

HOSTILE = {
    "dotdot": [RawMember(name="../../escaped.py", data=b"pwned = 1\n")],
    "absolute": [RawMember(name="{tmp}/absolute-escape.py", data=b"pwned = 1\n")],  # tmp_path
    "symlink-out": [symlink_member("evil/passwd", "/etc/passwd")],
    "symlink-up": [symlink_member("evil/up", "../../../../outside")],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_wheel_is_refused_end_to_end(
    index: FakeIndex, fake: FakeRunner, tmp_path: Path, kind: str
) -> None:
    members = [
        dataclasses.replace(m, name=m.name.replace("{tmp}", str(tmp_path))) for m in HOSTILE[kind]
    ]
    path = make_wheel(index.root, "evil", "1.0", {"evil/__init__.py": ""}, raw_members=members)
    index.files["evil"] = IndexFile("evil", "1.0", path, _sha(path), ())
    project = make_project(tmp_path / "project", "evil==1.0\nsix==1.16.0\n")
    code, out, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 11, out
    assert "evil-1.0-py3-none-any.whl" in err
    assert f"has a member {members[0].name!r} that" in err, "the refusal names the member"
    assert "refusing to install it" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.zip"))
    assert not (tmp_path / "escaped.py").exists()
    assert not (tmp_path / "absolute-escape.py").exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "line",
    [
        "six==1.16.0; echo pwned > {marker}",
        "six==1.16.0 && touch {marker}",
        "six==1.16.0 | touch {marker}",
        "six==1.16.0 `touch {marker}`",
        "six==$(touch {marker})",
        "six; python_version > '3' ; touch {marker}",
        "--index-url https://x/$(touch {marker})",
    ],
)
def test_shell_metacharacters_never_reach_a_shell(
    fake: FakeRunner, tmp_path: Path, line: str
) -> None:
    marker = tmp_path / "pwned"
    project = make_project(tmp_path / "project", line.format(marker=marker) + "\n")
    code, _, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 4, err
    assert "error:" in err
    assert not marker.exists()
    for spec in fake.specs:  # nothing was handed to a container shell either
        assert spec.command[:2] not in (("sh", "-c"), ("bash", "-c")), spec.command


# --- 6. secrets ----------------------------------------------------------------------------

SECRETS = ("s3cr3t-index-token", "n3trc-passw0rd", "AKIAREL1ABIL1TYTEST", "aws-s3cret-key-xyz")


@pytest.mark.parametrize("verbose", [False, True], ids=["normal", "verbose"])
def test_secrets_appear_in_no_log_archive_manifest_or_cache_entry(
    fake: FakeRunner, tmp_path: Path, verbose: bool
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine pypi.example.com login me password {SECRETS[1]}\n")
    netrc.chmod(0o600)
    env = {
        "PIP_EXTRA_INDEX_URL": f"https://user:{SECRETS[0]}@pypi.example.com/simple",
        "NETRC": str(netrc),
        "AWS_ACCESS_KEY_ID": SECRETS[2],
        "AWS_SECRET_ACCESS_KEY": SECRETS[3],
        "AWS_SESSION_TOKEN": SECRETS[3] + "-session",
    }
    project = make_project(tmp_path / "project", "six==1.16.0\nmarkupsafe==2.1.5\n")
    code, out, err = cli_build(
        project, tmp_path / "cache", tmp_path / "out", *(["-v"] if verbose else []), env=env
    )
    assert code == 0, err
    assert fake.specs, "the compile container ran"
    found = [s for s in SECRETS if s in out + err]
    for path in [*(tmp_path / "out").rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in SECRETS if s.encode() in data]
            if path.suffix in (".zip", ".whl"):
                with zipfile.ZipFile(path) as zf:
                    for name in zf.namelist():
                        member = zf.read(name)
                        found += [f"{path}!{name}: {s}" for s in SECRETS if s.encode() in member]
    # AWS credentials are never handed to a build container (index credentials may be: pip
    # needs them, in the environment of a container that is removed afterwards).
    for spec in fake.specs:
        values = " ".join(f"{k}={v}" for k, v in dict(spec.environment).items())
        found += [f"container env: {s}" for s in SECRETS[2:] if s in values]
    assert found == []


GIT_SECRETS = ("n3trc-g1t-passw0rd", "url-t0ken-s3cr3t")


def _found_secrets(secrets: list[str], out: str, roots: list[Path], fake: FakeRunner) -> list[str]:
    """Where any of ``secrets`` shows up: output, files (zip members too), the containers'
    environment and the files mounted into them."""
    found = [f"output: {s}" for s in secrets if s in out]
    for path in (p for root in roots for p in root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
            if path.suffix in (".zip", ".whl"):
                with zipfile.ZipFile(path) as zf:
                    for name in zf.namelist():
                        member = zf.read(name)
                        found += [f"{path}!{name}: {s}" for s in secrets if s.encode() in member]
    for spec in fake.specs:
        values = " ".join(f"{k}={v}" for k, v in dict(spec.environment).items())
        found += [f"container env: {s}" for s in secrets if s in values]
    for target, data in fake.mounted_files:
        found += [f"mounted {target}: {s}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.parametrize("transport", ["ssh-key", "https-netrc", "url-credentials"])
@pytest.mark.parametrize("verbose", [False, True], ids=["normal", "verbose"])
def test_git_credentials_appear_in_no_log_archive_manifest_cache_or_container(
    fake: FakeRunner, tmp_path: Path, transport: str, verbose: bool
) -> None:
    """git runs on the host with the user's ssh key, ~/.netrc or URL credentials; none of them
    reaches the output, the cache, the archive, a container's environment or its files (the
    netrc a container gets holds index hosts only)."""
    make_repo(tmp_path / "work", project_files("acme-auth", "2.1"))
    bare = bare_clone(tmp_path / "work", tmp_path / "srv" / "acme-auth.git")
    home = make_tree(
        tmp_path / "home",
        {".netrc": f"machine 127.0.0.1 login me password {GIT_SECRETS[0]}\n"},  # git's and pip's
    )
    (home / ".netrc").chmod(0o600)
    env = {"HOME": str(home)}
    with contextlib.ExitStack() as servers:
        secrets = list(GIT_SECRETS)
        if transport == "ssh-key":
            ssh = servers.enter_context(ssh_server(tmp_path / "ssh"))
            env.update(ssh.env)
            url = ssh.url(bare)
            secrets += ssh.key_material()
        else:
            in_url = transport == "url-credentials"
            password = GIT_SECRETS[1] if in_url else GIT_SECRETS[0]
            http = servers.enter_context(
                http_git_server(tmp_path / "srv", login="me", password=password)
            )
            credentials = f"me:{password}" if in_url else ""
            if in_url:
                (home / ".netrc").unlink()
            url = http.url("acme-auth.git", credentials=credentials)
        requirements = f"acme-auth @ git+{url}@main\nmarkupsafe==2.1.5\n"
        project = make_project(tmp_path / "project", requirements)
        code, out, err = cli_build(
            project, tmp_path / "cache", tmp_path / "out", *(["-v"] if verbose else []), env=env
        )
        assert code == 0, err
        if transport != "ssh-key":
            assert any(r.endswith(" 200") for r in http.requests), "git used the credentials"
    assert json.loads(out)["wheels"], "the build ran"
    assert fake.specs, "containers ran"
    assert _found_secrets(secrets, out + err, [tmp_path / "out", tmp_path / "cache"], fake) == []


# --- 7. resource faults --------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 kB tmpfs (the caller fills it), unmounted afterwards; skipped where mount is not
    allowed."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
        capture_output=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(directory: Path) -> None:
    with (directory / "filler").open("wb") as f, pytest.raises(OSError, match="No space left"):  # noqa: PT012
        while True:
            f.write(b"\0" * 65536)
            f.flush()


@pytest.mark.parametrize("where", ["cache", "output"])
def test_a_full_disk_is_a_clear_error_and_a_retry_after_it_succeeds(
    index: FakeIndex, fake: FakeRunner, tmp_path: Path, tiny_fs: Path, where: str
) -> None:
    index.add_wheel("six", "1.16.0")
    project = make_project(tmp_path / "project", "six==1.16.0\nmarkupsafe==2.1.5\n")
    cache = tiny_fs / "cache" if where == "cache" else tmp_path / "cache"
    output = tiny_fs / "out" if where == "output" else tmp_path / "out"
    cache.mkdir(exist_ok=True)
    output.mkdir(exist_ok=True)
    fill(tiny_fs)
    code, _, err = cli_build(project, cache, output)
    assert code == (9 if where == "cache" else 11), err
    assert "No space left on device" in err
    assert partial_outputs(output) == []
    assert check_cache(cache).corrupt == []
    (tiny_fs / "filler").unlink()
    code, _, err = cli_build(project, cache, output)
    assert code == 0, err
    assert partial_outputs(output) == []
    assert check_cache(cache).corrupt == []


def test_a_read_only_cache_directory_is_a_clear_error(
    fake: FakeRunner, tmp_path: Path, tiny_fs: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    project = make_project(tmp_path / "project", "six==1.16.0\n")
    code, _, err = cli_build(project, tiny_fs / "cache", tmp_path / "out")
    assert code == 9, err
    assert "Read-only file system" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_read_only_output_directory_is_a_clear_error(
    fake: FakeRunner, tmp_path: Path, tiny_fs: Path
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    project = make_project(tmp_path / "project", "six==1.16.0\n")
    code, _, err = cli_build(project, tmp_path / "cache", tiny_fs / "out")
    assert code == 11, err
    assert "Read-only file system" in err
    assert check_cache(tmp_path / "cache").corrupt == []


class FlakyIndex:
    """An HTTP index serving files from a directory; while ``hanging`` it accepts connections
    and never answers (the fault), afterwards it serves (the fault has passed)."""

    def __init__(self, root: Path) -> None:
        self.hanging = threading.Event()
        self.hanging.set()
        flaky = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                if flaky.hanging.is_set():
                    time.sleep(2)
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky_index(index: FakeIndex) -> Iterator[FlakyIndex]:
    flaky = FlakyIndex(index.root)
    yield flaky
    flaky.server.shutdown()
    flaky.server.server_close()


class RemoteFile(IndexFile):
    base: str = ""

    @property
    def url(self) -> str:
        return f"{type(self).base}/{self.path.name}"


def test_an_index_that_times_out_is_a_clear_error_and_a_retry_succeeds(
    index: FakeIndex,
    fake: FakeRunner,
    tmp_path: Path,
    flaky_index: FlakyIndex,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("nativebuild.index.downloads.TIMEOUT_S", 0.2)
    monkeypatch.setattr("nativebuild.index.downloads.ATTEMPTS", 2)
    local = index.files["six"]
    RemoteFile.base = flaky_index.url
    index.files["six"] = RemoteFile(local.name, local.version, local.path, local.sha256, ())
    project = make_project(tmp_path / "project", "six==1.16.0\n")
    code, _, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 10, err
    assert "six-1.16.0-py3-none-any.whl" in err
    assert "timed out" in err
    assert partial_outputs(tmp_path / "out") == []
    assert check_cache(tmp_path / "cache").corrupt == []
    flaky_index.hanging.clear()  # the index is back
    code, _, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 0, err


def test_an_engine_that_goes_away_is_a_clear_error_and_a_retry_succeeds(
    fake: FakeRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", "six==1.16.0\nmarkupsafe==2.1.5\n")
    fake.engine_down = True
    code, _, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 7, err
    assert check_cache(tmp_path / "cache").corrupt == []
    assert partial_outputs(tmp_path / "out") == []
    fake.engine_down = False
    code, _, err = cli_build(project, tmp_path / "cache", tmp_path / "out")
    assert code == 0, err
