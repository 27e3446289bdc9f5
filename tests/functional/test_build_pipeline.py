"""The whole build through the CLI, on real files, with a fake container runner."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.abi import wheel_facts
from nativebuild.pipeline import abi_gate
from tests.elffixtures import EM_AARCH64, MACHO_64, STATX_C, elf_header, pe_file, shared_library
from tests.fakes import ArchiveJobsRunner, FakeIndex, FakeRunner, FakeUv
from tests.wheelfactory import make_tree

IMAGE = "example/build:{arch}"


@pytest.fixture
def index(tmp_path: Path) -> FakeIndex:
    index = FakeIndex(tmp_path / "index")
    index.add_wheel("six", "1.16.0")
    index.add_wheel("requests", "2.31.0", deps=("idna>=2",))
    index.add_wheel("idna", "3.6")
    index.add_sdist("markupsafe", "2.1.5")
    index.add_wheel("futures", "3.0.0")  # only pulled in by an excluded marker
    return index


@pytest.fixture
def fake(index: FakeIndex, monkeypatch: pytest.MonkeyPatch, fake_uv: FakeUv) -> FakeRunner:
    runner = FakeRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    return runner


@pytest.fixture
def fake_uv(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeUv:
    uv = FakeUv(index)
    monkeypatch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
    return uv


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    make_tree(
        root,
        {
            "requirements.txt": (
                "markupsafe==2.1.5\nsix==1.16.0\nrequests==2.31.0\n"
                "futures==3.0.0; python_version < '3'\n"
            ),
            "app/handler.py": "def handler(event, context):\n    return 1\n",
        },
    )
    return root


def run_build(
    project: Path, cache: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    args = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", IMAGE, "--glibc", "2.31",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--project", str(project), "--json",
        *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": "", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_cold_build_compiles_only_the_sdist_and_packs_everything(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    result = json.loads(out)
    # One container: the resolution, which goes on to compile the sdist its report names.
    assert result["containers_started"] == 1
    assert fake.resolved_then_compiled == 1
    sources = {w["name"]: w["source"] for w in result["wheels"]}
    assert sources == {
        "idna": "download",
        "markupsafe": "compiled",
        "requests": "download",
        "six": "download",
    }
    [archive] = result["archives"]
    assert archive["runtime"] == "python3.9"
    assert archive["arch"] == "x86_64"
    assert archive["kind"] == "function"
    data = Path(archive["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == archive["sha256"]
    assert len(data) == archive["size"]
    names = zipfile.ZipFile(archive["path"]).namelist()
    assert "handler.py" in names
    assert "markupsafe/_speedups.so" in names
    assert "six/__init__.py" in names
    assert "idna/__init__.py" in names
    assert not any(n.startswith("futures") for n in names), "the marker excludes futures on 3.9"
    assert names == sorted(names)
    [compile_spec] = fake.specs
    assert compile_spec.command[2] == "--resolve-first"
    writable = [m.target for m in compile_spec.mounts if not m.read_only]
    assert writable == ["/nativebuild/out"]  # no host pip cache: nothing else a build can write
    assert compile_spec.image == "example/build:x86_64"
    assert compile_spec.platform == "linux/amd64"


def test_warm_rebuild_starts_no_container_and_gives_the_same_bytes(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    _, cold, _ = run_build(project, tmp_path / "cache")
    code, warm, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    cold_result, warm_result = json.loads(cold), json.loads(warm)
    assert warm_result["containers_started"] == 0
    assert fake.containers_started == 1  # the cold build's: resolved, then compiled
    assert {w["source"] for w in warm_result["wheels"]} == {"cache"}
    assert warm_result["archives"][0]["sha256"] == cold_result["archives"][0]["sha256"]


def test_same_inputs_in_another_directory_give_the_same_archive(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    shutil.copytree(project, elsewhere)
    (elsewhere / "app" / "handler.py").chmod(0o600)
    _, first, _ = run_build(project, tmp_path / "cache-a")
    _, second, _ = run_build(elsewhere, tmp_path / "cache-b")
    assert json.loads(first)["archives"][0]["sha256"] == json.loads(second)["archives"][0]["sha256"]


def test_code_change_rebuilds_without_containers(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    _, cold, _ = run_build(project, tmp_path / "cache")
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    _, changed, _ = run_build(project, tmp_path / "cache")
    assert json.loads(changed)["containers_started"] == 0
    assert json.loads(changed)["archives"][0]["sha256"] != json.loads(cold)["archives"][0]["sha256"]


def test_new_build_image_recompiles(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    run_build(project, tmp_path / "cache")
    fake.image = "sha256:" + "2" * 64
    _, out, _ = run_build(project, tmp_path / "cache")
    sources = {w["name"]: w["source"] for w in json.loads(out)["wheels"]}
    assert sources["markupsafe"] == "compiled"
    assert sources["six"] == "cache"


def test_source_date_epoch_changes_timestamps(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    _, out, _ = run_build(project, tmp_path / "cache", env={"SOURCE_DATE_EPOCH": "1700000000"})
    archive = json.loads(out)["archives"][0]["path"]
    assert {i.date_time for i in zipfile.ZipFile(archive).infolist()} == {
        (2023, 11, 14, 22, 13, 20)
    }


def test_compile_failure_names_the_package_and_leaves_nothing(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    fake.fail_compile = {"markupsafe"}
    code, out, err = run_build(project, tmp_path / "cache")
    assert code == 6
    assert "markupsafe 2.1.5" in err
    assert "Python.h" in err
    assert "Traceback" not in err
    assert out == ""
    assert not (project / "dist").exists() or not any((project / "dist").iterdir())


def test_unknown_package_is_a_resolution_error(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "requirements.txt").write_text("no-such-package==1.0\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 5
    assert "No matching distribution found for no-such-package==1.0" in err
    assert "Traceback" not in err


def test_wrong_hash_is_refused_before_anything_is_built(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "requirements.txt").write_text(f"six==1.16.0 --hash=sha256:{'0' * 64}\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 5
    assert "six-1.16.0-py3-none-any.whl" in err
    assert not (project / "dist").exists()


def test_hash_checking_mode_refuses_a_dependency_without_a_hash(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    """requests is hashed, so every package needs a hash; its dependency idna has none."""
    requests = index.files["requests"]
    (project / "requirements.txt").write_text(f"requests==2.31.0 --hash=sha256:{requests.sha256}\n")
    cache = tmp_path / "cache"
    code, _, err = run_build(project, cache)
    assert code == 5, err
    assert "idna 3.6 has no sha256 --hash in the requirements" in err
    assert not (project / "dist").exists()
    assert not list(cache.rglob("*.whl")), "nothing is downloaded before the hashes pass"
    (project / "requirements.txt").write_text(
        f"requests==2.31.0 --hash=sha256:{requests.sha256}\n"
        f"idna==3.6 --hash=sha256:{index.files['idna'].sha256}\n"
    )
    code, _, err = run_build(project, cache)
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--runtime", "python2.7"], 2, "Unknown runtime"),
        (["--arch", "mips"], 2, "Unknown architecture"),
        (["--glibc", "two"], 2, "Invalid glibc"),
        (["-r", "/nonexistent/requirements.txt"], 3, "not found"),
    ],
)
def test_bad_input_exit_codes(
    project: Path, tmp_path: Path, fake: FakeRunner, args: list[str], code: int, needle: str
) -> None:
    got, _, err = run_build(project, tmp_path / "cache", *args)
    assert got == code, err
    assert needle in err
    assert "Traceback" not in err
    assert fake.containers_started == 0


def test_malformed_requirement_line(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    (project / "requirements.txt").write_text("six==1.16.0\nfoo[bar\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 4
    assert "requirements.txt:2" in err


def test_engine_down_is_a_clear_error(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    fake.engine_down = True
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 7
    assert "Traceback" not in err


def test_corrupt_cached_wheel_is_evicted_and_fetched_again(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    cache = tmp_path / "cache"
    _, cold, _ = run_build(project, cache)
    [six_wheel] = list(cache.rglob("six-1.16.0-py3-none-any.whl"))
    six_wheel.chmod(0o644)
    six_wheel.write_bytes(b"garbage")
    code, warm, err = run_build(project, cache)
    assert code == 0, err
    assert "six" in err
    assert "warning" in err.lower()
    sources = {w["name"]: w["source"] for w in json.loads(warm)["wheels"]}
    assert sources["six"] == "download"
    assert json.loads(warm)["archives"][0]["sha256"] == json.loads(cold)["archives"][0]["sha256"]


def test_config_file_supplies_settings_and_flags_win(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.nativebuild]\nruntime = "python3.9"\nname = "from-config"\noutput = "out"\n'
        f'build-image = "{IMAGE}"\nglibc = "2.31"\nsrc = "app"\n'
    )
    args = ["build", "--project", str(project), "--cache-dir", str(tmp_path / "cache"), "--json"]
    result = CliRunner().invoke(cli.app, [*args, "--name", "from-flag"])
    assert result.exit_code == 0, result.stderr
    path = Path(json.loads(result.stdout)["archives"][0]["path"])
    assert path == project / "out" / "from-flag-python3.9-x86_64.zip"


def test_unknown_config_key_suggests_the_nearest(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "pyproject.toml").write_text('[tool.nativebuild]\nbuild_image = "x"\n')
    result = CliRunner().invoke(cli.app, ["build", "--project", str(project)])
    assert result.exit_code == 2
    assert "Perhaps you meant 'build-image'?" in result.stderr


def test_src_dot_does_not_pack_the_output_or_cache(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    args = [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project),
        "--runtime", "python3.9", "--build-image", IMAGE, "--glibc", "2.31",
        "--cache-dir", str(project / ".cache"), "-o", str(project / "dist"), "--json",
    ]  # fmt: skip
    for _ in range(2):  # the second build would see the first archive if it were not skipped
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 0, result.stderr
    names = zipfile.ZipFile(json.loads(result.stdout)["archives"][0]["path"]).namelist()
    assert "app/handler.py" in names
    assert "requirements.txt" in names
    assert not any(n.startswith(("dist/", ".cache/")) for n in names)


def test_all_binary_set_builds_without_any_engine(
    project: Path, tmp_path: Path, fake: FakeRunner, fake_uv: FakeUv
) -> None:
    (project / "requirements.txt").write_text("six==1.16.0\nrequests==2.31.0\n")
    fake.engine_down = True
    code, out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    result = json.loads(out)
    assert result["containers_started"] == 0
    assert {w["name"]: w["source"] for w in result["wheels"]} == {
        "idna": "download",
        "requests": "download",
        "six": "download",
    }
    assert len(fake_uv.calls) == 1


def test_sdist_only_package_resolves_in_the_build_image(
    project: Path, tmp_path: Path, fake: FakeRunner, fake_uv: FakeUv
) -> None:
    code, _out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert "resolving in example/build:x86_64" in err
    # One container resolves, then compiles the sdist its report names.
    assert [spec.command[2:3] for spec in fake.specs] == [("--resolve-first",)]
    assert fake.resolved_then_compiled == 1
    assert "markupsafe 2.1.5 in example/build:x86_64 (same container)" in err


def test_no_binary_with_a_wheel_available_compiles_without_a_resolution_container(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    index.add_both("pyyaml", "6.0.1")
    (project / "requirements.txt").write_text("pyyaml==6.0.1\nsix==1.16.0\n--no-binary pyyaml\n")
    code, out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    result = json.loads(out)
    assert result["containers_started"] == 1
    assert {w["name"]: w["source"] for w in result["wheels"]} == {
        "pyyaml": "compiled",
        "six": "download",
    }


def test_cached_compiles_build_without_an_engine(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    index.add_both("pyyaml", "6.0.1")
    (project / "requirements.txt").write_text("pyyaml==6.0.1\n--no-binary pyyaml\n")
    _, cold, _ = run_build(project, tmp_path / "cache")
    fake.engine_down = True
    code, warm, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert json.loads(warm)["containers_started"] == 0
    assert json.loads(warm)["archives"][0]["sha256"] == json.loads(cold)["archives"][0]["sha256"]
    assert "last seen" in err


def test_plan_json_lists_each_action_with_its_reason(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    args = ["plan", "-r", str(project / "requirements.txt"), "--runtime", "python3.9", "--build-image", IMAGE,
            "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"), "--project", str(project), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.stderr
    [target] = json.loads(result.stdout)["targets"]
    actions = {item["name"]: item["action"] for item in target["items"]}
    assert actions == {
        "idna": "download",
        "markupsafe": "compile",
        "requests": "download",
        "six": "download",
    }
    assert all(item["reason"] and item["sha256"] and item["file"] for item in target["items"])
    table = CliRunner().invoke(cli.app, args[:-1])
    assert table.exit_code == 0
    assert "markupsafe" in table.stdout
    assert "compile" in table.stdout
    assert not (project / "dist").exists()


def test_pylock_input_installs_exactly_its_pins(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner, fake_uv: FakeUv
) -> None:
    six, idna = index.files["six"], index.files["idna"]
    (project / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "test"\n\n'
        f'[[packages]]\nname = "six"\nversion = "{six.version}"\n'
        f'wheels = [{{ url = "{six.url}", hashes = {{ sha256 = "{six.sha256}" }} }}]\n\n'
        f'[[packages]]\nname = "idna"\nversion = "{idna.version}"\nmarker = "sys_platform == \'win32\'"\n'
        f'wheels = [{{ url = "{idna.url}", hashes = {{ sha256 = "{idna.sha256}" }} }}]\n'
    )
    fake.engine_down = True
    code, out, err = run_build(project, tmp_path / "cache", "-r", str(project / "pylock.toml"))
    assert code == 0, err
    result = json.loads(out)
    assert [(w["name"], w["version"]) for w in result["wheels"]] == [("six", "1.16.0")]
    assert result["containers_started"] == 0
    assert fake_uv.calls == [], "a lock file is never re-resolved"


def test_pyproject_input_with_an_extra(
    project: Path, tmp_path: Path, fake: FakeRunner, fake_uv: FakeUv
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "fn"\nversion = "1"\ndependencies = ["six==1.16.0"]\n'
        '[project.optional-dependencies]\nhttp = ["requests==2.31.0"]\n'
    )
    pyproject = str(project / "pyproject.toml")
    _, plain, err = run_build(project, tmp_path / "cache", "-r", pyproject)
    assert {w["name"] for w in json.loads(plain)["wheels"]} == {"six"}, err
    _, with_extra, err = run_build(project, tmp_path / "cache", "-r", pyproject, "--extra", "http")
    assert {w["name"] for w in json.loads(with_extra)["wheels"]} == {"six", "requests", "idna"}, err


def test_local_path_dependency_is_packed_compiled_and_rebuilt_on_change(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    make_tree(
        project / "libs" / "mypkg",
        {
            "pyproject.toml": '[project]\nname = "MyPkg"\nversion = "0.1.0"\n',
            "src/mypkg/__init__.py": "X = 1\n",
            "src/mypkg/__pycache__/junk.pyc": b"\x00",
            "build/lib/mypkg/stale.py": "STALE = True\n",
            ".git/config": "[core]\n",
        },
    )
    (project / "requirements.txt").write_text("./libs/mypkg\nsix==1.16.0\n")
    _, first, err = run_build(project, tmp_path / "cache")
    sources = {w["name"]: w["source"] for w in json.loads(first)["wheels"]}
    assert sources == {"mypkg": "compiled", "six": "download"}, err
    [compile_spec] = fake.specs
    [packed] = [m for m in compile_spec.mounts if m.target.startswith("/nativebuild/sdists/")]
    assert packed.target == "/nativebuild/sdists/mypkg-0.1.0.tar.gz"
    with tarfile.open(packed.source) as archive:
        names = archive.getnames()
    assert "mypkg-0.1.0/src/mypkg/__init__.py" in names
    assert not any("__pycache__" in n for n in names)
    assert not any("/build/" in n or "/.git/" in n for n in names), "build outputs and VCS stay out"
    _, again, _ = run_build(project, tmp_path / "cache")
    assert json.loads(again)["containers_started"] == 0
    (project / "libs" / "mypkg" / "src" / "mypkg" / "__init__.py").write_text("X = 2\n")
    _, changed, _ = run_build(project, tmp_path / "cache")
    assert {w["name"]: w["source"] for w in json.loads(changed)["wheels"]}["mypkg"] == "compiled"


def test_local_path_that_does_not_exist_is_a_clear_error(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    (project / "requirements.txt").write_text("six==1.16.0\n./libs/missing\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 4
    assert "requirements.txt:2" in err
    assert "Traceback" not in err


def test_two_architectures_give_two_archives_sharing_downloads(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, out, err = run_build(project, tmp_path / "cache", "--arch", "arm64")
    assert code == 0, err
    result = json.loads(out)
    assert sorted(a["arch"] for a in result["archives"]) == ["arm64", "x86_64"]
    for archive in result["archives"]:
        names = zipfile.ZipFile(archive["path"]).namelist()
        machine = "aarch64" if archive["arch"] == "arm64" else "x86_64"
        assert "markupsafe-2.1.5.dist-info/WHEEL" in names
        wheel = next(n for n in names if n == "markupsafe-2.1.5.dist-info/WHEEL")
        assert f"linux_{machine}" in zipfile.ZipFile(archive["path"]).read(wheel).decode()
    compiled = {w["arch"] for w in result["wheels"] if w["source"] == "compiled"}
    assert compiled == {"x86_64", "arm64"}
    assert "under emulation" in err
    probes = [s for s in fake.specs if s.command == ("uname", "-m")]
    assert [p.platform for p in probes] == ["linux/arm64"], (
        "only the foreign architecture is probed"
    )


@pytest.mark.parametrize("runtime_image", [None, "example/runtime:{arch}"])
def test_a_warm_build_of_two_architectures_starts_no_container(
    project: Path, tmp_path: Path, fake: FakeRunner, runtime_image: str | None
) -> None:
    """Not even the emulation probe: it runs only before a container of that architecture."""
    extra = ("--arch", "arm64", *(("--runtime-image", runtime_image) if runtime_image else ()))
    code, _, err = run_build(project, tmp_path / "cache", *extra)
    assert code == 0, err
    started = fake.containers_started
    code, out, err = run_build(project, tmp_path / "cache", *extra)
    assert code == 0, err
    assert json.loads(out)["containers_started"] == 0
    assert fake.containers_started == started, [s.command for s in fake.specs[started:]]


def test_no_emulation_fails_fast_with_the_fix(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    fake.emulates = set()
    args = ("--arch", "arm64")
    code, _, err = run_build(project, tmp_path / "cache", *args)
    assert code == 15, err
    assert "tonistiigi/binfmt --install arm64" in err
    assert "Traceback" not in err
    assert not any(
        s.command[-2:] == ("/nativebuild/in/jobs.json", "/nativebuild/out/results.json")
        and s.platform == "linux/arm64"
        for s in fake.specs
    )


# --- the ABI check, repair and build-packages (issue 5) ----------------------------------------


def test_a_binary_for_another_machine_stops_the_build_before_any_archive(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    """The wheel's name claims x86_64; its .so is aarch64: caught by reading it, not the tag."""
    index.add_wheel(
        "fastthing", "1.0", tag="cp39-cp39-manylinux2014_x86_64",
        files={"fastthing/_speed.so": elf_header(machine=EM_AARCH64)},
    )  # fmt: skip
    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text() + "fastthing==1.0\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 14, err
    assert "fastthing/_speed.so (fastthing 1.0)" in err
    assert "aarch64" in err
    assert not (project / "dist").exists() or not list((project / "dist").glob("*.zip"))

    code, out, err = run_build(project, tmp_path / "cache", "--no-check")
    assert code == 0, err
    assert (
        "fastthing/_speed.so" in zipfile.ZipFile(json.loads(out)["archives"][0]["path"]).namelist()
    )


def test_the_check_reports_what_it_checked_against(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert "binary files checked against Amazon Linux 2 for python3.9" in err


def test_repair_and_build_packages_are_part_of_the_compiled_wheels_key(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    monkeypatch: pytest.MonkeyPatch,
    fake_uv: FakeUv,
) -> None:
    runner = FakeImageRunner(index)
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    cache = tmp_path / "cache"
    assert run_build(project, cache)[0] == 0
    compiled = runner.compiles
    assert compiled == 1
    assert run_build(project, cache)[0] == 0
    assert runner.compiles == compiled  # warm: nothing compiled again

    code, out, err = run_build(project, cache, "--no-repair")
    assert code == 0, err
    assert runner.compiles == compiled + 1
    assert {w["name"]: w["source"] for w in json.loads(out)["wheels"]}["markupsafe"] == "compiled"

    code, out, err = run_build(project, cache, "--build-package", "libyaml-dev")
    assert code == 0, err
    assert runner.compiles == compiled + 2
    [(tag, dockerfile)] = runner.built
    assert tag.startswith("nativebuild/derived:")
    assert (
        'RUN ["/bin/sh", "/tmp/nativebuild-derived/install-toolchain.sh", "packages", "libyaml-dev"]'
        in dockerfile
    )
    assert runner.specs[-1].image == tag  # the compile ran in the derived image
    code, _, err = run_build(project, cache, "--build-package", "libyaml-dev")
    assert code == 0, err
    assert len(runner.built) == 1  # derived once, then reused (and the wheel came from cache)
    assert runner.compiles == compiled + 2


class FakeImageRunner(FakeRunner):
    """A FakeRunner that can also build images (for derived build images)."""

    def __init__(self, index: FakeIndex) -> None:
        super().__init__(index)
        self.built: list[tuple[str, str]] = []

    @property
    def compiles(self) -> int:
        return self.compiled_jobs

    def local_image(self, image: str) -> object | None:
        return image if any(tag == image for tag, _ in self.built) else None

    def list_images(self, prefix: str) -> list[object]:
        return []

    def registry_digest(self, image: str) -> str:
        msg = "no registry here"
        raise AssertionError(msg)

    def build_image(self, *, context_dir: Path, tag: str, **_: object) -> str:
        self.built.append((tag, (context_dir / "Dockerfile").read_text()))
        assert (context_dir / "install-toolchain.sh").is_file()
        return "sha256:" + "9" * 64


def test_a_wheel_claiming_manylinux2014_that_needs_glibc_2_28_is_caught(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    """A real .so, built here, calling statx() (GLIBC_2.28) in a wheel tagged manylinux2014
    (glibc 2.17): python3.9's Amazon Linux 2 has glibc 2.26."""
    library = shared_library(tmp_path / "so", "_stat.so", STATX_C)
    index.add_wheel(
        "liar", "1.0", tag="cp39-cp39-manylinux2014_x86_64",
        files={"liar/_stat.so": library.read_bytes()},
    )  # fmt: skip
    (project / "requirements.txt").write_text("liar==1.0\n")
    code, _, err = run_build(project, tmp_path / "cache", "--glibc", "2.26")
    assert code == 14, err
    assert "liar/_stat.so (liar 1.0) needs GLIBC_2.28 (statx)" in err
    assert "GLIBC_2.26" in err


def test_a_macos_library_in_a_linux_wheel_is_caught(
    project: Path, tmp_path: Path, index: FakeIndex, fake: FakeRunner
) -> None:
    index.add_wheel(
        "mixed", "1.0", tag="cp39-cp39-manylinux2014_x86_64",
        files={"mixed/_native.so": MACHO_64},
    )  # fmt: skip
    (project / "requirements.txt").write_text("mixed==1.0\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 14, err
    assert "mixed/_native.so (mixed 1.0) needs macOS to load (Mach-O file)" in err


def test_bytecode_for_a_foreign_architecture_checks_emulation_first(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    monkeypatch: pytest.MonkeyPatch,
    fake_uv: FakeUv,
) -> None:
    """An all-binary set needs no compile container, but --compile still runs one (the target's
    Python writes the .pyc files): without QEMU it must fail up front, with the fix."""
    runner = ArchiveJobsRunner(index)
    runner.emulates = set()
    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner)
    (project / "requirements.txt").write_text("six==1.16.0\n")
    # arm64 alone: the fake gives every image one id, so an x86_64 target built beside it
    # could compile the same bytecode first (same key) and leave arm64 nothing to run.
    args = ["build", "-r", str(project / "requirements.txt"), "--src", str(project / "app")]
    args += ["--runtime", "python3.9", "--arch", "arm64", "--build-image", IMAGE, "--glibc", "2.31"]
    args += ["--cache-dir", str(tmp_path / "cache"), "-o", str(project / "dist"), "--compile"]
    result = CliRunner().invoke(cli.app, args, env={"SOURCE_DATE_EPOCH": ""})
    code, err = result.exit_code, result.stderr
    assert code == 15, err
    assert "tonistiigi/binfmt --install arm64" in err
    arm64 = [s.command for s in runner.specs if s.platform == "linux/arm64"]
    assert arm64 == [("uname", "-m")]  # the probe, and no bytecode job after it


def test_an_unchanged_build_reuses_the_check_and_a_changed_one_reads_again(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index.add_wheel(
        "launcher", "1.0", tag="cp39-cp39-manylinux2014_x86_64",
        files={"launcher/helper.exe": pe_file()},  # a warning: nothing loads it on Linux
    )  # fmt: skip
    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text() + "launcher==1.0\n")
    code, _, first = run_build(project, tmp_path / "cache")
    assert code == 0, first
    assert "launcher/helper.exe" in first

    scans: list[str] = []
    original = abi_gate.scan_archive_plan

    def counting(plan: Any, *, root: str, **kwargs: Any) -> Any:
        scans.append(root)
        return original(plan, root=root, **kwargs)

    monkeypatch.setattr("nativebuild.pipeline.abi_gate.scan_archive_plan", counting)
    code, _, again = run_build(project, tmp_path / "cache")
    assert code == 0, again
    assert scans == []  # the kept verdict
    assert "launcher/helper.exe" in again  # its warning, said again
    assert "binary files checked against" in again

    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert scans == ["/var/task"]  # the source changed: read again


def test_cached_wheels_are_read_once_and_later_archives_copy_them_unchecked(
    project: Path, tmp_path: Path, fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first build reads each wheel to its end (CRCs, binaries); a code-only rebuild neither
    reads them again nor inflates their members to check the CRCs."""
    read: list[str] = []
    original = wheel_facts.inspect_wheel

    def counting(path: Path) -> Any:
        read.append(path.name)
        return original(path)

    monkeypatch.setattr("nativebuild.pipeline.context.inspect_wheel", counting)
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert len(read) == 4  # markupsafe, six, requests, idna
    read.clear()
    monkeypatch.setattr("nativebuild.archive.zipwriter._Inflating.verify", _no_inflating)
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert read == []


def test_downloaded_wheels_are_read_while_the_others_download(
    project: Path, tmp_path: Path, fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each downloaded wheel is read (CRCs, binaries) once, by the worker that fetched it,
    not after the last download."""
    (project / "requirements.txt").write_text("six==1.16.0\nrequests==2.31.0\n")
    fake.engine_down = True
    readers: dict[str, list[str]] = {}
    original = wheel_facts.inspect_wheel

    def recording(path: Path) -> Any:
        readers.setdefault(path.name.split("-")[0], []).append(threading.current_thread().name)
        return original(path)

    monkeypatch.setattr("nativebuild.pipeline.context.inspect_wheel", recording)
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert sorted(readers) == ["idna", "requests", "six"]
    main = threading.main_thread().name
    assert all(threads != [main] and len(threads) == 1 for threads in readers.values()), readers


def _no_inflating(self: object) -> None:
    msg = "a verified wheel's member was inflated again"
    raise AssertionError(msg)


def test_build_verify_imports_every_module_in_the_runtime_image(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    code, _, err = run_build(project, tmp_path / "cache", "--verify")
    assert code == 0, err
    [verify] = [s for s in fake.specs if s.command[1:2] == ("/nativebuild/verify.py",)]
    assert verify.network_mode == "none"
    assert [m.target for m in verify.mounts if not m.read_only] == ["/nativebuild/out"]
    [request] = fake.verify_requests
    assert sorted(request["modules"]) == ["handler", "idna", "markupsafe", "requests", "six"]


def test_a_container_the_fake_engine_does_not_know_fails_the_test(fake: FakeRunner) -> None:
    """The fake must never pass an unknown container off as a compile (or anything else)."""
    from nativebuild.engine.runner import ContainerSpec
    from nativebuild.reporting import NullReporter

    spec = ContainerSpec(
        image="x", command=("python3", "/nativebuild/new-thing.py"), description="?"
    )
    with pytest.raises(AssertionError, match="does not know this container"):
        fake.run(spec, reporter=NullReporter())


def test_a_resolution_container_builds_nothing_the_cache_already_has(
    project: Path, tmp_path: Path, fake: FakeRunner
) -> None:
    """A new resolution (the requirements changed) whose sdists are all built: the container
    only resolves, and the wheels come from the cache."""
    assert run_build(project, tmp_path / "cache")[0] == 0
    assert fake.compiled_jobs == 1
    (project / "requirements.txt").write_text("six==1.16.0\nmarkupsafe==2.1.5\n")
    code, out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    result = json.loads(out)
    assert result["containers_started"] == 1  # the new resolution
    assert fake.compiled_jobs == 1
    assert {w["name"]: w["source"] for w in result["wheels"]}["markupsafe"] == "cache"


def test_hashes_are_checked_before_the_resolution_container_compiles(
    project: Path, tmp_path: Path, fake: FakeRunner, index: FakeIndex
) -> None:
    sdist = index.files["markupsafe"]
    (project / "requirements.txt").write_text(f"markupsafe==2.1.5 --hash=sha256:{'0' * 64}\n")
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 5, err
    assert f"{sdist.path.name} has sha256 {sdist.sha256}" in err
    assert fake.compiled_jobs == 0
    assert fake.resolved_then_compiled == 1  # resolved, then told to build nothing


def test_plan_never_compiles(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    args = ["plan", "-r", str(project / "requirements.txt"), "--runtime", "python3.9",
            "--build-image", IMAGE, "--glibc", "2.31", "--cache-dir", str(tmp_path / "cache"),
            "--project", str(project), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.stderr
    assert fake.compiled_jobs == 0
    assert [("--dry-run" in s.command) for s in fake.specs] == [True]


def test_an_unchanged_build_is_answered_before_the_pipeline_runs(
    project: Path, tmp_path: Path, fake: FakeRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "nativebuild.pipeline.uptodate.engine_image_ids",
        lambda env: lambda ref, platform: fake.image_id(ref, platform=platform),
    )
    code, cold, err = run_build(project, tmp_path / "cache")
    assert code == 0, err

    def no_engine(*args: object, **kwargs: object) -> None:
        msg = "an unchanged build must not even open the engine"
        raise AssertionError(msg)

    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", no_engine)
    code, warm, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" in err
    warm_result = json.loads(warm)
    assert warm_result["archives"] == json.loads(cold)["archives"]
    assert warm_result["containers_started"] == 0
    assert {w["source"] for w in warm_result["wheels"]} == {"cache"}
    # python3.9's dates are all past: the answer still says so, as the build itself did.
    notice = "python3.9 is deprecated since 2025-12-15"
    assert notice in err
    assert [d["runtime"] for d in warm_result["deprecations"]] == ["python3.9"]

    monkeypatch.setattr("nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: fake)
    requirements = project / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("six==1.16.0", "six==1.16.0 "))
    code, _, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" not in err, "the requirements file is an input"
    (project / "app" / "handler.py").write_text("def handler(event, context):\n    return 3\n")
    code, changed, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert "Up to date" not in err
    assert json.loads(changed)["archives"][0]["sha256"] != warm_result["archives"][0]["sha256"]


def test_verify_always_runs_the_pipeline(project: Path, tmp_path: Path, fake: FakeRunner) -> None:
    assert run_build(project, tmp_path / "cache", "--verify")[0] == 0
    code, _, err = run_build(project, tmp_path / "cache", "--verify")
    assert code == 0, err
    assert "Up to date" not in err
    assert len(fake.verify_requests) == 2


# --- the sdists known before resolving: compiled first, in the same container -----------


def read_pages(index: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's pages, readable by the build (tests/conftest.py gives none otherwise)."""
    monkeypatch.setattr(
        "nativebuild.pipeline.resolve_then_compile.SimpleIndex", index.simple_index()
    )


def built_keys(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "v1" / "built").glob("*/*"))


def test_known_sdist_is_compiled_first_with_the_same_keys_and_bytes(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the index's pages: pip prepares the sdist, then the container compiles it.
    code, out, err = run_build(project, tmp_path / "usual")
    assert code == 0, err
    usual = json.loads(out)
    assert fake.compiled_first == []
    read_pages(index, monkeypatch)
    code, out, err = run_build(project, tmp_path / "first")
    assert code == 0, err
    first = json.loads(out)
    assert fake.compiled_first == ["markupsafe"]
    assert index.page_reads == 1
    assert first["containers_started"] == 1
    assert "Compiling markupsafe 2.1.5" in err
    assert "(same container, before resolving)" in err
    assert {w["name"]: w["source"] for w in first["wheels"]}["markupsafe"] == "compiled"
    # pip resolved with the wheel, the resolution names the sdist: same keys, same bytes.
    assert first["archives"][0]["sha256"] == usual["archives"][0]["sha256"]
    assert built_keys(tmp_path / "first") == built_keys(tmp_path / "usual") != []
    assert fake.compiled_jobs == 2  # once per build: nothing compiled twice


def test_a_known_sdist_that_fails_stops_before_resolving(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_pages(index, monkeypatch)
    fake.fail_compile = {"markupsafe"}
    code, _out, err = run_build(project, tmp_path / "cache")
    assert code != 0
    assert "Compiling markupsafe 2.1.5 for python3.9 x86_64" in err
    assert "Python.h: No such file or directory" in err
    assert fake.compiled_first == ["markupsafe"]
    assert fake.resolved_texts == [], "nothing is resolved after a known sdist failed"


def test_hash_checking_mode_reads_no_pages(
    project: Path,
    tmp_path: Path,
    index: FakeIndex,
    fake: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_pages(index, monkeypatch)
    lines = [
        f"{name}=={entry.version} --hash=sha256:{entry.sha256}"
        for name, entry in sorted(index.files.items())
        if name in ("markupsafe", "six")
    ]
    (project / "requirements.txt").write_text("\n".join(lines) + "\n")
    code, _out, err = run_build(project, tmp_path / "cache")
    assert code == 0, err
    assert index.page_reads == 0
    assert fake.compiled_first == []
    assert fake.resolved_then_compiled == 1
