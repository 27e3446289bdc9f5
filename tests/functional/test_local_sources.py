"""Requirements as teams write them, through the CLI on real files with the fake engine: wheel
files on disk, --find-links folders, git repositories (the real git, ``git+file://``)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.inputs.git import GitResult, HostGit
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.gitrepo import commit, git, make_repo, project_files
from tests.wheelfactory import make_tree, make_wheel

IMAGE = "example/build:{arch}"
X86_WHEEL = "acme_auth-2.1-cp39-cp39-manylinux2014_x86_64.whl"
ARM_WHEEL = "acme_auth-2.1-cp39-cp39-manylinux2014_aarch64.whl"


class RecordingGit:
    """The real git, with every command kept: a warm build of a pinned commit runs none."""

    calls: ClassVar[list[list[str]]] = []

    def __init__(self, env: Mapping[str, str]) -> None:
        self._git = HostGit(env)

    def run(self, args: Sequence[str], *, cwd: Path | None = None) -> GitResult:
        RecordingGit.calls.append(list(args))
        return self._git.run(args, cwd=cwd)


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: FakeUv(index))
    monkeypatch.setattr("nativebuild.pipeline.context.HostGit", RecordingGit)
    RecordingGit.calls = []
    return runner


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "project", {"app/handler.py": "import six\n"})


def build(
    project: Path, cache: Path, *extra: str, requirements: str = "requirements.txt"
) -> tuple[int, dict[str, Any], str]:
    args = [
        "build", "-r", str(project / requirements), "--src", str(project / "app"),
        "--runtime", "python3.9", "--build-image", IMAGE, "--glibc", "2.31",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--json", *extra,
    ]  # fmt: skip
    env = {"SOURCE_DATE_EPOCH": "", "PIP_CONFIG_FILE": os.devnull}
    result = CliRunner().invoke(cli.app, args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exc_info is None or result.exc_info[0] is SystemExit, result.exc_info
    out = json.loads(result.stdout) if result.exit_code == 0 else {}
    return result.exit_code, out, result.stderr


def sources(result: dict[str, Any]) -> dict[str, str]:
    return {w["name"]: w["source"] for w in result["wheels"]}


def archive_names(result: dict[str, Any], number: int = 0) -> list[str]:
    return zipfile.ZipFile(result["archives"][number]["path"]).namelist()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- wheel files on disk ------------------------------------------------------------------------


def vendor_wheel(project: Path, filename: str = X86_WHEEL) -> Path:
    tag = filename.removesuffix(".whl").split("-", 2)[2]
    return make_wheel(
        project / "vendor", "acme-auth", "2.1", {"acme_auth/__init__.py": "A = 1\n"}, tag=tag
    )


def test_a_local_wheel_with_its_hash_is_planned_like_a_download_and_needs_no_container(
    project: Path, tmp_path: Path, fake: FakeRunner, index: FakeIndex
) -> None:
    wheel = vendor_wheel(project)
    six = index.files["six"]
    (project / "requirements.txt").write_text(
        f"./vendor/{wheel.name} --hash=sha256:{sha256_of(wheel)}\n"
        f"six==1.16.0 --hash=sha256:{six.sha256}\n"
    )
    code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(result) == {"acme-auth": "download", "six": "download"}
    assert result["containers_started"] == 0
    assert "acme_auth/__init__.py" in archive_names(result)
    [entry] = [w for w in result["archives"][0]["wheels"] if w["name"] == "acme-auth"]
    assert (entry["filename"], entry["sha256"]) == (wheel.name, sha256_of(wheel))
    code, warm, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(warm) == {"acme-auth": "cache", "six": "cache"}
    assert warm["containers_started"] == 0
    assert warm["archives"][0]["sha256"] == result["archives"][0]["sha256"]


@pytest.mark.parametrize(
    "form", ["./vendor/{name}", "{path}", "file://{path}", "acme-auth @ file://{path}"]
)
def test_a_local_wheel_whose_hash_does_not_match_is_refused_before_anything_is_built(
    project: Path, tmp_path: Path, fake: FakeRunner, form: str
) -> None:
    wheel = vendor_wheel(project)
    line = form.format(name=wheel.name, path=wheel)
    (project / "requirements.txt").write_text(f"{line} --hash=sha256:{'0' * 64}\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 10, err
    assert f"requirements.txt:1: {wheel.name} has sha256 {sha256_of(wheel)}" in " ".join(
        err.split()
    )
    assert "none of its --hash values match" in err
    assert fake.specs == []
    assert not (project / "dist").exists()


def test_local_wheels_per_architecture_are_chosen_by_their_markers(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    vendor_wheel(project, X86_WHEEL)
    vendor_wheel(project, ARM_WHEEL)
    (project / "requirements.txt").write_text(
        f"./vendor/{X86_WHEEL} ; platform_machine == 'x86_64'\n"
        f"./vendor/{ARM_WHEEL} ; platform_machine == 'aarch64'\nsix==1.16.0\n"
    )
    code, result, err = build(project, tmp_path / "cache", "--arch", "x86_64", "--arch", "arm64")
    assert code == 0, err
    chosen = {(w["arch"], w["filename"]) for w in result["wheels"] if w["name"] == "acme-auth"}
    assert chosen == {("x86_64", X86_WHEEL), ("arm64", ARM_WHEEL)}
    assert result["containers_started"] == 0


def test_a_local_wheel_the_target_cannot_load_is_refused_with_the_fix(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    vendor_wheel(project, X86_WHEEL)
    (project / "requirements.txt").write_text(f"./vendor/{X86_WHEEL}\n")
    code, _, err = build(project, tmp_path / "cache", "--arch", "arm64")
    assert code == 5, err
    assert X86_WHEEL in err
    assert "platform_machine" in err  # the hint: one wheel per architecture, with markers


# --- --find-links folders -----------------------------------------------------------------------


def sdist_bytes(name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"from setuptools import setup\nsetup()\n"
        info = tarfile.TarInfo(f"{name}-{version}/setup.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_find_links_sdist_is_resolved_and_compiled_from_read_only_copies_of_its_files(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    make_tree(
        project / "wheels",
        {"nbsdist_20-1.0.tar.gz": sdist_bytes("nbsdist_20", "1.0"), ".env": "TOKEN=s3cr3t-folder\n",
         "notes.txt": "not a distribution\n"},
    )  # fmt: skip
    sdist = project / "wheels" / "nbsdist_20-1.0.tar.gz"
    (project / "requirements.txt").write_text("-f ./wheels\nnbsdist-20==1.0\nsix==1.16.0\n")
    code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(result) == {"nbsdist-20": "compiled", "six": "download"}
    resolve_spec, compile_spec = fake.specs
    assert "--dry-run" in resolve_spec.command, "uv on the host cannot read an sdist's metadata"
    for spec in (resolve_spec, compile_spec):
        env = dict(spec.environment)
        assert env["PIP_FIND_LINKS"] == "/nativebuild/links/0"
        links = {m.target: m for m in spec.mounts if m.target.startswith("/nativebuild/links/")}
        assert set(links) == {"/nativebuild/links/0/nbsdist_20-1.0.tar.gz"}
        assert links["/nativebuild/links/0/nbsdist_20-1.0.tar.gz"].source == sdist
        assert all(m.read_only for m in links.values())
        sources_mounted = {m.source for m in spec.mounts}
        assert project / "wheels" not in sources_mounted, "never the folder itself"
        assert project / "wheels" / ".env" not in sources_mounted
    [entry] = [w for w in result["archives"][0]["wheels"] if w["name"] == "nbsdist-20"]
    assert entry["url"] == sdist.as_uri()  # the host's file, not the container's path
    assert entry["sdist_sha256"] == sha256_of(sdist)
    code, warm, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert warm["containers_started"] == 0
    # A new file in the folder is a new input: resolved again (a container: an sdist).
    (project / "wheels" / "unrelated-1.0.tar.gz").write_bytes(sdist_bytes("unrelated", "1.0"))
    code, again, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert again["containers_started"] == 1


def test_a_find_links_folder_that_does_not_exist_says_where_it_looked(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "requirements.txt").write_text("-f ./missing\nsix==1.16.0\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 4, err
    assert str(project / "missing") in " ".join(err.split())


def test_no_index_takes_only_the_local_folder(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    wheels = project / "wheels"
    make_wheel(wheels, "six", "1.16.0", {"six.py": "LOCAL = True\n"})
    (project / "requirements.txt").write_text("--no-index\n--find-links ./wheels\nsix==1.16.0\n")
    code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    [entry] = result["archives"][0]["wheels"]
    assert entry["url"].startswith(wheels.as_uri())


# --- git repositories ---------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repos" / "acme-auth"


def packed_sources(fake: FakeRunner) -> list[tuple[str, bytes]]:
    """The sdists the compile containers got: (container path, bytes)."""
    return [
        (m.target, m.source.read_bytes())
        for spec in fake.specs
        for m in spec.mounts
        if m.target.startswith("/nativebuild/sdists/")
    ]


def test_a_git_commit_is_cloned_packed_compiled_and_then_needs_neither_git_nor_a_container(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path
) -> None:
    first = make_repo(repo, project_files("acme-auth", "2.1", marker="first"))
    commit(repo, project_files("acme-auth", "2.1", marker="second"), "later")
    (project / "requirements.txt").write_text(
        f"acme-auth @ git+{repo.as_uri()}@{first}\nsix==1.16.0\n"
    )
    code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(result) == {"acme-auth": "compiled", "six": "download"}
    [(target, packed)] = packed_sources(fake)
    assert target == "/nativebuild/sdists/acme_auth-2.1.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        names = archive.getnames()
        init = archive.extractfile("acme_auth-2.1/acme_auth/__init__.py")
        assert init is not None
        assert init.read() == b"MARKER = 'first'\n", "the pinned commit, not the branch tip"
    assert not any("/.git" in name for name in names)
    [entry] = [w for w in result["archives"][0]["wheels"] if w["name"] == "acme-auth"]
    assert entry["url"] == f"git+{repo.as_uri()}@{first}"
    assert "not pinned" not in err
    RecordingGit.calls = []
    code, warm, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert warm["containers_started"] == 0
    assert RecordingGit.calls == [], "a pinned commit already packed needs no git at all"
    assert warm["archives"][0]["sha256"] == result["archives"][0]["sha256"]


def test_the_same_commit_from_a_second_clone_gives_the_same_archive_bytes(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path
) -> None:
    pinned = make_repo(repo, project_files("acme-auth", "2.1"))
    second = tmp_path / "elsewhere" / "acme-auth-copy"
    git("clone", "--quiet", str(repo), str(second))
    archives, packs = [], []
    for number, origin in enumerate((repo, second)):
        fake.specs.clear()
        (project / "requirements.txt").write_text(f"acme-auth @ git+{origin.as_uri()}@{pinned}\n")
        code, result, err = build(project, tmp_path / f"cache-{number}")
        assert code == 0, err
        archives.append(Path(result["archives"][0]["path"]).read_bytes())
        packs += [packed for _, packed in packed_sources(fake)]
    assert len(packs) == 2
    assert packs[0] == packs[1], "the packed tree is byte-identical whatever the clone"
    assert archives[0] == archives[1]


def test_a_branch_is_resolved_to_its_commit_and_said_so_and_a_new_commit_rebuilds(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path
) -> None:
    first = make_repo(repo, project_files("acme-auth", "2.1", marker="first"))
    (project / "requirements.txt").write_text(f"acme-auth @ git+{repo.as_uri()}@main\n")
    code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    said = " ".join(err.split())
    assert f"branch main of {repo.as_uri()} is at commit {first[:12]}" in said
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert [
        w for w in warnings if "python3.9 is deprecated" not in w
    ] == []  # a detail, not a warning
    [entry] = result["archives"][0]["wheels"]
    assert entry["url"] == f"git+{repo.as_uri()}@{first}"
    code, warm, err = build(project, tmp_path / "cache")
    assert warm["containers_started"] == 0
    assert any(call[0] == "ls-remote" for call in RecordingGit.calls), "a branch is asked each time"
    second = commit(repo, project_files("acme-auth", "2.1", marker="second"), "moves")
    fake.specs.clear()
    code, moved, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert f"is at commit {second[:12]}" in " ".join(err.split())
    assert moved["containers_started"] == 1, "the branch moved: the new tree is compiled"
    [(_, packed)] = packed_sources(fake)
    with tarfile.open(fileobj=io.BytesIO(packed)) as archive:
        init = archive.extractfile("acme_auth-2.1/acme_auth/__init__.py")
        assert init is not None
        assert init.read() == b"MARKER = 'second'\n"
    [entry] = moved["archives"][0]["wheels"]
    assert entry["url"] == f"git+{repo.as_uri()}@{second}"


def test_a_tag_and_no_revision(project: Path, tmp_path: Path, fake: FakeRunner, repo: Path) -> None:
    tagged = make_repo(repo, project_files("acme-auth", "2.1"))
    git("tag", "--annotate", "v2.1", "--message", "release", cwd=repo)
    (project / "requirements.txt").write_text(f"acme-auth @ git+{repo.as_uri()}@v2.1\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert f"tag v2.1 of {repo.as_uri()} is commit {tagged[:12]}" in " ".join(err.split())
    (project / "requirements.txt").write_text(f"git+{repo.as_uri()}#egg=acme-auth\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 0, err
    said = " ".join(err.split())
    assert "warning:" in said
    assert "names no revision" in said
    assert "the build is not pinned" in said
    assert f"@{tagged}" in said  # how to pin it


def test_git_problems_are_clear_errors(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path
) -> None:
    pinned = make_repo(repo, project_files("acme-auth", "2.1"))
    cases = {
        f"acme-auth @ git+{repo.as_uri()}@no-such-branch": (5, "has no branch or tag 'no-such-branch'"),
        f"acme-auth @ git+{(tmp_path / 'nowhere').as_uri()}@main": (10, "git could not list"),
        f"other-name @ git+{repo.as_uri()}@{pinned}": (4, "the project there is acme-auth"),
        f"acme-auth @ git+{repo.as_uri()}@main\nsix==1.16.0 --hash=sha256:{'1' * 64}": (
            5, "must be pinned to a commit",
        ),
    }  # fmt: skip
    for line, (code_expected, problem) in cases.items():
        (project / "requirements.txt").write_text(line + "\n")
        code, _, err = build(project, tmp_path / "cache")
        assert code == code_expected, (line, err)
        assert problem in " ".join(err.split()), err
        assert "hint:" in err


def test_a_link_leaving_the_tree_is_never_packed(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path
) -> None:
    secret = tmp_path / "home" / ".netrc"
    make_tree(secret.parent, {".netrc": "machine h login me password s3cr3t-link\n"})
    repo.mkdir(parents=True)
    (repo / "creds").symlink_to(secret)
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    pinned = commit(repo, project_files("acme-auth", "2.1"), "with a link out")
    (project / "requirements.txt").write_text(f"acme-auth @ git+{repo.as_uri()}@{pinned}\n")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 11, err
    assert "symbolic link leaving it" in " ".join(err.split())
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert b"s3cr3t-link" not in path.read_bytes(), path


# --- lock files ---------------------------------------------------------------------------------


def test_a_pylock_with_a_wheel_file_and_a_git_commit(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path, index: FakeIndex
) -> None:
    pinned = make_repo(repo, project_files("acme-tools", "0.3"))
    wheel = vendor_wheel(project)
    (project / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n\n'
        f'[[packages]]\nname = "acme-auth"\nversion = "2.1"\n'
        f'archive = {{ path = "vendor/{wheel.name}", hashes = {{ sha256 = "{sha256_of(wheel)}" }} }}\n\n'
        f'[[packages]]\nname = "acme-tools"\nversion = "0.3"\n'
        f'vcs = {{ type = "git", url = "{repo.as_uri()}", requested-revision = "main", commit-id = "{pinned}" }}\n'
    )
    code, result, err = build(project, tmp_path / "cache", requirements="pylock.toml")
    assert code == 0, err
    assert sources(result) == {"acme-auth": "download", "acme-tools": "compiled"}
    code, warm, err = build(project, tmp_path / "cache", requirements="pylock.toml")
    assert warm["containers_started"] == 0
    # The lock's hash is the file's: a different file is refused.
    (wheel).write_bytes(wheel.read_bytes() + b"\0")
    code, _, err = build(project, tmp_path / "other-cache", requirements="pylock.toml")
    assert code == 10, err


# --- resolving in the build image, local requirements included --------------------------------


def test_local_requirements_reach_the_image_resolver_as_read_only_files(
    project: Path, tmp_path: Path, fake: FakeRunner, index: FakeIndex, repo: Path
) -> None:
    """An sdist-only package sends the whole resolution into the build image: a local folder, a
    git tree (packed) and a wheel file go there as files, each mounted read-only."""
    index.add_sdist("markupsafe", "2.1.5")
    make_tree(
        project / "libs" / "mypkg",
        {"pyproject.toml": '[project]\nname = "mypkg"\nversion = "0.1"\n'},
    )
    pinned = make_repo(repo, project_files("acme-tools", "0.3"))
    wheel = vendor_wheel(project)
    (project / "requirements.txt").write_text(
        f"markupsafe==2.1.5\n./libs/mypkg\n./vendor/{wheel.name}\n"
        f"acme-tools @ git+https://user:s3cr3t-url@git.invalid/o/acme-tools@{pinned}\n"
    )
    # The clone reads the local repository instead of the unreachable host, as a mirror would.
    real = RecordingGit.run

    def mirrored(self: RecordingGit, args: Sequence[str], *, cwd: Path | None = None) -> GitResult:
        swapped = [repo.as_uri() if "git.invalid" in a else a for a in args]
        return real(self, swapped, cwd=cwd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RecordingGit, "run", mirrored)
        code, result, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert sources(result) == {
        "acme-auth": "download", "acme-tools": "compiled", "markupsafe": "compiled", "mypkg": "compiled",
    }  # fmt: skip
    resolve_spec = fake.specs[0]
    assert "--dry-run" in resolve_spec.command
    local = {m.target: m for m in resolve_spec.mounts if m.target.startswith("/nativebuild/local/")}
    assert sorted(Path(target).name for target in local) == [
        wheel.name, "acme_tools-0.3.tar.gz", "mypkg-0.1.tar.gz",
    ]  # fmt: skip
    assert all(m.read_only for m in local.values())
    [requirements] = fake.resolved_texts
    assert "s3cr3t-url" not in requirements
    for target in local:  # each local requirement, as pip in the container reads it
        assert f" @ file://{target}" in requirements
    assert str(project) not in requirements, "no host path reaches the container"
    wheels = {w["name"]: w for w in result["archives"][0]["wheels"]}
    assert wheels["acme-auth"]["url"] == wheel.as_uri()
    assert wheels["acme-tools"]["url"] == f"git+https://git.invalid/o/acme-tools@{pinned}"
    assert wheels["mypkg"]["url"] == (project / "libs" / "mypkg").as_uri()
    assert "s3cr3t-url" not in json.dumps(result) + err


def test_offline_compile_failures_say_build_requirements_belong_in_the_folder(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    make_tree(project / "wheels", {"nbsdist_20-1.0.tar.gz": sdist_bytes("nbsdist_20", "1.0")})
    (project / "requirements.txt").write_text("--no-index\n-f ./wheels\nnbsdist-20==1.0\n")
    fake.fail_compile.add("nbsdist-20")
    code, _, err = build(project, tmp_path / "cache")
    assert code == 6, err
    assert "build requirements such as setuptools" in " ".join(err.split())
    [_, compile_spec] = fake.specs
    assert dict(compile_spec.environment)["PIP_NO_INDEX"] == "1"


def test_a_branch_is_never_answered_up_to_date_a_pinned_commit_is(
    project: Path, tmp_path: Path, fake: FakeRunner, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The up-to-date record (pipeline.uptodate) knows the files it read; a branch can move
    with no file here changing, so a build from one always runs; a pinned commit is answered
    from the record."""
    monkeypatch.setattr(
        "nativebuild.pipeline.uptodate.engine_image_ids",
        lambda env: lambda ref, platform: fake.image_id(ref, platform=platform),
    )
    first = make_repo(repo, project_files("acme-auth", "2.1", marker="first"))
    requirements = project / "requirements.txt"
    requirements.write_text(f"acme-auth @ git+{repo.as_uri()}@main\n")
    assert build(project, tmp_path / "cache")[0] == 0
    code, _, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" not in err
    requirements.write_text(f"acme-auth @ git+{repo.as_uri()}@{first}\n")
    assert build(project, tmp_path / "cache")[0] == 0
    code, _, err = build(project, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" in err
