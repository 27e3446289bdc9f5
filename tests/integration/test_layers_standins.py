"""Layers, split builds, bytecode and slimming on a real Docker engine: built with the python3.13
build stand-in, then imported in the runtime stand-in the way Lambda mounts them: the function at
/var/task and the layers at /opt, both read-only, with the layer directories on sys.path
(lambda-facts §3: Python picks up /opt/python and /opt/python/lib/python3.X/site-packages)."""

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

from tests.standins import PY313

pytestmark = pytest.mark.docker

STANDIN = PY313
RUNTIME_IMAGE = STANDIN.runtime_for("x86_64")
LAYER_PATH = f"/opt/python/{STANDIN.site_packages()}:/opt/python"
SIMPLEJSON_SO = f"simplejson/_speedups{STANDIN.extension_suffix()}"
REQUIREMENTS = """\
# compiled here from its sdist (so strip applies), a vendor manylinux wheel with tests inside
# (so tests are slimmed, and its binary must stay untouched), and pure Python
markupsafe==3.0.2
--no-binary markupsafe
simplejson==3.19.3
six==1.16.0
"""
HANDLER = """\
import markupsafe
import simplejson
import six


def handler(event, context):
    return simplejson.dumps([str(markupsafe.escape(event["name"])), six.PY3])
"""
IMPORTS = (
    "import markupsafe, markupsafe._speedups, simplejson, simplejson._speedups, six, handler\n"
    "print(handler.handler({'name': '<b>'}, None))\n"
    "print(markupsafe.__file__)\n"
)
EXPECTED = '["&lt;b&gt;", true]'


@dataclass
class Build:
    code: int
    result: dict[str, object]
    stderr: str

    def archive(self, kind: str) -> dict[str, object]:
        (found,) = [a for a in self.result["archives"] if a["kind"] == kind]  # type: ignore[attr-defined]
        return found  # type: ignore[no-any-return]


def nativebuild(project: Path, cache: Path, *extra: str) -> Build:
    args = [
        sys.executable, "-m", "nativebuild", "build",
        "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        *STANDIN.build_args("x86_64"), "--cache-dir", str(cache), "-o", str(project / "dist"), "--json", *extra,
    ]  # fmt: skip
    completed = subprocess.run(
        args, capture_output=True, text=True, env=dict(os.environ), check=False, timeout=900
    )
    result = json.loads(completed.stdout) if completed.returncode == 0 else {}
    return Build(completed.returncode, result, completed.stderr)


def make_project(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    (root / "app" / "handler.py").write_text(HANDLER)
    return root


def extract(archive: object, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    with zipfile.ZipFile(str(archive)) as zf:
        zf.extractall(dest)
    return dest


def run_in_runtime(
    code: str, *, task: Path | None = None, opt: Path | None = None, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Python in the runtime stand-in as an unprivileged user, mounts read-only, no network."""
    mounts: list[str] = []
    if task is not None:
        mounts += ["-v", f"{task}:/var/task:ro"]
    if opt is not None:
        mounts += ["-v", f"{opt}:/opt:ro", "-e", f"PYTHONPATH={LAYER_PATH}"]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-u", "65534:65534", *mounts,
         RUNTIME_IMAGE, STANDIN.interpreter, *flags, "-c", code],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("layers")


@pytest.fixture(scope="module")
def cache(workspace: Path) -> Path:
    return workspace / "cache"


@pytest.mark.parametrize(
    ("layout", "prefix"),
    [("python", "python/"), ("site-packages", f"python/{STANDIN.site_packages()}/")],
)
def test_layer_layouts_import_from_opt(
    workspace: Path, cache: Path, layout: str, prefix: str
) -> None:
    project = make_project(workspace / f"layer-{layout}")
    build = nativebuild(project, cache, "--kind", "layer", "--layer-layout", layout)
    assert build.code == 0, build.stderr
    layer = build.archive("layer")
    names = zipfile.ZipFile(str(layer["path"])).namelist()
    assert [n for n in names if n.startswith(f"{prefix}markupsafe/_speedups.")]
    assert all(name.startswith(prefix) for name in names)
    opt = extract(layer["path"], workspace / f"opt-{layout}")
    # No /var/task: everything, the handler included, comes from the layer.
    result = run_in_runtime(IMPORTS, opt=opt)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [EXPECTED, f"/opt/{prefix}markupsafe/__init__.py"]


def test_split_function_and_layer_import_together(workspace: Path, cache: Path) -> None:
    project = make_project(workspace / "split")
    build = nativebuild(project, cache, "--kind", "split")
    assert build.code == 0, build.stderr
    function, layer = build.archive("function"), build.archive("layer")
    assert zipfile.ZipFile(str(function["path"])).namelist() == ["handler.py"]
    task = extract(function["path"], workspace / "split-task")
    opt = extract(layer["path"], workspace / "split-opt")
    result = run_in_runtime(IMPORTS, task=task, opt=opt)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [EXPECTED, "/opt/python/markupsafe/__init__.py"]
    alone = run_in_runtime("import handler", task=task)
    assert alone.returncode != 0  # the function really needs its layer
    assert "No module named" in alone.stderr


def test_compiled_bytecode_is_used_and_the_build_is_reproducible(workspace: Path) -> None:
    first = nativebuild(
        make_project(workspace / "pyc-a"), workspace / "cache-a", "--kind", "split", "--compile"
    )
    assert first.code == 0, first.stderr
    # A second cold build, with its own cache: new containers compile everything again.
    second = nativebuild(
        make_project(workspace / "pyc-b"), workspace / "cache-b", "--kind", "split", "--compile"
    )
    assert second.code == 0, second.stderr
    for kind in ("function", "layer"):
        assert first.archive(kind)["sha256"] == second.archive(kind)["sha256"], kind
    task = extract(first.archive("function")["path"], workspace / "pyc-task")
    opt = extract(first.archive("layer")["path"], workspace / "pyc-opt")
    assert (task / "__pycache__" / STANDIN.pyc("handler")).is_file()
    # -v says which cached file each import used ("# <pyc> matches <source>"), and what it
    # could not write. Bytecode writing is on, the mounts are read-only: a stale or missing
    # .pyc would show as a compile from source.
    result = run_in_runtime(IMPORTS, task=task, opt=opt, flags=("-v",))
    assert result.returncode == 0, result.stderr
    log = result.stderr
    for pyc, source in [
        (f"/var/task/__pycache__/{STANDIN.pyc('handler')}", "/var/task/handler.py"),
        (f"/opt/python/__pycache__/{STANDIN.pyc('six')}", "/opt/python/six.py"),
        (f"/opt/python/markupsafe/__pycache__/{STANDIN.pyc('__init__')}", "/opt/python/markupsafe/__init__.py"),
        (f"/opt/python/simplejson/__pycache__/{STANDIN.pyc('decoder')}", "/opt/python/simplejson/decoder.py"),
    ]:  # fmt: skip
        assert f"# {pyc} matches {source}" in log, pyc
    from_source = [
        line
        for line in log.splitlines()
        if ("could not create" in line or "# wrote " in line)
        and ("/var/task" in line or "/opt" in line)
    ]
    assert from_source == []


def test_slimming_reduces_size_and_every_module_still_imports(workspace: Path, cache: Path) -> None:
    project = make_project(workspace / "slim")
    plain = nativebuild(project, cache)
    assert plain.code == 0, plain.stderr
    before = plain.archive("function")
    with zipfile.ZipFile(str(before["path"])) as zf:
        old = {i.filename: i.file_size for i in zf.infolist()}
        vendor_so = zf.read(SIMPLEJSON_SO)
    slim = nativebuild(project, cache, "--slim", "tests,docs,examples,strip")
    assert slim.code == 0, slim.stderr
    after = slim.archive("function")
    assert int(after["unzipped_size"]) < int(before["unzipped_size"])  # type: ignore[call-overload]
    with zipfile.ZipFile(str(after["path"])) as zf:
        new = {i.filename: i.file_size for i in zf.infolist()}
        assert zf.read(SIMPLEJSON_SO) == vendor_so
    assert not [n for n in new if n.startswith("simplejson/tests/")]
    assert [n for n in old if n.startswith("simplejson/tests/")]
    assert "simplejson-3.19.3.dist-info/RECORD" in new
    compiled_so = [n for n in new if n.startswith("markupsafe/_speedups") and n.endswith(".so")]
    assert compiled_so
    assert all(new[n] < old[n] for n in compiled_so), "debug symbols stripped"
    removed = {item["path"] for item in after["removed"]}  # type: ignore[attr-defined]
    assert removed == {n for n in old if n not in new}
    task = extract(after["path"], workspace / "slim-task")
    modules = sorted(
        {n.split("/")[0] for n in new if "/" in n and ".dist-info" not in n} | {"handler"}
    )
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    result = run_in_runtime(code + IMPORTS, task=task)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == EXPECTED
