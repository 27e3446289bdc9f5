"""Bad input everywhere (hypothesis): requirements files, [tool.nativebuild] tables,
NATIVEBUILD_* variables and command lines give a clear error and a documented exit code, never a
traceback."""

from __future__ import annotations

import collections
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nativebuild import cli
from nativebuild.config.settings import KEYS, env_name
from nativebuild.errors import NativebuildError
from tests.fakes import ArchiveJobsRunner, FakeIndex, FakeUv
from tests.wheelfactory import make_tree


def _codes(cls: type[NativebuildError]) -> set[int]:
    return {cls.exit_code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


# 0 success, 2 usage (click) or ConfigError, the rest from nativebuild.errors.
DOCUMENTED = {0, 2} | _codes(NativebuildError)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FUZZ_TRIALS = {"requirements": 0, "config": 0, "environment": 0, "arguments": 0}
EXIT_CODES: collections.Counter[int] = collections.Counter()


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = FakeIndex(root / "index")
        index.add_wheel("six", "1.16.0")
        index.add_sdist("markupsafe", "2.1.5")
        runner, uv = ArchiveJobsRunner(index), FakeUv(index)  # bytecode and strip jobs too
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                "nativebuild.engine.docker.DockerRunner.from_env", lambda env, **_: runner
            )
            patch.setattr("nativebuild.pipeline.context.HostUv", lambda: uv)
            yield root
    examples = sum(FUZZ_TRIALS.values())
    print(f"RELIABILITY fuzz examples={examples} {FUZZ_TRIALS} exit-codes={dict(EXIT_CODES)}")


def invoke(root: Path, args: list[str], env: dict[str, str] | None = None) -> None:
    """Run the CLI in a fresh project under ``root``; assert a clean outcome."""
    work = Path(tempfile.mkdtemp(dir=root))
    base = {
        "SOURCE_DATE_EPOCH": "", "PIP_CONFIG_FILE": os.devnull,
        "XDG_CACHE_HOME": str(work / "xdg"), "HOME": str(work),
    }  # fmt: skip
    cwd = Path.cwd()
    os.chdir(work)
    try:
        result = CliRunner().invoke(cli.app, args, env={**base, **(env or {})})
    finally:
        os.chdir(cwd)
    assert result.exc_info is None or result.exc_info[0] is SystemExit, (
        f"{args!r} raised {result.exc_info!r}"
    )
    assert "Traceback" not in result.output + result.stderr, args
    assert result.exit_code in DOCUMENTED, (args, result.exit_code, result.stderr)
    EXIT_CODES[result.exit_code] += 1
    if result.exit_code != 0:
        assert result.stderr.strip(), f"{args!r}: exit {result.exit_code} without a message"


def project_args(project: Path) -> list[str]:
    return [
        "build", "--runtime", "python3.9", "--arch", "x86_64", "--glibc", "2.31",
        "--build-image", "example/build:{arch}", "--project", str(project),
        "--cache-dir", str(project / "cache"), "-o", str(project / "dist"),
        "--src", str(project / "app"),
    ]  # fmt: skip


REQUIREMENT_PIECES = st.sampled_from([
    "six", "six==1.16.0", "markupsafe==2.1.5", "-r other.txt", "-c c.txt", "--hash=sha256:",
    "--no-binary", ":all:", "-e .", "./libs/x", "@", "file:///etc", " ; ", "python_version",
    "<", ">=", "'3'", "[", "]", "\\", "#", "--index-url", "http://", "$(id)", "\x00", "\t",
    "é", "💥", "extra ==", "==", "~=", "===", "*", "git+https://x", "--", "-",
])  # fmt: skip


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.lists(REQUIREMENT_PIECES, max_size=5).map(" ".join),
            st.text(max_size=30),
        ),
        max_size=6,
    )
)
def test_any_requirements_file(world: Path, lines: list[str]) -> None:
    FUZZ_TRIALS["requirements"] += 1
    project = Path(tempfile.mkdtemp(dir=world))
    make_tree(project, {"app/handler.py": "x = 1\n"})
    (project / "requirements.txt").write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    invoke(world, [*project_args(project), "-r", str(project / "requirements.txt")])


TOML_SCALARS = st.one_of(
    st.text(max_size=12), st.integers(-5, 100), st.booleans(),
    st.sampled_from(["python3.9", "x86_64", "arm64", "2.31", "function", "layer", "all", ""]),
)  # fmt: skip
TOML_VALUES = st.one_of(
    TOML_SCALARS,
    st.lists(TOML_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["host", "name", "x"]), TOML_SCALARS, max_size=2),
)


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


@FUZZ
@given(
    table=st.dictionaries(
        st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=8)), TOML_VALUES, max_size=4
    ),
    garbage=st.one_of(st.just(""), st.text(max_size=20)),
)
def test_any_tool_nativebuild_table(world: Path, table: dict[str, object], garbage: str) -> None:
    FUZZ_TRIALS["config"] += 1
    project = Path(tempfile.mkdtemp(dir=world))
    make_tree(project, {"app/handler.py": "x = 1\n", "requirements.txt": "six==1.16.0\n"})
    body = "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in table.items())
    text = f"[tool.nativebuild]\n{body}{garbage}"
    (project / "pyproject.toml").write_bytes(text.encode("utf-8", "surrogatepass"))
    args = [
        "build", "--project", str(project), "--cache-dir", str(project / "cache"),
        "-o", str(project / "dist"), "-r", str(project / "requirements.txt"),
        "--src", str(project / "app"),
    ]  # fmt: skip
    invoke(world, args)


@FUZZ
@given(
    variables=st.dictionaries(
        st.sampled_from([env_name(k) for k in KEYS]),
        st.one_of(TOML_SCALARS.map(str), st.text(max_size=15)),
        max_size=4,
    )
)
def test_any_nativebuild_variables(world: Path, variables: dict[str, str]) -> None:
    FUZZ_TRIALS["environment"] += 1
    project = Path(tempfile.mkdtemp(dir=world))
    make_tree(project, {"app/handler.py": "x = 1\n", "requirements.txt": "six==1.16.0\n"})
    clean = {k: v.replace("\x00", "") for k, v in variables.items()}
    invoke(world, [*project_args(project), "-r", str(project / "requirements.txt")], clean)


OPTIONS = st.sampled_from([
    "--runtime", "--arch", "--src", "-o", "--name", "--cache-dir", "--build-image", "--glibc",
    "--extra", "--group", "-j", "--builder", "--cache", "--cache-only", "--no-cache", "--kind",
    "--layer-layout", "--compile", "--no-compile", "--slim", "--include", "--exclude",
    "--with-layer", "--dry-run", "--json", "-v", "-q", "-r", "--bogus", "--", "-",
])  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([
        "python3.9", "python2.7", "x86_64", "arm64", "riscv", "2.31", "two", "-1", "0", "99999",
        "layer", "split", "all", "nope", "arm64=ssh://", "=", "s3://", "s3://b/p", "{arch}",
        "x:{arch}", "**", "/", ".", "requirements.txt", "missing.zip",
    ]),
    st.text(max_size=10),
)  # fmt: skip


@FUZZ
@given(
    command=st.sampled_from(["build", "plan"]),
    args=st.lists(st.one_of(OPTIONS, VALUES), max_size=8),
)
def test_any_command_line(world: Path, command: str, args: list[str]) -> None:
    FUZZ_TRIALS["arguments"] += 1
    project = Path(tempfile.mkdtemp(dir=world))
    make_tree(project, {"app/handler.py": "x = 1\n", "requirements.txt": "six==1.16.0\n"})
    base = ["--project", str(project), "--cache-dir", str(project / "cache")]
    invoke(world, [command, *base, *[a.replace("\x00", "") for a in args]])
