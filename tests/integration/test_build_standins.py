"""The whole build on a real Docker engine: the python3.13 stand-in images (Debian trixie), real
PyPI packages, a real compiler, and the resulting archive imported in the runtime stand-in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standins import PY39, PY313, Standin

pytestmark = pytest.mark.docker

STANDIN = PY313
RUNTIME_IMAGE = STANDIN.runtime_for("x86_64")
REQUIREMENTS = """\
# an sdist compiled from source, a binary cp313 manylinux wheel, pure Python, and a marker that
# excludes
markupsafe==3.0.2
--no-binary markupsafe
charset-normalizer==3.4.0
six==1.16.0
futures==3.0.5; python_version < "3"
"""
HANDLER = """\
import markupsafe


def handler(event, context):
    return str(markupsafe.escape(event["name"]))
"""


@dataclass
class Build:
    code: int
    result: dict[str, object]
    stderr: str


def nativebuild(
    project: Path,
    cache: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    standin: Standin = STANDIN,
) -> Build:
    completed = subprocess.run(
        [sys.executable, "-m", "nativebuild", *build_argv(project, cache, *extra, standin=standin)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=600,
    )
    result = json.loads(completed.stdout) if completed.returncode == 0 else {}
    return Build(completed.returncode, result, completed.stderr)


def build_argv(project: Path, cache: Path, *extra: str, standin: Standin = STANDIN) -> list[str]:
    return [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        *standin.build_args("x86_64"), "--cache-dir", str(cache), "-o", str(project / "dist"),
        "--json", *extra,
    ]  # fmt: skip


def make_project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text(HANDLER)
    return root


def top_level_modules(archive: Path) -> list[str]:
    modules = set()
    for name in zipfile.ZipFile(archive).namelist():
        first = name.split("/")[0]
        if ".dist-info" in first or first in ("bin", "include"):
            continue
        if "/" in name and name.endswith("/__init__.py") and name.count("/") == 1:
            modules.add(first)
        elif "/" not in name and name.endswith(".py"):
            modules.add(name.removesuffix(".py"))
    return sorted(modules)


def import_in_runtime(
    archive: Path, modules: list[str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    task = workdir / "task"
    shutil.rmtree(task, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(task)
    code = (
        "import importlib, sys\n"
        + "".join(f"importlib.import_module({m!r})\n" for m in modules)
        + "import markupsafe._speedups, handler\nprint(handler.handler({'name': '<b>'}, None))\n"
    )
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-u", "65534:65534",
         "-v", f"{task}:/var/task:ro", RUNTIME_IMAGE, STANDIN.interpreter, "-c", code],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Build]:
    root = tmp_path_factory.mktemp("cold")
    project = make_project(root / "project")
    cache = root / "cache"
    return project, cache, nativebuild(project, cache)


def test_cold_build_compiles_the_sdist_and_downloads_the_rest(
    cold: tuple[Path, Path, Build],
) -> None:
    _, _, build = cold
    assert build.code == 0, build.stderr
    wheels = {w["name"]: w for w in build.result["wheels"]}  # type: ignore[attr-defined]
    assert set(wheels) == {"markupsafe", "charset-normalizer", "six"}, (
        "futures is excluded by its marker"
    )
    assert wheels["markupsafe"]["source"] == "compiled"
    assert wheels["markupsafe"]["filename"].endswith("-cp313-cp313-linux_x86_64.whl")
    assert wheels["charset-normalizer"]["source"] == "download"
    assert "-cp313-cp313-manylinux" in wheels["charset-normalizer"]["filename"]
    assert wheels["six"]["filename"].endswith("-none-any.whl")
    # Resolved on the host; one probe of the custom runtime image's libraries (for the ABI
    # check, then cached by image id); one compile.
    assert build.result["containers_started"] == 2


def test_archive_imports_every_module_in_the_runtime_standin(
    cold: tuple[Path, Path, Build], tmp_path: Path
) -> None:
    _, _, build = cold
    archive = Path(build.result["archives"][0]["path"])  # type: ignore[index]
    names = zipfile.ZipFile(archive).namelist()
    assert f"markupsafe/_speedups{STANDIN.extension_suffix()}" in names
    modules = top_level_modules(archive)
    assert {"markupsafe", "charset_normalizer", "six", "handler"} <= set(modules)
    done = import_in_runtime(archive, modules, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "&lt;b&gt;"


def test_warm_rebuild_starts_no_container_and_gives_the_same_bytes(
    cold: tuple[Path, Path, Build],
) -> None:
    project, cache, first = cold
    again = nativebuild(project, cache)
    assert again.code == 0, again.stderr
    assert again.result["containers_started"] == 0
    assert {w["source"] for w in again.result["wheels"]} == {"cache"}  # type: ignore[attr-defined]
    assert again.result["archives"][0]["sha256"] == first.result["archives"][0]["sha256"]  # type: ignore[index]


def test_an_unchanged_build_is_answered_before_typer_loads_asking_the_engine_its_ids(
    cold: tuple[Path, Path, Build],
) -> None:
    """The quick answer (nativebuild.cli.quick) on the real engine: the record's image ids are
    asked over its socket, and the answer is the full check's, byte for byte."""
    project, cache, _ = cold
    argv = build_argv(project, cache)

    def run(code: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, env=dict(os.environ),
            check=False, timeout=600,
        )  # fmt: skip

    run("from nativebuild.cli import main; main()")  # up to date: keeps the answer
    quick = run("import sys; sys.modules['typer'] = None; from nativebuild.cli import main; main()")
    assert quick.returncode == 0, quick.stderr.decode()
    full = run("from nativebuild.cli import app; app()")
    assert (quick.stdout, quick.stderr) == (full.stdout, full.stderr)
    assert json.loads(quick.stdout)["containers_started"] == 0


def test_same_inputs_elsewhere_with_an_empty_cache_give_the_same_bytes(
    cold: tuple[Path, Path, Build], tmp_path: Path
) -> None:
    """Compiling again, from another directory, reproduces the archive byte for byte."""
    _, _, first = cold
    project = make_project(tmp_path / "another" / "place")
    second = nativebuild(project, tmp_path / "fresh-cache")
    assert second.code == 0, second.stderr
    assert second.result["containers_started"] == 2  # the runtime probe and the compile
    assert second.result["archives"][0]["sha256"] == first.result["archives"][0]["sha256"]  # type: ignore[index]


def test_compile_failure_names_the_package_and_shows_the_compiler(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    # cffi's C extension needs ffi.h, which the build stand-in does not have.
    (project / "requirements.txt").write_text("cffi==1.17.1\n--no-binary cffi\n")
    build = nativebuild(project, tmp_path / "cache")
    assert build.code == 6, build.stderr
    assert "cffi 1.17.1" in build.stderr
    assert "ffi.h" in build.stderr
    assert "Traceback" not in build.stderr
    assert not (project / "dist").exists()
    # The whole build log of the package, kept where the message says.
    log = tmp_path / "cache" / "logs" / "compile-cffi-1.17.1-x86_64.log"
    assert f"The whole build log: {log}" in build.stderr
    assert "ffi.h" in log.read_text()


def test_unknown_package_is_a_resolution_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    (project / "requirements.txt").write_text("nativebuild-no-such-package-xyz==1.0\n")
    build = nativebuild(project, tmp_path / "cache")
    assert build.code == 5, build.stderr
    assert "nativebuild-no-such-package-xyz" in build.stderr
    assert "Traceback" not in build.stderr


def test_engine_not_running(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    build = nativebuild(
        project, tmp_path / "cache", env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    )
    assert build.code == 7, build.stderr
    assert "Traceback" not in build.stderr


def test_image_not_found(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    build = nativebuild(
        project, tmp_path / "cache", "--build-image", "nativebuild-test/no-such-image:{arch}"
    )
    assert build.code == 8, build.stderr
    assert "nativebuild-test/no-such-image:x86_64" in build.stderr
    assert "Traceback" not in build.stderr


def test_no_container_is_left_behind() -> None:
    listed = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=org.nativebuild", "--format", "{{.Names}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert listed.stdout.strip() == ""


def test_one_container_resolves_and_compiles_the_same_wheel_as_two(tmp_path: Path) -> None:
    """wrapt 1.12.1 has no wheel at all, so only the build image can resolve it: that container
    compiles it first (pinned, the only file of its version: known before resolving), then
    resolves with its wheel. Compiled again in a container of its own (the resolution cached,
    the wheel not), it gives the same archive bytes. (python3.9: wrapt 1.12.1 predates 3.13.)"""
    project = make_project(tmp_path / "project")
    (project / "requirements.txt").write_text("wrapt==1.12.1\nsix==1.16.0\n")
    (project / "app" / "handler.py").write_text("import wrapt\n")
    cache = tmp_path / "cache"
    first = nativebuild(project, cache, standin=PY39)
    assert first.code == 0, first.stderr
    assert (
        "wrapt 1.12.1 in nativebuild-test/build-python3.9:x86_64 (same container, before resolving)"
        in first.stderr
    )
    sources = {w["name"]: w["source"] for w in first.result["wheels"]}  # type: ignore[attr-defined]
    assert sources == {"wrapt": "compiled", "six": "download"}

    shutil.rmtree(cache / "v1" / "built")  # the resolution stays: no resolution container now
    shutil.rmtree(project / "dist")  # else the unchanged output is simply up to date
    second = nativebuild(project, cache, standin=PY39)
    assert second.code == 0, second.stderr
    assert "(same container)" not in second.stderr
    assert "==> Compiling wrapt 1.12.1" in second.stderr
    [a], [b] = first.result["archives"], second.result["archives"]  # type: ignore[misc]
    assert a["sha256"] == b["sha256"]
