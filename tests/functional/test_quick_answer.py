"""The quick answer through the real console entry (``nativebuild.cli:main``), in a subprocess:
an unchanged ``build`` or ``sam build`` prints, byte for byte and with the same exit code, what
the full check printed; every kind of change sends it to the full command line.

A quick-only run blocks typer (``sys.modules["typer"] = None``): it answers, or it fails with
"import of typer halted", which is how these tests see the quick path fall through. The cold
build runs in-process with fake containers and a fake index; the subprocess asks a fake engine
on a unix socket for image ids.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.pipeline import uptodate
from tests.engine_socket import Engine, serve_engine
from tests.fakes import FakeIndex, FakeRunner, FakeUv
from tests.wheelfactory import make_tree

IMAGE = "example/build:{arch}"
ENTRY = "from nativebuild.cli import main; main()"
# The full command line alone (the typer app, no quick answer tried): what the quick answer must
# print again.
FULL = "from nativebuild.cli import app; app()"
QUICK_ONLY = "import sys; sys.modules['typer'] = None; from nativebuild.cli import main; main()"
# The real entry with fake containers and index, in a process of its own.
DRIVER = Path(__file__).resolve().parents[1] / "reliability" / "fake_build.py"
FELL_THROUGH = b"import of typer halted"
DEPRECATED = b"python3.9 is deprecated since 2025-12-15"
TEMPLATE = """\
AWSTemplateFormatVersion: 2010-09-09
Transform: AWS::Serverless-2016-10-31
Resources:
  OrdersFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: orders/
      Handler: app.handler
      Runtime: python3.9
      Architectures: [x86_64]
"""


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
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A fake engine for the subprocesses' image questions, named by DOCKER_HOST from the
    cold build on (the environment is part of what is checked). A short path: unix sockets
    have a length limit."""
    with tempfile.TemporaryDirectory(prefix="nb-") as folder:
        path = str(Path(folder, "engine.sock"))
        with serve_engine(path) as state:
            monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
            monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
            yield state


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "project",
        {
            "requirements.txt": "markupsafe==2.1.5\nsix==1.16.0\n",
            "app/handler.py": "def handler(event, context):\n    return 1\n",
            "pyproject.toml": '[tool.nativebuild]\nname = "function"\n',
        },
    )


def build_args(project: Path, cache: Path) -> list[str]:
    return [
        "build", "-r", str(project / "requirements.txt"), "--src", str(project / "app"),
        "--runtime", "python3.9", "--arch", "x86_64", "--build-image", IMAGE, "--glibc", "2.31",
        "--cache-dir", str(cache), "-o", str(project / "dist"), "--project", str(project),
    ]  # fmt: skip


def serve_recorded_images(engine: Engine, record: Path) -> None:
    """The engine has every image the build used, under the id the record holds."""
    for key, image_id in json.loads(record.read_text())["images"].items():
        ref, _, platform = key.partition("|")
        arch = platform.split("/")[1] if "/" in platform else "amd64"
        engine.images[ref] = {"Id": image_id, "Architecture": arch}


def run(
    args: list[str], *, cwd: Path, env: dict[str, str], code: str = ENTRY
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd, env=env, capture_output=True, check=False, timeout=300,
    )  # fmt: skip


def real_build(
    index: FakeIndex, args: list[str], *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """A build through the real entry, with fake containers and index (fake_build.py)."""
    pickled = index.root.parent / "index.pickle"
    pickled.write_bytes(pickle.dumps(index))
    return subprocess.run(
        [sys.executable, str(DRIVER), str(pickled), *args],
        cwd=cwd, env=env, capture_output=True, check=False, timeout=300,
    )  # fmt: skip


def answered(done: subprocess.CompletedProcess[bytes]) -> bool:
    if done.returncode == 0:
        return True
    assert FELL_THROUGH in done.stderr, done.stderr.decode()
    return False


class Project:
    """A project built once (in-process), then run as a user runs it."""

    def __init__(self, project: Path, cache: Path, engine: Engine) -> None:
        self.project = project
        self.cache = cache
        self.engine = engine
        self.cwd = project
        self.extra: list[str] = []
        result = CliRunner().invoke(cli.app, [*build_args(project, cache), "--json"])
        assert result.exit_code == 0, result.stderr
        self.archive = Path(json.loads(result.stdout)["archives"][0]["path"])
        self.record = next((cache / uptodate.STATE_DIR).glob("*.json"))
        serve_recorded_images(engine, self.record)
        self.env = dict(os.environ)

    def run(self, *flags: str, code: str = ENTRY) -> subprocess.CompletedProcess[bytes]:
        args = [*build_args(self.project, self.cache), *flags, *self.extra]
        return run(args, cwd=self.cwd, env=self.env, code=code)


@pytest.fixture
def built(project: Path, tmp_path: Path, fake: FakeRunner, engine: Engine) -> Project:
    return Project(project, tmp_path / "cache", engine)


@pytest.mark.parametrize(
    "flags", [[], ["--json"], ["-q"], ["-q", "--json"]], ids=["human", "json", "quiet", "both"]
)
def test_an_unchanged_build_is_answered_quickly_with_the_same_bytes(
    built: Project, flags: list[str]
) -> None:
    full = built.run(*flags)  # the full check answers, and keeps its answer
    assert full.returncode == 0, full.stderr.decode()
    quick = built.run(*flags, code=QUICK_ONLY)
    assert answered(quick)
    assert (quick.returncode, quick.stdout, quick.stderr) == (0, full.stdout, full.stderr)
    alone = built.run(*flags, code=FULL)  # the full check once more, with an answer kept
    assert (alone.returncode, alone.stdout, alone.stderr) == (0, full.stdout, full.stderr)
    assert DEPRECATED in quick.stderr  # the deprecation warning, -q or not
    assert (b"Up to date" in quick.stderr) is ("-q" not in flags)
    assert str(built.archive).encode() in quick.stdout


def test_python_dash_m_takes_the_same_quick_answer(built: Project) -> None:
    built.run("--json")  # keeps the answer
    full = built.run("--json", code=FULL)
    module = built.run("--json", code="import runpy; runpy.run_module('nativebuild', run_name='__main__')")  # fmt: skip
    quick = built.run(
        "--json",
        code="import sys, runpy; sys.modules['typer'] = None; "
        "runpy.run_module('nativebuild', run_name='__main__')",
    )
    assert answered(quick)
    assert (full.stdout, full.stderr) == (module.stdout, module.stderr)
    assert (full.stdout, full.stderr) == (quick.stdout, quick.stderr)


def _edit(path: Path, text: str) -> Callable[[Project], None]:
    return lambda p: (p.project / path).write_text(text)


def _flag(p: Project) -> None:
    p.extra = ["--jobs", "2"]


def _env(p: Project) -> None:
    p.env["SOME_UNRELATED_VARIABLE"] = "1"


def _cwd(p: Project) -> None:
    p.cwd = p.project / "app"


def _output_deleted(p: Project) -> None:
    p.archive.unlink()


def _output_modified(p: Project) -> None:
    p.archive.write_bytes(p.archive.read_bytes() + b"\0")


def _image_rebuilt(p: Project) -> None:
    for image in p.engine.images.values():
        image["Id"] = "sha256:" + "9" * 64


def _record_replaced(p: Project) -> None:
    record = json.loads(p.record.read_text())
    record["result"]["containers_started"] = 7
    p.record.write_text(json.dumps(record))


CHANGES: dict[str, Callable[[Project], None]] = {
    "source edited": _edit(Path("app/handler.py"), "def handler(event, context):\n    return 2\n"),
    "file added to the source tree": _edit(Path("app/util.py"), "X = 1\n"),
    "requirements edited": _edit(Path("requirements.txt"), "markupsafe==2.1.5\nsix==1.16.0 \n"),
    "flag changed": _flag,
    "environment changed": _env,
    "config changed": _edit(Path("pyproject.toml"), "[tool.nativebuild]\njobs = 2\n"),
    "output deleted": _output_deleted,
    "output modified": _output_modified,
    "image id changed": _image_rebuilt,
    "other working directory": _cwd,
    "record rewritten": _record_replaced,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_any_change_goes_to_the_full_command_line(built: Project, change: str) -> None:
    full = built.run()
    assert full.returncode == 0, full.stderr.decode()
    assert answered(built.run(code=QUICK_ONLY)), "unchanged: answered quickly"
    CHANGES[change](built)
    assert not answered(built.run(code=QUICK_ONLY)), change


@pytest.mark.parametrize("flags", [[], ["--json"]], ids=["human", "json"])
def test_a_real_build_keeps_the_answer_of_the_next_unchanged_one(
    built: Project, index: FakeIndex, flags: list[str]
) -> None:
    _edit(Path("app/handler.py"), "def handler(event, context):\n    return 2\n")(built)
    args = [*build_args(built.project, built.cache), *flags]
    made = real_build(index, args, cwd=built.cwd, env=built.env)
    assert made.returncode == 0, made.stderr.decode()
    assert b"Up to date" not in made.stderr
    quick = built.run(*flags, code=QUICK_ONLY)  # the very next run: no full check in between
    assert answered(quick)
    full = built.run(*flags, code=FULL)
    assert (quick.returncode, quick.stdout, quick.stderr) == (0, full.stdout, full.stderr)


def test_no_answer_is_kept_for_a_build_that_is_not_up_to_date(built: Project) -> None:
    _edit(Path("app/handler.py"), "def handler(event, context):\n    return 2\n")(built)
    quick = built.run(code=QUICK_ONLY)
    assert not answered(quick)
    assert not (built.cache / "builds" / "quick").exists()


# --- sam build --------------------------------------------------------------------------------


@pytest.fixture
def sam_app(tmp_path: Path, fake: FakeRunner, engine: Engine) -> tuple[Path, list[str]]:
    app = make_tree(
        tmp_path / "app",
        {
            "template.yaml": TEMPLATE,
            "orders/app.py": "def handler(event, context):\n    return 1\n",
            "orders/requirements.txt": "six==1.16.0\n",
        },
    )
    args = ["sam", "build", "--build-image", "example/build-{runtime}:{arch}", "--glibc", "2.31",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    previous = Path.cwd()
    os.chdir(app)
    try:
        result = CliRunner().invoke(cli.app, [*args, "--json"])
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.stderr
    serve_recorded_images(engine, next((tmp_path / "cache" / uptodate.STATE_DIR).glob("*.json")))
    return app, args


@pytest.mark.parametrize("flags", [[], ["--json"], ["-q"]], ids=["human", "json", "quiet"])
def test_an_unchanged_sam_build_is_answered_quickly_with_the_same_bytes(
    sam_app: tuple[Path, list[str]], flags: list[str]
) -> None:
    app, args = sam_app
    env = dict(os.environ)
    full = run([*args, *flags], cwd=app, env=env)
    assert full.returncode == 0, full.stderr.decode()
    quick = run([*args, *flags], cwd=app, env=env, code=QUICK_ONLY)
    assert answered(quick)
    assert (quick.returncode, quick.stdout, quick.stderr) == (0, full.stdout, full.stderr)
    assert DEPRECATED in quick.stderr
    if not flags:  # the summary table too
        assert b"OrdersFunction" in quick.stderr
        assert b"cached" in quick.stderr


def test_a_real_sam_build_keeps_the_answer_of_the_next_unchanged_one(
    sam_app: tuple[Path, list[str]], index: FakeIndex
) -> None:
    app, args = sam_app
    env = dict(os.environ)
    (app / "orders" / "app.py").write_text("def handler(event, context):\n    return 2\n")
    made = real_build(index, args, cwd=app, env=env)
    assert made.returncode == 0, made.stderr.decode()
    assert b"Up to date" not in made.stderr
    quick = run(args, cwd=app, env=env, code=QUICK_ONLY)
    assert answered(quick)
    full = run(args, cwd=app, env=env, code=FULL)
    assert (quick.returncode, quick.stdout, quick.stderr) == (0, full.stdout, full.stderr)


def test_a_sam_template_edit_or_a_new_template_file_goes_to_the_full_command_line(
    sam_app: tuple[Path, list[str]],
) -> None:
    app, args = sam_app
    env = dict(os.environ)
    assert run(args, cwd=app, env=env).returncode == 0
    assert answered(run(args, cwd=app, env=env, code=QUICK_ONLY))
    (app / "orders" / "app.py").write_text("def handler(event, context):\n    return 2\n")
    assert not answered(run(args, cwd=app, env=env, code=QUICK_ONLY))
    (app / "orders" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    assert run(args, cwd=app, env=env).returncode == 0
    assert answered(run(args, cwd=app, env=env, code=QUICK_ONLY))
    (app / "template.yaml").write_text(TEMPLATE + "Outputs: {}\n")
    assert not answered(run(args, cwd=app, env=env, code=QUICK_ONLY))
