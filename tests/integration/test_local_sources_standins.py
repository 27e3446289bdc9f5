"""Requirements as teams write them, on the real engine and stand-ins with real uv and PyPI:
a wheel file on disk, a --find-links folder holding an sdist compiled in the stand-in, and git
repositories made by the test, read through git+file:// and through the test's own sshd."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from uv import find_uv_bin

from nativebuild.redact import redact
from tests.gitrepo import bare_clone, commit, extension_files, git, make_repo, sdist_of
from tests.gitservers import ssh_server
from tests.wheelfactory import make_tree, make_wheel

BUILD_IMAGE = "nativebuild-test/build-python3.9:{arch}"
RUNTIME_IMAGE = "nativebuild-test/runtime-python3.9:{arch}"
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
SIX_SHA256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"  # six 1.16.0, PyPI


def nativebuild(
    project: Path,
    cache: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    requirements: str = "requirements.txt",
) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "nativebuild", "build", "-r", str(project / requirements),
         "--src", str(project / "app"), "--runtime", "python3.9", "--build-image", BUILD_IMAGE,
         "--runtime-image", RUNTIME_IMAGE, "--glibc", "2.31", "--cache-dir", str(cache),
         "-o", str(project / "dist"), "--json", *extra],
        capture_output=True, text=True, env={**os.environ, "SOURCE_DATE_EPOCH": "", **(env or {})},
        check=False, timeout=1200,
    )  # fmt: skip
    result = json.loads(done.stdout) if done.returncode == 0 else {}
    return done.returncode, result, done.stderr


def sources(result: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(w["name"], w["arch"]): w["source"] for w in result["wheels"]}


def run_in_runtime(archive: str, code: str, arch: str = "x86_64") -> str:
    task = Path(archive).with_suffix("")
    zipfile.ZipFile(archive).extractall(task)
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--platform", f"linux/{'amd64' if arch == 'x86_64' else 'arm64'}",
         "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE.format(arch=arch), "/var/lang/bin/python3.9", "-c", code],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "project", {"app/handler.py": "def handler(e, c):\n    return 1\n"})


# --- a wheel file on disk: real uv, no engine ---------------------------------------------------


@pytest.mark.network
def test_a_local_wheel_is_resolved_by_uv_with_its_dependencies_and_needs_no_engine(
    project: Path, tmp_path: Path
) -> None:
    wheel = make_wheel(
        project / "vendor", "nbtest20-auth", "2.1", {"nbtest20_auth/__init__.py": "import six\nOK = 1\n"},
        dist_info={"METADATA": "Metadata-Version: 2.1\nName: nbtest20-auth\nVersion: 2.1\nRequires-Dist: six==1.16.0\n"},
    )  # fmt: skip
    good = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "requirements.txt").write_text(f"./vendor/{wheel.name}\n")
    code, result, err = nativebuild(project, tmp_path / "cache", env=NO_ENGINE)
    assert code == 0, err
    assert sources(result) == {
        ("nbtest20-auth", "x86_64"): "download",
        ("six", "x86_64"): "download",
    }
    assert result["containers_started"] == 0
    names = zipfile.ZipFile(result["archives"][0]["path"]).namelist()
    assert "nbtest20_auth/__init__.py" in names
    assert "six.py" in names  # its dependency, resolved by uv from the index

    (project / "requirements.txt").write_text(
        f"./vendor/{wheel.name} --hash=sha256:{good}\nsix==1.16.0 --hash=sha256:{SIX_SHA256}\n"
    )
    code, hashed, err = nativebuild(project, tmp_path / "cache", env=NO_ENGINE)
    assert code == 0, err
    assert hashed["containers_started"] == 0
    assert hashed["archives"][0]["sha256"] == result["archives"][0]["sha256"]

    (project / "requirements.txt").write_text(
        f"./vendor/{wheel.name} --hash=sha256:{'e' * 64}\nsix==1.16.0 --hash=sha256:{SIX_SHA256}\n"
    )
    code, _, err = nativebuild(project, tmp_path / "cache", env=NO_ENGINE)
    assert code == 10, err
    assert f"has sha256 {good}, which none of its --hash values match" in " ".join(err.split())


# --- a find-links folder with an sdist, compiled in the stand-in ---------------------------------


@pytest.mark.docker
def test_a_find_links_sdist_is_compiled_in_the_standin(project: Path, tmp_path: Path) -> None:
    vendor = project / "vendor"
    sdist_of(extension_files("nbtest20-links", "1.0", factor=2), "nbtest20-links", "1.0", vendor)
    (vendor / ".env").write_text("TOKEN=not-for-containers\n")
    (project / "requirements.txt").write_text("--find-links ./vendor\nnbtest20-links==1.0\n")
    code, result, err = nativebuild(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(result) == {("nbtest20-links", "x86_64"): "compiled"}
    # resolved in the image (uv cannot read an sdist), the runtime's libraries probed (for
    # repair), then compiled
    assert result["containers_started"] == 3
    [wheel] = result["wheels"]
    assert wheel["filename"] == "nbtest20_links-1.0-cp39-cp39-linux_x86_64.whl"
    assert (
        run_in_runtime(
            result["archives"][0]["path"], "import nbtest20_links; print(nbtest20_links.scale(21))"
        )
        == "42"
    )
    code, warm, err = nativebuild(project, tmp_path / "cache")
    assert code == 0, err
    assert warm["containers_started"] == 0
    assert warm["archives"][0]["sha256"] == result["archives"][0]["sha256"]


# --- git: git+file:// at a commit and at a branch ----------------------------------------------


@pytest.mark.docker
def test_git_file_at_a_commit_and_at_a_branch_compile_in_the_standin(
    project: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repos" / "nbtest20-git"
    first = make_repo(repo, extension_files("nbtest20-git", "1.0", factor=2))
    (project / "requirements.txt").write_text(f"nbtest20-git @ git+{repo.as_uri()}@{first}\n")
    code, pinned, err = nativebuild(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(pinned) == {("nbtest20-git", "x86_64"): "compiled"}
    # resolved on the host from the packed tree: the runtime probe (for repair) and the compile
    assert pinned["containers_started"] == 2
    check = "import nbtest20_git; print(nbtest20_git.scale(21))"
    assert run_in_runtime(pinned["archives"][0]["path"], check) == "42"
    code, warm, err = nativebuild(project, tmp_path / "cache")
    assert (code, warm["containers_started"]) == (0, 0), err

    (project / "requirements.txt").write_text(f"nbtest20-git @ git+{repo.as_uri()}@main\n")
    code, branch, err = nativebuild(project, tmp_path / "cache")
    assert code == 0, err
    assert f"branch main of {repo.as_uri()} is at commit {first[:12]}" in " ".join(err.split())
    assert branch["containers_started"] == 0, "the branch is at the commit already compiled"
    second = commit(repo, extension_files("nbtest20-git", "1.0", factor=3), "triple")
    code, moved, err = nativebuild(project, tmp_path / "cache")
    assert code == 0, err
    assert f"is at commit {second[:12]}" in " ".join(err.split())
    assert moved["containers_started"] == 1
    assert run_in_runtime(moved["archives"][0]["path"], check) == "63"


# --- git over ssh: the test's own sshd, both architectures, a second clone ---------------------


@pytest.mark.docker
def test_git_over_ssh_both_architectures_and_the_same_bytes_from_a_second_clone(
    project: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    pinned = make_repo(work, extension_files("nbtest20-ssh", "1.0", factor=2))
    served = bare_clone(work, tmp_path / "srv" / "nbtest20-ssh.git")
    with ssh_server(tmp_path / "ssh") as ssh:
        (project / "requirements.txt").write_text(
            f"nbtest20-ssh @ git+{ssh.url(served)}@{pinned}\n"
        )
        both = ("--arch", "x86_64", "--arch", "arm64")
        code, result, err = nativebuild(project, tmp_path / "cache", *both, "--verify", env=ssh.env)
        assert code == 0, err
        assert sources(result) == {
            ("nbtest20-ssh", "x86_64"): "compiled", ("nbtest20-ssh", "arm64"): "compiled",
        }  # fmt: skip
        assert {a["arch"] for a in result["archives"]} == {"x86_64", "arm64"}
        [arm] = [a for a in result["archives"] if a["arch"] == "arm64"]
        check = "import nbtest20_ssh; print(nbtest20_ssh.scale(21))"
        assert run_in_runtime(arm["path"], check, arch="arm64") == "42"
        code, warm, err = nativebuild(project, tmp_path / "cache", *both, env=ssh.env)
        assert code == 0, err
        assert set(sources(warm).values()) == {"cache"}, "nothing compiled again"
        # (arm64 with a custom runtime image probes emulation, `uname -m`, on every build.)
        code, warm, err = nativebuild(project, tmp_path / "cache", env=ssh.env)
        assert (code, warm["containers_started"]) == (0, 0), err

        (project / "requirements.txt").write_text(f"nbtest20-ssh @ git+{ssh.url(served)}@main\n")
        code, branch, err = nativebuild(project, tmp_path / "cache", env=ssh.env)
        assert code == 0, err
        shown = redact(ssh.url(served))  # ssh://***@127.0.0.1:PORT/...: no user name shown
        assert f"branch main of {shown} is at commit {pinned[:12]}" in " ".join(err.split())
        assert branch["containers_started"] == 0, "the branch is at the commit already compiled"

        # Another clone of the same commit, another cache: the very same archive bytes.
        mirror = tmp_path / "srv" / "mirror.git"
        git("clone", "--quiet", "--bare", str(served), str(mirror))
        (project / "requirements.txt").write_text(
            f"nbtest20-ssh @ git+{ssh.url(mirror)}@{pinned}\n"
        )
        code, again, err = nativebuild(project, tmp_path / "other-cache", env=ssh.env)
        assert code == 0, err
        assert again["containers_started"] >= 1, "a cold cache compiles again"
        [x86] = [a for a in result["archives"] if a["arch"] == "x86_64"]
        assert again["archives"][0]["sha256"] == x86["sha256"]
        secret_lines = ssh.key_material()
    outputs = [err, json.dumps(result)]
    outputs += [p.read_text(errors="replace") for p in (project / "dist").rglob("*.json")]
    assert not [line for line in secret_lines for text in outputs if line in text]


# --- a uv.lock with a git source, exported by the real uv ---------------------------------------


@pytest.mark.docker
def test_a_uv_lock_git_source_is_cloned_at_its_locked_commit(project: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repos" / "nbtest20-lock"
    locked = make_repo(repo, extension_files("nbtest20-lock", "1.0", factor=2))
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\nrequires-python = ">=3.9"\n'
        f'dependencies = ["nbtest20-lock @ git+{repo.as_uri()}@main"]\n'
    )
    done = subprocess.run(
        [find_uv_bin(), "lock", "--quiet"], cwd=project, capture_output=True, text=True,
        env={**os.environ, "UV_NO_CONFIG": "1", "UV_INDEX_URL": "https://pypi.org/simple"},
        check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert locked in (project / "uv.lock").read_text()
    commit(repo, extension_files("nbtest20-lock", "1.0", factor=3), "after the lock")
    code, result, err = nativebuild(project, tmp_path / "cache", requirements="uv.lock")
    assert code == 0, err
    assert sources(result) == {("nbtest20-lock", "x86_64"): "compiled"}
    [entry] = result["archives"][0]["wheels"]
    assert entry["url"] == f"git+{repo.as_uri()}@{locked}", "the locked commit, not the branch tip"
    check = "import nbtest20_lock; print(nbtest20_lock.scale(21))"
    assert run_in_runtime(result["archives"][0]["path"], check) == "42"
    assert "not pinned" not in err
